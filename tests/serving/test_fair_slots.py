"""Serving several models of different cost: each has its own run slots and queue, and a slow model's requests run
in steps short enough to stop soon after a hang-up (issue 35)."""

import base64
import io
import json
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from sr_keras import zoo
from sr_keras.infer import enhancer
from sr_keras.serving import registry as registry_lib
from sr_keras.serving.runner import BackgroundServer
from sr_keras.zoo import cache as zoo_cache


def _body(side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(side).integers(0, 256, (side, side, 3), np.uint8)).save(buf, "PNG")
    return json.dumps({"instances": [{"b64": base64.b64encode(buf.getvalue()).decode()}]}).encode()


def _post(url: str, body: bytes, done: dict, key: str) -> None:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        done[key] = (r.status, time.monotonic())


def test_a_cheap_model_does_not_wait_behind_an_expensive_one():
    """Two real models, one run slot each: with two requests for the slow one in flight (one running, one waiting
    for its slot), a request for the fast one is answered before either slow one. With the slots shared, it
    waited for the first slow request to finish."""
    fast = registry_lib.ModelRegistry("fast", zoo_cache.ensure("span_x2"))
    slow = registry_lib.ModelRegistry("slow", zoo.model_dir("sr_keras_x4"))
    for r in (fast, slow):
        r.poll()
        assert r.get() is not None
    done = {}
    with BackgroundServer([fast, slow], max_concurrent=1, max_input_pixels=0, request_timeout_seconds=600) as bg:
        slow_url, fast_url = (f"{bg.url}/v1/models/{n}:predict" for n in ("slow", "fast"))
        threads = [threading.Thread(target=_post, args=(slow_url, _body(480), done, f"slow{i}")) for i in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while bg.server.waiting["slow"] < 2 and time.monotonic() < deadline:  # Both parsed, at their slot.
            time.sleep(0.02)
        assert bg.server.waiting["slow"] == 2
        _post(fast_url, _body(48), done, "fast")
        assert "slow0" not in done and "slow1" not in done, done  # Answered while both slow ones still ran/waited.
        for t in threads:
            t.join(600)
    assert {k: v[0] for k, v in done.items()} == {"fast": 200, "slow0": 200, "slow1": 200}
    assert done["fast"][1] < min(done["slow0"][1], done["slow1"][1])


def test_a_slow_model_runs_in_steps_that_can_stop(tmp_path):
    """A model whose 512 px tile would take minutes is served in tiles of about 2 s (with their context), so even
    an image that fits in one default tile stops soon after a hang-up; a fast model keeps its own tile; the floor
    keeps the core at least four times the context."""
    model = enhancer.Enhancer(zoo.model_dir("sr_keras_x4") + "/1", precision="float32")
    own, overlap = model.tile, model.default_overlap()
    assert registry_lib.stoppable_tile(model, 1e-9) == own  # Fast: its own tile.
    slow = registry_lib.stoppable_tile(model, 1e-4)  # 1e-4 s per pixel: a 512 px tile (+ context) is ~30 s.
    assert slow < own and (slow + 2 * overlap) ** 2 * 1e-4 <= registry_lib.STOP_STEP_SECONDS * 1.05
    assert registry_lib.stoppable_tile(model, 1.0) == max(4 * overlap, 64)  # Absurdly slow: the floor.
    model.tile = 0  # Whole images at once: bounded too.
    assert registry_lib.stoppable_tile(model, 1e-4) == slow


def test_the_measured_cost_is_a_median_so_one_noisy_run_cannot_set_it(monkeypatch):
    """The page and the per-model limits use this cost: a run slowed 50x by another process's burst is ignored."""
    clock = [0.0]
    monkeypatch.setattr(registry_lib.time, "perf_counter", lambda: clock[0])
    durations = iter([9.0, 0.01, 0.5, 0.01, 0.012, 0.011])  # Graph building, then one run during a burst.

    class Model:
        def enhance(self, x):
            clock[0] += next(durations)

    cost = registry_lib.measure_cost(Model())
    assert cost * registry_lib.PROBE_SIDE ** 2 == pytest.approx(0.011)  # The median of the five timed runs.
    slow = iter([60.0, 4.0, 4.0])  # A model slower than the budget is timed once, not five times.

    class Slow:
        def enhance(self, x):
            clock[0] += next(slow)

    assert registry_lib.measure_cost(Slow()) * registry_lib.PROBE_SIDE ** 2 == pytest.approx(4.0)
