"""The signatures every sr_keras SavedModel exports, named once (no TensorFlow import).

Written by `savedmodel.writer`, read by `inference` (Python), `serving` (REST) and recorded in each version's metadata.

  serving_default  image_bytes: string [N] (JPEG/PNG/WebP/BMP/GIF first frame) -> sr_png_bytes: string [N] (PNG).
                   Gray stays gray; RGBA keeps its alpha (upscaled separately with bicubic).
  enhance          lr_image: uint8 [N, H, W, 3] -> sr_image: uint8 [N, sH, sW, 3].
  enhance_float    lr_image: float32 [N, H, W, 3] in [0, 1] -> sr_image: float32 [N, sH, sW, 3] (for 16-bit use).

A model exported from a run with a GAN phase also has each signature's network-interpolation variant (ESRGAN,
Wang et al. 2018), named `<name>_alpha`, with a second input `alpha`: float32 [N] in [0, 1], one per instance. The
generator's weights are blended as (1 - alpha) * PSNR + alpha * GAN (the EMA generators at the end of the pixel
phase and of the GAN phase). The plain signatures use the export's `default_alpha` (metadata).

Besides the signatures, an export holds `TILE_FUNCTION` (and `TILE_ALPHA_FUNCTION`), one untiled float32 model
call for callers that tile themselves, and its `scale` as a variable. No output is float16: TF Serving cannot
write half precision to JSON.
"""

from __future__ import annotations

from typing import NamedTuple


class Signature(NamedTuple):
    """One exported signature: its name, its one input and its one output (names and described types)."""

    name: str
    input: str
    input_type: str
    output: str
    output_type: str

    def describe(self) -> dict:
        return {"inputs": {self.input: self.input_type}, "outputs": {self.output: self.output_type}}


SERVING_DEFAULT = Signature("serving_default", "image_bytes", "string [N]", "sr_png_bytes", "string [N]")
ENHANCE = Signature("enhance", "lr_image", "uint8 [N,H,W,3]", "sr_image", "uint8 [N,sH,sW,3]")
ENHANCE_FLOAT = Signature("enhance_float", "lr_image", "float32 [N,H,W,3] in [0,1]", "sr_image",
                          "float32 [N,sH,sW,3] in [0,1]")
ALL = (SERVING_DEFAULT, ENHANCE, ENHANCE_FLOAT)
BY_NAME = {s.name: s for s in ALL}
NAMES = tuple(BY_NAME)
TILE_FUNCTION = "sr_tile"
TILE_ALPHA_FUNCTION = "sr_tile_alpha"
ALPHA_INPUT = "alpha"
ALPHA_TYPE = "float32 [N] in [0,1]"
ALPHA_SUFFIX = "_alpha"


def alpha_name(name: str) -> str:
    """The network-interpolation variant of a signature."""
    return name + ALPHA_SUFFIX


def base_signature(name: str) -> Signature:
    """The Signature of `name` or of its `_alpha` variant; KeyError for any other name."""
    return BY_NAME[name[:-len(ALPHA_SUFFIX)] if name.endswith(ALPHA_SUFFIX) else name]


def describe_all(interpolation: bool = False) -> dict:
    """{signature name: {"inputs": {...}, "outputs": {...}}}, as recorded in an export's metadata."""
    out = {s.name: s.describe() for s in ALL}
    if interpolation:
        for s in ALL:
            d = s.describe()
            d["inputs"][ALPHA_INPUT] = ALPHA_TYPE
            out[alpha_name(s.name)] = d
    return out
