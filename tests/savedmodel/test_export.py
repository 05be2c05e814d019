"""sr-export: the SavedModel signatures, versions, atomic writing, and rebuilding Keras from an export."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_cli
from conftest import export_with_architecture as _export_with_architecture
from conftest import tiny_generator as _tiny_generator

from sr_keras.image import tiling
from sr_keras.models import precision, srgan
from sr_keras.savedmodel import layout, reader, writer
from sr_keras.train import run_dir
from sr_keras.utils import safe_files

# --- Export ---------------------------------------------------------------------------------------------------

def test_signatures_names_dtypes_and_dynamic_shapes(exported):
    _, root, path = exported
    assert path == os.path.join(root, "tiny", "1")
    loaded = tf.saved_model.load(path)
    sigs = loaded.signatures
    assert set(sigs) == {"serving_default", "enhance", "enhance_float"}
    spec = lambda fn: dict(fn.structured_input_signature[1])  # noqa: E731
    assert {k: (v.dtype, v.shape.as_list()) for k, v in spec(sigs["serving_default"]).items()} == {
        "image_bytes": (tf.string, [None])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in sigs["serving_default"].structured_outputs.items()} == {
        "sr_png_bytes": (tf.string, [None])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in spec(sigs["enhance"]).items()} == {
        "lr_image": (tf.uint8, [None, None, None, 3])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in sigs["enhance"].structured_outputs.items()} == {
        "sr_image": (tf.uint8, [None, None, None, 3])}
    for fn in sigs.values():
        assert all(v.dtype != tf.float16 for v in fn.structured_outputs.values())
    meta = json.load(open(os.path.join(path, "assets.extra", "model.json")))
    assert meta["scale"] == 4 and meta["version"] == 1 and "serving_default" in meta["signatures"]


def test_saved_model_equals_keras_within_one_level(exported):
    g, _, path = exported
    lr = np.random.default_rng(3).integers(0, 256, (2, 13, 17, 3), dtype=np.uint8)
    out = tf.saved_model.load(path).signatures["enhance"](lr_image=tf.constant(lr))["sr_image"].numpy()
    ref = np.clip(np.round(g(lr.astype("float32") / 255.0, training=False).numpy() * 255), 0, 255)
    assert out.shape == (2, 52, 68, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert out.std() > 5  # Not a constant image.


def test_keras_generator_is_rebuilt_from_the_saved_model_alone(tmp_path):
    g, path = _export_with_architecture(tmp_path)
    rng = np.random.default_rng(6)
    rebuilt, got_meta = reader.generator_from_saved_model(path)
    assert got_meta["architecture"]["upsampler"] == "espcn"
    x = rng.random((1, 7, 9, 3)).astype("float32")
    np.testing.assert_array_equal(rebuilt(x, training=False).numpy(), g(x, training=False).numpy())
    # A recorded architecture that does not fit the weights is refused, not half-loaded.
    meta_path = os.path.join(path, "assets.extra", "model.json")
    wrong = json.load(open(meta_path))
    wrong["architecture"]["num_blocks"] = 3
    json.dump(wrong, open(meta_path, "w"))
    with pytest.raises(layout.SavedModelError, match="do not fit"):
        reader.generator_from_saved_model(path)


def test_mixed_precision_generator_exports_as_float32(tmp_path):
    g = _tiny_generator()
    mixed = precision.with_policy(g, "mixed_bfloat16")
    assert mixed.get_layer("stem_conv").compute_dtype == "bfloat16"
    f32 = precision.float32_copy(mixed)
    assert all(lyr.dtype_policy.name == "float32" for lyr in f32.layers)
    x = np.random.default_rng(0).random((1, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(f32(x, training=False), g(x, training=False), atol=1e-6)
    path = writer.export(mixed, {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    out = tf.saved_model.load(path).signatures["enhance_float"](lr_image=x)["sr_image"]
    np.testing.assert_allclose(out, np.clip(g(x, training=False), 0, 1), atol=1e-6)


def test_an_export_keeps_its_sources_exactness_record_only_for_the_same_weights(tmp_path, monkeypatch):
    g = _tiny_generator()
    first = layout.read_metadata(writer.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "a"))
    record = first["exactness"]
    assert record["weights_sha256"] == precision.weights_digest(g)
    calls = []
    monkeypatch.setattr(writer, "exactness_check", lambda *a, **k: calls.append("check") or precision.exactness_check(*a, **k))
    measure = tiling.measure_receptive_field
    monkeypatch.setattr(tiling, "measure_receptive_field", lambda *a, **k: calls.append("field") or measure(*a, **k))
    again = layout.read_metadata(writer.export(g, first, str(tmp_path), "b", tile=48))  # The same weights: kept.
    assert calls == [] and again["exactness"] == record
    assert again["tiling"] == {**first["tiling"], "tile": 48}
    kernel = g.get_layer("stem_conv").kernel
    kernel.assign(kernel.numpy() * 1.01)
    changed = layout.read_metadata(writer.export(g, first, str(tmp_path), "c"))  # Other weights: measured.
    assert calls == ["field", "check"] and changed["exactness"]["weights_sha256"] != record["weights_sha256"]


def test_a_bfloat16_export_computes_in_bfloat16_close_to_float32_and_says_so(tmp_path):
    """sr-export --precision=bfloat16 of a zoo model: its graph's body runs in bfloat16 (the outputs differ from
    float32's), within the bound of sr_keras.load(precision="bfloat16") on a real photo crop, and the metadata,
    the Enhancer and the export line say which precision it is."""
    import sr_keras
    from sr_keras.evaluate import metrics, protocol

    for p in ("float32", "bfloat16"):
        proc = run_cli("export", "--model=span_x2_ch48", f"--export_dir={tmp_path}", f"--model_name={p}",
                       f"--precision={p}")
        assert proc.returncode == 0, proc.stderr
    assert "(x2, bfloat16) to" in proc.stdout
    assert layout.read_metadata(str(tmp_path / "bfloat16" / "1"))["precision"] == "bfloat16"
    assert layout.read_metadata(str(tmp_path / "float32" / "1"))["precision"] == "float32"
    f32, b16 = (sr_keras.load(str(tmp_path / p)) for p in ("float32", "bfloat16"))
    assert (f32.precision, b16.precision) == ("float32", "bfloat16") and "precision=bfloat16" in repr(b16)
    images, _ = protocol.load_images("sample", 2)
    lr = images[1].lr[:96, :96]  # coffee.png: edges and texture.
    a, b = f32.enhance(lr), b16.enhance(lr)
    assert np.abs(a.astype(int) - b).max() > 0  # It really ran in bfloat16.
    hr = images[1].hr[:192, :192]
    assert abs(metrics.score(hr, a, 2)["psnr_y"] - metrics.score(hr, b, 2)["psnr_y"]) < 0.02
    # The graph as served: the same bfloat16 answer through the exported signature TF Serving runs.
    sig = tf.saved_model.load(str(tmp_path / "bfloat16" / "1")).signatures["enhance"]
    served = sig(lr_image=tf.constant(lr[None]))["sr_image"].numpy()[0].astype(int)
    assert np.abs(served - b).max() <= 1 and np.abs(served - a).max() > 0  # As for float32 exports: one level.
    bad = run_cli("export", "--model=span_x2_ch48", f"--export_dir={tmp_path}", "--format=onnx",
                  "--precision=bfloat16")
    assert bad.returncode == 2 and "is for SavedModels" in bad.stderr


def test_versions_increment_and_existing_version_is_refused(exported, tmp_path):
    g = _tiny_generator()
    first = writer.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    second = writer.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    assert first.endswith("/1") and second.endswith("/2")
    with pytest.raises(layout.ExportError, match="already exists"):
        writer.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "m", version=2)


def test_failed_export_leaves_no_numbered_folder(tmp_path, monkeypatch):
    def broken_save(obj, path, signatures=None):
        os.makedirs(os.path.join(path, "variables"))
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        writer.export(_tiny_generator(), {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    assert os.listdir(tmp_path / "m") == []


@pytest.mark.slow
def test_killed_export_leaves_no_numbered_folder(tmp_path):
    g = srgan.build_srgan_generator()  # Full size: the save takes long enough to be interrupted.
    keras_path = str(tmp_path / "g.keras")
    g.save(keras_path)
    out = tmp_path / "export"
    args = [sys.executable, "-m", "sr_keras.cli.export", f"--keras_model={keras_path}", f"--export_dir={out}",
            "--model_name=big"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "big").exists() and any(d.startswith(safe_files.TEMP_PREFIX) for d in os.listdir(out / "big")):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the export finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not [d for d in os.listdir(out / "big") if d.isdigit()]
    assert layout.latest_version_dir(str(out / "big")) is None
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out / "big")) == ["1"]  # The rerun cleaned the leftover temporary folder.


def test_export_from_a_training_workdir(tiny_run, tmp_path):
    generator, meta = run_dir.generator_from_workdir(tiny_run)
    assert meta["model"] == "srgan" and meta["scale"] == 4 and meta["steps"] == 3
    assert "psnr_y" in meta["validation"] and meta["training_data"]["dataset"] == "sample"
    proc = run_cli("export", f"--workdir={tiny_run}", f"--export_dir={tmp_path}", "--model_name=fromrun")
    assert proc.returncode == 0, proc.stderr
    loaded = tf.saved_model.load(str(tmp_path / "fromrun" / "1"))
    lr = np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded.signatures["enhance_float"](lr_image=lr)["sr_image"],
                               np.clip(generator(lr, training=False), 0, 1), atol=1e-5)
    proc = run_cli("export", f"--workdir={tmp_path}/nothing")
    assert proc.returncode != 0 and "not a training run" in proc.stderr and "Traceback" not in proc.stderr
