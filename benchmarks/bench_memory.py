"""Peak memory against image size (not a test): the Python API, sr-enhance and the REST server, x4.

    .venv/bin/python benchmarks/bench_memory.py [--sizes=64x64,1000x500,2000x1500,4000x3000] [--out=...]

Each measurement runs in a fresh process (the REST server in its own process, driven by this one) and reports the
peak RSS (VmHWM) above the RSS after loading the model and enhancing one small image, divided by the output pixels:
the bytes each output pixel costs. The warm-up image is larger than one tile, so the model's working set for a
full tile (a fixed cost, a few hundred MB at the default tile of 256) is in the baseline. The API returns the whole output in memory (3 bytes a pixel for uint8);
sr-enhance streams the PNG in bands; the server holds the PNG answer and its base64 JSON.
Uses the shipped default model (its speed and memory are what users get).
"""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import write_results  # noqa: E402
from absl import app, flags  # noqa: E402

_OUT = flags.DEFINE_string("out", "benchmarks/out/memory.json", "Where to write the figures.")
_SIZES = flags.DEFINE_list("sizes", ["64x64", "1000x500", "2000x1500", "4000x3000"], "Input sizes WxH.")
_CHILD = flags.DEFINE_string("child", None, "Internal: api|enhance, then the input path.")
_IMAGE = flags.DEFINE_string("image", None, "Internal: the input image.")
HERE = os.path.dirname(os.path.abspath(__file__))


def vm_hwm(pid="self") -> int:
    """Peak resident set size of a process, in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def reset_hwm(pid="self") -> None:
    """Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def photo(w: int, h: int):
    """A smooth photo-like RGB image (compresses like a photo; the model's time does not depend on content)."""
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([128 + 100 * np.sin(xx / (37 + 9 * c) + yy / (53 + 7 * c)) for c in range(3)], -1).astype(
        np.uint8)


def _child(kind: str, image: str) -> None:

    import sr_keras
    from sr_keras.enhance import files

    m = sr_keras.load(max_input_pixels=None)
    m.enhance(photo(600, 400))  # Several full tiles: the fixed per-tile working set is part of the baseline.
    reset_hwm()
    base = vm_hwm()
    start = time.perf_counter()
    if kind == "api":
        out = m.enhance(image)
        assert out.ndim == 3
    else:
        files.enhance_files(m, [image], os.path.join(os.path.dirname(image), "out"), progress=False,
                                  overwrite=True)
    print(json.dumps({"base": base, "peak": vm_hwm(), "seconds": time.perf_counter() - start}))


def run_child(kind: str, image: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, f"--child={kind}", f"--image={image}"], capture_output=True,
                          text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rest(images: dict) -> dict:
    """Starts sr-serve in its own process and measures its peak RSS per request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.path.dirname(HERE))
    server = subprocess.Popen([sys.executable, "-m", "sr_keras.cli.serve", f"--port={port}", "--max_input_pixels=0",
                               "--max_request_mb=200", "--request_timeout_seconds=3600"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()  # "serving ..." once loaded.
        url = f"http://127.0.0.1:{port}/v1/models/default:predict"
        results = {}
        for label, path in [("warm-up", images["warm-up"])] + [(k, v) for k, v in images.items() if k != "warm-up"]:
            body = json.dumps({"instances": [{"b64": base64.b64encode(open(path, "rb").read()).decode()}]}).encode()
            reset_hwm(server.pid)
            base = vm_hwm(server.pid)
            start = time.perf_counter()
            with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=7200) as r:
                assert r.status == 200
                r.read()
            results[label] = {"base": base, "peak": vm_hwm(server.pid), "seconds": time.perf_counter() - start}
        del results["warm-up"]
        return results
    finally:
        server.terminate()
        server.wait(30)


def main(argv):
    del argv
    if _CHILD.value:
        return _child(_CHILD.value, _IMAGE.value)
    import tempfile

    from PIL import Image

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        images = {"warm-up": os.path.join(tmp, "warm.png")}
        Image.fromarray(photo(600, 400)).save(images["warm-up"])
        for size in _SIZES.value:
            w, h = (int(v) for v in size.split("x"))
            images[size] = os.path.join(tmp, f"{size}.png")
            Image.fromarray(photo(w, h)).save(images[size])
        sized = {k: v for k, v in images.items() if k != "warm-up"}
        measured = {"api": {s: run_child("api", p) for s, p in sized.items()},
                    "sr-enhance": {s: run_child("enhance", p) for s, p in sized.items()},
                    "rest": rest(images)}
    for path_kind, per_size in measured.items():
        for size, r in per_size.items():
            w, h = (int(v) for v in size.split("x"))
            out_px = w * h * 16
            results.setdefault(path_kind, {})[size] = {
                "input_mp": w * h / 1e6, "output_mp": out_px / 1e6,
                "peak_above_loaded_mb": round((r["peak"] - r["base"]) / 1e6, 1),
                "bytes_per_output_pixel": round((r["peak"] - r["base"]) / out_px, 3),
                "seconds": round(r["seconds"], 1)}
            print(path_kind, size, json.dumps(results[path_kind][size]), flush=True)
    write_results(_OUT.value, results)


if __name__ == "__main__":
    sys.exit(app.run(main))
