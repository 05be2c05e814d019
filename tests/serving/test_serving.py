"""sr-serve: TF Serving's REST API on the exported models, and its client."""

import base64
import concurrent.futures
import json
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from conftest import png_bytes as _png
from conftest import tiny_generator as _tiny_generator

from sr_keras.savedmodel import layout, writer
from sr_keras.serving import client
from sr_keras.serving import registry as registry_lib
from sr_keras.serving.runner import BackgroundServer

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
    writer.export(_tiny_generator(0), {"model": "srgan", "scale": 4}, str(root), "sr")
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
    ("/v1/models/sr:predict", {"instances": [{"b64": base64.b64encode(b"hello").decode()}]}, 400, "not an image"),
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
    model = tf.saved_model.load(layout.latest_version_dir(str(server[1] / "sr")))
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


def test_new_version_is_picked_up_while_serving(tmp_path, capfd):
    writer.export(_tiny_generator(0), {"model": "srgan", "scale": 4}, str(tmp_path), "sr")
    reg = registry_lib.ModelRegistry("sr", str(tmp_path / "sr"))
    reg.poll()
    img = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    with BackgroundServer(reg, poll_seconds=0.1) as bg:
        before = client.enhance_bytes(_png(img), bg.url, "sr")
        writer.export(_tiny_generator(1), {"model": "srgan", "scale": 4}, str(tmp_path), "sr")
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
    assert f"hot-loaded sr version 2 from {tmp_path / 'sr' / '2'} (was version 1)" in capfd.readouterr().err


def test_client_reports_server_errors(server):
    bg, _ = server
    with pytest.raises(client.ServingError, match="HTTP 404"):
        client.enhance_bytes(_png(np.zeros((2, 2, 3), np.uint8)), bg.url, "missing")


def test_limits_follow_from_the_cost_measured_at_load():
    from sr_keras.serving.limits import (
        DEFAULT_MAX_INPUT_PIXELS,
        DEFAULT_REQUEST_TIMEOUT_SECONDS,
        MAX_DERIVED_TIMEOUT_SECONDS,
        Limits,
    )

    fast = Limits().for_model("m", 2e-6)  # 2 s per input MP: 2 MP fit in 90 s with room.
    assert (fast.max_input_pixels, fast.request_timeout_seconds) == (DEFAULT_MAX_INPUT_PIXELS,
                                                                      DEFAULT_REQUEST_TIMEOUT_SECONDS)
    slow = Limits().for_model("m", 5e-4)  # Real-ESRGAN on 2 CPU cores: 500 s per input MP.
    assert 0 < slow.max_input_pixels < 1_000_000 and slow.request_timeout_seconds <= MAX_DERIVED_TIMEOUT_SECONDS
    assert slow.request_timeout_seconds >= 2 * 5e-4 * slow.max_input_pixels  # Its deadline covers its limit.
    assert slow.seconds_per_megapixel == pytest.approx(500)
    # Set for one model, the other limit follows; set for all, it holds for every model without its own.
    named = Limits(model_pixels={"m": 1_000_000}, request_timeout_seconds=60.0)
    assert named.for_model("m", 5e-4).max_input_pixels == 1_000_000
    assert named.for_model("m", 5e-4).request_timeout_seconds == 60.0
    assert Limits(model_pixels={"m": 1_000_000}).for_model("m", 5e-4).request_timeout_seconds >= 1000
    assert named.for_model("other", 5e-4).max_input_pixels < slow.max_input_pixels  # 60 s hold fewer than 600.
    assert Limits(max_input_pixels=0).for_model("m", 5e-4).max_input_pixels == 0  # No limit stays no limit.
    assert Limits().for_model("m", None).max_input_pixels == DEFAULT_MAX_INPUT_PIXELS  # Not measured: defaults.


def test_each_model_gets_its_own_limits_from_its_measured_cost(tmp_path, capfd):
    import keras

    from sr_keras import models
    from sr_keras.serving.limits import Limits
    from sr_keras.train import config

    keras.utils.set_random_seed(0)
    big = models.build_generator(config.ModelConfig(kind="srgan", scale=4, filters=64, num_blocks=8,
                                                    upsample_filters=64))
    writer.export(_tiny_generator(0), {"model": "srgan", "scale": 4}, str(tmp_path), "small")
    writer.export(big, {"model": "srgan", "scale": 4}, str(tmp_path), "big")
    registries = [registry_lib.ModelRegistry(n, str(tmp_path / n)) for n in ("small", "big")]
    for reg in registries:
        reg.poll()
    small_cost, big_cost = (reg.get().seconds_per_pixel for reg in registries)
    assert big_cost > 2 * small_cost > 0  # Measured: the big model (about 100 times the work) is the slower.
    # A short deadline of its own: big's pixel limit follows from its cost, small keeps the default.
    limits = Limits(model_timeouts={"big": 6.0})
    with BackgroundServer(registries, limits=limits) as bg:
        small, big_limits = (bg.server.model_limits(r) for r in registries)
        assert small == limits.for_model("small", small_cost) and small.max_input_pixels == 2_000_000
        assert big_limits.request_timeout_seconds == 6.0
        assert big_limits.max_input_pixels == limits.for_model("big", big_cost).max_input_pixels < 2_000_000
        side = int(np.ceil(np.sqrt(big_limits.max_input_pixels))) + 1
        img = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        body = {"instances": [{"b64": base64.b64encode(_png(img)).decode()}]}
        status, _, answer = _request(bg.url + "/v1/models/big:predict", body)
        assert status == 413 and answer["error"].startswith(
            f"the request holds {side * side / 1e6:.2f} MP of input; model 'big' takes at most "
            f"{big_limits.max_input_pixels / 1e6:g} MP per request (--max_input_pixels)"), answer
        assert _request(bg.url + "/v1/models/small:predict", body)[0] == 200  # Within small's own limit.
        # The page is told each model's limits.
        page = urllib.request.urlopen(bg.url + "/").read().decode()
        config_json = json.loads(page.split('<script id="sr-config" type="application/json">', 1)[1]
                                 .split("</script>", 1)[0])
        assert config_json["limits"]["big"]["max_input_pixels"] == big_limits.max_input_pixels
        assert config_json["limits"]["small"]["scale"] == 4
    with pytest.raises(ValueError, match="no model 'typo' is served here"):
        BackgroundServer(registries, limits=Limits(model_pixels={"typo": 5}))
