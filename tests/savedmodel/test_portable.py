"""ONNX and LiteRT: sr-export --format=onnx|litert, run by onnxruntime and ai-edge-litert, against the Keras model
on real photo crops; users' own files (NCHW included) through sr_keras.load and sr-enhance; clear errors."""

import json
import os
import sys

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from conftest import run_cli, tiny_generator, write_photo
from PIL import Image

import sr_keras
from sr_keras.release import export_sources
from sr_keras.savedmodel import layout, portable, portable_runtime

PHOTOS = ("astronaut", "immunohistochemistry")  # Not the export's own check photos (chelsea, coffee, rocket).


def photo_crops(side=64):
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        y, x = img.shape[0] // 3, img.shape[1] // 3
        yield name, img[y:y + side, x:x + side + 8].astype(np.float32)[None] / 255.0


def levels(a, b) -> int:
    return int(np.abs(np.round(np.asarray(a) * 255) - np.round(np.asarray(b) * 255)).max())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["span_x4", "span_x2", "sr_keras_x4", "sr_keras_real_x4"])
def test_onnx_and_litert_exports_equal_the_keras_model_on_photo_crops(name, tmp_path):
    generator, meta, psnr = export_sources.generator_and_meta(model=name)
    if psnr is not None:  # The shipped real-world model: its export holds its own default point of the knob.
        from sr_keras.models.interpolation import interpolated_generator

        generator = interpolated_generator(psnr, generator, meta["interpolation"]["default_alpha"])
    keras_model = portable.clipped(generator)
    whole = skimage.data.astronaut()[100:180, 150:250]
    reference = np.round(keras_model(tf.constant(whole[None] / 255.0, tf.float32)).numpy()[0] * 255)
    for fmt, file in (("onnx", "model.onnx"), ("litert", "model.tflite")):
        path, model_name, _, _ = export_sources.export(str(tmp_path), fmt=fmt, model=name)
        assert path == str(tmp_path / f"{name}_{fmt}" / "1") and model_name == f"{name}_{fmt}"
        assert sorted(os.listdir(path)) == ["assets.extra", file]
        meta_out = layout.read_metadata(path)
        assert meta_out["format"] == fmt and meta_out["scale"] == meta["scale"]
        assert meta_out["input"]["layout"] == "NHWC" and meta_out["input"]["range"] == [0, 1]
        assert meta_out["verification"]["max_uint8_diff"] <= 1 and meta_out["tiling"]["overlap"] >= 16
        assert meta_out["provenance"]["license"], meta_out["provenance"]
        run = portable_runtime.runner(path)
        for photo, x in photo_crops():
            out = run(x)
            assert out.shape == (1, 64 * meta["scale"], 72 * meta["scale"], 3)
            assert levels(out, keras_model(tf.constant(x), training=False)) <= 1, (fmt, photo)
        # Through the API, tiled (32 px tiles with the recorded context), against the Keras model run whole.
        loaded = sr_keras.load(path, tile=32)
        assert loaded.scale == meta["scale"] and loaded.metadata["format"] == fmt
        out = loaded.enhance(whole)
        assert out.shape == reference.shape and np.abs(out.astype(int) - reference).max() <= 1, fmt


@pytest.fixture(scope="module")
def nchw_onnx(tmp_path_factory):
    """A user's own ONNX file in PyTorch's layout (NCHW), converted here from a tiny Keras generator."""
    import tf2onnx

    g = tiny_generator(seed=3)

    @tf.function(input_signature=[tf.TensorSpec([None, 3, None, None], tf.float32, name="input")])
    def nchw(x):
        y = g(tf.transpose(x, [0, 2, 3, 1]), training=False)
        return tf.transpose(tf.clip_by_value(y, 0.0, 1.0), [0, 3, 1, 2])

    path = str(tmp_path_factory.mktemp("user") / "My_Model.onnx")
    tf2onnx.convert.from_function(nchw, input_signature=nchw.input_signature, opset=17, output_path=path)
    return g, path


