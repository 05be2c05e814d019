"""sr-enhance, `load().enhance()` and file writing under careless and hostile use: no file is lost, overwritten
or redirected, limits answer from the header, a failing file does not stop the batch, and memory is bounded."""

import errno
import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, mutate, run_cli, write_photo
from PIL import Image

import sr_keras
from sr_keras import models
from sr_keras.enhance import files
from sr_keras.image import imageio, png_writer, tiling
from sr_keras.savedmodel import writer
from sr_keras.train import config
from sr_keras.utils import safe_files


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(0)
    g = models.build_generator(config.ModelConfig(kind="srgan", filters=8, num_blocks=2, upsample_filters=32,
                                                  bicubic_skip=True))
    root = tmp_path_factory.mktemp("m")
    return writer.export(g, {"model": "srgan", "scale": 4}, str(root), "tiny")


@pytest.fixture(scope="module")
def enhancer(model_path):
    return sr_keras.load(model_path, tile=32)


# --- safe_files ---------------------------------------------------------------------------------------------

def test_atomic_write_never_follows_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "shared"
    out.mkdir()
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # Every name the old scheme would have used.
        os.symlink(victim, out / f"a.png.tmp-{pid}")
    os.symlink(victim, out / ".sr_keras-tmp-guess")
    safe_files.write_bytes(out / "a.png", b"PNG bytes")
    assert victim.read_text() == "precious"
    assert (out / "a.png").read_bytes() == b"PNG bytes" and not (out / "a.png").is_symlink()
    os.symlink(victim, out / "b.png")  # The target itself is a link: replaced, never written through.
    safe_files.write_bytes(out / "b.png", b"new")
    assert victim.read_text() == "precious" and (out / "b.png").read_bytes() == b"new"


def test_no_clobber_and_no_leftover_on_failure(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"mine")
    with pytest.raises(safe_files.OutputExistsError):
        safe_files.write_bytes(p, b"other", overwrite=False)
    assert p.read_bytes() == b"mine"
    with pytest.raises(RuntimeError):
        with safe_files.atomic_open(tmp_path / "y.bin") as f:
            f.write(b"half")
            raise RuntimeError("killed mid-write")
    assert sorted(os.listdir(tmp_path)) == ["x.bin"]
    safe_files.write_bytes(tmp_path / "z.bin", b"ok")
    assert oct(os.stat(tmp_path / "z.bin").st_mode & 0o777) == oct(0o666 & ~safe_files._UMASK)


def test_full_disk_leaves_no_temporary_and_the_batch_goes_on(enhancer, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        write_photo(str(src / f"{name}.png"), 20, 24)
    real_write = png_writer.PngWriter.write_rows
    calls = {"n": 0}

    def full_disk(self, rows):
        calls["n"] += 1
        if calls["n"] == 1:  # The first file's first band: the disk fills up.
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, rows)
    monkeypatch.setattr(png_writer.PngWriter, "write_rows", full_disk)
    out = tmp_path / "out"
    result = files.enhance_files(enhancer, sorted(str(p) for p in src.iterdir()), str(out), progress=False)
    assert list(result["failed"]) == [str(src / "a.png")] and "No space left" in result["failed"][str(src / "a.png")]
    assert sorted(os.listdir(out)) == ["b_x4.png", "c_x4.png"]  # No partial file, no temporary.


