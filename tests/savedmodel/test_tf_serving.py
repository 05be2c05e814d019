"""TF Serving without Docker: the model config file sr-export writes (parsed with TF Serving's own protos), and
the ops of every kind of export: all standard TensorFlow ops, all present in TensorFlow 2.16 with the attributes
used (so TF Serving 2.16 and newer can load them; tests/fixtures/tf_2_16_ops.json, from benchmarks/old_tf_ops.py)."""

import json
import os

import pytest
from conftest import REPO, run_cli, tiny_generator
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
from tensorflow_serving.config import model_server_config_pb2

from sr_keras.savedmodel import layout, portable, writer
from sr_keras.zoo import cache as zoo_cache


def parse(path) -> dict:
    config = text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())
    return {c.name: c for c in config.model_config_list.config}


def test_model_config_file_lists_every_savedmodel_and_keeps_what_it_does_not_own(tmp_path):
    export = tmp_path / "export"
    g = tiny_generator()
    for name in ("a", "b"):
        writer.export(g, {"model": "tiny", "scale": 4}, str(export), name)
    portable.export(g, {"model": "tiny", "scale": 4}, str(export), "a_onnx", "onnx")
    (export / "empty").mkdir()
    cfg = tmp_path / "models.config"
    proc = run_cli("export", f"--export_dir={export}", f"--model_config_file={cfg}")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "a, b" in proc.stdout
    entries = parse(cfg)
    assert sorted(entries) == ["a", "b"]  # Not the ONNX folder, not the empty one.
    assert entries["a"].base_path == str(export / "a") and entries["a"].model_platform == "tensorflow"
    # By hand: a version policy on `a`, a model elsewhere, and an entry for a base path here that is then removed.
    text = cfg.read_text().replace('model_platform: "tensorflow"\n  }',
                                   'model_platform: "tensorflow"\n    model_version_policy { all {} }\n  }', 1)
    text = text.replace("model_config_list {", 'model_config_list {\n  config { name: "other" base_path: '
                        '"/srv/models/other" model_platform: "tensorflow" }\n  config { name: "gone" base_path: '
                        f'"{export / "gone"}" model_platform: "tensorflow" }}', 1)
    cfg.write_text(text)
    proc = run_cli("export", f"--export_dir={export}", f"--model_config_file={cfg}")
    assert proc.returncode == 0, proc.stderr
    entries = parse(cfg)
    assert sorted(entries) == ["a", "b", "other"]
    assert entries["a"].model_version_policy.HasField("all") and entries["other"].base_path == "/srv/models/other"
    # A file that is not a model config is refused and left as it was.
    cfg.write_text("just some notes {")
    proc = run_cli("export", f"--export_dir={export}", f"--model_config_file={cfg}")
    assert proc.returncode == 2 and "not a TF Serving model config" in proc.stderr
    assert cfg.read_text() == "just some notes {"


def test_a_new_export_updates_the_config_file(tmp_path):
    cfg = tmp_path / "models.config"
    proc = run_cli("export", "--model=span_x2", f"--export_dir={tmp_path / 'e'}", f"--model_config_file={cfg}")
    assert proc.returncode == 0, proc.stderr
    assert list(parse(cfg)) == ["span_x2"]


def op_types(version_dir: str) -> dict:
    """{op type: attribute names used} over the graph and every function of an export."""
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    ops = {}
    for mg in sm.meta_graphs:
        functions = {f.signature.name for f in mg.graph_def.library.function}
        nodes = list(mg.graph_def.node) + [n for f in mg.graph_def.library.function for n in f.node_def]
        for n in nodes:
            if n.op not in functions:
                ops.setdefault(n.op, set()).update(a for a in n.attr if not a.startswith("_"))
    return ops


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    return {"tiny": writer.export(tiny_generator(), {"model": "tiny", "scale": 4}, str(root), "tiny"),
            "span_x4": layout.resolve(zoo_cache.ensure("span_x4")),
            "sr_keras_x4": layout.resolve(layout.default_model_path()),
            "sr_keras_real_x4 (alpha signatures)": layout.resolve(layout.shipped_model_path("real_model"))}


def test_every_exported_op_is_standard_and_in_tensorflow_2_16(exports):
    with open(os.path.join(REPO, "tests", "fixtures", "tf_2_16_ops.json")) as f:
        old = json.load(f)
    assert old["tensorflow"] == "2.16.2" and len(old["ops"]) > 1000
    for name, path in exports.items():
        ops = op_types(path)
        assert {"Conv2D", "DecodeImage", "EncodePng"} <= set(ops), (name, sorted(ops))
        for op, attrs in ops.items():
            assert op_def_registry.get(op) is not None, f"{name}: {op} is not a registered TensorFlow op"
            assert op in old["ops"], f"{name}: {op} is not in TensorFlow 2.16"
            assert attrs <= set(old["ops"][op]), f"{name}: {op} uses {sorted(attrs - set(old['ops'][op]))}, " \
                                                 "attributes TensorFlow 2.16 does not have"


def test_a_model_config_file_that_is_a_fifo_or_huge_is_refused_unread(tmp_path):
    import os

    from sr_keras.savedmodel import serving_config

    fifo = str(tmp_path / "models.config")
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        serving_config.update(fifo, str(tmp_path))  # Before: blocked here for good.
    huge = tmp_path / "huge.config"
    with open(huge, "wb") as f:
        f.truncate(3 << 30)  # 3 GB, sparse.
    with pytest.raises(ValueError, match="kilobytes"):
        serving_config.update(str(huge), str(tmp_path))
    assert os.path.getsize(huge) == 3 << 30  # Left as it was.
