"""PSNR/SSIM in the standard convention, checked against scikit-image as an independent implementation."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_keras import metrics


def _y(img_u8):
    """BT.601 luma, written out independently of sr_keras.metrics."""
    x = img_u8.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    hr = np.stack([128 + 90 * np.sin(xx / 6 + c) * np.cos(yy / 9) for c in range(3)], -1)
    hr = np.clip(hr, 0, 255).astype(np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-12, 13, hr.shape), 0, 255).astype(np.uint8)
    return hr, sr


def test_psnr_y_matches_skimage_with_border_shaved(pair):
    hr, sr = pair
    s = 4
    ref = peak_signal_noise_ratio(_y(hr)[s:-s, s:-s], _y(sr)[s:-s, s:-s], data_range=255)
    got = float(metrics.psnr(hr, sr, crop_border=s)[0])
    assert abs(got - ref) < 0.01
    # The border matters: without shaving the number differs (so the shave is really applied).
    assert abs(float(metrics.psnr(hr, sr, crop_border=0)[0]) - got) > 1e-4


def test_ssim_y_matches_skimage_gaussian_window(pair):
    hr, sr = pair
    s = 4
    ref = structural_similarity(_y(hr)[s:-s, s:-s], _y(sr)[s:-s, s:-s], data_range=255, gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03)
    got = float(metrics.ssim(hr, sr, crop_border=s)[0])
    assert abs(got - ref) < 0.001


def test_rgb_psnr_and_float_inputs(pair):
    hr, sr = pair
    ref = peak_signal_noise_ratio(hr, sr, data_range=255)
    assert abs(float(metrics.psnr(hr, sr, y_channel=False)[0]) - ref) < 0.01
    got = float(metrics.psnr(hr.astype(np.float32) / 255, sr.astype(np.float32) / 255, crop_border=4)[0])
    assert abs(got - float(metrics.psnr(hr, sr, crop_border=4)[0])) < 1e-3
    assert np.isinf(float(metrics.psnr(hr, hr)[0]))
