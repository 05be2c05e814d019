"""Data benchmarks (not tests): builder images/s with 1 worker vs all cores, and reader crops/s.

    .venv/bin/python benchmarks/bench_data.py [--out=benchmarks/out/data.json]

Both builds run in this one process, alternating, so machine noise hits both alike; compare the ratio.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import write_results  # noqa: E402
from absl import app, flags  # noqa: E402

_OUT = flags.DEFINE_string("out", "benchmarks/out/data.json", "Where to write the figures.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Builds per worker count (the best is reported).")
_BATCHES = flags.DEFINE_integer("batches", 60, "Reader batches timed.")


def bench_build(repeats: int) -> dict:
    from sr_keras.data import builder

    cores = os.cpu_count() or 1
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for workers in (1, cores):
                cfg = builder.BuildConfig(source="sample", out_dir=os.path.join(tmp, f"w{workers}"),
                                          workers=workers, verbose=False)
                start = time.perf_counter()
                m = builder.build_tfrecords(cfg)
                seconds = time.perf_counter() - start
                n = sum(m.counts.values())
                best[workers] = max(best.get(workers, 0.0), n / seconds)
    return {"images": n, "cores": cores, "images_per_s_1_worker": round(best[1], 2),
            f"images_per_s_{cores}_workers": round(best[cores], 2),
            "speedup": round(best[cores] / best[1], 2)}


def bench_reader(batches: int) -> dict:
    import tensorflow as tf

    from sr_keras.data import builder, pipeline

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        builder.build_tfrecords(builder.BuildConfig(source="sample", out_dir=tmp, verbose=False))
        for label, kwargs in (("decode_every_crop", {}), ("cache", {"cache": True}),
                              ("4_crops_per_decode", {"crops_per_image": 4})):
            ds = pipeline.train_dataset(tmp, hr_crop=96, batch_size=16, **kwargs)
            it = iter(ds)
            for _ in range(5):  # Warm-up: fills caches, shuffle buffers and autotuning.
                next(it)
            start = time.perf_counter()
            for _ in range(batches):
                lr, hr = next(it)
            tf.debugging.assert_equal(tf.shape(hr), [16, 96, 96, 3])
            out[f"crops_per_s_{label}"] = round(batches * 16 / (time.perf_counter() - start), 1)
    return out


def main(argv):
    del argv
    results = {"build": bench_build(_REPEATS.value), "reader_96px_batch16": bench_reader(_BATCHES.value)}
    write_results(_OUT.value, results)


if __name__ == "__main__":
    sys.exit(app.run(main))
