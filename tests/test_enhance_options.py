"""sr-enhance's output options, as Real-ESRGAN's users know them: format (keeping the input's by default) and
quality, name suffix, any final scale, and the own-output marker in every format."""

import os

import numpy as np
import pytest
from conftest import run_cli, write_photo
from PIL import Image

import sr_keras
from sr_keras import enhance_lib


@pytest.fixture(scope="module")
def enhancer(exported):
    return sr_keras.load(exported[2])


def _photos(folder):
    os.makedirs(folder, exist_ok=True)
    write_photo(os.path.join(folder, "a.jpg"), 20, 24, seed=1)
    write_photo(os.path.join(folder, "b.webp"), 20, 24, seed=2)
    write_photo(os.path.join(folder, "c.png"), 20, 24, seed=3)
    rgba = np.dstack([np.asarray(Image.open(os.path.join(folder, "c.png"))), np.full((20, 24), 128, np.uint8)])
    Image.fromarray(rgba).save(os.path.join(folder, "d.png"))
    return folder


def test_auto_keeps_each_inputs_format_and_marks_every_output(enhancer, tmp_path):
    src = _photos(str(tmp_path / "in"))
    result = enhance_lib.enhance_files(enhancer, enhance_lib.expand_inputs(src), str(tmp_path / "out"),
                                       progress=False)
    names = sorted(os.path.basename(p) for p in result["written"])
    assert names == ["a_x4.jpg", "b_x4.webp", "c_x4.png", "d_x4.png"]
    for p in result["written"]:
        with Image.open(p) as img:
            assert img.size == (96, 80)
            assert img.format == {".jpg": "JPEG", ".webp": "WEBP", ".png": "PNG"}[os.path.splitext(p)[1]]
        assert enhance_lib.is_own_output(p)
    assert Image.open(tmp_path / "out" / "d_x4.png").mode == "RGBA"
    # Enhancing the output folder into itself changes nothing: every format carries the marker.
    again = enhance_lib.enhance_files(enhancer, enhance_lib.expand_inputs(str(tmp_path / "out")),
                                      str(tmp_path / "out"), progress=False)
    assert again["written"] == [] and len(again["skipped"]) == 4


def test_explicit_format_quality_suffix_and_outscale(enhancer, tmp_path):
    src = _photos(str(tmp_path / "in"))
    paths = [os.path.join(src, n) for n in ("a.jpg", "c.png", "d.png")]
    low = enhance_lib.enhance_files(enhancer, paths, str(tmp_path / "q20"), progress=False,
                                    output_format=enhance_lib.OutputFormat("jpg", quality=20, suffix="big",
                                                                           outscale=3.5))
    enhance_lib.enhance_files(enhancer, paths, str(tmp_path / "q95"), progress=False,
                                     output_format=enhance_lib.OutputFormat("jpg", quality=95, suffix="big",
                                                                            outscale=3.5))
    assert sorted(os.path.basename(p) for p in low["written"]) == ["a_big.jpg", "c_big.jpg", "d_big.png"]
    for p in low["written"]:
        assert Image.open(p).size == (84, 70)  # 24 x 3.5, 20 x 3.5.
    assert Image.open(tmp_path / "q20" / "d_big.png").mode == "RGBA"  # JPEG has no alpha: kept as PNG.
    assert os.path.getsize(tmp_path / "q20" / "c_big.jpg") < os.path.getsize(tmp_path / "q95" / "c_big.jpg")
    # Downscaled output equals the x4 output resized (Lanczos, antialiased) within JPEG-free rounding.
    two = enhance_lib.enhance_files(enhancer, [paths[1]], str(tmp_path / "x2"), progress=False,
                                    output_format=enhance_lib.OutputFormat("png", outscale=2))
    out = np.asarray(Image.open(two["written"][0]))
    full = enhancer.enhance(np.asarray(Image.open(paths[1])))
    import tensorflow as tf

    want = tf.image.resize(full.astype(np.float32), (40, 48), "lanczos3", antialias=True).numpy()
    assert out.shape == (40, 48, 3) and np.abs(out - np.clip(np.round(want), 0, 255)).max() <= 1
    assert os.path.basename(two["written"][0]) == "c_x2.png"


def test_an_input_is_never_overwritten(enhancer, tmp_path):
    src = _photos(str(tmp_path / "in"))
    before = open(os.path.join(src, "c.png"), "rb").read()
    for overwrite in (False, True):
        result = enhance_lib.enhance_files(enhancer, [os.path.join(src, "c.png")], src, progress=False,
                                           overwrite=overwrite, output_format=enhance_lib.OutputFormat("png", suffix=""))
        assert result["written"] == [] and "is an input" in next(iter(result["failed"].values()))
    assert open(os.path.join(src, "c.png"), "rb").read() == before


def test_png_compression_changes_the_size_and_keeps_the_pixels(enhancer, tmp_path):
    src = tmp_path / "p.png"
    write_photo(str(src), 40, 48)
    sizes, pixels = {}, {}
    for level in (0, 1, 9):
        for streamed in (True, False):  # Band by band at the model's scale; whole with --outscale.
            fmt = enhance_lib.OutputFormat("png", png_compression=level, outscale=None if streamed else 3)
            out = enhance_lib.enhance_files(enhancer, [str(src)], str(tmp_path / f"{level}{streamed}"),
                                            progress=False, output_format=fmt)["written"][0]
            sizes[level, streamed] = os.path.getsize(out)
            pixels[level, streamed] = np.asarray(Image.open(out))
    for streamed in (True, False):
        assert sizes[0, streamed] > sizes[1, streamed] > sizes[9, streamed]
        assert all(np.array_equal(pixels[0, streamed], pixels[lv, streamed]) for lv in (1, 9))
    with pytest.raises(ValueError, match="png_compression=10"):
        enhance_lib.OutputFormat(png_compression=10)


@pytest.mark.parametrize("args,message", [(["--ext=gif"], "ext"), (["--quality=0"], "quality"),
                                          (["--outscale=-1"], "outscale"), (["--suffix=a/b"], "suffix"),
                                          (["--png_compression=-1"], "png_compression")])
def test_bad_options_fail_before_any_work(tmp_path, args, message):
    write_photo(str(tmp_path / "a.png"), 8, 8)
    proc = run_cli("enhance", f"--input={tmp_path / 'a.png'}", f"--output_dir={tmp_path / 'o'}", *args)
    assert proc.returncode != 0 and message in proc.stderr and not os.path.exists(tmp_path / "o")
