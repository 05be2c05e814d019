"""sr-enhance's output options, as Real-ESRGAN's users know them: format (keeping the input's by default) and
quality, name suffix, any final scale, and the own-output marker in every format."""

import os

import numpy as np
import pytest
from conftest import run_cli, write_photo
from PIL import Image

import sr_keras
from sr_keras.enhance import files


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
    result = files.enhance_files(enhancer, files.expand_inputs(src), str(tmp_path / "out"),
                                       progress=False)
    names = sorted(os.path.basename(p) for p in result["written"])
    assert names == ["a_x4.jpg", "b_x4.webp", "c_x4.png", "d_x4.png"]
    for p in result["written"]:
        with Image.open(p) as img:
            assert img.size == (96, 80)
            assert img.format == {".jpg": "JPEG", ".webp": "WEBP", ".png": "PNG"}[os.path.splitext(p)[1]]
        assert files.is_own_output(p)
    assert Image.open(tmp_path / "out" / "d_x4.png").mode == "RGBA"
    # Enhancing the output folder into itself changes nothing: every format carries the marker.
    again = files.enhance_files(enhancer, files.expand_inputs(str(tmp_path / "out")),
                                      str(tmp_path / "out"), progress=False)
    assert again["written"] == [] and len(again["skipped"]) == 4


def test_explicit_format_quality_suffix_and_outscale(enhancer, tmp_path):
    src = _photos(str(tmp_path / "in"))
    paths = [os.path.join(src, n) for n in ("a.jpg", "c.png", "d.png")]
    low = files.enhance_files(enhancer, paths, str(tmp_path / "q20"), progress=False,
                                    output_format=files.OutputFormat("jpg", quality=20, suffix="big",
                                                                           outscale=3.5))
    files.enhance_files(enhancer, paths, str(tmp_path / "q95"), progress=False,
                                     output_format=files.OutputFormat("jpg", quality=95, suffix="big",
                                                                            outscale=3.5))
    assert sorted(os.path.basename(p) for p in low["written"]) == ["a_big.jpg", "c_big.jpg", "d_big.png"]
    for p in low["written"]:
        assert Image.open(p).size == (84, 70)  # 24 x 3.5, 20 x 3.5.
    assert Image.open(tmp_path / "q20" / "d_big.png").mode == "RGBA"  # JPEG has no alpha: kept as PNG.
    assert os.path.getsize(tmp_path / "q20" / "c_big.jpg") < os.path.getsize(tmp_path / "q95" / "c_big.jpg")
    # Downscaled output equals the x4 output resized (Lanczos, antialiased) within JPEG-free rounding.
    two = files.enhance_files(enhancer, [paths[1]], str(tmp_path / "x2"), progress=False,
                                    output_format=files.OutputFormat("png", outscale=2))
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
        result = files.enhance_files(enhancer, [os.path.join(src, "c.png")], src, progress=False,
                                           overwrite=overwrite, output_format=files.OutputFormat("png", suffix=""))
        assert result["written"] == [] and "is an input" in next(iter(result["failed"].values()))
    assert open(os.path.join(src, "c.png"), "rb").read() == before


def test_png_compression_changes_the_size_and_keeps_the_pixels(enhancer, tmp_path):
    src = tmp_path / "p.png"
    write_photo(str(src), 40, 48)
    sizes, pixels = {}, {}
    for level in (0, 1, 9):
        for streamed in (True, False):  # Band by band at the model's scale; whole with --outscale.
            fmt = files.OutputFormat("png", png_compression=level, outscale=None if streamed else 3)
            out = files.enhance_files(enhancer, [str(src)], str(tmp_path / f"{level}{streamed}"),
                                            progress=False, output_format=fmt)["written"][0]
            sizes[level, streamed] = os.path.getsize(out)
            pixels[level, streamed] = np.asarray(Image.open(out))
    for streamed in (True, False):
        assert sizes[0, streamed] > sizes[1, streamed] > sizes[9, streamed]
        assert all(np.array_equal(pixels[0, streamed], pixels[lv, streamed]) for lv in (1, 9))
    with pytest.raises(ValueError, match="png_compression=10"):
        files.OutputFormat(png_compression=10)


