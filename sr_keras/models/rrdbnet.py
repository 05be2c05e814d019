"""RRDBNet (Wang et al., "ESRGAN", ECCV 2018 workshops), the generator of ESRGAN and Real-ESRGAN x4plus: no
BatchNorm, 23 residual-in-residual dense blocks, nearest-neighbour x2 upsampling with a conv after each.

    conv_first -> 23 x RRDB -> conv_body, + conv_first -> log2(scale) x (nearest x2 -> conv -> LReLU 0.2) ->
    conv_hr -> LReLU -> conv_last
    RRDB:  3 x RDB, then 0.2 * out + x          RDB: 5 densely connected 3x3 convs (growth 32), 0.2 * x5 + x

Input [0, 1] RGB, output [0, 1] RGB (not clipped), any H x W. Real-ESRGAN's x2 model (pixel-unshuffled input) is
not this graph; scale 2, 4 or 8 here means that many x2 steps.
"""

from __future__ import annotations

import math

import keras

from sr_keras.models.registry import register_generator

RESIDUAL_SCALE = 0.2  # ESRGAN's residual scaling, in every RDB and RRDB.


@keras.saving.register_keras_serializable(package="sr_keras")
class ScaledResidual(keras.layers.Layer):
    """[x, skip] -> factor * x + skip (ESRGAN's residual scaling)."""

    def __init__(self, factor: float = RESIDUAL_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, inputs):
        x, skip = inputs
        return x * self.factor + skip

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _conv(x, width, name, leaky=False):
    x = keras.layers.Conv2D(width, 3, padding="same", name=name)(x)
    return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x) if leaky else x


def _rdb(x, filters, growth, name):
    features = [x]
    for i in range(1, 5):
        inputs = features[0] if i == 1 else keras.layers.Concatenate(name=f"{name}_cat{i}")(features)
        features.append(_conv(inputs, growth, f"{name}_conv{i}", leaky=True))
    x5 = _conv(keras.layers.Concatenate(name=f"{name}_cat5")(features), filters, f"{name}_conv5")
    return ScaledResidual(name=f"{name}_residual")([x5, x])


def build_rrdbnet_generator(scale: int = 4, filters: int = 64, num_blocks: int = 23, growth: int = 32,
                            name: str = "rrdbnet_generator") -> keras.Model:
    """RRDBNet; the defaults are ESRGAN's and Real-ESRGAN x4plus' (16,697,987 parameters at scale 4)."""
    if scale not in (2, 4, 8):
        raise ValueError(f"RRDBNet upsamples by nearest x2 steps; scale={scale} is not 2, 4 or 8")
    # === Functional Model ===
    lr = keras.Input((None, None, 3), name="lr")
    feat = _conv(lr, filters, "conv_first")
    x = feat
    for b in range(num_blocks):
        skip = x
        for r in range(1, 4):
            x = _rdb(x, filters, growth, f"body{b}_rdb{r}")
        x = ScaledResidual(name=f"body{b}_residual")([x, skip])
    x = keras.layers.Add(name="trunk_add")([feat, _conv(x, filters, "conv_body")])
    for i in range(int(math.log2(scale))):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_nearest")(x)
        x = _conv(x, filters, f"conv_up{i + 1}", leaky=True)
    x = _conv(x, filters, "conv_hr", leaky=True)
    x = _conv(x, 3, "conv_last")
    sr = keras.layers.Activation("linear", dtype="float32", name="sr")(x)
    return keras.Model(lr, sr, name=name)


@register_generator("rrdb")
def _from_config(cfg) -> keras.Model:
    return build_rrdbnet_generator(scale=cfg.scale, filters=cfg.filters, num_blocks=cfg.num_blocks, growth=cfg.growth)
