"""Export, the Python API, sr-enhance, the REST server and its client."""

import base64
import concurrent.futures
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import sr_keras
from conftest import REPO, run_cli, write_photo
from sr_keras import config, export_lib, inference, models, safe_files
from sr_keras.serving import client
from sr_keras.serving import registry as registry_lib
from sr_keras.serving.server import BackgroundServer


def _tiny_generator(seed=0, kind="srgan"):
    keras.utils.set_random_seed(seed)
    g = models.build_generator(config.ModelConfig(kind=kind, filters=8, num_blocks=2, upsample_filters=32,
                                                  bicubic_skip=True))
    rng = np.random.default_rng(seed)
    # Non-trivial weights, so outputs depend on the input and differ between versions.
    g.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in g.get_weights()])
    return g


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    g = _tiny_generator()
    path = export_lib.export(g, {"model": "srgan", "scale": 4}, str(root), "tiny")
    return g, str(root), path


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


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


def _export_with_architecture(tmp_path):
    """A tiny espcn generator exported as sr-export does from a run: with its architecture recorded."""
    arch = config.ModelConfig(filters=8, num_blocks=2, bicubic_skip=True, batch_norm=False, upsampler="espcn")
    g = models.build_generator(arch)
    rng = np.random.default_rng(5)
    g.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in g.get_weights()])
    meta = {"model": "srgan", "scale": 4, "architecture": config.to_dict(config.TrainConfig(model=arch))["model"]}
    return g, export_lib.export(g, meta, str(tmp_path), "m")


def test_keras_generator_is_rebuilt_from_the_saved_model_alone(tmp_path):
    g, path = _export_with_architecture(tmp_path)
    rng = np.random.default_rng(6)
    rebuilt, got_meta = export_lib.generator_from_saved_model(path)
    assert got_meta["architecture"]["upsampler"] == "espcn"
    x = rng.random((1, 7, 9, 3)).astype("float32")
    np.testing.assert_array_equal(rebuilt(x, training=False).numpy(), g(x, training=False).numpy())
    # A recorded architecture that does not fit the weights is refused, not half-loaded.
    meta_path = os.path.join(path, "assets.extra", "model.json")
    wrong = json.load(open(meta_path))
    wrong["architecture"]["num_blocks"] = 3
    json.dump(wrong, open(meta_path, "w"))
    with pytest.raises(export_lib.ExportError, match="do not fit"):
        export_lib.generator_from_saved_model(path)


