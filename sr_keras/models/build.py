"""Building networks from a `ModelConfig`: the generator its kind registered (`models.registry`), and the
discriminator its GAN trains against."""

from __future__ import annotations

import keras

# Every architecture file, imported for its registration.
from sr_keras.models import compact, dcgan, rrdbnet, span, srgan, unet  # noqa: F401
from sr_keras.models.config import KINDS, ModelConfig
from sr_keras.models.registry import GENERATORS

if set(GENERATORS) != set(KINDS):
    raise RuntimeError(f"registered generators {sorted(GENERATORS)} differ from models.config.KINDS {sorted(KINDS)}")


def build_generator(model_cfg: ModelConfig) -> keras.Model:
    """The generator for a `ModelConfig`."""
    if model_cfg.kind not in GENERATORS:
        raise ValueError(f"unknown model kind {model_cfg.kind!r}: choose one of {', '.join(KINDS)}")
    return GENERATORS[model_cfg.kind](model_cfg)


def build_discriminator(model_cfg: ModelConfig, hr_size: int) -> keras.Model:
    """The discriminator for a `ModelConfig`, on hr_size x hr_size crops: Real-ESRGAN's U-Net with spectral
    normalisation when asked (`discriminator="unet_sn"`), the DCGAN variant's own for dcgan, else SRGAN's (ESRGAN
    trains RRDBNet against this VGG-style one too)."""
    if getattr(model_cfg, "discriminator", "") == "unet_sn":
        return unet.build_unet_discriminator(filters=model_cfg.d_filters)
    if model_cfg.kind not in KINDS:
        raise ValueError(f"unknown model kind {model_cfg.kind!r}")
    if model_cfg.kind == "dcgan":
        return dcgan.build_dcgan_discriminator(hr_size, filters=model_cfg.d_filters)
    return srgan.build_srgan_discriminator(hr_size, filters=model_cfg.d_filters, dense_units=model_cfg.d_dense)
