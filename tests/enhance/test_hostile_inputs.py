"""Hostile round 3, inputs: images whose containers lie, special files, link loops, outputs pointed elsewhere by
planted links, careless tile flags, temporaries of killed runs, CMYK. Each was reproduced on the code before."""

import io
import os
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import mutate, tiny_generator, write_photo
from PIL import Image

import sr_keras
from sr_keras.data.sources import walk_files
from sr_keras.enhance import files as enhance_lib
from sr_keras.image import imageio
from sr_keras.savedmodel import writer
from sr_keras.utils import safe_files


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory):
    path = writer.export(tiny_generator(), {"model": "srgan", "scale": 4}, str(tmp_path_factory.mktemp("m")), "tiny")
    return sr_keras.load(path, tile=32)


def _png(size, seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def lying_icns(real=(400, 400)) -> bytes:
    """An ICNS whose only entry is ic07 (128 x 128 by its type) but holds a PNG of `real` pixels."""
    png = _png(real)
    entry = b"ic07" + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def lying_ico(real=(400, 400)) -> bytes:
    """An ICO whose directory says 16 x 16 but whose entry is a PNG of `real` pixels."""
    png = _png(real)
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 22) + png


def containers() -> dict:
    """Multi-image files of every kind the issue names, each with a small first image and a larger later one."""
    rng = np.random.default_rng(1)
    small, big = (Image.fromarray(rng.integers(0, 256, s + (3,), np.uint8)) for s in ((12, 10), (300, 280)))
    out = {"icns": lying_icns(), "ico": lying_ico()}
    for name, fmt, kw in (("tiff_pages", "TIFF", {}), ("gif_frames", "GIF", {}), ("apng", "PNG", {}),
                          ("webp_frames", "WEBP", {"lossless": True}), ("mpo", "MPO", {})):
        buf = io.BytesIO()
        try:
            small.save(buf, fmt, save_all=True, append_images=[big], **kw)
        except (KeyError, OSError, ValueError, RuntimeError):  # A writer that cannot (WebP: one canvas size).
            continue
        out[name] = buf.getvalue()
    return out


# --- What is decoded is what is limited ---------------------------------------------------------------------

@pytest.mark.parametrize("make", [lying_icns, lying_ico])
def test_a_sub_image_bigger_than_its_container_says_is_refused_before_decoding(make):
    data = make()
    if make is lying_icns:  # Its header lies (Pillow reads an ICO entry's own PNG header when it opens the file).
        assert imageio.probe_size(data) == (128, 128)
    with pytest.raises(imageio.ImageTooLargeError, match="400x400"):
        imageio.decode_image(data, max_pixels=20_000)
    try:  # It is real: above the limit, the same bytes are no longer refused for their size.
        assert imageio.decode_image(data, max_pixels=200_000).pixels.shape[:2] == (400, 400)
    except imageio.ImageTooLargeError:
        raise
    except imageio.ImageError as e:  # Pillow's ICNS reader then objects to the odd size itself.
        assert "allowed sizes" in str(e)


def test_every_container_decodes_within_the_limit_or_is_refused():
    kinds = containers()
    assert {"icns", "ico", "tiff_pages", "gif_frames", "apng"} <= set(kinds)
    for name, data in kinds.items():
        for limit in (1_000, 20_000, None):
            try:
                px = imageio.decode_image(data, max_pixels=limit).pixels
            except imageio.ImageTooLargeError:
                assert limit is not None
                continue
            except imageio.ImageError:  # Refused for another reason (Pillow's ICNS reader: an odd size).
                continue
            assert limit is None or px.shape[0] * px.shape[1] <= limit, (name, limit, px.shape)


def test_fuzzed_containers_only_ever_raise_image_error_and_stay_within_the_limit():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = list(containers().values())
    outcomes = set()

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(i=st.integers(0, len(seeds) - 1),
           edits=st.lists(st.tuples(st.integers(0, 1 << 17), st.integers(0, 255), st.booleans()), max_size=5))
    def check(i, edits):
        data = mutate(seeds[i], edits)
        try:
            px = imageio.decode_image(data, max_pixels=50_000).pixels
            assert px.shape[0] * px.shape[1] <= 50_000
            outcomes.add("ok")
        except imageio.ImageError:
            outcomes.add("refused")
    check()
    assert outcomes == {"ok", "refused"}


# --- Special files and loops --------------------------------------------------------------------------------