def test_a_users_nchw_onnx_file_runs_through_load_and_sr_enhance(nchw_onnx, tmp_path):
    g, path = nchw_onnx
    m = sr_keras.load(path, tile=24)
    assert (m.scale, m.metadata["layout"], m.metadata["model"]) == (4, "NCHW", "My_Model")
    assert "My_Model" in repr(m) and m.receptive_field > 0
    src = write_photo(str(tmp_path / "in.png"), 50, 70)
    want = np.clip(g(tf.constant(src[None].astype(np.float32) / 255.0), training=False).numpy()[0], 0, 1)
    out = m.enhance(src)
    assert out.shape == (200, 280, 3) and levels(out / 255.0, want) <= 1
    proc = run_cli("enhance", f"--model={path}", f"--input={tmp_path / 'in.png'}", f"--output_dir={tmp_path / 'o'}",
                   "--tile=24")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "in_x4.png")), out)


def test_bad_portable_files_and_options_get_one_line_errors(nchw_onnx, tmp_path, monkeypatch):
    write_photo(str(tmp_path / "in.png"))
    for name in ("junk.onnx", "junk.tflite"):
        (tmp_path / name).write_bytes(b"\x08\x01 not a model at all" * 10)
        proc = run_cli("enhance", f"--model={tmp_path / name}", f"--input={tmp_path / 'in.png'}",
                       f"--output_dir={tmp_path}/o")
        assert proc.returncode == 2 and "cannot load it" in proc.stderr and "Traceback" not in proc.stderr, \
            proc.stderr
    with pytest.raises(layout.SavedModelError, match="runs as converted"):
        sr_keras.load(nchw_onnx[1], precision="bfloat16")
    with pytest.raises(layout.ModelNotFoundError, match="no such .onnx file"):
        sr_keras.load(str(tmp_path / "missing.onnx"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # As if the extra were not installed.
    with pytest.raises(layout.SavedModelError, match=r"pip install 'sr_keras\[onnx\]'"):
        sr_keras.load(nchw_onnx[1])


def test_one_format_per_base_path_and_a_failed_check_publishes_nothing(tmp_path, monkeypatch):
    g = tiny_generator()
    meta = {"model": "tiny", "scale": 4}
    from sr_keras.savedmodel import writer

    writer.export(g, meta, str(tmp_path), "tiny")
    with pytest.raises(layout.ExportError, match="holds savedmodel versions.*tiny_onnx"):
        portable.export(g, meta, str(tmp_path), "tiny", "onnx")
    monkeypatch.setattr(portable, "MAX_LEVEL_DIFF", -1)  # Any output now fails the check.
    with pytest.raises(layout.ExportError, match="nothing was published"):
        portable.export(g, meta, str(tmp_path), "tiny_litert", "litert")
    assert os.listdir(tmp_path / "tiny_litert") == []  # No version folder, no staging left behind.


def test_sr_export_cli_writes_a_verified_onnx_version(tmp_path):
    proc = run_cli("export", "--model=span_x2", "--format=onnx", f"--export_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert "exported span_x2_onnx version 1 (x2)" in proc.stdout and "verified against the Keras model" in proc.stdout
    meta = json.loads((tmp_path / "span_x2_onnx" / "1" / "assets.extra" / "model.json").read_text())
    assert meta["verification"]["runtime"].startswith("onnxruntime") and meta["file"] == "model.onnx"


def test_a_runs_onnx_export_holds_one_point_of_its_knob(tiny_run, tmp_path):
    from sr_keras.models.interpolation import interpolated_generator
    from sr_keras.train import run_dir

    path, name, meta, _ = export_sources.export(str(tmp_path), fmt="onnx", workdir=tiny_run, default_alpha=0.25)
    assert name == "srgan_onnx" and layout.read_metadata(path)["interpolation"]["alpha"] == 0.25
    gan, _ = run_dir.generator_from_workdir(tiny_run)
    want = portable.clipped(interpolated_generator(run_dir.psnr_generator_from_workdir(tiny_run), gan, 0.25))
    run = portable_runtime.runner(path)
    for _, x in photo_crops(32):
        assert levels(run(x), want(tf.constant(x), training=False)) <= 1
