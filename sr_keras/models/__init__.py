"""Networks ("archs"): SRGAN, the DCGAN variant, SPAN, RRDBNet and SRVGGNetCompact (the zoo's, `sr_keras.zoo`), shared layers and
the VGG19 feature extractor."""

from sr_keras.models.compact import build_compact_generator
from sr_keras.models.dcgan import build_dcgan_discriminator, build_dcgan_generator
from sr_keras.models.rrdbnet import build_rrdbnet_generator
from sr_keras.models.span import build_span_generator
from sr_keras.models.srgan import build_srgan_discriminator, build_srgan_generator
from sr_keras.models.unet import build_unet_discriminator

KINDS = ("srgan", "dcgan", "span", "rrdb", "compact")


def build_generator(model_cfg):
    """The generator for a `config.ModelConfig`."""
    if model_cfg.kind == "srgan":
        return build_srgan_generator(scale=model_cfg.scale, filters=model_cfg.filters,
                                     num_blocks=model_cfg.num_blocks, upsample_filters=model_cfg.upsample_filters,
                                     bicubic_skip=model_cfg.bicubic_skip, batch_norm_layers=model_cfg.batch_norm,
                                     upsampler=model_cfg.upsampler)
    if model_cfg.kind == "dcgan":
        return build_dcgan_generator(scale=model_cfg.scale, filters=model_cfg.filters,
                                     num_blocks=model_cfg.num_blocks, bicubic_skip=model_cfg.bicubic_skip)
    if model_cfg.kind == "span":
        return build_span_generator(scale=model_cfg.scale, channels=model_cfg.filters, num_blocks=model_cfg.num_blocks)
    if model_cfg.kind == "rrdb":
        return build_rrdbnet_generator(scale=model_cfg.scale, filters=model_cfg.filters,
                                       num_blocks=model_cfg.num_blocks, growth=model_cfg.growth)
    if model_cfg.kind == "compact":
        return build_compact_generator(scale=model_cfg.scale, filters=model_cfg.filters,
                                       num_blocks=model_cfg.num_blocks)
    raise ValueError(f"unknown model kind {model_cfg.kind!r}: choose one of {', '.join(KINDS)}")


def build_discriminator(model_cfg, hr_size: int):
    """The discriminator for a `config.ModelConfig`, on hr_size x hr_size crops."""
    if getattr(model_cfg, "discriminator", "") == "unet_sn":
        return build_unet_discriminator(filters=model_cfg.d_filters)
    if model_cfg.kind in ("srgan", "span", "rrdb", "compact"):  # ESRGAN trains RRDBNet against this VGG-style one too.
        return build_srgan_discriminator(hr_size, filters=model_cfg.d_filters, dense_units=model_cfg.d_dense)
    if model_cfg.kind == "dcgan":
        return build_dcgan_discriminator(hr_size, filters=model_cfg.d_filters)
    raise ValueError(f"unknown model kind {model_cfg.kind!r}")
