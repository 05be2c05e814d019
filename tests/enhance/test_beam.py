"""Apache Beam: sr-enhance --beam_pipeline_options writes what plain sr-enhance writes (DirectRunner, 2 workers),
counts and reports failures without stopping, skips on a rerun, and reaches other filesystems through tf.io.gfile
(TensorFlow's ram:// here, as gs:// would be)."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli, write_photo
from PIL import Image

import sr_keras
from sr_keras.enhance import beam as beam_enhance

BEAM = "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_threading"


@pytest.fixture
def inputs(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_photo(str(root / "a.png"), 30, 40, seed=1)
    write_photo(str(root / "sub" / "a.png"), 24, 20, seed=2)
    write_photo(str(root / "sub" / "b.jpg"), 28, 36, seed=3)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def pixels(root):
    return {os.path.relpath(os.path.join(d, f), root): np.asarray(Image.open(os.path.join(d, f)))
            for d, _, files in os.walk(root) for f in files if not f.endswith(".jsonl")}


def test_beam_job_writes_the_same_files_as_sr_enhance_and_goes_on_after_a_failure(exported, inputs, tmp_path):
    _, _, model = exported
    plain = run_cli("enhance", f"--model={model}", f"--input={inputs}", f"--output_dir={tmp_path / 'plain'}")
    assert plain.returncode == 1  # The broken file.
    proc = run_cli("enhance", f"--model={model}", f"--input={inputs}", f"--output_dir={tmp_path / 'beam'}", BEAM)
    assert proc.returncode == 1, proc.stderr
    assert "3 written, 0 skipped, 1 failed of 4 inputs" in proc.stdout
    assert "failed" in proc.stderr and "broken.png" in proc.stderr
    want, got = pixels(tmp_path / "plain"), pixels(tmp_path / "beam")
    assert sorted(want) == sorted(got) == ["a_x4.png", "sub/a_x4.png", "sub/b_x4.jpg"]
    assert all(np.array_equal(want[k], got[k]) for k in want)
    report = [json.loads(line) for line in open(tmp_path / "beam" / beam_enhance.REPORT)]
    assert sorted(r["status"] for r in report) == ["failed", "written", "written", "written"]
    # A rerun skips what exists, and never takes its own outputs (or the report) as inputs.
    proc = run_cli("enhance", f"--model={model}", f"--input={tmp_path / 'beam'}", f"--output_dir={tmp_path / 'beam'}",
                   BEAM)
    assert "0 written, 3 skipped, 0 failed of 3 inputs" in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli("enhance", f"--model={model}", f"--input={inputs}", f"--output_dir={tmp_path / 'beam'}", BEAM)
    assert "0 written, 3 skipped, 1 failed" in proc.stdout


def test_inputs_and_outputs_on_another_filesystem(exported, inputs, tmp_path):
    _, _, model = exported
    for name in ("a.png", "sub/b.jpg"):
        tf.io.gfile.makedirs(os.path.dirname(f"ram://srk/in/{name}"))
        tf.io.gfile.copy(str(inputs / name), f"ram://srk/in/{name}", overwrite=True)
    paths = beam_enhance.list_inputs("ram://srk/in")
    assert paths == ["ram://srk/in/a.png", "ram://srk/in/sub/b.jpg"]
    enhancer = sr_keras.load(model)
    result = beam_enhance.run(paths, "ram://srk/out", beam_enhance.pipeline_options("runner=DirectRunner"), model,
                              {}, enhancer.scale)
    assert (result["written"], result["failed"]) == (2, 0), result["failures"]
    for name, local in (("a_x4.png", "a.png"), ("sub/b_x4.jpg", "sub/b.jpg")):
        with tf.io.gfile.GFile(f"ram://srk/out/{name}", "rb") as f:
            remote = f.read()
        run_cli("enhance", f"--model={model}", f"--input={inputs / local}", f"--output_dir={tmp_path / 'p'}")
        assert np.array_equal(np.asarray(Image.open(tmp_path / "p" / os.path.basename(name))),
                              np.asarray(Image.open(__import__("io").BytesIO(remote)))), name
    assert not [p for p in tf.io.gfile.listdir("ram://srk/out") if "tmp" in p]  # Temporaries renamed away.


def test_bad_beam_options_and_a_missing_beam_fail_in_one_line(exported, inputs, tmp_path, monkeypatch):
    _, _, model = exported
    proc = run_cli("enhance", f"--model={model}", f"--input={inputs}", f"--output_dir={tmp_path}/o",
                   "--beam_pipeline_options=DirectRunner")
    assert proc.returncode == 2 and "key=value" in proc.stderr
    monkeypatch.delitem(sys.modules, "sr_keras.enhance.beam")  # Imported again, as if apache-beam were not there.
    monkeypatch.delattr(sr_keras.enhance, "beam")
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    proc = run_cli("enhance", f"--model={model}", f"--input={inputs}", f"--output_dir={tmp_path}/o", BEAM)
    assert proc.returncode == 2 and "pip install 'sr_keras[beam]'" in proc.stderr


def test_dataset_built_on_beam_has_the_local_builds_shards_byte_for_byte(tmp_path, monkeypatch):
    from sr_keras.data import beam_build, builder

    photos = tmp_path / "photos"
    (photos / "deeper").mkdir(parents=True)
    for i in range(7):
        write_photo(str(photos / ("deeper" if i % 2 else ".") / f"p{i}.png"), 130 + 8 * i, 150, seed=i)
    (photos / "torn.jpg").write_bytes(b"\xff\xd8\xff\xe0 torn")
    write_photo(str(photos / "small.png"), 40, 40)
    cfg = builder.BuildConfig(source=f"dir:{photos}", val_fraction=0.2, num_shards=3, train_rescales=(0.75,),
                              verbose=False, out_dir=str(tmp_path / "local"))
    local = builder.build_tfrecords(cfg)
    options = beam_enhance.pipeline_options("runner=DirectRunner,direct_num_workers=2,"
                                            "direct_running_mode=multi_threading")
    beam = builder.build_tfrecords(builder.BuildConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "beam")}),
                                   beam_options=options)
    assert local.counts == beam.counts and local.counts["train"] >= 6, local.counts
    assert [s.__dict__ for s in local.shards] == [s.__dict__ for s in beam.shards]  # Names, counts, SHA-256.
    assert local.skipped == beam.skipped and len(local.skipped) >= 2  # The torn JPEG, the small photo.
    # A job that fails part-way leaves the dataset that was there, and no staging folder.
    before = sorted(os.listdir(tmp_path / "beam"))

    def broken(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(beam_build, "write_shard", broken)
    with pytest.raises(Exception, match="No space left"):
        builder.build_tfrecords(builder.BuildConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "beam")}),
                                beam_options=options)
    assert sorted(os.listdir(tmp_path / "beam")) == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