def _camera_jpeg(path):
    """A 24 x 20 (stored 20 x 24, orientation 6) JPEG with camera, date and GPS tags."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS 5D", 6
    exif.get_ifd(0x8769).update({0x9003: "2024:01:02 03:04:05", 0xA002: 24, 0xA003: 20})
    exif.get_ifd(0x8825)[2] = (52.0, 13.0, 24.0)
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


def test_camera_exif_is_kept_upright_and_resized_and_strip_metadata_drops_it(enhancer, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _camera_jpeg(str(src / "cam.jpg"))
    for ext, streamed in (("auto", False), ("png", True)):  # JPEG out (whole), and PNG out (band by band).
        out = files.enhance_files(enhancer, [str(src / "cam.jpg")], str(tmp_path / ext), progress=False,
                                        output_format=files.OutputFormat(ext))["written"][0]
        with Image.open(out) as img:
            assert img.size == (80, 96)  # Upright: the orientation was applied to the pixels...
            exif = img.getexif()
            assert exif.get(0x0112, 1) == 1  # ... and reset in the tags, so viewers do not turn it again.
            assert (exif[0x010F], exif[0x0110]) == ("Canon", "EOS 5D")
            assert exif.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"
            assert (exif.get_ifd(0x8769)[0xA002], exif.get_ifd(0x8769)[0xA003]) == (80, 96)
            assert exif.get_ifd(0x8825)[2] == (52.0, 13.0, 24.0)
            assert exif[0x0131].startswith("sr_keras")
        assert files.is_own_output(out)
    stripped = files.enhance_files(enhancer, [str(src / "cam.jpg")], str(tmp_path / "strip"), progress=False,
                                         output_format=files.OutputFormat(strip_metadata=True))["written"][0]
    with Image.open(stripped) as img:
        exif = img.getexif()
        assert set(exif) == {0x0131} and not exif.get_ifd(0x8825)  # Only the marker: no camera, no GPS.
    assert files.is_own_output(stripped)


@pytest.mark.parametrize("args,message", [(["--ext=gif"], "ext"), (["--quality=0"], "quality"),
                                          (["--outscale=-1"], "outscale"), (["--suffix=a/b"], "suffix"),
                                          (["--png_compression=-1"], "png_compression")])
def test_bad_options_fail_before_any_work(tmp_path, args, message):
    write_photo(str(tmp_path / "a.png"), 8, 8)
    proc = run_cli("enhance", f"--input={tmp_path / 'a.png'}", f"--output_dir={tmp_path / 'o'}", *args)
    assert proc.returncode != 0 and message in proc.stderr and not os.path.exists(tmp_path / "o")


def test_a_finished_batch_run_again_skips_everything_without_loading_the_model(exported, tmp_path, monkeypatch):
    src, out = _photos(str(tmp_path / "in")), str(tmp_path / "out")
    args = (f"--model={exported[2]}", f"--input={src}", f"--output_dir={out}")
    assert run_cli("enhance", *args).returncode == 0
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(sr_keras, "load", no_model)
    proc = run_cli("enhance", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("exists (pass --overwrite to replace it)") == 4
    assert "4 of 4 inputs skipped" in proc.stderr
    assert {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)} == before
    # One new input needs the model; so does --overwrite.
    write_photo(os.path.join(src, "e.png"), 20, 24, seed=4)
    assert files.all_skipped(files.expand_inputs(src), out, 4, files.OutputFormat()) is None
    os.remove(os.path.join(src, "e.png"))
    inputs = files.expand_inputs(src)
    assert files.all_skipped(inputs, out, 4, files.OutputFormat(), overwrite=True) is None
    assert files.all_skipped(inputs, out, 2, files.OutputFormat()) is None  # Other names (_x2).
    assert len(files.all_skipped(inputs, out, 4, files.OutputFormat())) == 4
