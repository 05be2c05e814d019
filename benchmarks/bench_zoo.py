"""The zoo's SPAN in Keras/TensorFlow against the original run by ncnn, on this machine, in one run.

  python benchmarks/bench_zoo.py                       # span_x4 (52 channels), fp32, all variants
  python benchmarks/bench_zoo.py --quick               # small sizes, one repeat (checks that it runs)

Seconds per output megapixel (median of --repeats) at 128x128 and 512x512 inputs (one call each, untiled) and for a
2000x1500 input (8000x6000 out), tiled (both sides run the same tiles, `tiling.tiled_bands`, at sr_keras' default
tile side; sr_keras.load's variants with the export's float32 overlap, the others with their own probe's) and whole
(one call: the tiling overhead is tiled over whole). TensorFlow variants:
  graph        the Keras model in a tf.function (what a SavedModel signature runs), oneDNN on (TF's default)
  saved_model  sr_keras.load(): the exported SavedModel's tile function
  xla          the same tf.function with jit_compile=True
  onednn_off   `graph` in a process with TF_ENABLE_ONEDNN_OPTS=0
  bfloat16     `graph` under mixed_bfloat16, everything in bf16 (loses up to 0.28 dB: for comparison only)
  api_bf16     sr_keras.load(precision="bfloat16"): the shipped policy (convolutions of the body in bf16, the rest
               in float32; `models.precision.inference_copy`), what precision="auto" picks on CPUs with native bf16
Each variant's share of peak is its convolutions' FLOP rate over the dense matmul rate in its own precision
(float32, or bfloat16 for bfloat16 and api_bf16), both measured in this run.
ncnn runs with the ncnn package on the CPU in float32 (fp16/bf16 storage and arithmetic off), all cores.
"""

import json
import os
import subprocess
import sys

from _common import interleaved_seconds, median_seconds
from absl import app, flags

from sr_keras.image.limits import DEFAULT_TILE

_MODEL = flags.DEFINE_string("model", "span_x4", "A SPAN zoo model.")
_OUT = flags.DEFINE_string("out", "benchmarks/out/zoo.json", "Where to write the figures.")
_SIZES = flags.DEFINE_list("sizes", ["128", "512"], "Square input sides, one untiled call each.")
_BIG = flags.DEFINE_string("big", "2000x1500", "WxH of the tiled input.")
_TILE = flags.DEFINE_integer("tile", DEFAULT_TILE, "Tile side of the tiled input (sr_keras' default).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per case (the median is reported).")
_QUICK = flags.DEFINE_bool("quick", False, "Small sizes and one repeat.")
_VARIANTS = flags.DEFINE_list("variants", ["ncnn", "graph", "saved_model", "api_bf16", "xla", "onednn_off",
                                            "bfloat16"],
                              "What to time.")
_PRECISION = {"api_bf16": "bfloat16", "bfloat16": "bfloat16"}  # Whose peak each variant is measured against.
_CHILD = flags.DEFINE_bool("child", False, "Internal: time the given variants in this process only.")


def _timed(fn, x, repeats):
    # Warmed up: graph tracing, XLA compilation, ncnn's first-run allocations.
    return median_seconds(lambda: fn(x), repeats, warmup=True)


def _runners(variant, name):
    """variant -> (untiled fn on float32 [H, W, 3], tiled fn on float32 [H, W, 3])."""
    import numpy as np
    import tensorflow as tf

    import sr_keras
    from sr_keras.image import tiling
    from sr_keras.zoo import cache as zoo_cache

    overlap = None  # This variant's own probe (below), unless sr_keras.load's.
    if variant == "ncnn":
        from sr_keras.zoo.reference import NcnnModel

        model = NcnnModel(name)
        scale = model.scale
        call = model
    elif variant in ("saved_model", "api_bf16"):
        enhancer = sr_keras.load(name, tile=0, precision="bfloat16" if variant == "api_bf16" else "float32")
        scale = enhancer.scale

        def call(x):
            return enhancer._fn(tf.constant(x[None]))[0].numpy()
        overlap = enhancer.default_overlap()  # The export's float32 probe, as sr_keras.load's tiles use.
    else:
        generator, meta = zoo_cache.keras_generator(name)
        scale = meta["scale"]
        if variant == "bfloat16":
            from sr_keras.models.precision import with_policy

            generator = with_policy(generator, "mixed_bfloat16")
        fn = tf.function(lambda x: tf.cast(generator(x, training=False), tf.float32),
                         jit_compile=variant == "xla", reduce_retracing=variant != "xla")

        def call(x):
            return fn(tf.constant(x[None]))[0].numpy()
    if overlap is None:
        overlap = tiling.default_overlap(tiling.measure_receptive_field(lambda x: call(np.asarray(x[0]))[None],
                                                                        scale))

    def tiled(x):
        for band in tiling.tiled_bands(call, x, scale, _TILE.value, overlap):
            del band
    return call, tiled, scale, overlap