def test_kill_during_a_streamed_write_leaves_only_the_temporary_name(enhancer, tmp_path):
    src = tmp_path / "big.png"
    write_photo(str(src), 600, 600)
    out = tmp_path / "out"
    code = ("import sr_keras, os, signal\nfrom sr_keras.enhance import files as enhance_lib\n"
            "from sr_keras.image import png_writer\n"
            f"m = sr_keras.load({enhancer.path!r}, tile=32)\n"
            "real = png_writer.PngWriter.write_rows\n"
            "def w(self, rows):\n    real(self, rows)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "png_writer.PngWriter.write_rows = w\n"
            f"enhance_lib.enhance_files(m, [{str(src)!r}], {str(out)!r}, progress=False)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9
    left = os.listdir(out)
    assert "big_x4.png" not in left and all(f.startswith(safe_files.TEMP_PREFIX) for f in left) and left


# --- sr-enhance: nothing lost -------------------------------------------------------------------------------

def test_enhancing_a_folder_into_itself_loses_nothing(model_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_photo(str(folder / "a.png"), 12, 14, seed=1)
    write_photo(str(folder / "a_x4.png"), 12, 14, seed=2)  # The user's own file with an output-like name.
    mine = (folder / "a_x4.png").read_bytes()
    proc = run_cli("enhance", f"--model={model_path}", f"--input={folder}", f"--output_dir={folder}")
    assert proc.returncode == 0, proc.stderr
    assert (folder / "a_x4.png").read_bytes() == mine  # Not overwritten...
    assert "a_x4.png exists (pass --overwrite to replace it)" in proc.stdout  # ...and said so.
    assert (folder / "a_x4_x4.png").exists()  # The user's own a_x4.png is a real input.
    # A second run takes none of its own outputs as inputs, and overwrites nothing.
    before = {f: (folder / f).read_bytes() for f in os.listdir(folder)}
    proc = run_cli("enhance", f"--model={model_path}", f"--input={folder}", f"--output_dir={folder}")
    assert proc.returncode == 0 and "a_x4_x4.png: an sr-enhance output; not enhanced again" in proc.stdout
    assert {f: (folder / f).read_bytes() for f in os.listdir(folder)} == before
    # --overwrite replaces outputs, and still never touches the inputs.
    proc = run_cli("enhance", f"--model={model_path}", f"--input={folder}", f"--output_dir={folder}", "--overwrite")
    assert proc.returncode == 0 and (folder / "a_x4.png").read_bytes() != mine
    assert (folder / "a.png").read_bytes() == before["a.png"]


def test_same_names_in_different_folders_get_distinct_outputs(enhancer, tmp_path):
    for sub, seed in (("one", 1), ("two", 2)):
        (tmp_path / "in" / sub).mkdir(parents=True)
        write_photo(str(tmp_path / "in" / sub / "x.png"), 10, 12, seed=seed)
    write_photo(str(tmp_path / "in" / "one" / "x.jpg"), 10, 12, seed=3)
    paths = files.expand_inputs(str(tmp_path / "in"))
    result = files.enhance_files(enhancer, paths, str(tmp_path / "out"), progress=False)
    assert sorted(os.path.relpath(p, tmp_path / "out") for p in result["written"]) == [
        "one/x.png_x4.png", "one/x_x4.jpg", "two/x_x4.png"]  # x.jpg sorts first, keeps the plain name and JPEG.
    a, b = (Image.open(tmp_path / "out" / s) for s in ("one/x.png_x4.png", "two/x_x4.png"))
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_unusable_output_dir_is_one_line(model_path, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    write_photo(str(tmp_path / "p.png"), 8, 8)
    for out, why in [(blocker, "is a file"), (blocker / "sub", "cannot create")]:
        proc = run_cli("enhance", f"--model={model_path}", f"--input={tmp_path / 'p.png'}", f"--output_dir={out}")
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and last.startswith("error: ") and why in last, proc.stderr[-500:]
        assert "Traceback" not in proc.stderr


def test_a_huge_input_is_reported_from_its_header_and_the_batch_goes_on(model_path, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("L", (10000, 10000)).save(src / "b_huge.png", optimize=True)  # 100 MP in about 100 KB.
    write_photo(str(src / "a.png"), 9, 9)
    write_photo(str(src / "c.png"), 9, 9)
    proc = run_cli("enhance", f"--model={model_path}", f"--input={src}", f"--output_dir={tmp_path / 'out'}")
    assert proc.returncode == 1
    assert "b_huge.png: 10000x10000 = 100.0 MP is over the limit of 36 MP (--max_input_pixels raises it)" \
        in proc.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["a_x4.png", "c_x4.png"]
    assert "Traceback" not in proc.stderr


# --- load().enhance() -----------------------------------------------------------------------------------------

def test_enhance_refuses_bad_floats_and_keeps_float_kinds(enhancer):
    x = np.random.default_rng(0).random((6, 7, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*divide by 255"):
        enhancer.enhance(x * 255)
    for bad in (np.nan, np.inf):
        y = x.copy()
        y[0, 0, 0] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            enhancer.enhance(y)
    pil = Image.fromarray(x[..., 0], mode="F")  # Mode F in [0, 1]: stays float in [0, 1], not black.
    out = enhancer.enhance(pil)
    assert out.mode == "F" and out.size == (28, 24)
    arr = np.asarray(out)
    assert 0.2 < arr.mean() < 0.8 and arr.max() <= 1.0
    want = enhancer.enhance(x[..., 0])
    np.testing.assert_allclose(arr, want, atol=1e-6)
    out255 = np.asarray(enhancer.enhance(Image.fromarray(x[..., 0] * 255, mode="F")))  # Mode F in 0..255.
    np.testing.assert_allclose(out255, want * 255, atol=1e-3)


def test_enhance_accepts_a_path_and_checks_the_header_first(enhancer, tmp_path):
    img = write_photo(str(tmp_path / "p.png"), 9, 11)
    np.testing.assert_array_equal(enhancer.enhance(str(tmp_path / "p.png")), enhancer.enhance(img))
    Image.new("RGB", (3000, 2000)).save(tmp_path / "big.png")
    small = sr_keras.load(enhancer.path, max_input_pixels=1_000_000)
    with pytest.raises(imageio.ImageTooLargeError, match="6.0 MP is over the limit of 1 MP"):
        small.enhance(str(tmp_path / "big.png"))
    with pytest.raises(imageio.ImageTooLargeError):
        small.enhance(np.zeros((2000, 1000, 3), np.uint8))
    with pytest.raises(imageio.ImageTooLargeError):
        small.enhance(Image.open(tmp_path / "big.png"))  # A lazily opened file is never decoded.


def test_should_stop_cancels_between_tiles(enhancer):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 3
    with pytest.raises(sr_keras.infer.enhancer.Cancelled):
        enhancer.enhance(np.zeros((100, 100, 3), np.uint8), tile=16, tile_overlap=4, should_stop=stop)
    assert len(calls) == 3  # Stopped at the third tile of 49.


def test_streamed_bands_equal_the_whole_output(enhancer):
    x = np.random.default_rng(1).integers(0, 256, (70, 45, 4), dtype=np.uint8)
    bands = list(enhancer.enhance_bands(x, tile=16, tile_overlap=8))
    assert len(bands) > 3
    whole = enhancer.enhance(x, tile=16, tile_overlap=8)
    np.testing.assert_array_equal(np.concatenate(bands), whole)
    buf = io.BytesIO()
    w = png_writer.PngWriter(buf, whole.shape[1], whole.shape[0], 4)
    for b in bands:
        w.write_rows(b)
    w.close()
    np.testing.assert_array_equal(np.asarray(Image.open(buf)), whole)


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (2, np.uint8), (3, np.uint8), (4, np.uint8),
                                            (1, np.uint16), (3, np.uint16), (4, np.uint16)])
def test_png_writer_round_trips_through_tf_and_pillow(channels, dtype, tmp_path):
    top = np.iinfo(dtype).max
    x = np.random.default_rng(channels).integers(0, top + 1, (33, 17, channels)).astype(dtype)
    data = png_writer.encode_png(x, icc_profile=b"\0" * 200 if dtype == np.uint8 and channels == 3 else None,
                              text={"Software": "sr_keras test"})
    got = tf.io.decode_png(data, channels=0, dtype=tf.uint16 if dtype == np.uint16 else tf.uint8).numpy()
    np.testing.assert_array_equal(got, x)
    img = Image.open(io.BytesIO(data))
    assert img.info["Software"] == "sr_keras test" and img.size == (17, 33)
    assert np.array_equal(imageio.decode_image(data).pixels, x)


def test_tiled_bands_cover_the_output_once():
    x = np.random.default_rng(0).random((50, 37, 3)).astype(np.float32)
    fn = lambda t: np.repeat(np.repeat(t, 2, 0), 2, 1)  # noqa: E731 - nearest x2: every tile exact.
    for tile, overlap in [(16, 4), (0, 0), (50, 8), (7, 6)]:
        bands = list(tiling.tiled_bands(fn, x, 2, tile, overlap))
        np.testing.assert_allclose(np.concatenate(bands), fn(x), atol=1e-6)


def test_tile_cross_fades_are_linear_over_the_overlap_and_the_rest_is_the_tile_s_own():
    def fn(t):  # Each call answers its own number, so the output shows which tile each pixel came from.
        fn.calls += 1
        return np.full((t.shape[0] * 2, t.shape[1] * 2, 1), float(fn.calls), np.float32)
    fn.calls = 0
    # 40x70 at tile 32, overlap 8: cores [0, 32) and [32, 40) by [0, 32) and [32, 70) (the 6-px sliver joins its
    # neighbour): tiles 1, 2 above 3, 4, cross-faded over 8 LR = 16 HR pixels centred on HR row and column 64.
    out = tiling.tiled_apply(fn, np.zeros((40, 70, 1), np.float32), 2, 32, 8)[..., 0]
    assert fn.calls == 4
    for rows, cols, tile in [(slice(0, 56), slice(0, 56), 1), (slice(0, 56), slice(72, 140), 2),
                             (slice(72, 80), slice(0, 56), 3), (slice(72, 80), slice(72, 140), 4)]:
        assert (out[rows, cols] == tile).all()
    ramp = (np.arange(16) + 0.5) / 16
    np.testing.assert_allclose(out[10, 56:72], 1 + ramp, atol=1e-6)  # From tile 1 to tile 2.
    np.testing.assert_allclose(out[56:72, 100], 2 + 2 * ramp, atol=1e-6)  # From tile 2 to tile 4.


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_image(model_path, tmp_path):
    """Peak of the memory that numpy and Python allocate during sr-enhance's file path (tracemalloc traces both;
    deterministic, unlike RSS, which the allocator's free lists blur), on a 400x400 and a 2400x400 input (2.6 MP and
    15 MP out). The PNG is streamed in bands whose size depends on the width only, so the extra output costs a
    small fraction of its own 3 bytes a pixel (what is left is the decoded input, 1/16 of the output's pixels).
    A small file's read allocates its own size, never the 1 GB input cap."""
    import tracemalloc

    m = sr_keras.load(model_path, tile=256)  # Both inputs are at least two bands of tiles high.
    peak = {}
    for h in (400, 2400):
        src = tmp_path / f"in{h}.png"
        write_photo(str(src), h, 400)
        files.enhance_files(m, [str(src)], str(tmp_path / "warm"), progress=False)
        tracemalloc.start()
        try:
            files.enhance_files(m, [str(src)], str(tmp_path / "out"), progress=False)
            peak[h] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert Image.open(tmp_path / "out" / "in2400_x4.png").size == (1600, 9600)
    assert peak[400] < 200e6, peak
    per_pixel = (peak[2400] - peak[400]) / ((2400 - 400) * 400 * 16)
    assert per_pixel < 0.5, (peak, per_pixel)


def test_fuzzed_image_bytes_only_ever_raise_image_error():
    """Seeded and bounded: mutated PNG/JPEG/GIF/BMP/WebP/TIFF bytes decode or raise ImageError, nothing else."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rng = np.random.default_rng(0)
    seeds = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(buf, fmt)
        seeds.append(buf.getvalue())
    outcomes = set()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(i=st.integers(0, len(seeds) - 1),
           edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.booleans()), max_size=6))
    def check(i, edits):
        data = mutate(seeds[i], edits)
        try:
            px = imageio.decode_image(data, max_pixels=1_000_000).pixels
            assert px.ndim == 3 and px.dtype in (np.uint8, np.uint16)
            outcomes.add("ok")
        except imageio.ImageError:
            outcomes.add("refused")
    check()
    assert outcomes == {"ok", "refused"}
