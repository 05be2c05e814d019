"""The field's perceptual yardsticks, beside PSNR and SSIM (`metrics.py`): LPIPS (full reference, lower is closer)
and NIQE (no reference, lower looks more natural).

    lpips(hr, sr)   # uint8 [h, w, 3] each; Zhang et al., CVPR 2018: AlexNet features with the v0.1 linear heads
    niqe(sr, crop_border=4)   # uint8 [h, w, 3]; Mittal et al., IEEE SPL 2013, as BasicSR computes it

LPIPS follows the `lpips` package (v0.1, `net="alex"`): inputs scaled to [-1, 1], the five ReLU feature maps of
AlexNet unit-normalised over channels, squared differences weighted by the learned heads, averaged over space and
summed. NIQE follows BasicSR's `calculate_niqe` (which reproduces the MATLAB release): the Y channel (BT.601,
rounded), 96 x 96 blocks without overlap, two scales (the second by MATLAB's antialiased bicubic imresize), the
pristine model from `lossnets.weights("niqe")`. Both are checked against the reference implementations in
tests/test_perceptual_metrics.py.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import tensorflow as tf

from sr_keras.image import limits
from sr_keras.models import lossnets, perceptual

METRICS = limits.METRICS
NIQE_BLOCK = 96
_LOCK = threading.Lock()


class _LPIPS:
    def __init__(self):
        arrays = lossnets.weights("alexnet_lpips")
        self.net = perceptual.build_alexnet_lpips(arrays)
        self.heads = [tf.constant(arrays[f"lin{i}"], tf.float32) for i in range(5)]

    @tf.function(reduce_retracing=True)
    def distance(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """[b] LPIPS of two float32 [b, h, w, 3] batches in [0, 1]."""
        total = tf.zeros([tf.shape(a)[0]])
        for fa, fb, w in zip(self.net(a), self.net(b), self.heads):
            na = fa / (tf.sqrt(tf.reduce_sum(tf.square(fa), -1, keepdims=True)) + 1e-10)
            nb = fb / (tf.sqrt(tf.reduce_sum(tf.square(fb), -1, keepdims=True)) + 1e-10)
            total += tf.reduce_mean(tf.reduce_sum(tf.square(na - nb) * w, -1), axis=[1, 2])
        return total


@functools.lru_cache(maxsize=1)
def _lpips_model() -> _LPIPS:
    return _LPIPS()


def lpips_batch(a, b) -> tf.Tensor:
    """[b] LPIPS of float32 batches in [0, 1] (a tensor: usable inside training validation)."""
    with _LOCK:
        model = _lpips_model()
    return model.distance(tf.convert_to_tensor(a, tf.float32), tf.convert_to_tensor(b, tf.float32))


def lpips(a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS (AlexNet, v0.1) between two uint8 [h, w, 3] images of one size; 0 for identical images.

    Raises:
      ValueError: different sizes, or a side below 32 pixels (AlexNet's fifth feature map would be empty).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"LPIPS needs two RGB images of one size, not {a.shape} and {b.shape}")
    if min(a.shape[:2]) < 32:
        raise ValueError(f"LPIPS needs images of at least 32 x 32 pixels, not {a.shape[1]} x {a.shape[0]}")
    scaled = [tf.constant(x[None].astype(np.float32) / 255.0) for x in (a, b)]
    return float(lpips_batch(*scaled)[0])


# ---------------------------------------------------------------------------------------------------------------- NIQE
@functools.lru_cache(maxsize=1)
def _niqe_params() -> dict:
    return lossnets.weights("niqe")


@functools.lru_cache(maxsize=1)
def _aggd_table():
    gam = np.arange(0.2, 10.001, 0.001)
    g = np.vectorize(math.gamma)
    r_gam = np.square(g(2 / gam)) / (g(1 / gam) * g(3 / gam))
    return gam, r_gam


def _aggd(block: np.ndarray) -> tuple:
    """(alpha, beta_left, beta_right) of an asymmetric generalised Gaussian fit (BasicSR's estimate_aggd_param)."""
    block = block.ravel()
    gam, r_gam = _aggd_table()
    left = np.sqrt(np.mean(block[block < 0] ** 2))
    right = np.sqrt(np.mean(block[block > 0] ** 2))
    gammahat = left / right
    rhat = np.mean(np.abs(block)) ** 2 / np.mean(block ** 2)
    rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
    alpha = gam[np.argmin((r_gam - rhatnorm) ** 2)]
    k = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left * k, right * k


def _features(block: np.ndarray) -> list:
    alpha, bl, br = _aggd(block)
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        feat += [alpha, (br - bl) * math.gamma(2 / alpha) / math.gamma(1 / alpha), bl, br]
    return feat


def _filter_nearest(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """scipy.ndimage.convolve(img, window, mode="nearest") for a symmetric window: summed in float64, returned in
    the input's dtype (as scipy does)."""
    r = window.shape[0] // 2
    padded = np.pad(img.astype(np.float64), r, mode="edge")
    out = np.zeros(img.shape, np.float64)
    h, w = img.shape
    for dy in range(window.shape[0]):
        for dx in range(window.shape[1]):
            out += window[dy, dx] * padded[dy:dy + h, dx:dx + w]
    return out.astype(img.dtype)


def _imresize_matrix(n_in: int, scale: float) -> np.ndarray:
    """MATLAB imresize's antialiased bicubic as an [n_out, n_in] matrix, edges mirrored (BasicSR's port)."""
    n_out = math.ceil(n_in * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = math.ceil(width) + 2
    idx = left[:, None] + np.arange(p)[None]
    x = np.abs((u[:, None] - idx) * (scale if scale < 1 else 1.0))
    cubic = np.where(x <= 1, 1.5 * x ** 3 - 2.5 * x ** 2 + 1,
                     np.where(x <= 2, -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2, 0.0))
    weights = cubic * (scale if scale < 1 else 1.0)
    weights /= weights.sum(1, keepdims=True)
    matrix = np.zeros((n_out, n_in))
    zero_based = idx.astype(int) - 1
    mirrored = np.where(zero_based < 0, -zero_based - 1, zero_based)
    mirrored = np.where(mirrored >= n_in, 2 * n_in - mirrored - 1, mirrored)
    for i in range(n_out):
        np.add.at(matrix[i], mirrored[i], weights[i])
    return matrix


def niqe_y(y: np.ndarray) -> float:
    """NIQE of a float Y image in [0, 255] (already rounded and cropped)."""
    params = _niqe_params()
    h, w = y.shape
    nh, nw = h // NIQE_BLOCK, w // NIQE_BLOCK
    if nh < 1 or nw < 1:
        raise ValueError(f"NIQE needs images of at least {NIQE_BLOCK} x {NIQE_BLOCK} pixels after the border crop")
    img = y[:nh * NIQE_BLOCK, :nw * NIQE_BLOCK].astype(np.float32)
    window = params["gaussian_window"]
    per_scale = []
    for scale in (1, 2):
        mu = _filter_nearest(img, window)
        sigma = np.sqrt(np.abs(_filter_nearest(np.square(img), window) - np.square(mu)))
        normed = (img - mu) / (sigma + 1)
        b = NIQE_BLOCK // scale
        per_scale.append(np.array([_features(normed[i * b:(i + 1) * b, j * b:(j + 1) * b])
                                   for j in range(nw) for i in range(nh)]))
        if scale == 1:
            # float32 as BasicSR (its imresize runs in torch float32).
            rows, cols = (_imresize_matrix(n, 0.5).astype(np.float32) for n in img.shape)
            img = (rows @ (img / np.float32(255.0)) @ cols.T) * np.float32(255.0)
    feats = np.concatenate(per_scale, axis=1)
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    diff = params["mu_pris_param"] - mu_d
    quality = diff @ np.linalg.pinv((params["cov_pris_param"] + cov_d) / 2) @ diff.T
    return float(np.sqrt(np.squeeze(quality)))


def niqe(image: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of a uint8 RGB image (BasicSR's calculate_niqe with convert_to="y"); lower looks more natural."""
    x = np.asarray(image).astype(np.float64) / 255.0
    y = (x[..., 0] * 65.481 + x[..., 1] * 128.553 + x[..., 2] * 24.966 + 16.0) if x.ndim == 3 else x * 255.0
    y = y.astype(np.float32)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_y(np.round(y))
