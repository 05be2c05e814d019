"""Networks ("archs"): SRGAN, the DCGAN variant, shared layers and the VGG19 feature extractor."""

from sr_keras.models.dcgan import build_dcgan_discriminator, build_dcgan_generator
from sr_keras.models.srgan import build_srgan_discriminator, build_srgan_generator


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
    raise ValueError(f"unknown model kind {model_cfg.kind!r}")


def build_discriminator(model_cfg, hr_size: int):
    """The discriminator for a `config.ModelConfig`, on hr_size x hr_size crops."""
    if model_cfg.kind == "srgan":
        return build_srgan_discriminator(hr_size, filters=model_cfg.d_filters, dense_units=model_cfg.d_dense)
    if model_cfg.kind == "dcgan":
        return build_dcgan_discriminator(hr_size, filters=model_cfg.d_filters)
    raise ValueError(f"unknown model kind {model_cfg.kind!r}")
