"""Inference benchmarks (not tests): SRGAN (B=16) output MP/s through the Python API, the SavedModel signature and
the REST server; REST overhead; peak RSS of tiled 2000x1500 inference; where fp32 time goes; XLA and bf16.

    .venv/bin/python benchmarks/bench_infer.py [--out=benchmarks/out/infer.json]

Speed does not depend on weight values, so the SRGAN generator has random weights. Quality checks (XLA/bf16
within 0.05 dB of fp32) use the shipped default model when present, on the held-back sample photos.
"""

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import conv_flops, matmul_gflops, write_results  # noqa: E402
from absl import app, flags  # noqa: E402

_OUT = flags.DEFINE_string("out", "benchmarks/out/infer.json", "Where to write the figures.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement (best is kept).")
_RSS_CHILD = flags.DEFINE_string("rss_child", None, "Internal: measure peak RSS of tiled inference of this model.")
_SIZES = flags.DEFINE_list("sizes", ["128", "512"], "Square input sizes timed.")
_BIG = flags.DEFINE_list("big", ["1500", "2000"], "H, W of the tiled peak-RSS run.")


def best_seconds(fn, repeats, warmup=True):
    if warmup:
        fn()  # Warm-up (tracing, allocation).
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_breakdown(g, size, repeats):
    """Seconds of each stage of the generator on a size x size input."""
    import keras
    import numpy as np
    import tensorflow as tf

    names = [lyr.name for lyr in g.layers]
    cut_trunk = g.get_layer("long_skip").output
    cut_up = g.get_layer(f"up{sum(n.endswith('_shuffle') for n in names) - 1}_prelu").output
    parts = {"trunk (LR resolution: stem, residual blocks)": keras.Model(g.input, cut_trunk),
             "trunk + upsampling": keras.Model(g.input, cut_up), "whole": g}
    x = np.random.rand(1, size, size, 3).astype("float32")
    secs = {}
    for label, m in parts.items():
        f = tf.function(lambda t, m=m: m(t, training=False))
        secs[label] = best_seconds(lambda: f(x).numpy(), repeats)
    trunk, up, whole = secs.values()
    return {"trunk_fraction": trunk / whole, "upsampling_fraction": (up - trunk) / whole,
            "final_9x9_conv_fraction": (whole - up) / whole, "seconds": whole}


def rest_seconds(model_dir, png_bytes, repeats):
    from sr_keras.serving import client
    from sr_keras.serving.registry import ModelRegistry
    from sr_keras.serving.runner import BackgroundServer

    reg = ModelRegistry("bench", model_dir)
    reg.poll()
    with BackgroundServer(reg, max_request_mb=64) as bg:
        return best_seconds(lambda: client.enhance_bytes(png_bytes, bg.url, "bench"), repeats, repeats > 1)


def peak_rss_child(model_dir, big):
    """Runs tiled x4 inference of a big image in a fresh process; returns peak RSS, baseline RSS and seconds."""
    proc = subprocess.run([sys.executable, __file__, f"--rss_child={model_dir}", f"--big={','.join(big)}"],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss_child(model_dir):
    import numpy as np

    import sr_keras

    m = sr_keras.load(model_dir)
    m.enhance(np.zeros((64, 64, 3), np.uint8))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    h, w = (int(v) for v in _BIG.value)
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    start = time.perf_counter()
    out = m.enhance(img)
    sec = time.perf_counter() - start
    assert out.shape == (4 * h, 4 * w, 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(peak, 1), "rss_before_mb": round(base, 1), "seconds": round(sec, 2),
                      "output_mb": out.nbytes / 1e6}))


def _variants(g):
    import tensorflow as tf

    from sr_keras.models.precision import inference_copy

    g16 = inference_copy(g, "mixed_bfloat16")  # The split sr_keras.load(precision="bfloat16") runs.
    assert any(lyr.compute_dtype == "bfloat16" for lyr in g16.layers)
    return {"fp32": tf.function(lambda x: g(x, training=False)),
            "xla": tf.function(lambda x: g(x, training=False), jit_compile=True),
            "bf16": tf.function(lambda x: tf.cast(g16(x, training=False), tf.float32))}


