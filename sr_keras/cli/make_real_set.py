"""sr-make-real-set: builds the real-world paired test set (held-out photos that packages ship, degraded once with
Real-ESRGAN's second-order model from a fixed seed; sr_keras/data/real_set.py).

  sr-fetch-photos --out_dir=tfrecords/free_photos          # optional: adds its test_libs photos
  sr-make-real-set --out=eval/real_set
  sr-evaluate --images=eval/real_set/hr --lr_images=eval/real_set/lr --metrics=psnr,ssim,lpips,niqe \
      --model=span_x4,sr_keras_real_x4 --alpha=0,0.5,1 --out=eval/real
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail

_OUT = flags.DEFINE_string("out", "eval/real_set", "Where hr/ and lr/ go.")
_PHOTOS = flags.DEFINE_string("photos", "tfrecords/free_photos/test_libs", "A folder of extra held-out photos "
                              "(sr-fetch-photos's test_libs); skipped when it does not exist.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the degradations (image i uses (seed, i)).")
_CROP = flags.DEFINE_integer("crop", 384, "HR centre crop side (rounded down to a multiple of the scale).",
                             lower_bound=16)
_SCALE = flags.DEFINE_enum("scale", "4", ["2", "4"], "Downscaling factor.")


def main(argv):
    del argv
    cli_utils.quiet_tf_logs()
    from sr_keras.data import real_set, sources

    try:
        stems = real_set.build(_OUT.value, _PHOTOS.value, _SEED.value, _CROP.value, int(_SCALE.value))
    except (sources.SourceError, OSError) as e:
        fail(str(e))
    print(f"{len(stems)} pairs in {_OUT.value}/hr and {_OUT.value}/lr: {', '.join(stems)}")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
