"""bfloat16 against float32 quality, through `sr_keras.load(precision=...)`, on the varied set
(`sr_keras.evaluate.varied_set`: photos, graphics, line art, text and screenshots from what packages ship), x4 from
an antialiased bicubic LR, PSNR-Y with the scale shaved. For each image: the loss (float32's PSNR-Y minus the
other's; negative: bfloat16 scored higher) of
  - the default policy (`models.precision.inference_copy` with the layers the export's exactness check keeps in
    float32), what precision="bfloat16" runs and "auto" picks on CPUs with native bfloat16 unless the check failed;
  - the body's convolutions all in bfloat16 (the policy before the check);
  - every layer in bfloat16.
Per kind: the mean and the worst |loss|. On a CPU without native bfloat16 TensorFlow emulates it (the same numbers,
slowly).

    python benchmarks/bench_bf16.py --out=benchmarks/out/bf16.json [--models=span_x4] [--images=horse,camera]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import write_results  # noqa: E402

import sr_keras  # noqa: E402
from sr_keras.data import degradation  # noqa: E402
from sr_keras.evaluate import metrics, varied_set  # noqa: E402
from sr_keras.models.precision import inference_copy, with_policy  # noqa: E402

MODELS = ("span_x4", "realesr_general_x4v3", "sr_keras_x4", "sr_keras_real_x4")
POLICIES = ("checked", "body_bfloat16", "all_bfloat16")


def psnr(sr, hr, scale):
    return float(metrics.psnr(sr, hr, scale).numpy()[0])


def run(model, x):
    out = tf.cast(model(tf.constant(x[None] / 255.0, tf.float32)), tf.float32).numpy()[0]
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--images", default="")
    args = ap.parse_args()
    images = varied_set.load(args.images.split(",") if args.images else None)
    results = {}
    for name in args.models.split(","):
        f32 = sr_keras.load(name, tile=0, precision="float32")  # Not "auto": bfloat16 on such CPUs.
        bf16 = sr_keras.load(name, tile=0, precision="bfloat16")
        plain = with_policy(bf16._keras, "float32")
        models = {"checked": bf16._keras, "body_bfloat16": inference_copy(plain, "mixed_bfloat16"),
                  "all_bfloat16": with_policy(plain, "mixed_bfloat16")}
        s = f32.scale
        rows = {}
        for image, (kind, hr) in images.items():
            hr = degradation.crop_to_multiple(hr, s)
            lr = degradation.bicubic_downscale(hr, s)
            ref = psnr(f32.enhance(lr), hr, s)
            # The checked policy as users run it (enhance: the API's padding and rounding, like float32's); the
            # others are the bare Keras model.
            outs = {p: bf16.enhance(lr) if p == "checked" else run(m, lr) for p, m in models.items()}
            rows[image] = {"kind": kind, "float32_psnr_y": ref,
                           **{f"{p}_loss_db": ref - psnr(out, hr, s) for p, out in outs.items()}}
            print(name, image, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[image].items()},
                  flush=True)
        summary = {}
        for kind in varied_set.KINDS:
            of_kind = [r for r in rows.values() if r["kind"] == kind]
            if of_kind:
                summary[kind] = {p: {"mean_db": float(np.mean([r[f"{p}_loss_db"] for r in of_kind])),
                                     "worst_abs_db": float(max(abs(r[f"{p}_loss_db"]) for r in of_kind)),
                                     "worst_loss_db": float(max(r[f"{p}_loss_db"] for r in of_kind))}
                                 for p in POLICIES}
        check = bf16.metadata.get("exactness", {})
        results[name] = {"per_image": rows, "summary": summary, "exactness": check,
                         "auto_precision_on_native_bf16": check.get("precision")}
    write_results(args.out, results)


if __name__ == "__main__":
    main()
