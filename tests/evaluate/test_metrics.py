"""PSNR/SSIM in the standard convention, checked against scikit-image as an independent implementation."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_keras.evaluate import metrics


def _y(img_u8):
    """BT.601 luma, written out independently of sr_keras.evaluate.metrics."""
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


def _photo(seed=0, h=96, w=96):
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 80 * np.sin(xx / (5 + c) + yy / 7 + r.uniform(0, 6)) for c in range(3)], -1)
    return np.clip(img + r.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def test_a_tint_and_a_grid_are_flagged_and_a_clean_output_is_not():
    hr = _photo()
    noise = np.random.default_rng(1).normal(0, 4, hr.shape)
    bicubic = np.clip(hr + noise, 0, 255).astype(np.uint8)  # Stands in for bicubic: unstructured error.
    clean = np.clip(hr + np.random.default_rng(2).normal(0, 2, hr.shape), 0, 255).astype(np.uint8)
    tinted = np.clip(hr.astype(int) + [0, 6, 0], 0, 255).astype(np.uint8)  # Green +6 levels.
    grid = hr.astype(int)
    grid[::4, ::4] += 12  # One phase of every 4x4 pixel-shuffle block brighter: a checkerboard.
    grid = np.clip(grid, 0, 255).astype(np.uint8)
    found = {name: metrics.artefacts(hr, img, bicubic, 4) for name, img in
             (("clean", clean), ("tinted", tinted), ("grid", grid))}
    assert found["tinted"]["colour_shift_rgb"][1] == pytest.approx(6.0, abs=0.1)
    assert found["tinted"]["colour_shift"] > metrics.COLOUR_SHIFT_LIMIT
    assert found["grid"]["grid"] > 5 * metrics.GRID_LIMIT
    assert found["clean"]["colour_shift"] < 0.5 and found["clean"]["grid"] < 1.0
    assert metrics.artefact_flags(found["clean"]["colour_shift"], found["clean"]["grid"]) == []
    assert metrics.artefact_flags(found["tinted"]["colour_shift"], found["tinted"]["grid"]) == [
        "colour shift 6.0 levels"]
    assert metrics.artefact_flags(found["grid"]["colour_shift"], found["grid"]["grid"])[-1].startswith("grid ")


def test_periodic_energy_sees_the_period_and_ignores_noise():
    r = np.random.default_rng(0)
    noise = r.normal(0, 10, (200, 200, 3))
    pattern = np.tile(r.normal(0, 10, (4, 4, 3)), (50, 50, 1))
    assert metrics.periodic_energy(noise, 4) < 1.5  # 10 / sqrt(2500) per phase mean, about 0.2.
    assert metrics.periodic_energy(pattern, 4) == pytest.approx(np.sqrt(pattern[:4, :4].reshape(16, 3).var(0).mean()))
