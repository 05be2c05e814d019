"""sr-serve under hostile and careless requests: limits, timeouts, cancellation, 4xx for every bad input,
versions that fail and get repaired, and a seeded fuzz test."""

import base64
import gzip
import io
import json
import os
import shutil
import socket
import stat
import time
import urllib.request

import keras
import numpy as np
import pytest
from conftest import REPO, run_cli
from PIL import Image

from sr_keras import models
from sr_keras.infer import enhancer as inference
from sr_keras.savedmodel import sr_module, writer
from sr_keras.serving import registry as registry_lib
from sr_keras.serving import rest
from sr_keras.serving.runner import BackgroundServer
from sr_keras.train import config


def _tiny_generator(seed=0):
    keras.utils.set_random_seed(seed)
    g = models.build_generator(config.ModelConfig(kind="srgan", filters=8, num_blocks=2, upsample_filters=32,
                                                  bicubic_skip=True))
    rng = np.random.default_rng(seed)
    g.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in g.get_weights()])
    return g


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def _request(url, body=None, method=None, headers=None, timeout=120):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class CountingEnhancer(inference.Enhancer):
    """The real Enhancer, counting model calls (tiles), with small tiles so a modest image takes many."""

    def __init__(self, path):
        super().__init__(path, tile=16, tile_overlap=8, max_input_pixels=None)
        self.calls = 0
        fn = self._fn

        def counted(x):
            self.calls += 1
            return fn(x)
        self._fn = counted


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    writer.export(_tiny_generator(0), {"model": "srgan", "scale": 4}, str(root), "sr")
    return root / "sr"


@pytest.fixture(scope="module")
def server(model_dir):
    reg = registry_lib.ModelRegistry("sr", str(model_dir), loader=CountingEnhancer)
    reg.poll()
    with BackgroundServer(reg, max_request_mb=4.0, poll_seconds=0.2, max_instances=4, max_input_pixels=300_000,
                          body_timeout_seconds=1.5, request_timeout_seconds=60) as bg:
        yield bg, reg


def _predict(bg, body, **kw):
    return _request(bg.url + "/v1/models/sr:predict", body, **kw)


def test_large_image_is_refused_from_its_header_with_413(server):
    bg, reg = server
    calls = reg.get().model.calls
    for w, h in [(2000, 2000), (10000, 10000)]:
        buf = io.BytesIO()
        Image.new("L", (w, h)).save(buf, format="PNG", optimize=True)
        assert len(buf.getvalue()) < 200_000  # Tiny on the wire, huge once decoded.
        status, body = _predict(bg, {"instances": [_b64(buf.getvalue())]})
        assert status == 413 and "--max_input_pixels" in body["error"], body
    status, body = _predict(bg, {"signature_name": "enhance", "instances": np.zeros((1, 560, 560, 3), int).tolist()})
    assert status == 413 and "--max_input_pixels" in body["error"]
    assert reg.get().model.calls == calls  # Nothing was run.


def test_default_limits_refuse_a_2000_square_png_at_once(model_dir):
    from sr_keras.serving.limits import Limits

    reg = registry_lib.ModelRegistry("sr", str(model_dir))
    reg.poll()
    buf = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buf, format="PNG", optimize=True)  # 12 KB, 4 MP.
    with BackgroundServer(reg) as bg:
        assert bg.server.limits == Limits()
        status, body = _predict(bg, {"instances": [_b64(buf.getvalue())]})
    assert status == 413 and "at most 2 MP per request (--max_input_pixels)" in body["error"]


def test_instances_per_request_are_capped(server):
    bg, _ = server
    one = _b64(_png(np.zeros((4, 4, 3), np.uint8)))
    status, body = _predict(bg, {"instances": [one] * 5})
    assert status == 413 and "--max_instances" in body["error"]
    status, body = _predict(bg, {"inputs": [one] * 5})
    assert status == 413 and "--max_instances" in body["error"]
    assert _predict(bg, {"instances": [one] * 4})[0] == 200


