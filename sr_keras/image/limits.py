"""The ranges of the knobs every entry point shares (the API, sr-enhance, sr-export, sr-serve), checked once here.

Each check raises ValueError with one line naming the argument or flag and what it takes, before any work.
"""

from __future__ import annotations

import numbers
from typing import Optional

# Core tile side in LR pixels: sr_keras.load, sr-enhance and the exported signatures. Measured on span_x4 in
# bfloat16 on a 1350x1010 photo, one process (EPYC, 2 cores): tiles of 256 cost 18% over the whole image at once,
# 512 6% and 768 10% (fewer tiles, each slower), for 0.4 / 1.0 / 1.9 GB above the loaded model (4.5 GB whole).
DEFAULT_TILE = 512
# Memory: a model's default tile is the largest (up to DEFAULT_TILE) whose largest single activation, over the tile
# and its context, fits this (`tiling.memory_tile`). A call peaks at 2 to 3x it (RSS above the loaded model: 2 to
# 2.5x on span_x4, 2.4 to 3.2x on realesrgan_x4plus). span_x4 (832 B per input pixel) keeps 512; realesrgan_x4plus
# (4 KB: 64 channels at 4x, 65 px of context) runs 352: 2.6 GB a call in bfloat16, 4.8 GB at 512.
ACTIVATION_BUDGET = 2**30
# How --help states that default (sr-enhance, sr-export).
MEMORY_TILE_TEXT = f"the largest up to {DEFAULT_TILE} whose activations fit {ACTIVATION_BUDGET / 2**30:g} GiB"
# Pixel limits, each read from image headers before decoding (and again on what was decoded).
DEFAULT_MAX_INPUT_PIXELS = 36_000_000  # The API and sr-enhance: a 7360x4912 camera photo, 576 MP at x4.
DEFAULT_EXPORT_MAX_INPUT_PIXELS = 4_000_000  # Exported signatures, per request (sr-export --max_input_pixels).
DEFAULT_SERVE_MAX_INPUT_PIXELS = 2_000_000  # sr-serve, per request: about 17 s at x4 on 2 CPU cores per MP.
DEFAULT_BUILD_MAX_INPUT_PIXELS = 100_000_000  # sr-build-tfrecords, per photo.
# Compute precision of inference -> Keras mixed policy (None: float32, the exported graph as it is). bfloat16 suits
# CPUs with native bf16 (AVX512_BF16, AMX) and TPUs, float16 GPUs.
PRECISIONS = {"float32": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
OUTPUT_EXTENSIONS = ("auto", "png", "jpg", "webp")  # sr-enhance --ext (auto: the input's own format).
DEFAULT_QUALITY = 95  # JPEG/WebP quality of sr-enhance outputs, 1..100.
# zlib level of PNG outputs, 0..9. Level 1 encodes several times faster than zlib's default 6 for a few percent
# more bytes (upscaled photos compress poorly at any level), so encoding never costs as much as the model.
DEFAULT_PNG_COMPRESSION = 1
ALPHA_RANGE = (0.0, 1.0)  # Network interpolation: 0 the PSNR generator, 1 the GAN generator.


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """alpha as a float in ALPHA_RANGE; ValueError otherwise (NaN too)."""
    a = float(alpha)
    lo, hi = ALPHA_RANGE
    if not lo <= a <= hi:
        raise ValueError(f"{name}={alpha!r} must be in [{lo:g}, {hi:g}] (0: the PSNR generator, 1: the GAN "
                         "generator)")
    return a


def _count(value, name: str, need: str):
    """`value` when it is None or a whole number >= 0 (numpy integers too; not a bool), else ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise ValueError(f"{name}={value!r} must be {need}")
    return value


def check_tile(tile: Optional[int], name: str = "tile") -> Optional[int]:
    """A core tile side in LR pixels: 0 (the whole image at once) or more; None: the default."""
    return _count(tile, name, "0 (whole image at once) or a tile side in pixels")


def check_overlap(overlap: Optional[int], name: str = "tile_overlap") -> Optional[int]:
    """Tile context in LR pixels: 0 or more; None: the model's measured receptive field."""
    return _count(overlap, name, "0 or more pixels (leave it out for the model's own context)")


def check_max_pixels(max_pixels: Optional[int], name: str = "max_input_pixels") -> Optional[int]:
    """A pixel limit: None or 0 (no limit), or a positive count."""
    return _count(max_pixels, name, "0 (no limit) or a number of pixels")


def safe_tile(tile: int, overlap: int) -> int:
    """The tile actually used: one smaller than its context would cut the context short (the cross-fade cannot be
    wider than the tile), so it is raised to the context."""
    return overlap if tile and tile < overlap else tile


# sr-evaluate --metrics (sr_keras.evaluate.perceptual computes the last two).
METRICS = ("psnr", "ssim", "lpips", "niqe")