def speed_variants(g, size, repeats):
    """fp32 vs XLA vs bf16 inference seconds of generator `g` on a size x size input."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).random((1, size, size, 3)).astype("float32"))
    out = {}
    for label, fn in _variants(g).items():
        try:
            out[label] = best_seconds(lambda: fn(x).numpy(), repeats)
        except Exception as e:  # e.g. an op without an XLA kernel: report it.
            out[label] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    for label in ("xla", "bf16"):
        if isinstance(out[label], float):
            out[f"{label}_speedup"] = out["fp32"] / out[label]
    return out


def quality_variants(repeats):
    """bf16 (and XLA) inference vs fp32 of the shipped default model on the held-back photos: PSNR-Y and time."""
    import numpy as np
    import tensorflow as tf

    import sr_keras
    from sr_keras.evaluate import metrics, protocol
    from sr_keras.savedmodel import layout, reader

    try:
        path = sr_keras.resolve_model_path(None)
    except layout.ModelNotFoundError:
        return {"skipped": "no default model shipped; quality comparison needs a trained model"}
    g, _ = reader.generator_from_saved_model(path)
    images, _ = protocol.load_images("sample", 4)
    out = {}
    for label, fn in _variants(g).items():
        try:
            psnrs, secs = [], 0.0
            for img in images:
                x = tf.constant(img.lr[None].astype("float32") / 255.0)
                secs += best_seconds(lambda: fn(x).numpy(), repeats)
                sr = np.clip(np.round(fn(x).numpy()[0] * 255), 0, 255).astype(np.uint8)
                psnrs.append(metrics.score(img.hr, sr, 4)["psnr_y"])
            out[label] = {"seconds": secs, "psnr_y": float(np.mean(psnrs))}
        except Exception as e:
            out[label] = {"failed": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    for label in ("xla", "bf16"):
        if "seconds" in out[label]:
            out[label]["speedup_vs_fp32"] = out["fp32"]["seconds"] / out[label]["seconds"]
            out[label]["psnr_delta_db"] = out[label]["psnr_y"] - out["fp32"]["psnr_y"]
            out[label]["faster_within_0.05db"] = (out[label]["speedup_vs_fp32"] > 1.0
                                                  and abs(out[label]["psnr_delta_db"]) <= 0.05)
    return out


def main(argv):
    del argv
    if _RSS_CHILD.value:
        return _rss_child(_RSS_CHILD.value)
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from sr_keras.infer import enhancer
    from sr_keras.models.srgan import build_srgan_generator
    from sr_keras.savedmodel import writer

    reps = _REPEATS.value
    results = {"matmul_fp32_gflops": matmul_gflops()}
    g = build_srgan_generator()
    with tempfile.TemporaryDirectory() as tmp:
        version = writer.export(g, {"model": "srgan", "scale": 4}, tmp, "srgan16")
        m = enhancer.Enhancer(version)
        sig = tf.saved_model.load(version).signatures["enhance"]
        for size in (int(v) for v in _SIZES.value):
            img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
            out_mp = (4 * size) ** 2 / 1e6
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            small = size <= 128  # Big inputs: signatures are traced already; one timed call each is enough.
            r = reps if small else 1
            api = best_seconds(lambda: m.enhance(img, tile=0), r, small)
            api_tiled = best_seconds(lambda: m.enhance(img), r, small)
            saved = best_seconds(lambda: sig(lr_image=tf.constant(img[None]))["sr_image"].numpy(), r, small)
            rest = rest_seconds(os.path.dirname(version), buf.getvalue(), r)
            flops = conv_flops(g, size, size)
            results[f"{size}x{size}"] = {
                "output_mp": out_mp, "api_mp_per_s": out_mp / api, "api_default_tiling_mp_per_s": out_mp / api_tiled,
                "savedmodel_mp_per_s": out_mp / saved, "rest_mp_per_s": out_mp / rest,
                "rest_over_savedmodel_time": rest / saved, "api_over_savedmodel_time": api / saved,
                "gflop": flops / 1e9, "savedmodel_gflops": flops / saved / 1e9,
                "savedmodel_fraction_of_matmul": flops / saved / 1e9 / results["matmul_fp32_gflops"]}
            print(size, json.dumps(results[f"{size}x{size}"]), flush=True)
        results["time_breakdown_128"] = time_breakdown(g, 128, reps)
        results["srgan16_variants_128"] = speed_variants(g, 128, reps)
        print("variants", json.dumps(results["srgan16_variants_128"], default=float), flush=True)
        key = "tiled_%sx%s" % (_BIG.value[1], _BIG.value[0])
        results[key] = peak_rss_child(os.path.dirname(version), _BIG.value)
        print(key, json.dumps(results[key]), flush=True)
    results["xla_bf16_quality"] = quality_variants(reps)
    write_results(_OUT.value, results)


if __name__ == "__main__":
    sys.exit(app.run(main))
