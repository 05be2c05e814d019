"""Architecture hyperparameters (`ModelConfig`) and the generator kinds with their published sizes: light (no
TensorFlow), so flags, the zoo's registry and exported metadata can name architectures without building one.
`sr_keras.models.build_generator` builds them; a new architecture is one file there plus one row here."""

from __future__ import annotations

import dataclasses

SCALES = (2, 4, 8)  # Both GANs' generators upsample in log2(scale) x2 stages (or one x`scale` pixel shuffle).
UPSAMPLERS = ("srresnet", "espcn", "nearest")
DISCRIMINATORS = ("", "unet_sn")  # "": the GAN's own (SRGAN or DCGAN); unet_sn: Real-ESRGAN's U-Net with SN.
# The zoo's architectures, which an SRGAN-family run can also train (--generator), with their published width and
# depth (what a run from scratch uses). srgan and dcgan are the two GANs' own generators.
GENERATOR_DEFAULTS = {"span": {"filters": 48, "num_blocks": 6}, "rrdb": {"filters": 64, "num_blocks": 23,
                                                                          "growth": 32},
                      "compact": {"filters": 64, "num_blocks": 32}}
KINDS = ("srgan", "dcgan") + tuple(GENERATOR_DEFAULTS)
GENERATORS = ("srgan",) + tuple(GENERATOR_DEFAULTS)  # An SRGAN-family run's generator (the DCGAN variant's is fixed).


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture hyperparameters of one GAN (generator and discriminator)."""

    kind: str = "srgan"  # KINDS: srgan | dcgan | span | rrdb | compact (models/<kind>.py; rrdb: rrdbnet.py)
    scale: int = 4
    filters: int = 64  # Generator width.
    num_blocks: int = 16  # Residual blocks (SRGAN paper: 16; the DCGAN variant: exactly 5).
    upsample_filters: int = 256  # SRGAN: conv width before each x2 pixel shuffle (4 x filters).
    d_filters: int = 64  # Discriminator width of the first conv; doubles per stage.
    d_dense: int = 1024  # SRGAN discriminator hidden dense units.
    bicubic_skip: bool = False  # Output = bicubic(lr) + f(lr), last conv zero-initialised (VDSR-style).
    batch_norm: bool = True  # SRGAN generator BatchNorms (False: EDSR-style, for PSNR-oriented models).
    upsampler: str = "srresnet"  # SRGAN generator tail: srresnet (paper) | espcn (all convs at LR; see srgan.py).
    growth: int = 32  # rrdb: channels each dense-block conv adds (ESRGAN: 32).
    discriminator: str = ""  # DISCRIMINATORS.
