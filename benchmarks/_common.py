"""Shared by the benchmark scripts."""

import json
import os


def write_results(path: str, results: dict) -> None:
    """Writes the figures as JSON to `path` (creating its folder) and prints them."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(json.dumps(results, indent=2, default=float))


def conv_flops(model, h, w):
    """Multiply-adds x 2 of every conv in `model` for an h x w input (shapes measured on the model itself)."""
    import keras
    import numpy as np

    convs = [lyr for lyr in model.layers if isinstance(lyr, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    probe = keras.Model(model.input, [c.output for c in convs])
    outs = probe(np.zeros((1, 8, 8, 3), "float32"), training=False)
    total = 0
    for c, o in zip(convs, outs):
        k = c.kernel.shape
        pixels = (o.shape[1] / 8 * h) * (o.shape[2] / 8 * w)
        total += 2 * pixels * k[0] * k[1] * k[2] * k[3]
    return total


def matmul_gflops(n=2048, repeats=5, dtype="float32"):
    """The machine's dense matmul rate in `dtype` (float32 or bfloat16), best of `repeats`: the reference "peak"."""
    import time

    import tensorflow as tf

    a = tf.cast(tf.random.uniform([n, n]), dtype)
    b = tf.cast(tf.random.uniform([n, n]), dtype)
    f = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    f().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def median_seconds(fn, repeats, warmup=False):
    """The median wall time of `repeats` calls of `fn()` (after one untimed call when `warmup`)."""
    return interleaved_seconds([fn], repeats, warmup)[0]


def interleaved_seconds(fns, repeats, warmup=True):
    """The median wall time of each of `fns` (zero-argument calls), each called once untimed first when `warmup`,
    timed in turns so that a busy spell of a shared machine falls on all of them alike (their ratios are the
    figures)."""
    import statistics
    import time

    for fn in fns if warmup else ():
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]