@pytest.mark.parametrize("path,raw,headers,fragment", [
    ("/v1/models/sr:predict", b"[" * 100_000 + b"]" * 100_000, {}, "nested too deeply"),
    ("/v1/models/sr:predict", b'{"instances": ' + b"[" * 900 + b'"x"' + b"]" * 900 + b"}", {}, ""),
    ("/v1/models/sr/versions/%C2%B2:predict", b'{"instances": ["x"]}', {}, "version must be"),
    ("/v1/models/sr:predict", b'{"instances": ["\\ud800"]}', {}, "Unicode"),
    ("/v1/models/sr:predict", b'{"instances": [{"b64": "\\ud800"}]}', {}, "base64"),
    ("/v1/models/sr:predict", b'{"instances": ["x"]}', {"Content-Encoding": "gzip"}, "request body"),
    ("/v1/models/sr:predict", b'{"signature_name": "enhance_float", "instances": [[[[NaN, 0, 0]]]]}', {}, "NaN"),
    ("/v1/models/sr:predict", b'{"signature_name": "enhance_float", "instances": [[[[Infinity, 0, 0]]]]}', {},
     "NaN or infinite"),
    ("/v1/models/sr:predict", b'{"signature_name": "enhance_float", "instances": [[[[1e308, 0, 0]]]]}', {}, "[0, 1]"),
    ("/v1/models/sr:predict", b'{"signature_name": "enhance_float", "instances": [[[[-0.5, 0, 0]]]]}', {}, "[0, 1]"),
    ("/v1/models/sr:predict", b'{"instances": [{"b64": "' + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
     + b'"}]}', {}, "not an image"),
])
def test_hostile_bodies_and_paths_get_400_with_json(server, path, raw, headers, fragment):
    bg, _ = server
    status, body = _request(bg.url + path, raw, headers=headers)
    assert status == 400 and set(body) == {"error"} and fragment in body["error"], (status, body)


def test_malformed_paths_answer_400_as_tf_serving(server):
    bg, _ = server
    for path in ("/v1/models", "/v1/models/", "/v1/nonsense", "/v1/models/sr/versions/"):
        status, body = _request(bg.url + path)
        assert status == 400 and "error" in body, (path, status, body)
    assert _request(bg.url + "/v2/anything")[0] == 404


def test_a_large_body_is_parsed_off_the_event_loop(server):
    """While a 3.5 MB body of numbers parses (in a parser process), a status request is answered first."""
    import threading

    bg, _ = server
    body = b'{"instances": [' + b"1," * 1_800_000 + b"x]}"
    order = []

    def big():
        order.append(("big", _predict(bg, body)[0]))
    t = threading.Thread(target=big)
    t.start()
    time.sleep(0.05)
    order.append(("status", _request(bg.url + "/v1/models/sr")[0]))
    t.join()
    assert order == [("status", 200), ("big", 400)], order


def test_the_parser_processes_load_no_tensorflow(server):
    """They parse JSON and base64 only: TensorFlow there would cost each a second at start and print its start-up
    lines ("oneDNN custom operations ...") into sr-serve's log on the first upload."""
    bg, _ = server
    assert _predict(bg, json.dumps({"instances": [_b64(_png(np.zeros((4, 4, 3), np.uint8)))]}).encode())[0] == 200
    pool = bg.server.parse_pool
    assert pool is not None  # Parsed in a process, not in a thread.
    loaded = pool.submit(eval, "sorted({'tensorflow', 'keras', 'jax'} & set(__import__('sys').modules))").result(60)
    assert loaded == []


def test_large_tensor_answers_are_streamed_and_exact(server):
    bg, reg = server
    img = np.random.default_rng(5).integers(0, 256, (150, 160, 3), dtype=np.uint8)
    status, body = _predict(bg, {"signature_name": "enhance", "instances": [img.tolist()]})
    assert status == 200
    got = np.array(body["predictions"], np.uint8)
    np.testing.assert_array_equal(got[0], reg.get().model.enhance(img))  # 600 x 640 x 3 values, row by row.


