"""SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution", NTIRE 2024 efficient
SR winner; github.com/hongyuanyu/SPAN), in its deployed form: each Conv3XC block (a 1x1 - 3x3 - 1x1 chain plus a
3x3 skip during training) re-parameterised into the single 3x3 convolution it equals at inference.

    x -> (x - rgb_mean) * 255 -> conv_1 -> 6 x SPAB -> conv_2 -> concat[conv_1, conv_2, block_1, block_6 c1] ->
    1x1 conv_cat -> 3x3 conv to 3*scale^2 -> pixel shuffle
    SPAB: c1 -> SiLU -> c2 -> SiLU -> c3 = a;  out = (a + x) * (sigmoid(a) - 0.5)   (the parameter-free attention)

Input [0, 1] RGB, output [0, 1] RGB (not clipped), any H x W.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from sr_keras.models.layers import PixelShuffle
from sr_keras.models.registry import register_generator

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K's, as in SPAN (and EDSR/BasicSR).
IMG_RANGE = 255.0


@keras.saving.register_keras_serializable(package="sr_keras")
class MeanShift(keras.layers.Layer):
    """(x - mean) * factor, per RGB channel: the input normalisation of BasicSR-style networks."""

    def __init__(self, mean=RGB_MEAN, factor: float = IMG_RANGE, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.factor = tuple(float(m) for m in mean), float(factor)

    def call(self, x):
        return (x - tf.constant(self.mean, x.dtype)) * tf.cast(self.factor, x.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "factor": self.factor}


@keras.saving.register_keras_serializable(package="sr_keras")
class ParameterFreeAttention(keras.layers.Layer):
    """SPAN's attention: [a, skip] -> (a + skip) * (sigmoid(a) - 0.5). No weights: the gate is the features'
    own symmetric activation."""

    def call(self, inputs):
        a, skip = inputs
        return (a + skip) * (tf.sigmoid(a) - tf.cast(0.5, a.dtype))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def build_span_generator(scale: int = 4, channels: int = 48, num_blocks: int = 6,
                         name: str = "span_generator") -> keras.Model:
    """SPAN at inference (re-parameterised). channels 48 or 52 are the published sizes; 6 blocks.

    Layer names follow the PyTorch modules (conv_1, block_1_c1_r, ..., conv_cat, upsampler_conv), so converted
    weights can be checked against the original's parameter names.
    """
    if num_blocks < 1:
        raise ValueError(f"SPAN needs at least one block, got num_blocks={num_blocks}")

    def conv(x, width, name, kernel=3):
        return keras.layers.Conv2D(width, kernel, padding="same", name=name)(x)

    # === Functional Model ===
    lr = keras.Input((None, None, 3), name="lr")
    x = MeanShift(name="mean_shift")(lr)
    feature = x = conv(x, channels, "conv_1")
    first_block, last_c1 = None, None
    for i in range(1, num_blocks + 1):
        c1 = keras.layers.Activation("silu", name=f"block_{i}_act1")(conv(x, channels, f"block_{i}_c1_r"))
        c2 = keras.layers.Activation("silu", name=f"block_{i}_act2")(conv(c1, channels, f"block_{i}_c2_r"))
        a = conv(c2, channels, f"block_{i}_c3_r")
        x = ParameterFreeAttention(name=f"block_{i}_attention")([a, x])
        first_block = x if i == 1 else first_block
        last_c1 = c1
    x = conv(x, channels, "conv_2")
    x = keras.layers.Concatenate(name="concat")([feature, x, first_block, last_c1])
    x = conv(x, channels, "conv_cat", kernel=1)
    x = conv(x, 3 * scale * scale, "upsampler_conv")
    x = PixelShuffle(scale, name="upsampler_shuffle")(x)
    sr = keras.layers.Activation("linear", dtype="float32", name="sr")(x)
    return keras.Model(lr, sr, name=name)


@register_generator("span")
def _from_config(cfg) -> keras.Model:
    return build_span_generator(scale=cfg.scale, channels=cfg.filters, num_blocks=cfg.num_blocks)