def _run_with_timeout(fn, seconds=30):
    """fn(), in a thread that must finish within `seconds` (a read of a pipe would block forever)."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller.
            box["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "hung"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def test_pipes_devices_and_link_loops_are_skipped_and_each_file_is_enhanced_once(enhancer, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_photo(str(src / "a.png"), 12, 14)
    write_photo(str(src / "sub" / "b.png"), 10, 12)
    os.symlink(".", src / "loop")
    os.symlink("..", src / "sub" / "up")
    os.symlink("a.png", src / "same.png")
    os.symlink("/dev/zero", src / "zero.png")
    os.mkfifo(src / "pipe.png")
    assert sorted(os.path.relpath(p, src) for p in walk_files(str(src))) == ["a.png", "pipe.png", "sub/b.png",
                                                                            "zero.png"]
    result = _run_with_timeout(lambda: enhance_lib.enhance_files(
        enhancer, enhance_lib.expand_inputs(str(src)), str(tmp_path / "out"), progress=False))
    assert sorted(os.path.relpath(p, tmp_path / "out") for p in result["written"]) == ["a_x4.png", "sub/b_x4.png"]
    assert not result["failed"]
    assert {os.path.basename(p): why.split(" (")[0] for p, why in result["skipped"].items()} == {
        "pipe.png": "not a regular file", "zero.png": "not a regular file"}
    for special in ("pipe.png", "zero.png"):  # The API refuses them too, at once.
        with pytest.raises(imageio.ImageError, match="not a regular file"):
            _run_with_timeout(lambda: enhancer.enhance(str(src / special)))


def test_outputs_never_leave_the_output_folder_through_planted_links(enhancer, tmp_path):
    src, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    (src / "sub").mkdir(parents=True)
    out.mkdir()
    elsewhere.mkdir()
    write_photo(str(src / "p.png"), 10, 10)
    write_photo(str(src / "sub" / "q.png"), 10, 10)
    os.symlink(elsewhere, out / "sub")
    result = enhance_lib.enhance_files(enhancer, enhance_lib.expand_inputs(str(src)), str(out), progress=False)
    assert os.listdir(elsewhere) == []
    assert [os.path.basename(p) for p in result["written"]] == ["p_x4.png"]
    assert "is a link; outputs are never written through it" in result["failed"][str(src / "sub" / "q.png")]


def test_temporaries_of_killed_runs_are_removed_and_live_ones_kept(enhancer, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    write_photo(str(src / "a.png"), 10, 10)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # A process that has ended: what kill -9 leaves.
    host = safe_files._owner_prefix().split("@")[1]
    left = out / f"{safe_files.TEMP_PREFIX}{dead}@{host}@abc123"
    live = out / f"{safe_files._owner_prefix()}def456"
    left.write_bytes(b"half a PNG")
    live.write_bytes(b"being written")
    enhance_lib.enhance_files(enhancer, [str(src / "a.png")], str(out), progress=False)
    assert sorted(os.listdir(out)) == sorted(["a_x4.png", live.name])


# --- Tiles and limits ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("tile", [1, 2, 4])
def test_tiles_smaller_than_the_context_are_raised_and_give_the_whole_image_result(enhancer, tile, capsys,
                                                                                   tmp_path):
    lr = write_photo(str(tmp_path / "p.png"), 40, 36)
    whole = enhancer.enhance(lr, tile=0).astype(int)
    tiled = enhancer.enhance(lr, tile=tile).astype(int)
    assert np.abs(tiled - whole).max() <= 1
    assert f"tile={tile} is smaller than its context" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, fragment", [({"tile": -5}, "tile=-5"), ({"tile_overlap": -40}, "tile_overlap=-40"),
                                              ({"tile": 2.5}, "tile=2.5")])
def test_bad_tiles_are_refused_in_one_line_by_the_api(enhancer, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        enhancer.enhance(np.zeros((8, 8, 3), np.uint8), **kwargs)
    with pytest.raises(ValueError, match=fragment):
        sr_keras.load(enhancer.path, **kwargs)
    with pytest.raises(ValueError, match="max_input_pixels=-1"):
        sr_keras.load(enhancer.path, max_input_pixels=-1)


def test_careless_enhance_flags_are_refused_in_one_line(tmp_path):
    from conftest import run_cli

    write_photo(str(tmp_path / "a.png"), 8, 8)
    for flag in ("--tile=-5", "--tile_overlap=-40", "--max_input_pixels=-1"):
        proc = run_cli("enhance", f"--input={tmp_path}", f"--output_dir={tmp_path / 'o'}", flag, timeout=120)
        assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
            f"error: {flag} must be " + proc.stderr.split(" must be ", 1)[1].strip()], proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_cmyk_jpeg_comes_back_cmyk(enhancer, tmp_path):
    rgb = write_photo(str(tmp_path / "rgb.png"), 12, 12)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    result = enhance_lib.enhance_files(enhancer, [str(tmp_path / "c.jpg")], str(tmp_path / "out"), progress=False)
    out = Image.open(result["written"][0])
    assert out.format == "JPEG" and out.mode == "CMYK" and out.size == (48, 48)
    pil = enhancer.enhance(Image.open(tmp_path / "c.jpg"))
    assert pil.mode == "CMYK" and pil.size == (48, 48)