def test_gzip_bomb_is_refused_by_its_decompressed_size(server):
    bg, _ = server
    bomb = gzip.compress(b'{"instances": ["' + b"a" * 100_000_000 + b'"]}', 9)  # ~100 KB on the wire.
    assert len(bomb) < 200_000
    status, body = _request(bg.url + "/v1/models/sr:predict", bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "--max_request_mb" in body["error"]


def test_valid_gzip_body_is_accepted(server):
    bg, _ = server
    raw = json.dumps({"instances": [_b64(_png(np.zeros((4, 4, 3), np.uint8)))]}).encode()
    status, body = _request(bg.url + "/v1/models/sr:predict", gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert status == 200 and len(body["predictions"]) == 1


def _raw_post(port, body: bytes, content_length: int):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/models/sr:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {content_length}\r\n\r\n".encode() + body)
    return s


def _read_response(s, timeout=30) -> bytes:
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_slow_body_times_out_with_408_and_others_are_served_meanwhile(server):
    bg, _ = server
    s = _raw_post(bg.port, b'{"instances": [', 1000)  # Promises 1000 bytes, sends 15, then one byte at a time.
    try:
        assert _request(bg.url + "/v1/models/sr")[0] == 200  # The server answers others meanwhile.
        for _ in range(3):
            time.sleep(0.6)
            try:
                s.sendall(b" ")
            except OSError:
                break
        answer = _read_response(s)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"--body_timeout_seconds" in answer, answer[:300]


def test_slow_headers_are_cut_off_but_long_requests_are_not(model_dir):
    reg = registry_lib.ModelRegistry("sr", str(model_dir), loader=CountingEnhancer)
    reg.poll()
    img = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    with BackgroundServer(reg, idle_timeout_seconds=1.0) as bg:
        s = socket.create_connection(("127.0.0.1", bg.port))
        s.sendall(b"POST /v1/models/sr:predict HTTP/1.1\r\nHost: x\r\n")  # ...and the rest never comes.
        s.settimeout(30)
        assert s.recv(100) == b""  # Closed by the server.
        s.close()
        calls = reg.get().model.calls
        status, body = _predict(bg, {"instances": [_b64(_png(img))]})  # 625 tiles: longer than the idle timeout.
        assert status == 200 and reg.get().model.calls - calls == 625


def test_client_disconnect_stops_the_work_at_the_next_tile(server):
    bg, reg = server
    enhancer = reg.get().model
    img = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)  # 25 x 25 tiles of 16.
    body = json.dumps({"instances": [_b64(_png(img))]}).encode()
    before = enhancer.calls
    s = _raw_post(bg.port, body, len(body))
    deadline = time.time() + 60
    while enhancer.calls - before < 3 and time.time() < deadline:  # The work has started.
        time.sleep(0.01)
    s.close()  # The client hangs up.
    time.sleep(1.5)
    done = enhancer.calls - before
    time.sleep(1.0)
    assert enhancer.calls - before == done, "work went on after the client left"
    assert 3 <= done < 625 // 2, done
    status, _ = _predict(bg, {"instances": [_b64(_png(img[:8, :8]))]})
    assert status == 200


def test_deadline_stops_the_work_and_answers_413(model_dir):
    reg = registry_lib.ModelRegistry("sr", str(model_dir), loader=CountingEnhancer)
    reg.poll()
    img = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    # A pixel limit of its own: with a deadline alone, the limit would follow from it and refuse the image first.
    with BackgroundServer(reg, request_timeout_seconds=0.3, max_input_pixels=0) as bg:
        status, body = _predict(bg, {"instances": [_b64(_png(img))]})
        assert status == 413 and "--request_timeout_seconds" in body["error"]
        assert reg.get().model.calls < 625  # Stopped early: not every tile ran.


def test_broken_newest_version_does_not_stop_the_older_one_and_is_retried_when_repaired(model_dir, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(model_dir, base)
    shutil.copytree(base / "1", base / "2")
    (base / "2" / "saved_model.pb").write_bytes(b"garbage")  # Looks complete, cannot load.
    reg = registry_lib.ModelRegistry("m", str(base))
    reg.poll()  # As at start-up.
    assert reg.get().number == 1
    (v2,) = [s for s in rest.status_body(reg.status())["model_version_status"] if s["version"] == "2"]
    assert v2["state"] == "END" and v2["status"]["error_message"]
    assert str(tmp_path) not in json.dumps(reg.status()) and "/tmp" not in json.dumps(reg.status())
    reg.poll()  # Unchanged: not reloaded (no repeated failing loads).
    shutil.copy(base / "1" / "saved_model.pb", base / "2" / "saved_model.pb")  # Repaired.
    reg.poll()
    assert reg.get().number == 2 and reg.status()[0][1] == "AVAILABLE"


def test_writable_model_base_path_is_reported(model_dir, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(model_dir, base)
    os.chmod(base, 0o755)
    assert registry_lib.writable_by_others(str(base)) == []
    os.chmod(base, 0o777)
    assert registry_lib.writable_by_others(str(base)) == [str(base)]
    os.chmod(base, 0o777 | stat.S_ISVTX)  # Sticky, like /tmp: others cannot replace our files.
    assert registry_lib.writable_by_others(str(base)) == []


def test_port_in_use_fails_at_once_in_one_line(model_dir):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        proc = run_cli("serve", f"--model_base_path={model_dir}", f"--port={port}", timeout=120)
    finally:
        taken.close()
    assert proc.returncode == 2 and "serving" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"error: port {port} on 127.0.0.1 is already in use; pick another with --port"


@pytest.mark.slow
def test_fuzzed_bodies_and_images_never_get_5xx_nor_hang(server):
    """Seeded and bounded: mutated JSON bodies and mutated image bytes; no 5xx, no hang, still serving after."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    bg, _ = server
    good_png = _png(np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(np.zeros((9, 7), np.uint8)).save(buf, format="JPEG")
    good_jpg = buf.getvalue()
    valid = json.dumps({"instances": [_b64(good_png)]}).encode()
    statuses = []

    def mutate(data: bytes, edits) -> bytes:
        b = bytearray(data)
        for pos, value, op in edits:
            if not b:
                break
            i = pos % len(b)
            if op == 0:
                b[i] = value
            elif op == 1:
                del b[i:i + 1 + value % 8]
            else:
                b[i:i] = bytes([value]) * (1 + value % 5)
        return bytes(b)

    edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255), st.integers(0, 2)), max_size=8)

    @settings(max_examples=120, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["json", "png", "jpg", "tensor"]), e=edits)
    def check(kind, e):
        if kind == "json":
            body = mutate(valid, e)
        elif kind == "tensor":
            body = mutate(json.dumps({"signature_name": "enhance_float",
                                      "instances": [[[[0.5, 0.25, 1.0]] * 3] * 2]}).encode(), e)
        else:
            body = json.dumps({"instances": [_b64(mutate(good_png if kind == "png" else good_jpg, e))]}).encode()
        status, answer = _request(bg.url + "/v1/models/sr:predict", body, timeout=60)
        statuses.append(status)
        assert status < 500, (status, answer)
        assert "NaN" not in json.dumps(answer)

    start = time.time()
    check()
    assert time.time() - start < 120  # Bounded: no request hung.
    assert len(set(statuses)) > 1  # Some mutations were rejected and some still passed.
    assert _predict(bg, {"instances": [_b64(good_png)]})[0] == 200
    del hypothesis


# --- The exported signatures themselves (what TF Serving runs) ----------------------------------------------

@pytest.fixture(scope="module")
def tiled_export(tmp_path_factory):
    g = _tiny_generator(1)
    root = tmp_path_factory.mktemp("tiled")
    path = writer.export(g, {"model": "srgan", "scale": 4}, str(root), "t", tile=32, max_input_pixels=200_000)
    import tensorflow as tf

    return g, tf.saved_model.load(path), path


def test_exported_signatures_tile_and_equal_the_whole_image(tiled_export):
    import tensorflow as tf

    g, m, path = tiled_export
    meta = json.load(open(os.path.join(path, "assets.extra", "model.json")))
    assert meta["tiling"]["tile"] == 32 and meta["tiling"]["overlap"] >= 9 and meta["max_input_pixels"] == 200_000
    x = np.random.default_rng(0).integers(0, 256, (2, 70, 101, 3), dtype=np.uint8)  # 3 x 4 tiles of 32.
    whole = np.clip(g(x.astype("float32") / 255, training=False).numpy(), 0, 1)
    f = m.signatures["enhance_float"](lr_image=tf.constant(x.astype("float32") / 255))["sr_image"].numpy()
    assert f.shape == (2, 280, 404, 3)
    np.testing.assert_allclose(f, whole, atol=1e-5)  # Context >= receptive field: no seam at all.
    u = m.signatures["enhance"](lr_image=tf.constant(x))["sr_image"].numpy()
    assert np.abs(u.astype(int) - np.round(whole * 255)).max() <= 1
    png = m.signatures["serving_default"](image_bytes=tf.constant([_png(x[0])]))["sr_png_bytes"].numpy()[0]
    assert np.abs(tf.io.decode_png(png).numpy().astype(int) - u[0]).max() <= 1  # Batch of 1 vs 2: float rounding.


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "WEBP-lossless"])
def test_exported_serving_default_refuses_large_images_from_the_header(tiled_export, fmt):
    import tensorflow as tf

    from sr_keras.image.imageio import probe_size

    _, m, _ = tiled_export
    for size, ok in [((50, 30), True), ((600, 400), False), ((5000, 4000), False)]:
        buf = io.BytesIO()
        Image.new("RGB", size).save(buf, fmt.split("-")[0], **({"lossless": True} if "lossless" in fmt else {}))
        data = buf.getvalue()
        assert sr_module.header_pixels(tf.constant(data)).numpy() == size[0] * size[1] == np.prod(probe_size(data))
        if ok:
            out = m.signatures["serving_default"](image_bytes=tf.constant([data]))["sr_png_bytes"].numpy()[0]
            assert tf.io.decode_png(out).shape == (size[1] * 4, size[0] * 4, 3)
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match="sr-export --max_input_pixels"):
                m.signatures["serving_default"](image_bytes=tf.constant([data]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="sr-export --max_input_pixels"):
        m.signatures["enhance"](lr_image=tf.zeros([1, 500, 500, 3], tf.uint8))


def test_the_documented_curl_works_for_a_300_kb_photo(server, tmp_path):
    import subprocess

    bg, _ = server
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (400, 560, 3), dtype=np.uint8)).save(photo, quality=95)
    assert 250_000 < photo.stat().st_size < 400_000
    readme = open(os.path.join(REPO, "README.md")).read().splitlines()
    lines = [line.split("    #")[0] for line in readme if "req.json" in line]
    assert len(lines) == 2 and lines[0].startswith("printf") and lines[1].startswith("curl")
    script = "\n".join(lines).replace("localhost:8501/v1/models/srgan", bg.url + "/v1/models/sr")
    proc = subprocess.run(["bash", "-c", "set -e\n" + script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.load(open(tmp_path / "answer.json"))
    out = Image.open(io.BytesIO(base64.b64decode(answer["predictions"][0]["b64"])))
    assert out.size == (560 * 4, 400 * 4)
    # The form it replaced: the base64 on curl's command line is over the kernel's per-argument limit.
    old = subprocess.run(["bash", "-c", f"curl -s -X POST {bg.url}/v1/models/sr:predict "
                          "-d \"{\\\"instances\\\": [{\\\"b64\\\": \\\"$(base64 -w0 photo.jpg)\\\"}]}\""],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert old.returncode != 0 and "Argument list too long" in old.stderr
