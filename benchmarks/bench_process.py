"""Around the model (issue 23), in one run: the whole `sr-enhance` process against a 20-line ncnn script on the
same photo, the REST path against the in-process PNG-to-PNG call, where the in-process call's time goes (decoding,
the model, PNG encoding) and what writing JPEG and WebP costs next to the model.

  python benchmarks/bench_process.py [--out=benchmarks/out/process.json] [--repeats=3]

The photo is an 868x600 crop of scikit-image's Hubble Deep Field (a real photo; JPEG, quality 92). Both processes
are timed from start to exit, interleaved, median of --repeats. The ncnn script (`NCNN_SCRIPT`, written to a
temporary file) runs the zoo model's original files in float32 on the whole image and saves with Pillow's
defaults, as a user's own script would.
"""

import io
import json
import os
import subprocess
import sys
import tempfile

from _common import interleaved_seconds, median_seconds, write_results
from absl import app, flags

_OUT = flags.DEFINE_string("out", "benchmarks/out/process.json", "Where to write the figures.")
_MODEL = flags.DEFINE_string("model", "span_x4", "A SPAN zoo model (the ncnn script runs its original files).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per case (the median is reported).")
_QUICK = flags.DEFINE_bool("quick", False, "A small photo and one repeat (checks that it runs).")

NCNN_SCRIPT = '''import os, sys
import ncnn
import numpy as np
from PIL import Image

param, weights, src, dst = sys.argv[1:5]
net = ncnn.Net()
for flag in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed", "use_bf16_storage"):
    setattr(net.opt, flag, False)  # float32, as sr_keras computes it
net.opt.num_threads = os.cpu_count()
net.load_param(param)
net.load_model(weights)
img = np.asarray(Image.open(src).convert("RGB"), np.float32) / 255.0
chw = np.ascontiguousarray(img.transpose(2, 0, 1))
ex = net.create_extractor()
ex.input("data", ncnn.Mat(chw))
_, out = ex.extract("output")
out = np.clip(np.array(out).transpose(1, 2, 0), 0.0, 1.0)
Image.fromarray(np.round(out * 255.0).astype(np.uint8)).save(dst)
'''


def _photo(quick: bool) -> bytes:
    import numpy as np
    import skimage.data
    from PIL import Image

    img = skimage.data.hubble_deep_field()[:600, :868] if not quick else skimage.data.coffee()[:100, :140]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def processes(name, photo_path, work, repeats):
    """Seconds of the whole sr-enhance process and of the ncnn script, from start to exit, interleaved."""
    from sr_keras import zoo
    from sr_keras.zoo import cache as zoo_cache

    entry = zoo.MODELS[name]
    files = zoo_cache.provenance(entry)["files"]
    script = os.path.join(work, "ncnn_script.py")
    with open(script, "w") as f:
        f.write(NCNN_SCRIPT)
    enhance = os.path.join(os.path.dirname(sys.executable), "sr-enhance")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmds = {
        "sr_enhance": [enhance, f"--model={name}", f"--input={photo_path}", f"--output_dir={work}/sr", "--ext=png",
                       "--overwrite"],
        "ncnn_script": [sys.executable, script, files[entry.param]["path"], files[entry.bin]["path"], photo_path,
                        f"{work}/ncnn.png"],
    }
    # Warmed up: the zoo conversion and the page cache are not what is timed.
    seconds = interleaved_seconds([lambda cmd=cmd: subprocess.run(cmd, check=True, env=env, capture_output=True)
                                   for cmd in cmds.values()], repeats)
    import_tf = median_seconds(lambda: subprocess.run([sys.executable, "-c", "import tensorflow"], check=True,
                                                       env=env), repeats)
    return {**dict(zip(cmds, seconds)), "import_tensorflow": import_tf}


def in_process(name, photo, repeats):
    """The in-process PNG-to-PNG call (decode, model, encode) with each part timed, REST on the same PNG, and
    JPEG / WebP encoding of the output (with sr-enhance's writer and defaults)."""
    from PIL import Image

    import sr_keras
    from sr_keras.enhance import output as enhance_output
    from sr_keras.image import imageio, limits
    from sr_keras.serving import client
    from sr_keras.serving.registry import ModelRegistry
    from sr_keras.serving.runner import BackgroundServer

    png = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(png, "PNG")
    png = png.getvalue()
    model = sr_keras.load(name)

    def decode():
        return imageio.to_uint8(imageio.decode_image(png, None, "").pixels)
    pixels = decode()
    out = model.enhance(pixels)

    def png_to_png():
        buf = io.BytesIO()
        model.write_png(decode(), buf)
        return buf.getvalue()
    png_to_png()
    parts = {"decode": median_seconds(decode, repeats), "model": median_seconds(lambda: model.enhance(pixels),
                                                                                 repeats)}
    for key, fmt in (("png", "png"), ("jpeg", "jpg"), ("webp", "webp")):
        parts[f"encode_{key}"] = median_seconds(lambda: enhance_output.write(
            io.BytesIO(), out, fmt, limits.DEFAULT_QUALITY, None, {"Software": "bench"}), repeats)
    parts["png_to_png"] = median_seconds(png_to_png, repeats)
    reg = ModelRegistry(name, os.path.dirname(model.path))  # The zoo's model folder, as sr-serve serves it.
    reg.poll()
    with BackgroundServer(reg, max_request_mb=256, max_input_pixels=0, request_timeout_seconds=600) as bg:
        client.enhance_bytes(png, bg.url, name)  # Warm-up.
        parts["rest"] = median_seconds(lambda: client.enhance_bytes(png, bg.url, name), repeats)
    parts["output_mp"] = out.shape[0] * out.shape[1] / 1e6
    parts["precision"] = model.precision
    return parts


def main(argv):
    del argv
    repeats = 1 if _QUICK.value else _REPEATS.value
    photo = _photo(_QUICK.value)
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "photo.jpg")
        with open(path, "wb") as f:
            f.write(photo)
        procs = processes(_MODEL.value, path, work, repeats)
    calls = in_process(_MODEL.value, photo, repeats)
    report = {"model": _MODEL.value, "photo": "hubble_deep_field 868x600 crop, JPEG q92", "unit": "seconds",
              "processes": procs, "in_process": calls,
              "sr_enhance_over_ncnn_script": procs["sr_enhance"] / procs["ncnn_script"],
              "rest_over_in_process_png": calls["rest"] / calls["png_to_png"],
              "encoding_share": {fmt: calls[f"encode_{fmt}"] / (calls["model"] + calls[f"encode_{fmt}"])
                                 for fmt in ("png", "jpeg", "webp")}}
    write_results(_OUT.value, report)
    print(json.dumps({k: report[k] for k in ("sr_enhance_over_ncnn_script", "rest_over_in_process_png")}))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app.run(main)
