"""Users' own .keras and ONNX files are input like any other: one line for what cannot be loaded, checked before
anything big is built, and outputs that are not an image at an integer scale refused when the model loads."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
from conftest import run_cli, tiny_generator

import sr_keras
from sr_keras.savedmodel import layout


@pytest.fixture(scope="module")
def good_keras(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("k") / "g.keras")
    tiny_generator().save(path)
    return path


def _rewrite(src, dst, config=None, drop=None, extra=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename == drop:
                continue
            data = zin.read(item.filename)
            if item.filename == "config.json" and config is not None:
                data = config(json.loads(data)) if callable(config) else config
                data = data if isinstance(data, bytes) else json.dumps(data).encode()
            zout.writestr(item.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)


def _with_layer(cfg, layer):
    cfg["config"]["layers"].insert(1, layer)
    return cfg


@pytest.mark.parametrize("case,why", [
    ("random bytes", "not a .keras file"),
    ("no weights", "no model.weights.h5"),
    ("no config", "no config.json"),
    ("a Lambda layer", "Lambda"),
    ("module os", "outside Keras"),
    ("a config bomb", "unpacks to"),
    ("filters=65536, 64x64 kernel", "declare at least"),
])
def test_a_hostile_keras_file_is_one_line_before_anything_is_built(good_keras, tmp_path, case, why):
    bad = str(tmp_path / "bad.keras")
    if case == "random bytes":
        open(bad, "wb").write(np.random.default_rng(0).bytes(5000))
    elif case == "no weights":
        _rewrite(good_keras, bad, drop="model.weights.h5")
    elif case == "no config":
        _rewrite(good_keras, bad, drop="config.json")
    elif case == "a Lambda layer":
        _rewrite(good_keras, bad, config=lambda c: _with_layer(c, {"class_name": "Lambda", "config": {}}))
    elif case == "module os":
        _rewrite(good_keras, bad, config=lambda c: _with_layer(c, {"module": "os", "class_name": "system"}))
    elif case == "a config bomb":
        _rewrite(good_keras, bad, config=b" " * (64 << 20) + b"{}")
    else:
        big = {"module": "keras.layers", "class_name": "Conv2D", "config": {"filters": 65536, "kernel_size": [64, 64]}}
        _rewrite(good_keras, bad, config=lambda c: _with_layer(c, big))
    assert os.path.getsize(bad) < 2 << 20  # Small files, each once worth gigabytes or a traceback.
    with pytest.raises(layout.SavedModelError, match=why) as e:
        sr_keras.load(bad)
    assert "\n" not in str(e.value)
    proc = run_cli("enhance", f"--model={bad}", "--input=/nonexistent.png", f"--output_dir={tmp_path}/o")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["nan", "half", "fixed"])
def test_a_model_whose_output_is_not_an_image_at_an_integer_scale_is_refused_when_it_loads(tmp_path, kind):
    lr = keras.Input((None, None, 3) if kind != "fixed" else (16, 16, 3))
    if kind == "nan":
        out = keras.layers.UpSampling2D(2)(keras.layers.Rescaling(np.inf, offset=0.0)(lr) * 0.0)
    elif kind == "half":
        out = keras.layers.AveragePooling2D(2)(lr)
    else:
        out = keras.layers.UpSampling2D(2)(lr)
    path = str(tmp_path / f"{kind}.keras")
    keras.Model(lr, out).save(path)
    with pytest.raises(layout.SavedModelError) as e:
        sr_keras.load(path)
    assert "\n" not in str(e.value) and ("not finite" in str(e.value) or "integer upscaling" in str(e.value)
                                         or "fails on" in str(e.value))


def _onnx_with_external_weights(folder, location: str, length: int) -> str:
    """A 2x nearest-upsampling ONNX model whose one weight tensor names external data (`location`, `length`)."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[length // 4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Resize", ["lr", "", "scales"], ["sr"], mode="nearest")], "g",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2]), weight])
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as f:
        f.write(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    assert os.path.getsize(path) < 1000
    return path


@pytest.mark.parametrize("case, says", [("3 GB of external data", "more than 1.1 GB"),
                                        ("data outside its folder", "outside the model's folder")])
def test_an_onnx_model_naming_huge_or_outside_external_data_is_one_line_unread(tmp_path, case, says):
    """A 389-byte ONNX file naming a 3 GB data file beside it once passed 6 GB of memory."""
    import subprocess
    import sys

    from conftest import REPO

    if case.startswith("3 GB"):
        with open(tmp_path / "w.bin", "wb") as f:
            f.truncate(3 << 30)  # Sparse: no disk used.
        path = _onnx_with_external_weights(str(tmp_path), "w.bin", 3 << 30)
    else:
        (tmp_path / "inner").mkdir()
        (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
        path = _onnx_with_external_weights(str(tmp_path / "inner"), "../secret.bin", 64)
    # The peak RSS of this process alone: VmHWM starts afresh at exec (getrusage's ru_maxrss would carry over the
    # pytest worker's, which can be gigabytes).
    code = ("import sys, sr_keras\n"
            "try:\n    sr_keras.load(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO))
    error, peak_kb = proc.stdout.strip().splitlines()
    assert error.startswith("SavedModelError") and says in error and path in error, proc.stdout + proc.stderr
    assert int(peak_kb) < 2 << 20, peak_kb  # Under 2 GB: nothing of the data was read.
