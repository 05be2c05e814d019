"""The DCGAN variant (the seed paper's second method): a DCGAN (Radford et al., ICLR 2016) whose generator takes
the LR image in place of the noise vector."""

from __future__ import annotations

import math

import keras

from sr_keras.models.layers import activate, batch_norm, image_output, residual_block
from sr_keras.models.registry import register_generator


def build_dcgan_generator(scale: int = 4, filters: int = 64, num_blocks: int = 5, bicubic_skip: bool = False,
                          name: str = "dcgan_generator") -> keras.Model:
    """Conv stem, `num_blocks` (5) residual blocks, log2(scale) x (4x4 transposed conv, stride 2 -> BN -> ReLU),
    then a conv to RGB. Fully convolutional: input (None, None, 3) in [0, 1]."""
    if scale not in (2, 4, 8):
        raise ValueError(f"the DCGAN variant upsamples by powers of two; scale={scale} is not 2, 4 or 8")
    # === Functional Model ===
    lr = keras.Input((None, None, 3), name="lr")
    x = keras.layers.Conv2D(filters, 5, padding="same", name="stem_conv")(lr)
    x = activate(x, "relu", "stem_relu")
    for i in range(num_blocks):
        x = residual_block(x, filters, "relu", name=f"block{i}")
    for i in range(int(math.log2(scale))):
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"up{i}_deconv")(x)
        x = batch_norm(f"up{i}_bn")(x)
        x = activate(x, "relu", f"up{i}_relu")
    last_init = "zeros" if bicubic_skip else "glorot_uniform"
    x = keras.layers.Conv2D(3, 5, padding="same", kernel_initializer=last_init, name="out_conv")(x)
    sr = image_output(x, lr, scale, bicubic_skip, name="sr")
    return keras.Model(lr, sr, name=name)


def build_dcgan_discriminator(hr_size: int = 96, filters: int = 64, name: str = "dcgan_discriminator") -> keras.Model:
    """DCGAN discriminator: 4x4 stride-2 convs (widths f, 2f, 4f, 8f), BN after all but the first, LeakyReLU
    0.2; no pooling and no hidden dense layer: the last feature map is flattened into one logit."""
    # === Functional Model ===
    hr = keras.Input((hr_size, hr_size, 3), name="hr")
    x = hr
    for i in range(4):
        x = keras.layers.Conv2D(filters * 2**i, 4, strides=2, padding="same", name=f"conv{i}")(x)
        if i > 0:
            x = batch_norm(f"bn{i}")(x)
        x = activate(x, "leaky", f"lrelu{i}")
    x = keras.layers.Flatten(name="flatten")(x)
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(hr, logit, name=name)


@register_generator("dcgan")
def _from_config(cfg) -> keras.Model:
    return build_dcgan_generator(scale=cfg.scale, filters=cfg.filters, num_blocks=cfg.num_blocks,
                                 bicubic_skip=cfg.bicubic_skip)