def test_mixed_precision_generator_exports_as_float32(tmp_path):
    g = _tiny_generator()
    mixed = export_lib.with_policy(g, "mixed_bfloat16")
    assert mixed.get_layer("stem_conv").compute_dtype == "bfloat16"
    f32 = export_lib.float32_copy(mixed)
    assert all(lyr.dtype_policy.name == "float32" for lyr in f32.layers)
    x = np.random.default_rng(0).random((1, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(f32(x, training=False), g(x, training=False), atol=1e-6)
    path = export_lib.export(mixed, {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    out = tf.saved_model.load(path).signatures["enhance_float"](lr_image=x)["sr_image"]
    np.testing.assert_allclose(out, np.clip(g(x, training=False), 0, 1), atol=1e-6)


def test_versions_increment_and_existing_version_is_refused(exported, tmp_path):
    g = _tiny_generator()
    first = export_lib.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    second = export_lib.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    assert first.endswith("/1") and second.endswith("/2")
    with pytest.raises(export_lib.ExportError, match="already exists"):
        export_lib.export(g, {"model": "srgan", "scale": 4}, str(tmp_path), "m", version=2)


def test_failed_export_leaves_no_numbered_folder(tmp_path, monkeypatch):
    def broken_save(obj, path, signatures=None):
        os.makedirs(os.path.join(path, "variables"))
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_lib.export(_tiny_generator(), {"model": "srgan", "scale": 4}, str(tmp_path), "m")
    assert os.listdir(tmp_path / "m") == []


@pytest.mark.slow
def test_killed_export_leaves_no_numbered_folder(tmp_path):
    g = models.build_srgan_generator()  # Full size: the save takes long enough to be interrupted.
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
    assert export_lib.latest_version_dir(str(out / "big")) is None
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out / "big")) == ["1"]  # The rerun cleaned the leftover temporary folder.


def test_export_from_a_training_workdir(tiny_run, tmp_path):
    generator, meta = export_lib.generator_from_workdir(tiny_run)
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


# --- Python API -------------------------------------------------------------------------------------------------

def test_load_accepts_model_folder_version_folder_and_keras_file(exported, tmp_path):
    g, root, path = exported
    assert sr_keras.load(os.path.join(root, "tiny")).path == path
    assert sr_keras.load(path).scale == 4
    kpath = str(tmp_path / "g.keras")
    g.save(kpath)
    m = sr_keras.load(kpath)
    x = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    a, b = m.enhance(x), sr_keras.load(path).enhance(x)
    assert a.shape == (36, 28, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with pytest.raises(inference.ModelNotFoundError, match="holds no SavedModel"):
        sr_keras.load(str(tmp_path))


def test_reduced_precision_inference_runs_in_that_dtype_and_stays_close(tmp_path, exported):
    _, path = _export_with_architecture(tmp_path)
    lr = np.random.default_rng(7).integers(0, 256, (21, 19, 3), dtype=np.uint8)
    f32 = sr_keras.load(path).enhance(lr)
    fast = sr_keras.load(path, precision="bfloat16")
    assert fast._keras.get_layer("stem_conv").compute_dtype == "bfloat16"
    out = fast.enhance(lr)
    assert out.shape == f32.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - f32.astype(int)).max() <= 3
    with pytest.raises(ValueError, match="precision"):
        sr_keras.load(path, precision="int8")
    with pytest.raises(export_lib.ExportError, match="no architecture"):
        sr_keras.load(exported[2], precision="bfloat16")  # Exported from a bare Keras model.


def test_self_ensemble_is_the_mean_of_the_eight_undone_transforms(exported):
    _, _, path = exported
    plain, ens = sr_keras.load(path, tile=0), sr_keras.load(path, tile=0, self_ensemble=True)
    x = np.random.default_rng(8).random((9, 13, 3)).astype("float32")
    want = np.mean([np.rot90(plain.enhance(np.rot90(x, k)[:, ::-1] if f else np.rot90(x, k))[:, ::-1] if f
                             else plain.enhance(np.rot90(x, k)), -k) for k in range(4) for f in (False, True)], 0)
    got = ens.enhance(x)
    assert got.shape == (36, 52, 3)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # The ensemble commutes with every flip and rotation of the input; the plain model does not.
    np.testing.assert_allclose(ens.enhance(x[::-1]), got[::-1], atol=1e-5)
    np.testing.assert_allclose(ens.enhance(np.rot90(x)), np.rot90(got), atol=1e-5)
    assert np.abs(plain.enhance(x[::-1]) - plain.enhance(x)[::-1]).max() > 1e-3
    # Tiled, it still matches the untiled ensemble.
    np.testing.assert_allclose(sr_keras.load(path, tile=8, self_ensemble=True).enhance(x), got, atol=1 / 255)


def test_load_without_argument_gives_a_clear_answer():
    default = inference._default_model_path()
    if os.path.exists(default):
        assert sr_keras.load().scale == 4
    else:
        with pytest.raises(inference.ModelNotFoundError, match="no default model"):
            sr_keras.load()


@pytest.mark.parametrize("shape,dtype", [((9, 11), np.uint8), ((9, 11, 1), np.uint8), ((9, 11, 3), np.uint8),
                                         ((9, 11, 4), np.uint8), ((9, 11, 3), np.uint16), ((9, 11), np.uint16),
                                         ((1, 1, 3), np.uint8), ((9, 11, 3), np.float32), ((7, 5, 2), np.uint8)])
def test_enhance_returns_the_same_kind(exported, shape, dtype):
    m = sr_keras.load(exported[2])
    rng = np.random.default_rng(0)
    top = {np.uint8: 255, np.uint16: 65535}.get(dtype)
    x = (rng.integers(0, top + 1, shape) if top else rng.random(shape)).astype(dtype)
    y = m.enhance(x)
    assert y.dtype == x.dtype and y.shape == (shape[0] * 4, shape[1] * 4) + tuple(shape[2:])
    if len(shape) == 3 and shape[2] in (2, 4):  # Alpha is bicubic-upscaled, not run through the model.
        size = (shape[0] * 4, shape[1] * 4)
        alpha = tf.image.resize(x[..., -1:].astype("float32"), size, "bicubic").numpy()
        np.testing.assert_allclose(y[..., -1:], np.clip(np.round(alpha), 0, 255), atol=1)


def test_sixteen_bit_keeps_precision_beyond_eight_bits(exported):
    m = sr_keras.load(exported[2])
    x = np.full((8, 8, 3), 30000, np.uint16)
    y = m.enhance(x)
    assert len(np.unique(y % 257)) > 1  # Not merely an 8-bit result scaled by 257.


def test_pil_input_respects_exif_and_keeps_icc(exported, tmp_path):
    m = sr_keras.load(exported[2])
    arr = np.zeros((10, 16, 3), np.uint8)
    arr[:3, :5] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    icc = b"\0" * 128  # Opaque to us: kept byte for byte.
    img.save(path, exif=exif.tobytes(), icc_profile=icc, quality=95)
    out = m.enhance(Image.open(path))
    assert isinstance(out, Image.Image) and out.size == (40, 64)  # Upright: 10 wide x 16 tall, x4.
    assert out.info.get("icc_profile") == icc


def test_tiled_output_equals_untiled_within_one_level(exported):
    m = sr_keras.load(exported[2])
    x = np.asarray(Image.open(os.path.join(os.path.dirname(__import__("skimage").__file__), "data",
                                           "astronaut.png")))[100:190, 150:267]
    whole = m.enhance(x, tile=0)
    rf = m.receptive_field
    assert 9 <= rf <= 14  # tiny SRGAN: 9x9 stem, 5 3x3 convs at LR, then HR convs worth about 2 LR pixels.
    for tile, overlap in [(32, None), (40, rf), (64, 32), (20, 2 * rf)]:
        tiled = m.enhance(x, tile=tile, tile_overlap=overlap)
        assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1, (tile, overlap)
    seams = m.enhance(x, tile=32, tile_overlap=2)  # Far below the receptive field: seams, as the test would see.
    assert np.abs(seams.astype(int) - whole.astype(int)).max() > 1


@pytest.mark.parametrize("h,w,tile,overlap", [(90, 117, 32, 12), (90, 117, 0, 12), (64, 64, 64, 8), (70, 33, 32, 2)])
def test_tile_count_is_the_number_of_model_calls(h, w, tile, overlap):
    from sr_keras import tiling

    calls, ticks = [], []
    tiling.tiled_apply(lambda x: calls.append(x.shape) or np.zeros((x.shape[0] * 2, x.shape[1] * 2, 3), np.float32),
                       np.zeros((h, w, 3), np.float32), 2, tile, overlap, on_tile=lambda: ticks.append(1))
    assert len(calls) == len(ticks) == tiling.count_tiles(h, w, tile, overlap)


def test_progress_bar_counts_every_tile_of_every_ensemble_pass(exported, capsys):
    m = sr_keras.load(exported[2], self_ensemble=True)
    m.enhance(np.zeros((40, 40, 3), np.uint8), tile=16, tile_overlap=4, progress=True)
    assert "72/72" in capsys.readouterr().out  # 40 = 16 + 16 + 8: 3 x 3 tiles, for each of the 8 passes.


# --- sr-enhance ---------------------------------------------------------------------------------------------

def test_cli_enhances_odd_files_and_reports_bad_ones(exported, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    base = write_photo(str(src / "photo.jpg"), 21, 30)
    Image.fromarray(base).convert("L").save(src / "gray.png")
    Image.fromarray(np.dstack([base, np.full(base.shape[:2], 128, np.uint8)])).save(src / "rgba.png")
    (src / "deep.png").write_bytes(tf.io.encode_png(base.astype(np.uint16) * 257).numpy())
    Image.fromarray(base[:1, :1]).save(src / "one.png")
    rot = Image.fromarray(base)
    exif = rot.getexif()
    exif[0x0112] = 8
    rot.save(src / "rotated.jpg", exif=exif.tobytes())
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    proc = run_cli("enhance", f"--model={exported[1]}/tiny", f"--input={src}", f"--output_dir={out}", "--compare",
                   "--tile=16", "--tile_overlap=8")
    assert proc.returncode == 1, proc.stderr  # One input failed.
    assert "skipped" in proc.stdout and "broken.png" in proc.stdout
    files = sorted(os.listdir(out))
    for stem in ("photo", "gray", "rgba", "deep", "one", "rotated"):
        assert f"{stem}_x4.png" in files and f"{stem}_x4_compare.png" in files
    assert not any(f.startswith("broken") for f in files)
    assert Image.open(out / "gray_x4.png").mode == "L"
    assert Image.open(out / "rgba_x4.png").mode == "RGBA"
    assert tf.io.decode_png((out / "deep_x4.png").read_bytes(), dtype=tf.uint16).dtype == tf.uint16
    assert Image.open(out / "one_x4.png").size == (4, 4)
    assert Image.open(out / "rotated_x4.png").size == (21 * 4, 30 * 4)  # Orientation 8: turned upright.
    assert Image.open(out / "photo_x4_compare.png").size == (2 * 30 * 4 + 8, 21 * 4)


# --- REST ---------------------------------------------------------------------------------------------------

def _request(url, body=None, method=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers.get("Content-Type"), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.loads(e.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    export_lib.export(_tiny_generator(0), {"model": "srgan", "scale": 4}, str(root), "sr")
    reg = registry_lib.ModelRegistry("sr", str(root / "sr"))
    reg.poll()
    with BackgroundServer(reg, max_request_mb=1.0, poll_seconds=0.2) as bg:
        yield bg, root


def test_status_and_metadata_endpoints(server):
    bg, _ = server
    for path in ("/v1/models/sr", "/v1/models/sr/versions/1"):
        status, ctype, body = _request(bg.url + path)
        assert status == 200 and ctype.startswith("application/json")
        assert body["model_version_status"][0]["version"] == "1"
        assert body["model_version_status"][0]["state"] == "AVAILABLE"
    status, _, body = _request(bg.url + "/v1/models/sr/metadata")
    assert status == 200 and body["model_spec"]["name"] == "sr"
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert sigs["serving_default"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert sigs["enhance"]["outputs"]["sr_image"]["dtype"] == "DT_UINT8"
    assert _request(bg.url + "/v1/models/sr/versions/1/metadata")[0] == 200


def test_predict_row_and_columnar_formats(server):
    bg, _ = server
    img = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    b64 = base64.b64encode(_png(img)).decode()
    for path in (":predict", "/versions/1:predict"):
        status, _, body = _request(bg.url + "/v1/models/sr" + path, {"instances": [{"b64": b64}, {"b64": b64}]})
        assert status == 200 and len(body["predictions"]) == 2
        out = tf.io.decode_png(base64.b64decode(body["predictions"][0]["b64"])).numpy()
        assert out.shape == (24, 36, 3)
    status, _, body = _request(bg.url + "/v1/models/sr:predict", {"inputs": [{"b64": b64}]})
    assert status == 200 and len(body["outputs"]) == 1 and "b64" in body["outputs"][0]
    status, _, body = _request(bg.url + "/v1/models/sr:predict",
                               {"signature_name": "enhance", "instances": [img.tolist()]})
    assert status == 200 and np.array(body["predictions"]).shape == (1, 24, 36, 3)
    status, _, body2 = _request(bg.url + "/v1/models/sr:predict",
                                {"signature_name": "enhance", "inputs": {"lr_image": [img.tolist()]}})
    assert status == 200 and body2["outputs"] == body["predictions"]
    png_out = tf.io.decode_png(base64.b64decode(_request(bg.url + "/v1/models/sr:predict",
                                                         {"instances": [{"b64": b64}]})[2]["predictions"][0]["b64"]))
    np.testing.assert_array_equal(png_out.numpy(), np.array(body["predictions"][0], np.uint8))


def test_gray_and_rgba_through_rest(server):
    bg, _ = server
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gray = _png(rgb[..., 0])
    rgba = _png(np.dstack([rgb, np.full((5, 7), 77, np.uint8)]))
    _, _, body = _request(bg.url + "/v1/models/sr:predict", {"instances": [
        {"b64": base64.b64encode(gray).decode()}, {"b64": base64.b64encode(rgba).decode()}]})
    g = tf.io.decode_png(base64.b64decode(body["predictions"][0]["b64"]), channels=0).numpy()
    a = tf.io.decode_png(base64.b64decode(body["predictions"][1]["b64"]), channels=0).numpy()
    assert g.shape == (20, 28, 1) and a.shape == (20, 28, 4)
    assert np.all(a[..., 3] == 77)


@pytest.mark.parametrize("path,body,status,fragment", [
    ("/v1/models/sr:predict", b"{not json", 400, "malformed JSON"),
    ("/v1/models/sr:predict", {"instances": [], "inputs": []}, 400, "exactly one"),
    ("/v1/models/sr:predict", {"signature_name": "serving_default"}, 400, "exactly one"),
    ("/v1/models/sr:predict", {"instances": [{"b64": "@@@not base64@@@"}]}, 400, "base64"),
    ("/v1/models/sr:predict", {"instances": [{"b64": base64.b64encode(b"hello").decode()}]}, 400, "not a decodable"),
    ("/v1/models/sr:predict", {"signature_name": "nope", "instances": ["x"]}, 400, "unknown signature_name"),
    ("/v1/models/sr:predict", {"signature_name": "enhance", "instances": [[[[300, 0, 0]]]]}, 400, "outside"),
    ("/v1/models/sr:predict", {"signature_name": "enhance", "instances": [[[1, 2]], [[1]]]}, 400, "input"),
    ("/v1/models/sr/versions/abc:predict", {"instances": []}, 400, "version must be"),
    ("/v1/models/:predict", {"instances": []}, 400, "missing model name"),
    ("/v1/models/other:predict", {"instances": []}, 404, "unknown model"),
    ("/v1/models/sr/versions/9:predict", {"instances": ["x"]}, 404, "not available"),
    ("/v1/models/sr/versions/9", None, 404, "no version"),
    ("/v1/models/sr:predict", {"instances": [{"b64": "A" * (2 * 1024 * 1024)}]}, 413, "over the limit"),
])
def test_errors_have_codes_and_json_bodies(server, path, body, status, fragment):
    bg, _ = server
    got, ctype, answer = _request(bg.url + path, body)
    assert got == status and ctype.startswith("application/json")
    assert set(answer) == {"error"} and fragment in answer["error"], answer


def test_sixteen_concurrent_clients(server):
    bg, _ = server
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (4 + i % 5, 6 + i % 3, 3), dtype=np.uint8) for i in range(16)]
    expected = {}
    model = tf.saved_model.load(export_lib.latest_version_dir(str(server[1] / "sr")))
    for i, img in enumerate(images):
        expected[i] = model.signatures["enhance"](lr_image=img[None])["sr_image"].numpy()[0]

    def worker(i):
        results = []
        for _ in range(10):
            png = client.enhance_bytes(_png(images[i]), bg.url, "sr")
            results.append(np.array_equal(tf.io.decode_png(png).numpy(), expected[i]))
        return results

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(worker, range(16)))
    assert all(all(r) for r in answers) and sum(len(r) for r in answers) == 160


def test_new_version_is_picked_up_while_serving(tmp_path):
    export_lib.export(_tiny_generator(0), {"model": "srgan", "scale": 4}, str(tmp_path), "sr")
    reg = registry_lib.ModelRegistry("sr", str(tmp_path / "sr"))
    reg.poll()
    img = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    with BackgroundServer(reg, poll_seconds=0.1) as bg:
        before = client.enhance_bytes(_png(img), bg.url, "sr")
        export_lib.export(_tiny_generator(1), {"model": "srgan", "scale": 4}, str(tmp_path), "sr")
        deadline = time.time() + 60
        while time.time() < deadline:
            # The old version answers until the new one has loaded.
            assert client.enhance_bytes(_png(img), bg.url, "sr") is not None
            status = _request(bg.url + "/v1/models/sr")[2]["model_version_status"]
            if any(s["version"] == "2" and s["state"] == "AVAILABLE" for s in status):
                break
            time.sleep(0.05)
        else:
            pytest.fail("version 2 was not picked up")
        after = client.enhance_bytes(_png(img), bg.url, "sr")
        assert after != before
        assert _request(bg.url + "/v1/models/sr/versions/2:predict",
                        {"instances": [{"b64": base64.b64encode(_png(img)).decode()}]})[0] == 200


def test_client_reports_server_errors(server):
    bg, _ = server
    with pytest.raises(client.ServingError, match="HTTP 404"):
        client.enhance_bytes(_png(np.zeros((2, 2, 3), np.uint8)), bg.url, "missing")
