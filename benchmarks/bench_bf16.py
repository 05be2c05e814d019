"""bfloat16 against float32 quality, through `sr_keras.load(precision=...)`: PSNR-Y of each against the HR on
256 px centre crops of scikit-image's pictures (x4 from an antialiased bicubic LR), for the shipped policy
(`models.precision.inference_copy`: only the body's convolutions in bfloat16) and for everything in bfloat16.
On a CPU without native bfloat16, TensorFlow emulates it (slowly); the numbers are the same.

    python benchmarks/bench_bf16.py --out=benchmarks/out/bf16.json [--models=span_x4,sr_keras_x4]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import write_results  # noqa: E402

import sr_keras  # noqa: E402
from sr_keras.evaluate import metrics  # noqa: E402
from sr_keras.models.precision import with_policy  # noqa: E402

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
          "rocket", "brick", "grass", "gravel", "moon")
SYNTHETIC = ("colorwheel",)


def crop(name, side=256):
    a = getattr(skimage.data, name)()
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    y, x = max(0, a.shape[0] // 2 - side // 2), max(0, a.shape[1] // 2 - side // 2)
    return np.ascontiguousarray(a[y:y + side, x:x + side])


def psnr(sr, hr, scale):
    return float(metrics.psnr(sr, hr, scale).numpy()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="span_x4")
    ap.add_argument("--photos", default=",".join(PHOTOS + SYNTHETIC))
    args = ap.parse_args()
    results = {}
    for name in args.models.split(","):
        f32 = sr_keras.load(name, tile=0, precision="float32")  # Not "auto": bfloat16 on such CPUs.
        bf16 = sr_keras.load(name, tile=0, precision="bfloat16")
        naive = with_policy(bf16._keras, "mixed_bfloat16")  # Every layer in bfloat16: the old behaviour.
        s = f32.scale
        rows = {}
        for photo in args.photos.split(","):
            hr = crop(photo)
            hr = hr[:hr.shape[0] // s * s, :hr.shape[1] // s * s]
            lr = tf.image.resize(hr[None].astype(np.float32), (hr.shape[0] // s, hr.shape[1] // s), "bicubic",
                                 antialias=True)
            lr = np.clip(np.round(lr.numpy()[0]), 0, 255).astype(np.uint8)
            ref = psnr(f32.enhance(lr), hr, s)
            out = np.clip(tf.cast(naive(tf.constant(lr[None] / 255.0, tf.float32)), tf.float32).numpy()[0], 0, 1)
            rows[photo] = {"float32_psnr_y": ref, "bfloat16_db": psnr(bf16.enhance(lr), hr, s) - ref,
                           "all_bfloat16_db": psnr(np.round(out * 255).astype(np.uint8), hr, s) - ref}
            print(name, photo, {k: round(v, 4) for k, v in rows[photo].items()}, flush=True)
        photos = [r for p, r in rows.items() if p not in SYNTHETIC]
        results[name] = {"per_image": rows, "summary": {
            key: {"mean_db": float(np.mean([r[key] for r in photos])),
                  "worst_abs_db": float(max(abs(r[key]) for r in photos))}
            for key in ("bfloat16_db", "all_bfloat16_db")}}
    write_results(args.out, results)


if __name__ == "__main__":
    main()
