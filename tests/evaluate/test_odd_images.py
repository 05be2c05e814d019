"""sr-evaluate on odd images: NIQE undefined (too few textured blocks) is reported as such, not a crash; an image
too small for SSIM's window after the shave is skipped with its reason, in one line."""

import os

import numpy as np
from conftest import run_cli
from PIL import Image

from sr_keras.evaluate import protocol


def test_niqe_on_a_flat_image_is_undefined_not_a_crash():
    hr = np.full((192, 192, 3), 128, np.uint8)
    hr[40:60, 40:60] = 200  # One small feature: most 96 px blocks are flat.
    out = protocol._perceptual(hr, hr.copy(), 4, ("niqe",))
    assert out["niqe"] is None  # LinAlgError before: its blocks give no covariance to invert.


def test_an_image_below_ssims_window_is_skipped_in_one_line(exported, tmp_path):
    _, _, model = exported
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr_dir.mkdir()
    lr_dir.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), np.uint8)).save(hr_dir / "tiny.png")
    Image.fromarray(rng.integers(0, 255, (3, 3, 3), np.uint8)).save(lr_dir / "tiny.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(hr_dir / "ok.png")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(lr_dir / "ok.png")
    images, skipped = protocol.load_images(str(hr_dir), 4, lr_images=str(lr_dir))
    assert [i.name for i in images] == ["ok.png"]
    assert list(skipped) == [str(hr_dir / "tiny.png")] and "SSIM needs 11 x 11" in skipped[str(hr_dir / "tiny.png")]
    proc = run_cli("evaluate", f"--model={model}", f"--images={hr_dir}", f"--lr_images={lr_dir}",
                   f"--out={tmp_path}/eval")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "InvalidArgumentError" not in proc.stderr
    assert os.path.isfile(tmp_path / "eval" / "results.md")
