"""SRGAN (Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
CVPR 2017): the SRResNet generator and the discriminator."""

from __future__ import annotations

import math

import keras

from sr_keras.models.layers import (
    PixelShuffle,
    activate,
    batch_norm,
    image_output,
    residual_block,
)
from sr_keras.models.registry import register_generator

UPSAMPLERS = ("srresnet", "espcn", "nearest")


def build_srgan_generator(scale: int = 4, filters: int = 64, num_blocks: int = 16, upsample_filters: int = 256,
                          bicubic_skip: bool = False, batch_norm_layers: bool = True, upsampler: str = "srresnet",
                          name: str = "srgan_generator") -> keras.Model:
    """SRResNet: 9x9 conv + PReLU, B residual blocks, conv + BN + long skip, log2(scale) x (conv -> pixel
    shuffle x2 -> PReLU), 9x9 conv to RGB. Fully convolutional: input (None, None, 3) in [0, 1].

    With the defaults at scale 4 it has exactly 1,554,883 parameters. `batch_norm_layers=False` removes the
    BatchNorms (EDSR-style), which suits PSNR-oriented training.

    `upsampler` chooses the tail after the trunk (see `UPSAMPLERS`):
      srresnet  the paper's: log2(scale) x (conv to 4*filters -> pixel shuffle x2 -> PReLU), then a 9x9 conv at
                HR. At the paper's width the two HR-resolution convs cost about 40% of the generator's FLOPs.
      espcn     every conv at LR: one 3x3 conv to 3*scale^2 channels and one pixel shuffle by `scale` (Shi et al.
                2016, as in IMDN/RFDN). Much cheaper per pixel, so the same compute buys a deeper trunk; meant
                for `bicubic_skip` models, whose tail only adds detail to the bicubic base.
      nearest   resize-convolution: log2(scale) x (nearest x2 -> 3x3 conv -> PReLU), then the 9x9 conv, as ESRGAN's
                RRDBNet upsamples. Free of the checkerboard a pixel shuffle can learn under an adversarial loss
                (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
    """
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler={upsampler!r}: choose one of {UPSAMPLERS}")
    if upsampler in ("srresnet", "nearest") and scale not in (2, 4, 8):
        raise ValueError(f"SRGAN upsamples by powers of two; scale={scale} is not 2, 4 or 8")
    # === Functional Model ===
    lr = keras.Input((None, None, 3), name="lr")
    x = keras.layers.Conv2D(filters, 9, padding="same", name="stem_conv")(lr)
    x = stem = activate(x, "prelu", "stem_prelu")
    for i in range(num_blocks):
        x = residual_block(x, filters, "prelu", name=f"block{i}", use_bn=batch_norm_layers)
    x = keras.layers.Conv2D(filters, 3, padding="same", name="trunk_conv")(x)
    if batch_norm_layers:
        x = batch_norm("trunk_bn")(x)
    x = keras.layers.Add(name="long_skip")([stem, x])
    last_init = "zeros" if bicubic_skip else "glorot_uniform"
    if upsampler == "espcn":
        x = keras.layers.Conv2D(3 * scale * scale, 3, padding="same", kernel_initializer=last_init,
                                name="out_conv")(x)
        x = PixelShuffle(scale, name="out_shuffle")(x)
    elif upsampler == "nearest":
        for i in range(int(math.log2(scale))):
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_nearest")(x)
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"up{i}_conv")(x)
            x = activate(x, "prelu", f"up{i}_prelu")
        x = keras.layers.Conv2D(3, 9, padding="same", kernel_initializer=last_init, name="out_conv")(x)
    else:
        for i in range(int(math.log2(scale))):
            x = keras.layers.Conv2D(upsample_filters, 3, padding="same", name=f"up{i}_conv")(x)
            x = PixelShuffle(2, name=f"up{i}_shuffle")(x)
            x = activate(x, "prelu", f"up{i}_prelu")
        x = keras.layers.Conv2D(3, 9, padding="same", kernel_initializer=last_init, name="out_conv")(x)
    sr = image_output(x, lr, scale, bicubic_skip, name="sr")
    return keras.Model(lr, sr, name=name)


def build_srgan_discriminator(hr_size: int = 96, filters: int = 64, dense_units: int = 1024,
                              name: str = "srgan_discriminator") -> keras.Model:
    """8 convs (64, 64, 128, 128, 256, 256, 512, 512 at the default width; stride 2 on every second), BN
    (not after the first), LeakyReLU 0.2, then dense 1024 -> LeakyReLU -> dense 1 (a logit)."""
    # === Functional Model ===
    hr = keras.Input((hr_size, hr_size, 3), name="hr")
    x = hr
    for i in range(8):
        width = filters * 2 ** (i // 2)
        x = keras.layers.Conv2D(width, 3, strides=1 + i % 2, padding="same", name=f"conv{i}")(x)
        if i > 0:
            x = batch_norm(f"bn{i}")(x)
        x = activate(x, "leaky", f"lrelu{i}")
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, name="dense")(x)
    x = activate(x, "leaky", "dense_lrelu")
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(hr, logit, name=name)


@register_generator("srgan")
def _from_config(cfg) -> keras.Model:
    return build_srgan_generator(scale=cfg.scale, filters=cfg.filters, num_blocks=cfg.num_blocks,
                                 upsample_filters=cfg.upsample_filters, bicubic_skip=cfg.bicubic_skip,
                                 batch_norm_layers=cfg.batch_norm, upsampler=cfg.upsampler)
