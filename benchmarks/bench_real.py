"""The README's perception-distortion table on the real-world set (`make real-bench`).

Builds the seeded real-world set (sr-make-real-set: held-out photos that packages ship, Real-ESRGAN's second-order
degradation) if it is missing, then scores bicubic, span_x4, sr_keras_x4, realesrgan_x4plus and sr_keras_real_x4
at alpha 0, 0.5 and 1 with sr-evaluate's code: PSNR-Y, SSIM-Y, LPIPS, NIQE, colour shift, grid and s/MP. Every
model runs in this one process, one after the other, so the timings are comparable within the run.

    python benchmarks/bench_real.py [--out=benchmarks/out/real] [--models=span_x4,...] [--picture=docs/real_world.png]
"""

import argparse
import os
import shutil

from sr_keras import load
from sr_keras.data import real_set
from sr_keras.evaluate import protocol, report

MODELS = ("span_x4", "sr_keras_x4", "realesrgan_x4plus", "sr_keras_real_x4")
ALPHAS = (0.0, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out/real")
    parser.add_argument("--real_set", default="eval/real_set")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--picture", default="", help="copy this image's comparison grid here (e.g. "
                        "docs/real_world.png)")
    parser.add_argument("--picture_image", default="sklearn_flower")
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.real_set, "hr")):
        real_set.build(args.real_set)
    images, _ = protocol.load_images(os.path.join(args.real_set, "hr"), 4,
                                         lr_images=os.path.join(args.real_set, "lr"))
    rows, taken = {}, {"bicubic"}
    for name in args.models.split(","):
        enhancer = load(name)
        label = protocol.model_label(enhancer, name, taken)
        rows.update(protocol.alpha_rows(label, enhancer, list(ALPHAS)))
    results = protocol.evaluate(rows, images, 4, args.out, which=("lpips", "niqe"), lr_given=True)
    print(report.markdown_table(results))
    print(f"\n{len(images)} images of {args.real_set}; {args.out}/results.md, {args.out}/comparisons/")
    if args.picture:
        shutil.copyfile(os.path.join(args.out, "comparisons", f"{args.picture_image}.png"), args.picture)
        print(f"picture: {args.picture}")


if __name__ == "__main__":
    main()
