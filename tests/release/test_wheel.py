"""The wheel: `python -m build` makes one that installs into a fresh venv with the shipped model and the web page
inside it, and `sr-enhance` then works from any folder (the default model converted on first use)."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_enhances_from_any_folder(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), REPO], check=True,
                   capture_output=True, timeout=600)
    wheels = glob.glob(str(dist / "sr_keras-*.whl"))
    # Small: the project's two own models are inside (about 15 MB), no converted zoo weights.
    assert len(wheels) == 1 and os.path.getsize(wheels[0]) < 20e6
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", wheels[0]],
                         capture_output=True, text=True, timeout=1800)
    assert pip.returncode == 0, pip.stderr[-2000:]
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sr_keras, os; "
                           "print(os.path.dirname(sr_keras.__file__))"], capture_output=True, text=True,
                          cwd=str(tmp_path), check=True).stdout.strip()
    assert site.startswith(str(venv)) and os.path.isfile(os.path.join(site, "default_model", "1", "saved_model.pb"))
    assert os.path.isfile(os.path.join(site, "serving", "static", "index.html"))
    assert os.path.isfile(os.path.join(site, "zoo", "figures.json"))  # sr-models' figures, before any conversion.
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(elsewhere / "p.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SR_KERAS_CACHE=str(tmp_path / "cache"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    for model in ("", "--model=sr_keras_x4"):
        proc = subprocess.run(["sr-enhance", "--input=p.jpg", "--output_dir=out", *([model] if model else [])],
                              capture_output=True, text=True, cwd=str(elsewhere), env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(elsewhere / "out" / "p_x4.jpg") as img:  # The first run (span_x4, the default) wrote it.
        assert img.size == (96, 80) and img.format == "JPEG"
    assert os.path.isdir(tmp_path / "cache" / "zoo" / "span_x4" / "1")
