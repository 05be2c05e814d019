"""Typed, frozen training configuration and its named presets.

    cfg = get_preset("sample_x4", model="srgan")
    cfg = dataclasses.replace(cfg, batch_size=32)   # flags override presets this way

Presets:
  tiny       seconds on a CPU; for tests (8 filters, 1-2 blocks, 32 px crops).
  sample_x4  minutes on a 2-core CPU, on the bundled sample photos; a demonstration, not a trained model.
  celeba_x4  paper-like set-up for GPUs on CelebA faces (SRGAN: B=16, VGG54, 96 px crops, batch 16).
  photo_x4   the shipped default model, stage 1: PSNR-oriented, on the sample and free wallpaper photos (~95 CPU
             minutes).
  photo_x4_ms  stage 2: photo_x4 fine-tuned on those photos at 1, 0.75 and 0.5x size (~30 CPU minutes).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

MODELS = ("srgan", "dcgan")
PRESETS = ("tiny", "sample_x4", "celeba_x4", "photo_x4", "photo_x4_ms")
CONTENT_LOSSES = ("vgg54", "vgg22", "l1", "mse")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture hyperparameters of one GAN (generator and discriminator)."""

    kind: str = "srgan"  # srgan | dcgan
    scale: int = 4
    filters: int = 64  # Generator width.
    num_blocks: int = 16  # Residual blocks (SRGAN paper: 16; the DCGAN variant: exactly 5).
    upsample_filters: int = 256  # SRGAN: conv width before each x2 pixel shuffle (4 x filters).
    d_filters: int = 64  # Discriminator width of the first conv; doubles per stage.
    d_dense: int = 1024  # SRGAN discriminator hidden dense units.
    bicubic_skip: bool = False  # Output = bicubic(lr) + f(lr), last conv zero-initialised (VDSR-style).
    batch_norm: bool = True  # SRGAN generator BatchNorms (False: EDSR-style, for PSNR-oriented models).
    upsampler: str = "srresnet"  # SRGAN generator tail: srresnet (paper) | espcn (all convs at LR; see srgan.py).


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; written to <workdir>/config.json."""

    model: ModelConfig = ModelConfig()
    data: str = "tfrecords/sample_x4"
    batch_size: int = 16  # Global batch, split across replicas.
    hr_crop: int = 96
    pretrain_steps: int = 1000  # Phase 1: generator alone, pixel loss (SRResNet).
    gan_steps: int = 1000  # Phase 2: adversarial.
    lr: float = 1e-4  # Generator and discriminator Adam learning rate (SRGAN paper).
    lr_schedule: str = "step"  # step: x0.1 at lr_decay_at of phase 2 (paper); cosine: to lr/100 over all steps.
    lr_decay_at: float = 0.5  # Fraction of gan_steps after which lr drops x0.1 (paper: 1e-4 then 1e-5).
    adam_beta1: float = 0.9
    pretrain_loss: str = "mse"  # Phase-1 pixel loss: mse (SRResNet) or l1.
    content_loss: str = "vgg54"  # Phase-2 content loss: vgg54 | vgg22 | l1 | mse.
    content_weight: float = 1.0
    adv_weight: float = 1e-3  # SRGAN paper.
    vgg_feature_scale: float = 1.0 / 12.75  # SRGAN paper: VGG features rescaled by 1/12.75.
    vgg_weights: str = "imagenet"  # imagenet | PATH to the .h5 | none.
    d_steps: int = 1  # Discriminator updates per generator update.
    ema_decay: float = 0.999
    mixed_precision: Optional[str] = None  # None | mixed_float16 | mixed_bfloat16.
    jit_compile: bool = False
    ckpt_every: int = 500
    eval_every: int = 500
    log_every: int = 1
    eval_images: int = 8  # Validation images evaluated (and shown) at each evaluation.
    eval_crop: int = 0  # HR centre crop for validation (0: whole images).
    cache_data: bool = False  # Keep decoded training images in memory (small datasets).
    crops_per_image: int = 1
    seed: int = 0
    keep_checkpoints: int = 3
    # Start the generator (and its EMA) from another run's EMA generator: a run folder or a checkpoint prefix.
    # Only on a fresh workdir; optimizer, step and schedule start anew (a fine-tune, or a GAN phase on top of a
    # PSNR model as in ESRGAN). Empty: random initialisation.
    init_checkpoint: str = ""

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.gan_steps


def _dcgan(model: ModelConfig) -> ModelConfig:
    return dataclasses.replace(model, kind="dcgan", num_blocks=5)


def get_preset(name: str, model: str = "srgan") -> TrainConfig:
    """Returns a named preset for `model` ("srgan" or "dcgan")."""
    if model not in MODELS:
        raise ValueError(f"--model={model}: choose one of {MODELS}")
    if name == "celeba_x4":
        cfg = TrainConfig(data="tfrecords/celeb_a_x4", batch_size=16, hr_crop=96, pretrain_steps=100_000,
                          gan_steps=100_000, ckpt_every=2000, eval_every=2000, log_every=10, eval_images=16,
                          eval_crop=128)
    elif name == "sample_x4":
        # bicubic_skip: a few CPU minutes then start from, and stay near, bicubic quality instead of far below.
        cfg = TrainConfig(model=ModelConfig(filters=32, num_blocks=4, upsample_filters=128, d_filters=16,
                                            d_dense=128, bicubic_skip=True),
                          data="tfrecords/sample_x4", batch_size=8, hr_crop=64, pretrain_steps=600,
                          gan_steps=300, ckpt_every=150, eval_every=150, eval_images=3, cache_data=True,
                          crops_per_image=4, vgg_weights="imagenet", lr=4e-4, lr_schedule="cosine")
    elif name == "tiny":
        cfg = TrainConfig(model=ModelConfig(filters=8, num_blocks=2, upsample_filters=32, d_filters=8, d_dense=16),
                          batch_size=4, hr_crop=32, pretrain_steps=2, gan_steps=2, ckpt_every=2, eval_every=2,
                          eval_images=2, eval_crop=64, vgg_weights="none", content_loss="vgg22", cache_data=True)
    elif name == "photo_x4":
        # The shipped default model (see `make default-model`): PSNR-oriented, EDSR-baseline-sized SRResNet
        # without BatchNorm, every conv at LR (espcn tail), the VDSR-style bicubic residual, L1, no GAN phase.
        # Data: the sample photos plus the free wallpaper photos (sr-fetch-photos). About 95 minutes on a
        # 2-core CPU with bf16.
        cfg = TrainConfig(model=ModelConfig(filters=64, num_blocks=16, bicubic_skip=True, batch_norm=False,
                                            upsampler="espcn"),
                          data="tfrecords/photos_x4", batch_size=16, hr_crop=128, pretrain_steps=14000,
                          gan_steps=0, lr=3e-4, lr_schedule="cosine", pretrain_loss="l1", content_loss="l1",
                          ckpt_every=250, eval_every=1000, log_every=10, eval_images=3, cache_data=True,
                          crops_per_image=8, vgg_weights="none", ema_decay=0.999)
    elif name == "photo_x4_ms":
        # Stage 2 of the default model: photo_x4's EMA generator, fine-tuned for 4,000 steps (fresh cosine from
        # 1e-4) on the same photos plus copies shrunk 0.75x and 0.5x (sr-build-tfrecords --train_rescales).
        cfg = dataclasses.replace(get_preset("photo_x4"), data="tfrecords/photos_x4_ms", pretrain_steps=4000,
                                  lr=1e-4, eval_every=500, init_checkpoint="runs/photo_x4")
    else:
        raise ValueError(f"--preset={name}: choose one of {', '.join(PRESETS)}")
    if model == "dcgan":
        tiny = name == "tiny"
        cfg = dataclasses.replace(cfg, model=_dcgan(cfg.model), content_loss="l1",
                                  lr=2e-4 if not tiny else cfg.lr, adam_beta1=0.5, pretrain_loss="l1")
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["model"] = ModelConfig(**d["model"])
    return TrainConfig(**d)
