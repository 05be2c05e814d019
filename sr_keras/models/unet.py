"""Real-ESRGAN's U-Net discriminator with spectral normalisation (`UNetDiscriminatorSN`, Wang et al., ICCVW 2021):
one logit per pixel, so it judges local texture as well as the whole image.

Three stride-2 4x4 convolutions down, three bilinear x2 upsamplings with 3x3 convolutions and skip additions up,
two 3x3 convolutions, and a 1-channel 3x3 output. Every convolution but the first and the last is spectrally
normalised (`keras.layers.SpectralNormalization`, one power iteration per call) and bias-free; activations are
LeakyReLU(0.2). Inputs of any size divisible by 8.
"""

from __future__ import annotations

import keras

from sr_keras.models.layers import BilinearUpsample


def _sn_conv(x, filters, kernel, strides, name):
    if strides == 2:  # PyTorch's padding=1 for a 4x4 stride-2 convolution.
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    conv = keras.layers.Conv2D(filters, kernel, strides=strides, padding="valid" if strides == 2 else "same",
                               use_bias=False, name=f"{name}_conv")
    x = keras.layers.SpectralNormalization(conv, power_iterations=1, name=name)(x)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def build_unet_discriminator(filters: int = 64, name: str = "unet_discriminator_sn") -> keras.Model:
    """[b, h, w, 3] in [0, 1] -> [b, h, w, 1] logits (h and w divisible by 8)."""
    inputs = keras.Input((None, None, 3), name="image")
    x0 = keras.layers.LeakyReLU(0.2, name="conv0_lrelu")(
        keras.layers.Conv2D(filters, 3, padding="same", name="conv0")(inputs))
    x1 = _sn_conv(x0, filters * 2, 4, 2, "conv1")
    x2 = _sn_conv(x1, filters * 4, 4, 2, "conv2")
    x3 = _sn_conv(x2, filters * 8, 4, 2, "conv3")
    x = x3
    for i, (skip, width) in enumerate(((x2, filters * 4), (x1, filters * 2), (x0, filters))):
        x = BilinearUpsample(2, name=f"up{i + 1}")(x)
        x = keras.layers.Add(name=f"skip{i + 1}")([_sn_conv(x, width, 3, 1, f"conv{4 + i}"), skip])
    x = _sn_conv(x, filters, 3, 1, "conv7")
    x = _sn_conv(x, filters, 3, 1, "conv8")
    outputs = keras.layers.Conv2D(1, 3, padding="same", dtype="float32", name="conv9")(x)
    return keras.Model(inputs, outputs, name=name)
