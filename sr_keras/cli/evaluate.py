"""sr-evaluate: scores models against bicubic on HR photos, with comparison pictures.

  sr-evaluate --images=sample --out=eval/                                   # bicubic only
  sr-evaluate --model=export/srgan --model=export/dcgan --images=photos/ --scale=4 --out=eval/
  sr-evaluate --model=default --images=tfrecords/sample_x4 --out=eval/      # the val split of a TFRecord folder

Writes <out>/results.json, <out>/results.md and <out>/comparisons/<image>.png.
"""

import copy
import os
import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_MODELS = flags.DEFINE_multi_string("model", [], "Model folder, version folder, .keras file or `default`; "
                                    "repeat for several.")
_IMAGES = flags.DEFINE_string("images", "sample", "HR images: `sample` (held-back sample photos), a TFRecord "
                              "folder (its val split), a folder, a file or a glob.")
_SCALE = flags.DEFINE_integer("scale", None, "Upscaling factor (default: the models' scale; 4 with no model).")
_OUT = flags.DEFINE_string("out", "eval", "Output folder.")
_TILE = flags.DEFINE_integer("tile", None, "Tile side for the models (default: the API's).")
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", False, "Also score each model with the geometric self-ensemble "
                              "(mean over 8 flips/rotations; 8x slower), as a row labelled `<model>+`.")


def _label(enhancer, spec: str, taken: set) -> str:
    meta = enhancer.metadata
    if spec in ("default", ""):
        label = "default"
    elif meta.get("model_name"):
        label = f"{meta['model_name']} v{meta.get('version', '?')}"
    else:
        label = os.path.basename(os.path.normpath(spec))
    while label in taken:
        label += "'"
    taken.add(label)
    return label


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras import evaluate_lib, inference

    models, taken = {}, {"bicubic"}
    for spec in _MODELS.value:
        try:
            enhancer = inference.load(None if spec == "default" else spec)
        except (inference.ModelNotFoundError, inference.SavedModelError, ValueError) as e:
            fail(str(e))
        label = _label(enhancer, spec, taken)
        models[label] = enhancer
        if _ENSEMBLE.value:
            ensemble = copy.copy(enhancer)  # Shares the loaded model.
            ensemble.self_ensemble = True
            models[label + "+"] = ensemble
    scales = sorted({m.scale for m in models.values()})
    if len(scales) > 1:
        fail(f"the models have different scales ({', '.join(f'x{s}' for s in scales)}); evaluate them separately")
    scale = _SCALE.value or (scales[0] if scales else 4)
    try:
        images, skipped = evaluate_lib.load_images(_IMAGES.value, scale)
    except (ValueError, OSError) as e:
        fail(str(e))
    for path, reason in skipped.items():
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not images:
        fail(f"--images={_IMAGES.value}: no usable image")
    try:
        results = evaluate_lib.evaluate(models, images, scale, _OUT.value, tile=_TILE.value)
    except ValueError as e:
        fail(str(e))
    print(evaluate_lib.markdown_table(results))
    print(f"\n{len(images)} images; results: {_OUT.value}/results.json, {_OUT.value}/results.md; "
          f"pictures: {_OUT.value}/comparisons/")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
