"""Ships a finished real_x4 run as the package's `sr_keras_real_x4` (`make real-model` runs this with --reproduce).

  python -m sr_keras.cli.make_real_model --workdir=runs/real_x4_gan
  python -m sr_keras.cli.make_real_model --reproduce      # the whole recipe first (about an hour on 2 CPU cores)
  python -m sr_keras.cli.make_real_model --reproduce --distill   # the distilled compact candidate
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "The finished stage-2 run to ship (its stage-1 run, "
                               "--init_checkpoint, is the alpha = 0 end); default: the recipe's (runs/real_x4_gan, or "
                               "runs/real_x4_distill_gan with --distill).")
_DISTILL = flags.DEFINE_bool("distill", False, "The distilled compact candidate (real_model.DISTILL_RECIPE).")
_EVAL_OUT = flags.DEFINE_string("eval_out", "eval/real_model", "Where the evaluation files go.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the model folder goes (default: the package's "
                               "sr_keras/real_model). Replaced only when everything succeeded.")
_ALPHA = flags.DEFINE_float("default_alpha", 0.0, "The alpha the plain signatures run at (0: the L1 stage, 1: "
                            "the GAN; real_model.DEFAULT_ALPHA).", lower_bound=0, upper_bound=1)
_REPRODUCE = flags.DEFINE_bool("reproduce", False, "Run the recipe (real_model.RECIPE: fetch, build, train, the "
                               "real-world set) first.")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.release import real_model
    from sr_keras.savedmodel import layout
    from sr_keras.train import run_dir

    if _REPRODUCE.value:
        real_model.reproduce(distill=_DISTILL.value)
    try:
        workdir = _WORKDIR.value or (real_model.DISTILL_WORKDIR if _DISTILL.value else real_model.WORKDIR)
        card = real_model.make_real_model(workdir, _EVAL_OUT.value, _OUT_DIR.value, _ALPHA.value)
    except (layout.ExportError, run_dir.RunError) as e:
        fail(str(e))
    with open(card) as f:
        print(f.read())
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
