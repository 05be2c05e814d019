"""Ships a trained run as the package's default model (`make default-model` runs this with --reproduce).

  python -m sr_keras.cli.make_default_model --workdir=runs/photo_x4_ms
  python -m sr_keras.cli.make_default_model --reproduce      # the whole recipe first (hours on a CPU)
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "The finished training run to ship (default: the recipe's last).")
_EVAL_OUT = flags.DEFINE_string("eval_out", "eval/default_model", "Where the evaluation files go.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the model folder goes (default: the package's "
                               "sr_keras/default_model). Replaced only when everything succeeded.")
_TEST_IMAGES = flags.DEFINE_list("test_images", ["tfrecords/free_photos/test", "tfrecords/free_photos/test_libs"],
                                 "More held-out sets (folders sr-fetch-photos fills); each present one is reported "
                                 "on the card.")
_REPRODUCE = flags.DEFINE_bool("reproduce", False, "Run the recipe (model_card.RECIPE: fetch, build, train) first.")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.release import model_card
    from sr_keras.savedmodel import layout
    from sr_keras.train import run_dir

    if _REPRODUCE.value:
        model_card.reproduce()
    try:
        card = model_card.make_default_model(_WORKDIR.value or model_card.RECIPE_WORKDIR, _EVAL_OUT.value,
                                             _OUT_DIR.value, _TEST_IMAGES.value)
    except (layout.ExportError, run_dir.RunError) as e:
        fail(str(e))
    with open(card) as f:
        print(f.read())
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
