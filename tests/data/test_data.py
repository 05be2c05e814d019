"""The LR/HR TFRecord pipeline: image decoding, the builder, the manifest and the reader."""

import dataclasses
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_cli, write_photo
from PIL import Image, ImageOps

from sr_keras.data import builder, degradation, pipeline, schema, sources
from sr_keras.image.imageio import decode_image, load_rgb8

# --- Schema -------------------------------------------------------------------------------------------------

def test_example_round_trip_gives_identical_bytes(tmp_path, rng):
    hr = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    lr = degradation.bicubic_downscale(hr, 4)
    hr_png, lr_png = schema.encode_png(hr), schema.encode_png(lr)
    ex = schema.make_example(hr_png, lr_png, hr.shape, lr.shape, 4, "a/b.png",
                             degradation.RealisticParams(0.5, 2.0, 80))
    path = str(tmp_path / "one.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        w.write(ex.SerializeToString())
    (raw,) = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert raw == ex.SerializeToString()
    parsed = tf.io.parse_single_example(raw, schema.FEATURES)
    assert parsed["hr"].numpy() == hr_png and parsed["lr"].numpy() == lr_png
    decoded = schema.parse_example(raw)
    np.testing.assert_array_equal(decoded["hr"].numpy(), hr)
    np.testing.assert_array_equal(decoded["lr"].numpy(), lr)
    assert list(decoded["hr_shape"].numpy()) == [32, 48, 3] and list(decoded["lr_shape"].numpy()) == [8, 12, 3]
    assert decoded["key"].numpy() == b"a/b.png" and int(decoded["scale"]) == 4
    assert int(decoded["deg/jpeg_quality"]) == 80 and abs(float(decoded["deg/blur_sigma"]) - 0.5) < 1e-6


# --- Degradation --------------------------------------------------------------------------------------------

def test_bicubic_degradation_matches_tf_resize_and_crops_to_multiple(rng):
    hr = rng.integers(0, 256, (35, 42, 3), dtype=np.uint8)
    cropped = degradation.crop_to_multiple(hr, 4)
    assert cropped.shape == (32, 40, 3)
    lr = degradation.bicubic_downscale(cropped, 4)
    ref = tf.image.resize(cropped.astype(np.float32), (8, 10), "bicubic", antialias=True).numpy()
    np.testing.assert_array_equal(lr, np.clip(np.round(ref), 0, 255).astype(np.uint8))
    with pytest.raises(ValueError, match="multiple"):
        degradation.bicubic_downscale(hr, 4)


def test_realistic_degradation_is_seeded_per_key(rng):
    hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a, pa = degradation.degrade(hr, 4, "realistic", key="x.png", seed=1)
    b, pb = degradation.degrade(hr, 4, "realistic", key="x.png", seed=1)
    assert pa == pb
    np.testing.assert_array_equal(a, b)
    params = {degradation.sample_realistic_params(f"k{i}", 1) for i in range(20)}
    assert len(params) > 10  # Different keys draw different degradations.


# --- Decoding odd files -------------------------------------------------------------------------------------

def _exif_rotated_jpeg(path, orientation=6):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:10, :20] = [255, 0, 0]  # A red block marks the top-left corner as stored.
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    path = str(tmp_path / "r.jpg")
    _exif_rotated_jpeg(path, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(load_rgb8(path), expected)


def test_sixteen_bit_png_keeps_all_bits(tmp_path):
    px = np.full((8, 8, 3), 1000, np.uint16)
    px[..., 1] = 65535
    px[..., 2] = 65280
    path = tmp_path / "rgb16.png"
    path.write_bytes(tf.io.encode_png(px).numpy())
    d = decode_image(str(path))
    assert d.pixels.dtype == np.uint16
    np.testing.assert_array_equal(d.pixels, px)
    rgb = load_rgb8(str(path))
    assert rgb[0, 0].tolist() == [4, 255, 254]  # v / 257 rounded (1000 -> 3.89 -> 4); not v >> 8 (-> 3, 255).


# --- The mixed folder ---------------------------------------------------------------------------------------

def _make_mixed_folder(root):
    """Good photos, convertible oddities and bad files. Returns (expected_good_keys, expected_skipped)."""
    os.makedirs(root / "sub", exist_ok=True)
    good = {}
    for name, size in [("a.png", (64, 80)), ("b.jpg", (72, 72)), ("c.webp", (64, 64)), ("sub/d.bmp", (64, 96)),
                       ("sub/e.tiff", (80, 64))]:
        write_photo(str(root / name), *size, seed=len(good))
        good[name] = size
    base = write_photo(str(root / "base.png"), 64, 64, seed=9)
    Image.fromarray(base).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(base).convert("L").save(root / "gray.png")
    Image.fromarray(np.dstack([base, np.full((64, 64), 200, np.uint8)])).save(root / "rgba.png")
    Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    (root / "gray16.png").write_bytes(tf.io.encode_png((base[..., :1].astype(np.uint16) * 257)).numpy())
    (root / "rgb16.png").write_bytes(tf.io.encode_png(base.astype(np.uint16) * 257).numpy())
    _exif_rotated_jpeg(str(root / "rotated.jpg"))
    Image.fromarray(base).save(root / "first_frame.gif")
    for name in ("base.png", "cmyk.jpg", "gray.png", "rgba.png", "palette.png", "gray16.png", "rgb16.png", "first_frame.gif"):
        good[name] = (64, 64)
    good["rotated.jpg"] = (60, 40)  # Stored 40x60 with orientation 6: upright it is 60 tall.
    (root / "empty.jpg").write_bytes(b"")
    full = (root / "b.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "notes.txt").write_text("not an image")
    (root / "fake.png").write_text("<html>this is not a png</html>")
    write_photo(str(root / "tiny.png"), 20, 30)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # Hidden files are not inputs.
    skipped = {"empty.jpg": "empty file", "truncated.jpg": "truncated or corrupt", "notes.txt": "not an image",
               "fake.png": "not an image", "tiny.png": "too small"}
    return good, skipped


def test_mixed_folder_keeps_every_good_image_and_lists_every_skip(tmp_path):
    src = tmp_path / "photos"
    good, skipped = _make_mixed_folder(src)
    out = tmp_path / "out"
    manifest = builder.build_tfrecords(builder.BuildConfig(
        source=f"dir:{src}", out_dir=str(out), val_fraction=0.0, scale=4, hr_size=0, min_side=32, workers=2,
        verbose=False))
    assert manifest.counts == {"train": len(good), "val": 0}
    got = {os.path.relpath(s["path"], src): s["reason"] for s in manifest.skipped}
    assert set(got) == set(skipped)
    for name, reason in skipped.items():
        assert got[name].startswith(reason), (name, got[name])
    records = {}
    for raw in tf.data.TFRecordDataset(pipeline.shard_files(str(out), "train")).as_numpy_iterator():
        ex = schema.parse_example(raw)
        records[ex["key"].numpy().decode()] = (ex["hr"].numpy(), ex["lr"].numpy())
    assert set(records) == set(good)
    for name, (h, w) in good.items():
        hr, lr = records[name]
        assert hr.shape == (h - h % 4, w - w % 4, 3), name
        np.testing.assert_array_equal(lr, degradation.bicubic_downscale(hr, 4))
    # Conversions are right, not merely present.
    np.testing.assert_array_equal(records["gray.png"][0][..., 0], records["gray.png"][0][..., 2])
    base = records["base.png"][0]
    np.testing.assert_array_equal(records["gray16.png"][0], np.repeat(base[..., :1], 3, -1))
    np.testing.assert_array_equal(records["rgb16.png"][0], base)
    rgba = np.round(base.astype(np.float32) * 200 / 255 + 255 * 55 / 255)  # Alpha 200 composited over white.
    assert np.abs(records["rgba.png"][0].astype(np.float32) - rgba).max() <= 1
    assert np.abs(records["cmyk.jpg"][0].astype(int) - base).mean() < 8
    rotated = records["rotated.jpg"][0]  # Stored 40x60, red block top-left; orientation 6 turns it clockwise.
    assert rotated[:16, 32:40, 0].mean() > 200 and rotated[:16, 32:40, 1].mean() < 60
    assert rotated[:16, :8, 0].mean() < 60


def test_no_valid_image_fails_with_one_line(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"")
    (src / "b.txt").write_text("x")
    with pytest.raises(builder.BuildError, match="no valid image found"):
        builder.build_tfrecords(builder.BuildConfig(source=f"dir:{src}", out_dir=str(tmp_path / "o"),
                                                    verbose=False))


def test_cli_errors_are_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("build_tfrecords", "--source=sample", f"--out_dir={blocker}/sub")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot write to --out_dir")
    assert "Traceback" not in proc.stderr
    proc = run_cli("build_tfrecords", f"--source=dir:{tmp_path}/missing")
    assert proc.returncode != 0 and "no such folder" in proc.stderr and "Traceback" not in proc.stderr


# --- Manifest, atomicity, reruns ----------------------------------------------------------------------------

def test_manifest_counts_and_sha256_match_the_shards(sample_data):
    with open(os.path.join(sample_data, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["config"]["scale"] == 4 and manifest["config"]["source"] == "sample"
    assert manifest["counts"] == {"train": len(sources.SAMPLE_PHOTOS) - len(sources.SAMPLE_VAL),
                                  "val": len(sources.SAMPLE_VAL)}
    assert manifest["skipped"] == []
    on_disk = sorted(f for f in os.listdir(sample_data) if f.endswith(".tfrecord"))
    assert on_disk == sorted(s["file"] for s in manifest["shards"])
    assert {s["file"] for s in manifest["shards"] if s["split"] == "train"} == {
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"}
    for split, n in manifest["counts"].items():
        assert sum(s["records"] for s in manifest["shards"] if s["split"] == split) == n
    for shard in manifest["shards"]:
        path = os.path.join(sample_data, shard["file"])
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == shard["sha256"]
        assert sum(1 for _ in tf.data.TFRecordDataset(path)) == shard["records"]
    typed = schema.read_manifest(sample_data)  # What every reader uses.
    assert typed.scale == 4 and typed.counts == manifest["counts"]
    assert [dataclasses.asdict(s) for s in typed.shards] == [
        {k: s.get(k) for k in ("file", "split", "records", "sha256", "bytes")} for s in manifest["shards"]]
    assert typed.shard_paths("val") == [os.path.join(sample_data, s["file"]) for s in manifest["shards"]
                                        if s["split"] == "val"]


def test_rerun_with_other_shard_count_overwrites_cleanly(tmp_path):
    out = str(tmp_path / "o")
    cfg = builder.BuildConfig(source="sample", out_dir=out, num_shards=3, max_images=4, verbose=False)
    builder.build_tfrecords(cfg)
    m = builder.build_tfrecords(builder.BuildConfig(**{**cfg.__dict__, "num_shards": 1}))
    assert sorted(f for f in os.listdir(out) if f.endswith(".tfrecord")) == sorted(s.file for s in m.shards)
    assert [s.file for s in m.split_shards("train")] == ["train-00000-of-00001.tfrecord"]


@pytest.mark.slow
def test_killed_rebuild_leaves_the_previous_dataset_intact_and_rerun_is_correct(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(60):
        write_photo(str(src / f"{i:03d}.png"), 384, 384, seed=i)
    out = tmp_path / "out"
    first = builder.build_tfrecords(builder.BuildConfig(source=f"dir:{src}", out_dir=str(out), val_fraction=0.0,
                                                        num_shards=3, max_images=10, verbose=False))
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    (out / "my_notes.txt").write_text("the user's own file")
    args = [sys.executable, "-m", "sr_keras.cli.build_tfrecords", f"--source=dir:{src}", f"--out_dir={out}",
            "--workers=1", "--val_fraction=0", "--num_shards=2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120

    def staged_bytes():
        return sum(os.path.getsize(os.path.join(d, f)) for d in glob.glob(str(tmp_path / ".sr_keras-tmp-*build-*"))
                   for f in os.listdir(d) if f.endswith(".tfrecord"))
    while time.time() < deadline and staged_bytes() < 400_000:  # Kill once the new shards hold some records.
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The previous build is untouched and still reads in full.
    assert {f: (out / f).read_bytes() for f in os.listdir(out) if f != "my_notes.txt"} == before
    n = sum(1 for _ in tf.data.TFRecordDataset(pipeline.shard_files(str(out), "train", verify=True)))
    assert n == first.counts["train"] == 10
    m = builder.build_tfrecords(builder.BuildConfig(source=f"dir:{src}", out_dir=str(out), val_fraction=0.0,
                                                    num_shards=2, verbose=False))
    assert m.counts["train"] == 60
    assert sorted(os.listdir(out)) == ["manifest.json", "my_notes.txt", "train-00000-of-00002.tfrecord",
                                       "train-00001-of-00002.tfrecord", "val-00000-of-00001.tfrecord"]
    assert (out / "my_notes.txt").read_text() == "the user's own file"
    assert not glob.glob(str(tmp_path / ".sr_keras-tmp-*"))  # The killed build's staging folder was cleaned up.
    keys = sorted(schema.parse_example(r)["key"].numpy().decode()
                  for r in tf.data.TFRecordDataset(pipeline.shard_files(str(out), "train")))
    assert keys == sorted(f"{i:03d}.png" for i in range(60))


@pytest.mark.parametrize("damage", ["truncate", "append", "delete", "flip"])
def test_reader_refuses_a_shard_that_does_not_match_the_manifest(sample_data, tmp_path, damage):
    out = tmp_path / "d"
    shutil.copytree(sample_data, out)
    shard = out / "train-00001-of-00002.tfrecord"
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[:len(data) // 2])
    elif damage == "append":
        shard.write_bytes(data + data[:len(data) // 3])
    elif damage == "delete":
        shard.unlink()
    else:  # Same size, same record count: only the hash can tell.
        shard.write_bytes(data[:-20] + bytes(b ^ 1 for b in data[-20:]))
        assert len(pipeline.shard_files(str(out), "train")) == 2
        with pytest.raises(pipeline.DataError, match="SHA-256"):
            pipeline.shard_files(str(out), "train", verify=True)
        proc = run_cli("build_tfrecords", "--verify", f"--out_dir={out}")
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and last.startswith("error: ") and "train-00001-of-00002.tfrecord" in last
        return
    with pytest.raises(pipeline.DataError, match="train-00001-of-00002.tfrecord.*rebuild"):
        pipeline.train_dataset(str(out), 96, 4)
    assert run_cli("build_tfrecords", "--verify", f"--out_dir={sample_data}").returncode == 0


def test_count_records_reads_headers_only(sample_data):
    for shard in json.load(open(os.path.join(sample_data, "manifest.json")))["shards"]:
        path = os.path.join(sample_data, shard["file"])
        assert schema.count_records(path) == shard["records"] == sum(1 for _ in tf.data.TFRecordDataset(path))


def test_builder_skips_an_image_over_the_pixel_limit_from_its_header(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        write_photo(str(src / f"ok{i}.png"), 128, 128, seed=i)
    Image.new("L", (12000, 9000)).save(src / "bomb.png", optimize=True)  # ~100 KB on disk, 108 MP.
    assert (src / "bomb.png").stat().st_size < 300_000
    m = builder.build_tfrecords(builder.BuildConfig(source=f"dir:{src}", out_dir=str(tmp_path / "o"),
                                                    val_fraction=0.0, verbose=False))
    assert m.counts["train"] == 3
    (skip,) = m.skipped
    assert skip["path"].endswith("bomb.png") and "108.0 MP is over the limit of 100 MP" in skip["reason"]


# --- Sources ------------------------------------------------------------------------------------------------

def test_hash_split_is_deterministic_and_near_fraction():
    keys = [f"img_{i:06d}.jpg" for i in range(4000)]
    a = [sources.hash_split(k, 0.1) for k in keys]
    assert a == [sources.hash_split(k, 0.1) for k in keys]
    assert 0.08 < a.count("val") / len(a) < 0.12


def test_combined_source_adds_folder_photos_to_sample_training_split(tmp_path):
    for i in range(3):
        write_photo(str(tmp_path / f"extra{i}.png"), h=128, w=128, seed=i)
    src = sources.resolve_source(f"sample,dir:{tmp_path}", [], val_fraction=0.0)
    sample = sources.sample_source()
    train = [item.key for item in src.items("train")]
    val = [item.key for item in src.items("val")]
    assert val == [f"sample/{n}" for n in sources.SAMPLE_VAL]
    assert train == [f"sample/{i.key}" for i in sample.items("train")] + [
        f"{tmp_path.name}/extra{i}.png" for i in range(3)]
    assert src.counts_hint == {"train": len(train), "val": len(val)}
    with pytest.raises(sources.SourceError, match="several joined by commas"):
        sources.resolve_source("sample,nope", [], 0.0)


def test_train_rescales_add_shrunk_copies_of_training_images_only(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    originals = {f"p{i}.png": write_photo(str(photos / f"p{i}.png"), h=256, w=200, seed=i) for i in range(6)}
    out = str(tmp_path / "out")
    manifest = builder.build_tfrecords(builder.BuildConfig(source=f"dir:{photos}", out_dir=out, val_fraction=0.5,
                                                           train_rescales=(0.75, 0.5), verbose=False))
    n_val = manifest.counts["val"]
    assert n_val >= 1 and manifest.counts["train"] == 3 * (6 - n_val)
    assert manifest.config["train_rescales"] == [0.75, 0.5]
    records = {}
    for shard in manifest.shards:
        for raw in tf.data.TFRecordDataset(os.path.join(out, shard.file)):
            ex = schema.parse_example(raw)
            records[(shard.split, ex["key"].numpy().decode())] = (ex["hr"].numpy(), ex["lr"].numpy())
    train_keys = sorted(k for s, k in records if s == "train")
    bases = sorted({k.split("@")[0] for k in train_keys})
    assert train_keys == sorted(b + sfx for b in bases for sfx in ("", "@0.75", "@0.5"))
    assert all("@" not in k for s, k in records if s == "val")
    for base in bases:
        hr = originals[os.path.basename(base)]
        full, _ = records[("train", base)]
        np.testing.assert_array_equal(full, hr)  # 256x200 is already a multiple of 4.
        half, half_lr = records[("train", base + "@0.5")]
        want = degradation.crop_to_multiple(degradation.rescale(hr, 0.5), 4)
        assert half.shape == (128, 100, 3)
        np.testing.assert_array_equal(half, want)
        np.testing.assert_array_equal(half_lr, degradation.bicubic_downscale(want, 4))
        assert records[("train", base + "@0.75")][0].shape == (192, 148, 3)  # 192x150 cropped to x4.
    with pytest.raises(builder.BuildError, match="between 0 and 1"):
        builder.build_tfrecords(builder.BuildConfig(source=f"dir:{photos}", out_dir=out, train_rescales=(1.5,),
                                                    verbose=False))
    proc = run_cli("build_tfrecords", f"--source=dir:{photos}", f"--out_dir={out}", "--train_rescales=half")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--train_rescales=half" in proc.stderr.strip().splitlines()[-1]


# --- Free photos (Debian packages) ----------------------------------------------------------------------------

def _fake_wallpaper_package(tmp_path, monkeypatch):
    """A real .deb built by dpkg-deb, served from a file:// mirror, standing in for the pinned packages."""
    from sr_keras.data import photos

    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: fake-wallpapers\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: t <t@example.com>\nDescription: test\n")
    pics = root / "usr" / "share" / "wallpapers"
    pics.mkdir(parents=True)
    originals = {name: write_photo(str(pics / f"{name}.jpg"), h=96, w=130, seed=i)
                 for i, name in enumerate(("a", "b"))}
    gray = write_photo(str(tmp_path / "gray.png"), h=40, w=56, seed=9)[..., 1]
    np.savez(pics / "c.npz", gray)  # A grayscale image stored as PyWavelets stores its samples.
    mirror = tmp_path / "mirror"
    (mirror / "pool").mkdir(parents=True)
    deb = mirror / "pool" / "fake.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    monkeypatch.setattr(photos, "DEBIAN_MIRROR", mirror.as_uri())
    monkeypatch.setattr(photos, "PACKAGES", {"fake-wallpapers": photos.Package(
        "pool/fake.deb", digest, deb.stat().st_size, "test")})
    monkeypatch.setattr(photos, "PHOTOS", tuple(
        photos.Photo(f"fake_{n}", "fake-wallpapers", f"./usr/share/wallpapers/{n}.jpg", "T. Tester", "CC0-1.0",
                     split=split) for n, split in zip(originals, ("train", "test"))) + (
        photos.Photo("fake_c", "fake-wallpapers", "./usr/share/wallpapers/c.npz", "T. Tester", "CC0-1.0", reduce=1,
                     split="test_libs"),))
    return photos, dict(originals, c=gray)


def test_fetch_photos_downloads_verifies_extracts_and_reduces(tmp_path, monkeypatch):
    photos, originals = _fake_wallpaper_package(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)  # A relative --out_dir, as `make default-model` passes.
    out = tmp_path / "free"
    paths = photos.fetch_photos("free", log=lambda msg: None)
    assert paths == ["free/images/fake_a.png", "free/test/fake_b.png", "free/test_libs/fake_c.png"]
    assert os.listdir(out / "debs") == ["fake.deb"]
    # Unreduced (reduce=1) and still one channel: the .npz array exactly.
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2])), originals["c"])
    for path, name in zip(paths[:2], ("a", "b")):
        got = load_rgb8(path)
        jpeg = load_rgb8(str(tmp_path / "pkgroot" / "usr" / "share" / "wallpapers" / f"{name}.jpg"))
        assert got.shape == (48, 65, 3)  # 96x130 reduced 2x.
        np.testing.assert_array_equal(got, degradation.bicubic_downscale(jpeg, 2))
    credits = (out / "CREDITS.md").read_text()
    assert "| fake_a | train | T. Tester | CC0-1.0 | fake-wallpapers |" in credits
    assert "| fake_b | test |" in credits and "| fake_c | test_libs |" in credits
    # A second fetch keeps what is there and downloads nothing (the mirror is gone).
    shutil.rmtree(tmp_path / "mirror")
    os.remove(out / "debs" / "fake.deb")
    assert photos.fetch_photos("free", log=lambda msg: None) == paths


def test_fetch_photos_refuses_a_package_whose_checksum_changed(tmp_path, monkeypatch):
    photos, _ = _fake_wallpaper_package(tmp_path, monkeypatch)
    pkg = photos.PACKAGES["fake-wallpapers"]
    monkeypatch.setitem(photos.PACKAGES, "fake-wallpapers", photos.Package(pkg.pool_path, "0" * 64, pkg.size, ""))
    with pytest.raises(photos.FetchError, match="is not the pinned"):
        photos.fetch_photos(str(tmp_path / "free"), log=lambda msg: None)
    assert not os.listdir(tmp_path / "free" / "images")
    assert not os.listdir(tmp_path / "free" / "debs")  # The bad download is not kept.


def test_fetch_photos_without_network_names_the_fix(tmp_path, monkeypatch):
    photos, _ = _fake_wallpaper_package(tmp_path, monkeypatch)
    monkeypatch.setattr(photos, "DEBIAN_MIRROR", (tmp_path / "nowhere").as_uri())
    with pytest.raises(photos.FetchError, match="apt-get download fake-wallpapers"):
        photos.fetch_photos(str(tmp_path / "free"), log=lambda msg: None)
    assert not os.listdir(tmp_path / "free" / "debs")  # No partial download left behind.


def test_tfds_celeb_a_under_mock_data(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(sources, "can_download", lambda host: True)  # mock_data stands in for the download.
    out = tmp_path / "celeba"
    with tfds.testing.mock_data(num_examples=6):
        m = builder.build_tfrecords(builder.BuildConfig(source="tfds:celeb_a", out_dir=str(out),
                                                        split=("train", "validation"), verbose=False))
    assert m.dataset == "celeb_a" and m.config["hr_size"] == 128
    assert m.counts == {"train": 6, "val": 6}
    ex = schema.parse_example(next(iter(tf.data.TFRecordDataset(pipeline.shard_files(str(out), "val")))))
    assert ex["hr"].shape == (128, 128, 3) and ex["lr"].shape == (32, 32, 3)
    assert ex["key"].numpy().decode().startswith("celeb_a/validation/")


def test_tfds_celeb_a_offline_fails_fast_with_the_fix(tmp_path):
    start = time.time()
    with pytest.raises(sources.SourceError) as e:
        sources.tfds_source("celeb_a", ["train"], str(tmp_path / "tfds"))
    assert "--tfds_data_dir" in str(e.value) and "img_align_celeba" in str(e.value)
    assert "\n" not in str(e.value)
    assert time.time() - start < 60  # Not tfds' minutes of download retries.


# --- The reader ---------------------------------------------------------------------------------------------

def test_training_crops_are_aligned(sample_data):
    ds = pipeline.train_dataset(sample_data, hr_crop=64, batch_size=8, seed=3)
    lr, hr = next(iter(ds))
    assert lr.shape == (8, 16, 16, 3) and hr.shape == (8, 64, 64, 3) and lr.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(hr)) and float(tf.reduce_max(hr)) <= 1.0
    for i in range(8):
        hr8 = np.round(hr[i].numpy() * 255).astype(np.uint8)
        lr8 = np.round(lr[i].numpy() * 255).astype(np.int32)
        down = degradation.bicubic_downscale(hr8, 4).astype(np.int32)
        # The bicubic kernel reaches 2 LR pixels past a crop edge, so only the interior must agree exactly.
        assert np.abs(down[2:-2, 2:-2] - lr8[2:-2, 2:-2]).max() <= 1
        shifted = np.abs(down[2:-2, 3:-1] - lr8[2:-2, 2:-2]).mean()
        assert shifted > 0.5 or hr8.std() < 3  # A one-pixel misalignment would be visible.


def test_reader_is_reproducible_and_validation_is_deterministic(sample_data):
    a = next(iter(pipeline.train_dataset(sample_data, 32, 4, seed=7)))[1].numpy()
    b = next(iter(pipeline.train_dataset(sample_data, 32, 4, seed=7)))[1].numpy()
    np.testing.assert_array_equal(a, b)
    val = list(pipeline.eval_dataset(sample_data, "val", 0, 1))
    assert len(val) == len(sources.SAMPLE_VAL)
    assert all(lr.shape[1] * 4 == hr.shape[1] and lr.shape[2] * 4 == hr.shape[2] for lr, hr in val)
    crops = list(pipeline.eval_dataset(sample_data, "val", 64, 2))
    assert [c[1].shape[0] for c in crops] == [2, 1]


def test_reader_rejects_wrong_scale_and_oversized_crops(sample_data):
    with pytest.raises(pipeline.DataError, match="built for x4"):
        pipeline.train_dataset(sample_data, 96, 4, scale=2)
    with pytest.raises(pipeline.DataError, match="not divisible"):
        pipeline.train_dataset(sample_data, 90, 4)
    with pytest.raises(pipeline.DataError, match="larger than every"):
        pipeline.train_dataset(sample_data, 4096, 4)


def test_reader_under_mirrored_strategy_splits_the_global_batch(sample_data):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.train_dataset(sample_data, 32, 6, input_context=ctx))
    lr, hr = next(iter(dist))
    per_replica = strategy.experimental_local_results(hr)
    assert [t.shape for t in per_replica] == [(3, 32, 32, 3), (3, 32, 32, 3)]


def test_input_pipelines_read_disjoint_shards(sample_data):
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        ds = pipeline.eval_dataset(sample_data, "train", 0, 2, input_context=ctx)
        seen.append(sorted((tuple(hr.shape), float(tf.reduce_sum(hr))) for _, hr in ds))
    n_train = len(sources.SAMPLE_PHOTOS) - len(sources.SAMPLE_VAL)
    assert len(seen[0]) + len(seen[1]) == n_train
    assert not set(seen[0]) & set(seen[1])


def test_the_distilled_recipe_trains_on_more_photos_and_the_shipped_recipes_on_what_their_cards_say():
    """krank's underwater photos (split train_real, public domain) reach only the distilled real-world recipe: the
    default model's and sr_keras_real_x4's recipes read images/ alone, and so do their cards' photo rows."""
    from sr_keras.data import photos
    from sr_keras.release import model_card, real_model

    extra = [p for p in photos.PHOTOS if p.split == "train_real"]
    assert len(extra) == 40 and {p.package for p in extra} == {"krank"}
    assert len({p.member for p in photos.PHOTOS}) == len(photos.PHOTOS)  # No photo twice.
    assert len({p.name for p in photos.PHOTOS}) == len(photos.PHOTOS)
    for recipe in (model_card.RECIPE, real_model.RECIPE):
        assert not any("train_real" in arg for step in recipe for arg in step)
    builds = [step for step in real_model.DISTILL_RECIPE if step[0] == "sr-build-tfrecords"]
    assert "dir:tfrecords/free_photos/train_real" in builds[0][1] and "--data=tfrecords/photos_x4_real" in builds[1]
    shipped = " ".join(r["photos"] for r in model_card.training_photos())
    distilled = model_card.training_photos(real_model.DISTILL_PHOTOS)
    assert "krank" not in shipped
    assert {"photos": ", ".join(f"{p.name} (Slava Anishenko)" for p in extra), "source": "Debian package krank",
            "license": "public domain"} in distilled