def time_variants(variants, name, sizes, big, repeats):
    import numpy as np

    rng = np.random.default_rng(0)
    from sr_keras.evaluate import protocol

    photo = protocol.load_images("sample", 4)[0][2].hr.astype(np.float32) / 255.0  # Real content, not noise.
    results = {}
    for variant in variants:
        call, tiled, scale, overlap = _runners(variant, name)
        row = {}
        for side in sizes:
            x = np.ascontiguousarray(np.resize(photo, (side, side, 3)))
            row[f"{side}x{side}"] = _timed(call, x, repeats) / (side * side * scale * scale / 1e6)
        w, h = big
        x = np.clip(rng.normal(0.5, 0.2, (h, w, 3)), 0, 1).astype(np.float32)
        ph, pw = min(h, photo.shape[0]), min(w, photo.shape[1])
        x[:ph, :pw] = photo[:ph, :pw]
        tiled_s, whole_s = interleaved_seconds([lambda: tiled(x), lambda: call(x)], repeats)
        row[f"{w}x{h} tiled"] = tiled_s / (w * h * scale * scale / 1e6)
        row[f"{w}x{h} whole"] = whole_s / (w * h * scale * scale / 1e6)
        row["overlap"] = overlap
        results[variant] = row
        print(variant, json.dumps(row), flush=True)
    return results


def main(argv):
    del argv
    sizes = [64] if _QUICK.value else [int(s) for s in _SIZES.value]
    big = (300, 200) if _QUICK.value else tuple(int(v) for v in _BIG.value.split("x"))
    repeats = 1 if _QUICK.value else _REPEATS.value
    here = [v for v in _VARIANTS.value if v != "onednn_off"]
    if _CHILD.value:
        print("CHILD" + json.dumps(time_variants(["graph"], _MODEL.value, sizes, big, repeats)))
        return
    results = time_variants(here, _MODEL.value, sizes, big, repeats)
    if "onednn_off" in _VARIANTS.value:
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, __file__, "--child", f"--model={_MODEL.value}",
                              f"--sizes={','.join(map(str, sizes))}", f"--big={big[0]}x{big[1]}",
                              f"--repeats={repeats}", f"--tile={_TILE.value}"],
                             env=env, capture_output=True, text=True, check=True).stdout
        results["onednn_off"] = json.loads(out.split("CHILD", 1)[1])["graph"]
    cases = [k for k in results.get("ncnn", {}) if k != "overlap"]
    speed = {v: {c: results["ncnn"][c] / r[c] for c in cases} for v, r in results.items() if "ncnn" in results}
    from _common import conv_flops, matmul_gflops

    from sr_keras.zoo import cache as zoo_cache

    generator, meta = zoo_cache.keras_generator(_MODEL.value)
    gflop_per_mp = conv_flops(generator, 100, 100) / (100 * 100 * meta["scale"] ** 2) * 1e6 / 1e9
    peaks = {"float32": matmul_gflops(), "bfloat16": matmul_gflops(dtype="bfloat16")}
    share = {v: {c: gflop_per_mp / r[c] / peaks[_PRECISION.get(v, "float32")] for c in r if c != "overlap"}
             for v, r in results.items() if v != "ncnn"}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?") if os.path.exists("/proc/cpuinfo") else "?"
    report = {"model": _MODEL.value, "unit": "seconds per output megapixel (lower is better)",
              "speed_vs_ncnn": "ncnn seconds / variant seconds (1.0 = as fast as ncnn; target >= 0.8 for fp32)",
              "cpu": cpu, "cores": os.cpu_count(), "results": results, "speed_relative_to_ncnn": speed,
              "conv_gflop_per_output_mp": gflop_per_mp, "matmul_peak_gflops": peaks, "share_of_peak": share}
    from _common import write_results

    write_results(_OUT.value, report)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app.run(main)
