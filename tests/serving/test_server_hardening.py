"""Hostile round 3, sr-serve: requests whose image headers lie, careless flags, unroutable paths, clients that
hang up mid-answer, and the security headers of every answer."""

import base64
import io
import json
import logging
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_cli, tiny_generator
from PIL import Image

from sr_keras.infer import enhancer
from sr_keras.savedmodel import writer
from sr_keras.serving import registry as registry_lib
from sr_keras.serving import rest
from sr_keras.serving.limits import Limits
from sr_keras.serving.runner import BackgroundServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("srv")
    writer.export(tiny_generator(), {"model": "srgan", "scale": 4}, str(root), "sr")
    reg = registry_lib.ModelRegistry("sr", str(root / "sr"),
                                     loader=lambda p: enhancer.Enhancer(p, tile=64, max_input_pixels=None))
    reg.poll()
    with BackgroundServer(reg, max_input_pixels=20_000, poll_seconds=0.2) as bg:
        yield bg


def _lying_icns(side=400) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    entry = b"ic07" + struct.pack(">I", 8 + len(png)) + png  # ic07: 128 x 128, by its type.
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def _post(bg, body, path="/v1/models/sr:predict"):
    req = urllib.request.Request(bg.url + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_a_request_whose_container_lies_is_refused_and_memory_stays_flat(server):
    body = {"instances": [{"b64": base64.b64encode(_lying_icns()).decode()}]}
    status, _, answer = _post(server, body)
    assert status == 413 and "more pixels than its header says" in answer["error"]
    before = _rss_mb()
    for _ in range(5):
        assert _post(server, body)[0] == 413
    assert _rss_mb() - before < 50


def test_memory_is_given_back_after_a_large_request(server, tmp_path):
    # Not a timing: the resident size after a large answer comes back near where it was (malloc_trim).
    img = np.random.default_rng(0).integers(0, 256, (140, 140, 3), np.uint8)
    body = {"signature_name": "enhance", "instances": [img.tolist()]}
    status, _, _ = _post(server, body)
    base = _rss_mb()
    for _ in range(3):
        assert _post(server, body)[0] == 200
    assert _rss_mb() - base < 150


@pytest.mark.parametrize("flag, fragment", [
    ("--port=70000", "--port=70000 must be 1..65535"),
    ("--max_request_mb=-1", "--max_request_mb=-1 must be above 0"),
    ("--body_timeout_seconds=-1", "--body_timeout_seconds=-1 must be above 0"),
    ("--max_queue=-1", "--max_queue=-1 must be at least 1"),
    ("--max_concurrent=0", "--max_concurrent=0 must be at least 1"),
    ("--poll_seconds=0", "--poll_seconds=0 must be at least 0.1"),
    ("--model_name=a/b", "--model_name='a/b'"),
    ("--max_input_pixels=span_x4=-5", "--max_input_pixels=span_x4=-5 must be 0 (no limit) or more"),
    ("--max_input_pixels=lots", "--max_input_pixels=lots: 'lots' is not a number or NAME=number"),
    ("--request_timeout_seconds=nosuch=30", "no model 'nosuch' is served here (serving: default)"),
])
def test_careless_serve_flags_are_refused_at_start_in_one_line(flag, fragment):
    # One subprocess each: the binary itself must refuse before loading anything (and without TensorFlow).
    code = ("import sys; from sr_keras.cli import serve; sys.argv = ['sr-serve', %r]; "
            "exit_code = None\ntry:\n    serve.run()\nexcept SystemExit as e:\n    exit_code = e.code\n"
            "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\nsys.exit(exit_code)" % flag)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode not in (0, None) and proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert fragment in proc.stderr and "imported TensorFlow" not in proc.stderr


def test_limits_refuse_values_that_would_refuse_every_request():
    for field, value in (("max_request_bytes", -1), ("max_queue", 0), ("body_timeout_seconds", float("nan")),
                         ("max_instances", 0), ("request_timeout_seconds", 0)):
        with pytest.raises(ValueError, match="must be"):
            Limits(**{field: value})
    for bad in ("a/b", "", "../x", "a b", "a\nb", "é"):
        with pytest.raises(ValueError, match="--model_name"):
            rest.check_model_name(bad)
    assert rest.check_model_name("span_x4.v2-b") == "span_x4.v2-b"


def _raw(bg, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", bg.port), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_a_newline_in_the_path_gets_the_json_error(server):
    answer = _raw(server, b"GET /v1/models/a%0ab HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 40") and b"application/json" in head
    assert "error" in json.loads(body)


def test_a_client_that_hangs_up_mid_answer_is_one_quiet_line(server, caplog):
    img = np.random.default_rng(0).random((120, 120, 3)).astype(np.float32)
    body = json.dumps({"signature_name": "enhance_float", "instances": [img.tolist()]}).encode()
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="absl")
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(b"POST /v1/models/sr:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")  # The answer (tens of MB of JSON) has begun.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # Reset, not a clean close.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("hung up" in r.getMessage() for r in caplog.records):
        time.sleep(0.2)
    assert any("hung up" in r.getMessage() for r in caplog.records), [r.getMessage()[:200] for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert _post(server, {"signature_name": "enhance", "instances": [[[[0, 0, 0]]]]})[0] == 200  # Still serving.


def test_every_answer_is_hardened(server):
    with urllib.request.urlopen(server.url + "/", timeout=30) as r:
        csp = r.headers["Content-Security-Policy"]
        page = r.read().decode()
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    for directive in ("frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "script-src 'self'"):
        assert directive in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    assert '<script src="/app.js">' in page and "<script>" not in page  # No inline script left to allow.
    with urllib.request.urlopen(server.url + "/app.js", timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/javascript") and b"sr-config" in r.read()
    for path, body in (("/v1/models/sr", None), ("/v1/models/nope", None), ("/nowhere", None),
                       ("/v1/models/sr:predict", {"instances": [[[[0, 0, 0]]]], "signature_name": "enhance"})):
        req = urllib.request.Request(server.url + path, data=json.dumps(body).encode() if body else None)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                headers = r.headers
        except urllib.error.HTTPError as e:
            headers = e.headers
        assert headers["X-Content-Type-Options"] == "nosniff", path


def test_error_texts_carry_no_tensorflow_internals():
    @tf.function
    def checked(x):
        tf.debugging.assert_less(x, 1.0, message="alpha must be in [0, 1]")
        return x
    try:
        checked(tf.constant(2.0))
    except tf.errors.InvalidArgumentError as e:
        text = registry_lib.public_error(e)
    assert text.startswith("InvalidArgumentError: assertion failed: [alpha must be in [0, 1]]")
    for internal in ("{{node", "[[", "Graph execution error", "Detected at node", "File \""):
        assert internal not in text


@pytest.mark.parametrize("flag,value,why", [
    ("request_timeout_seconds", "inf", "not a finite number"),
    ("request_timeout_seconds", "span_x4=inf", "not a finite number"),
    ("request_timeout_seconds", "span_x4=1e-9", "from 0.1 to 86400 seconds"),
    ("max_input_pixels", "span_x4=1e30", "at most 1e+10"),
    ("max_input_pixels", "span_x4=1000000,span_x4=2000000", "given twice"),
])
def test_careless_per_model_limits_are_refused_at_start_in_one_line(flag, value, why):
    proc = run_cli("serve", "--model=span_x4", f"--{flag}={value}", "--port=1")
    assert proc.returncode == 2 and why in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
