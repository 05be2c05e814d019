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


def ssim(a, b, crop_border: int = 0, y_channel: bool = True) -> tf.Tensor:
    """SSIM per image ([b]), on 0..255 values, with the standard constants (see the module docstring)."""
    a, b = _prepare(a, b, crop_border, y_channel)
    return tf.image.ssim(a, b, max_val=255.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)


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
