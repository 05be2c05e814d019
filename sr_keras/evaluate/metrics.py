"""Image-quality metrics in the field's standard convention (BasicSR `calculate_psnr`/`calculate_ssim` with
`test_y_channel=True`):

- Y is ITU-R BT.601 on 0..255 values: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255;
- `crop_border` (= the scale) pixels are shaved from every side;
- SSIM: 11x11 Gaussian window, sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, valid filtering
  (`tf.image.ssim` computes exactly this).
Inputs are float images in [0, 1] or uint8 in [0, 255], [h, w, 3] or [b, h, w, 3].

`score` is the protocol every reported number follows (training validation and sr-evaluate alike).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _to_255(x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float64)
    return tf.cast(x, tf.float64) * 255.0


def rgb_to_y(x_255: tf.Tensor) -> tf.Tensor:
    """BT.601 luma of 0..255 RGB, in 16..235, keeping a trailing channel axis."""
    w = tf.constant([65.481, 128.553, 24.966], tf.float64)
    return 16.0 + tf.reduce_sum(x_255 * w, axis=-1, keepdims=True) / 255.0


def _prepare(a, b, crop_border: int, y_channel: bool):
    a, b = _to_255(a), _to_255(b)
    if a.shape.rank == 3:
        a, b = a[None], b[None]
    if crop_border:
        a = a[:, crop_border:-crop_border, crop_border:-crop_border]
        b = b[:, crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    return a, b


def psnr(a, b, crop_border: int = 0, y_channel: bool = True) -> tf.Tensor:
    """PSNR in dB per image ([b]), on 0..255 values. Identical images give +inf."""
    a, b = _prepare(a, b, crop_border, y_channel)
    mse = tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])
    return 10.0 * tf.math.log(255.0**2 / mse) / tf.math.log(tf.constant(10.0, tf.float64))


SSIM_WINDOW = 11  # Wang et al.'s Gaussian window (sigma 1.5), as BasicSR; an image must keep this much after the shave.


def ssim(a, b, crop_border: int = 0, y_channel: bool = True) -> tf.Tensor:
    """SSIM per image ([b]), on 0..255 values, with the standard constants (see the module docstring)."""
    a, b = _prepare(a, b, crop_border, y_channel)
    return tf.image.ssim(a, b, max_val=255.0, filter_size=SSIM_WINDOW, filter_sigma=1.5, k1=0.01, k2=0.03)


def to_uint8(x) -> np.ndarray:
    """A float image in [0, 1] as the uint8 image a user would save: clipped, x255, rounded half to even."""
    x = np.asarray(x, np.float32)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def score(hr: np.ndarray, sr: np.ndarray, scale: int) -> dict:
    """The project's one evaluation protocol, used for the validation logged during training and by sr-evaluate.

    Both images are uint8 (a model's float output is first saved as uint8 with `to_uint8`, as it would be written
    to a file); PSNR-Y and SSIM-Y with `scale` border pixels shaved, and RGB PSNR.

    Raises:
      TypeError: an input that is not uint8 (a float output must be quantized first, or the numbers differ from
        what a user measures on saved files).
    """
    for name, img in (("hr", hr), ("sr", sr)):
        if np.asarray(img).dtype != np.uint8:
            raise TypeError(f"{name} must be uint8 (the protocol scores saved images); use metrics.to_uint8")
    return {"psnr_y": float(psnr(hr, sr, scale)[0]), "ssim_y": float(ssim(hr, sr, scale)[0]),
            "psnr_rgb": float(psnr(hr, sr, scale, y_channel=False)[0])}


# GAN artefacts (issue: SRGAN drifting offline). A model is flagged when it shifts a channel's mean by more than
# COLOUR_SHIFT_LIMIT uint8 levels, or when its error has more energy at the pixel-shuffle period than bicubic's.
# Bicubic's own error is periodic at that period (its kernel is aligned with the LR grid), so models without a grid
# score near 1 and a ratio measured on a few photos scatters around it: on the 3 sample validation photos the
# shipped PSNR model scores 1.04. GRID_LIMIT leaves that 10% for the scatter; the checkerboards seen offline scored
# 2 (transposed convolutions) to 29 (an SRGAN on random VGG features).
COLOUR_SHIFT_LIMIT = 2.0
GRID_LIMIT = 1.1


def colour_shift(hr: np.ndarray, sr: np.ndarray, crop_border: int = 0) -> np.ndarray:
    """The mean of SR - HR per RGB channel, in uint8 levels (float64 [3])."""
    hr, sr = np.asarray(hr, np.float64), np.asarray(sr, np.float64)
    if crop_border:
        hr, sr = hr[crop_border:-crop_border, crop_border:-crop_border], sr[crop_border:-crop_border,
                                                                             crop_border:-crop_border]
    return (sr - hr).reshape(-1, 3).mean(axis=0)


def periodic_energy(error: np.ndarray, period: int) -> float:
    """The spread (RMS over channels of the standard deviation) of an error image's period x period phase means.

    A checkerboard from a pixel shuffle or a transposed convolution repeats every `period` pixels: the error's
    mean then differs from phase to phase. Random error averages out within each phase.
    """
    e = np.asarray(error, np.float64)
    h, w = (e.shape[0] // period) * period, (e.shape[1] // period) * period
    e = e[:h, :w].reshape(h // period, period, w // period, period, -1)
    phase_means = e.mean(axis=(0, 2))  # [period, period, channels]
    return float(np.sqrt(np.mean(phase_means.reshape(period * period, -1).var(axis=0))))


def artefacts(hr: np.ndarray, sr: np.ndarray, bicubic: np.ndarray, scale: int) -> dict:
    """Colour shift and checkerboard ("grid") score of `sr` (uint8 images; `scale` border pixels shaved).

    Returns:
      {"colour_shift": the largest |mean(SR - HR)| over R, G, B in uint8 levels, "colour_shift_rgb": [3],
       "grid": periodic energy of SR - HR at period `scale` over that of bicubic - HR}.
    """
    s = scale
    shift = colour_shift(hr, sr, s)
    crop = (slice(s, -s), slice(s, -s))
    hr64 = np.asarray(hr, np.float64)[crop]
    mine = periodic_energy(np.asarray(sr, np.float64)[crop] - hr64, s)
    base = periodic_energy(np.asarray(bicubic, np.float64)[crop] - hr64, s)
    return {"colour_shift": float(np.abs(shift).max()), "colour_shift_rgb": [float(v) for v in shift],
            "grid": mine / max(base, 1e-6)}


def artefact_flags(colour_shift_levels: float, grid: float) -> list:
    """Human-readable flags for mean artefact scores over a set of images ([] when clean)."""
    flags = []
    if colour_shift_levels > COLOUR_SHIFT_LIMIT:
        flags.append(f"colour shift {colour_shift_levels:.1f} levels")
    if grid > GRID_LIMIT:
        flags.append(f"grid {grid:.1f}x bicubic")
    return flags
