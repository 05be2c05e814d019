"""Image-quality metrics in the field's standard convention (BasicSR `calculate_psnr`/`calculate_ssim` with
`test_y_channel=True`):

- Y is ITU-R BT.601 on 0..255 values: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255;
- `crop_border` (= the scale) pixels are shaved from every side;
- SSIM: 11x11 Gaussian window, sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, valid filtering
  (`tf.image.ssim` computes exactly this).
Inputs are float images in [0, 1] or uint8 in [0, 255], [h, w, 3] or [b, h, w, 3].
"""

from __future__ import annotations

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
