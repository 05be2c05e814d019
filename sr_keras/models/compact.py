"""SRVGGNetCompact (Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021; github.com/xinntao/Real-ESRGAN, realesrgan/archs/srvgg_arch.py): the compact network behind
`realesr-general-x4v3` and `realesr-animevideov3`. A plain stack of 3x3 convolutions at low resolution, each
followed by a per-channel PReLU, one pixel shuffle, and the nearest-upsampled input added back, so the network
learns only the residual over nearest upsampling.

    lr -> conv(3 -> F) -> PReLU -> num_conv x [conv(F -> F) -> PReLU] -> conv(F -> 3 * scale^2) -> pixel shuffle
       + nearest x scale (lr)

Input [0, 1] RGB, output [0, 1] RGB (not clipped), any H x W.
"""

from __future__ import annotations

import keras

from sr_keras.models.layers import PixelShuffle
from sr_keras.models.registry import register_generator


def build_compact_generator(scale: int = 4, filters: int = 64, num_blocks: int = 32,
                            name: str = "compact_generator") -> keras.Model:
    """SRVGGNetCompact with `num_blocks` body convolutions (num_conv upstream) of `filters` channels.

    realesr-general-x4v3 is (scale 4, filters 64, num_blocks 32): 1,213,296 parameters; realesr-animevideov3 is
    (64, 16). Layer names follow the PyTorch module list (body_0 is the first convolution, body_1 its PReLU, ...).
    """
    if num_blocks < 0 or filters < 1 or scale < 1:
        raise ValueError(f"compact needs scale >= 1, filters >= 1 and num_blocks >= 0, got scale={scale}, "
                         f"filters={filters}, num_blocks={num_blocks}")

    # === Functional Model ===
    lr = keras.Input((None, None, 3), name="lr")
    x = lr
    index = 0
    for i in range(num_blocks + 1):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"body_{index}")(x)
        x = keras.layers.PReLU(shared_axes=[1, 2], name=f"body_{index + 1}")(x)
        index += 2
    x = keras.layers.Conv2D(3 * scale * scale, 3, padding="same", name=f"body_{index}")(x)
    x = PixelShuffle(scale, name="upsampler")(x)
    base = keras.layers.UpSampling2D(scale, interpolation="nearest", name="base")(lr)
    x = keras.layers.Add(name="residual")([x, base])
    sr = keras.layers.Activation("linear", dtype="float32", name="sr")(x)
    return keras.Model(lr, sr, name=name)


@register_generator("compact")
def _from_config(cfg) -> keras.Model:
    return build_compact_generator(scale=cfg.scale, filters=cfg.filters, num_blocks=cfg.num_blocks)
