"""Speed as users run it: seconds per output megapixel of `sr_keras.load(name)` at its default precision (what
`precision="auto"` picks: bfloat16 with the layers its exactness check keeps in float32, or float32 when that
check failed) against ncnn float32, at 1 thread and at all threads, for span_x4 and every zoo model ncnn can run.

Each thread count runs in its own process (TensorFlow fixes its thread pools at start), and there ncnn and Keras
are timed in turns (`interleaved_seconds`): the figure is their ratio, not either time.

    python benchmarks/bench_percore.py --out=benchmarks/out/percore.json [--models=span_x4] [--quick]
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

MODELS = ("span_x4", "realesr_general_x4v3", "realesrgan_x4plus")
SIDES = {"realesrgan_x4plus": (128,)}  # 16.7 M parameters: a smaller input keeps a repeat under a minute.


def child(name, threads, sides, repeats):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from _common import interleaved_seconds

    import sr_keras
    from sr_keras.evaluate import protocol
    from sr_keras.zoo.reference import NcnnModel

    photo = protocol.load_images("sample", 4)[0][2].hr.astype(np.float32) / 255.0
    ours = sr_keras.load(name, tile=0)  # The default precision.
    ncnn = NcnnModel(name, threads=threads)
    row = {"precision": ours.precision, "precision_note": ours.precision_note}
    for side in sides:
        x = np.ascontiguousarray(np.resize(photo, (side, side, 3)))
        xt = tf.constant(x[None])
        mp = side * side * ours.scale ** 2 / 1e6
        k, n = interleaved_seconds([lambda: ours._fn(xt).numpy(), lambda: ncnn(x)], repeats)
        row[f"{side}x{side}"] = {"sr_keras_s_per_mp": k / mp, "ncnn_s_per_mp": n / mp, "x_ncnn": n / k}
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sides", default="512,768")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", default="")  # Internal: NAME:THREADS, timed in this process.
    args = ap.parse_args()
    sides = (64,) if args.quick else tuple(int(s) for s in args.sides.split(","))
    repeats = 1 if args.quick else args.repeats
    if args.child:
        name, threads = args.child.split(":")
        print("CHILD" + json.dumps(child(name, int(threads), SIDES.get(name, sides) if not args.quick else sides,
                                         repeats)))
        return
    cores = os.cpu_count() or 1
    results = {"cores": cores, "cpu_flags": _bf16_flags(), "models": {}}
    for name in args.models.split(","):
        for threads in sorted({1, cores}):
            cmd = [sys.executable, __file__, f"--out={args.out}", f"--child={name}:{threads}",
                   f"--sides={args.sides}", f"--repeats={args.repeats}"] + (["--quick"] if args.quick else [])
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            if out.returncode:
                raise SystemExit(f"{name} at {threads} threads failed:\n{out.stderr[-2000:]}")
            row = json.loads(out.stdout.split("CHILD", 1)[1])
            results["models"].setdefault(name, {})[f"{threads}_threads"] = row
            print(name, threads, json.dumps(row), flush=True)
    from _common import write_results
    write_results(args.out, results)


def _bf16_flags():
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")})


if __name__ == "__main__":
    main()
