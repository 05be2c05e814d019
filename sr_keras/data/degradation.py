"""How HR images become LR images. Training data and evaluation use exactly these functions.

The default ("bicubic") is the field's standard degradation: crop HR to a multiple of the scale, then
antialiased bicubic downscaling (`tf.image.resize(..., "bicubic", antialias=True)`), rounded and clipped to
uint8. "realistic" adds a seeded blur before, and Gaussian noise and a JPEG round trip after, downscaling.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional

import numpy as np
import tensorflow as tf

from sr_keras.data import DEGRADATIONS as _DEGRADATIONS

DEGRADATIONS = _DEGRADATIONS


@dataclasses.dataclass(frozen=True)
class RealisticParams:
    """Per-example parameters of the realistic degradation; stored in each TFRecord example."""

    blur_sigma: float = 0.0  # Gaussian blur on HR before downscaling, in HR pixels (0 = none).
    noise_sigma: float = 0.0  # Gaussian noise on LR, in 0..255 units (0 = none).
    jpeg_quality: int = 0  # JPEG round trip of LR (0 = none).


@dataclasses.dataclass(frozen=True)
class RealisticRanges:
    """Sampling ranges of the realistic degradation."""

    blur_sigma: tuple = (0.2, 1.5)
    noise_sigma: tuple = (0.0, 8.0)
    jpeg_quality: tuple = (50, 95)
    p_blur: float = 0.7
    p_noise: float = 0.5
    p_jpeg: float = 0.7


def _to_uint8(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def _resize_aa(image: np.ndarray, size: tuple) -> np.ndarray:
    """uint8 image -> uint8 image of `size` (h, w): antialiased bicubic, rounded and clipped."""
    return _to_uint8(tf.image.resize(tf.cast(image, tf.float32), size, "bicubic", antialias=True)).numpy()


def crop_to_multiple(hr: np.ndarray, scale: int) -> np.ndarray:
    """Crops the bottom/right edge so both sides are multiples of `scale` (BasicSR's `mod_crop`)."""
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    return hr[:h, :w]


def center_square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Center-crops the largest square and resizes it to size x size (antialiased bicubic, uint8)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return _resize_aa(square, (size, size))


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrinks a uint8 image by `factor` (0 < factor <= 1) with antialiased bicubic; sides are rounded."""
    if not 0 < factor <= 1:
        raise ValueError(f"rescale factor {factor} must be in (0, 1]")
    if factor == 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    return _resize_aa(image, size)


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The standard degradation. `hr` must already be a multiple of `scale` on both sides."""
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of scale {scale}; crop_to_multiple first")
    return _resize_aa(hr, (h // scale, w // scale))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """The baseline every model is compared with: bicubic upscaling of uint8 LR, rounded and clipped to uint8."""
    h, w = lr.shape[:2]
    return _to_uint8(tf.image.resize(tf.cast(lr, tf.float32), (h * scale, w * scale), "bicubic")).numpy()


def sample_realistic_params(key: str, seed: int, ranges: RealisticRanges = RealisticRanges()) -> RealisticParams:
    """Draws per-example parameters from a seed derived from (seed, key): same key, same degradation."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    blur = float(rng.uniform(*ranges.blur_sigma)) if rng.random() < ranges.p_blur else 0.0
    noise = float(rng.uniform(*ranges.noise_sigma)) if rng.random() < ranges.p_noise else 0.0
    jpeg = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)) if rng.random() < ranges.p_jpeg else 0
    return RealisticParams(blur_sigma=round(blur, 4), noise_sigma=round(noise, 4), jpeg_quality=jpeg)


def _gaussian_blur(image: tf.Tensor, sigma: float) -> tf.Tensor:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k1 = np.exp(-(x**2) / (2 * sigma**2))
    k1 /= k1.sum()
    channels = int(image.shape[-1])
    kernel = tf.constant(np.outer(k1, k1)[:, :, None, None] * np.ones((1, 1, channels, 1), np.float32))
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]


def realistic_downscale(hr: np.ndarray, scale: int, params: RealisticParams, key: str, seed: int) -> np.ndarray:
    """Blur -> antialiased bicubic downscale -> Gaussian noise -> JPEG round trip, all seeded per example."""
    h, w = hr.shape[:2]
    x = tf.cast(hr, tf.float32)
    if params.blur_sigma > 0 and min(h, w) > 6 * params.blur_sigma + 2:
        x = _gaussian_blur(x, params.blur_sigma)
    x = tf.image.resize(x, (h // scale, w // scale), "bicubic", antialias=True)
    if params.noise_sigma > 0:
        digest = hashlib.sha256(f"noise:{seed}:{key}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        x = x + rng.normal(0.0, params.noise_sigma, size=x.shape).astype(np.float32)
    lr = _to_uint8(x)
    if params.jpeg_quality > 0:
        # The accurate IDCT: TF's default fast one darkens red and blue by ~1.2 levels (a learned colour cast).
        lr = tf.io.decode_jpeg(tf.io.encode_jpeg(lr, quality=params.jpeg_quality), channels=3,
                               dct_method="INTEGER_ACCURATE")
    return lr.numpy()


def degrade(hr: np.ndarray, scale: int, degradation: str = "bicubic", key: str = "", seed: int = 0,
            ranges: Optional[RealisticRanges] = None) -> tuple[np.ndarray, RealisticParams]:
    """Makes the LR image for an HR image that is already a multiple of `scale`.

    Returns:
      (lr, params): params are all zero for the bicubic degradation.
    """
    if degradation == "bicubic":
        return bicubic_downscale(hr, scale), RealisticParams()
    if degradation == "realistic":
        params = sample_realistic_params(key, seed, ranges or RealisticRanges())
        return realistic_downscale(hr, scale, params, key, seed), params
    raise ValueError(f"unknown degradation {degradation!r}; choose one of {DEGRADATIONS}")
