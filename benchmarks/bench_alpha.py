"""Network interpolation (alpha): quality at each alpha, and what the alpha input costs per request.

  python benchmarks/bench_alpha.py --model=export/demo_srgan     # after `make demo`

On the sample validation photos: PSNR-Y, SSIM-Y, colour shift and grid score at alpha 0, 0.5 and 1, for the two
ways to blend: the weights (what sr-export does: one generator pass with (1 - a) * PSNR + a * GAN weights) and the
outputs ((1 - a) * G_psnr(x) + a * G_gan(x), two passes). Cost: seconds per request of the exported `enhance_float`
signature against `enhance_float_alpha` (weights blended in the graph per request), at 128 and 512 px.
"""

import json
import os
import sys
import time

from absl import app, flags

_MODEL = flags.DEFINE_string("model", "export/demo_srgan", "An export with network interpolation.")
_OUT = flags.DEFINE_string("out", "benchmarks/out/alpha.json", "Where to write the figures.")
_SIZES = flags.DEFINE_list("sizes", ["128", "512"], "Square input sides for the cost.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per size (the median is reported).")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    import sr_keras
    from sr_keras.data.degradation import bicubic_upscale
    from sr_keras.evaluate import metrics, protocol
    from sr_keras.models.interpolation import interpolated_generator
    from sr_keras.savedmodel import reader

    path = sr_keras.resolve_model_path(_MODEL.value)
    psnr, gan = reader.interpolation_ends(path)
    images, _ = protocol.load_images("sample", 4)
    quality = {}
    for a in (0.0, 0.5, 1.0):
        blended = interpolated_generator(psnr, gan, a)
        for how in ("weights", "outputs"):
            rows = []
            for img in images:
                x = tf.constant(img.lr[None].astype("float32") / 255.0)
                if how == "weights":
                    y = blended(x, training=False)
                else:
                    y = (1 - a) * psnr(x, training=False) + a * gan(x, training=False)
                sr = metrics.to_uint8(y[0])
                bic = bicubic_upscale(img.lr, 4)
                rows.append({**metrics.score(img.hr, sr, 4), **metrics.artefacts(img.hr, sr, bic, 4)})
            quality[f"{how} alpha={a:g}"] = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_y", "ssim_y", "grid")}
            # As sr-evaluate: the largest channel of the mean shift over the photos.
            quality[f"{how} alpha={a:g}"]["colour_shift"] = float(
                np.abs(np.mean([r["colour_shift_rgb"] for r in rows], axis=0)).max())
            print(how, a, json.dumps({k: round(v, 4) for k, v in quality[f"{how} alpha={a:g}"].items()}), flush=True)
    loaded = tf.saved_model.load(path)
    plain, knob = loaded.signatures["enhance_float"], loaded.signatures["enhance_float_alpha"]
    cost = {}
    for side in map(int, _SIZES.value):
        x = tf.constant(np.random.default_rng(0).random((1, side, side, 3)).astype("float32"))
        times = {}
        for name, call in (("plain", lambda: plain(lr_image=x)), ("alpha", lambda: knob(lr_image=x, alpha=[0.5]))):
            call()  # Warm-up.
            runs = []
            for _ in range(_REPEATS.value):
                start = time.perf_counter()
                call()["sr_image"].numpy()
                runs.append(time.perf_counter() - start)
            times[name] = float(np.median(runs))
        cost[f"{side}px"] = {**times, "alpha_over_plain": times["alpha"] / times["plain"]}
        print(side, json.dumps(cost[f"{side}px"]), flush=True)
    results = {"model": path, "quality": quality, "cost_seconds": cost, "cpu_count": os.cpu_count(),
               "tensorflow": tf.__version__}
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value, "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
