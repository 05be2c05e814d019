"""sr-export: writes a trained generator as a versioned SavedModel for TF Serving and sr_keras.load().

  sr-export --workdir=runs/srgan --model_name=srgan            # -> export/srgan/<next version>/
  sr-export --keras_model=g.keras --model_name=mine --version=7
  sr-export --model=realesrgan_x4plus                          # a zoo model (sr-models) -> export/realesrgan_x4plus/
"""

import sys

from absl import flags

from sr_keras import limits  # A leaf: no TensorFlow import, --help stays fast.
from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run: its latest checkpoint's EMA generator is used.")
_KERAS = flags.DEFINE_string("keras_model", None, "A .keras generator file instead of --workdir.")
_MODEL = flags.DEFINE_string("model", None, "A zoo model by name (span_x4, realesrgan_x4plus, ...: see sr-models), "
                             "converted from its original weights, instead of --workdir.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "TF Serving model base path root.")
_NAME = flags.DEFINE_string("model_name", None, "Model name (default: the model kind, e.g. srgan).")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: the next integer, from 1).")
_TILE = flags.DEFINE_integer("tile", limits.DEFAULT_TILE, "The signatures run tiles of this side (input pixels; 0: whole images), "
                             "so memory stays bounded for any allowed input.")
_MAX_PIXELS = flags.DEFINE_integer("max_input_pixels", limits.DEFAULT_EXPORT_MAX_INPUT_PIXELS, "The signatures refuse requests with more input "
                                   "pixels (all instances together; 0: no limit).")
_DEFAULT_ALPHA = flags.DEFINE_float("default_alpha", 1.0, "For a run with a GAN phase: the network-interpolation "
                                    "point of the plain signatures (0: the pixel phase's generator, 1: the GAN "
                                    "generator). The `_alpha` signatures take any alpha per request.")
_INTERPOLATION = flags.DEFINE_bool("interpolation", True, "Export the network-interpolation knob when the run has a "
                                   "GAN phase (--nointerpolation: the GAN generator alone).")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras import export_sources

    try:
        path, name, meta, knob = export_sources.export(
            _EXPORT_DIR.value, _NAME.value, _VERSION.value, _TILE.value, _MAX_PIXELS.value, _DEFAULT_ALPHA.value,
            workdir=_WORKDIR.value, keras_model=_KERAS.value, model=_MODEL.value, interpolation=_INTERPOLATION.value)
    except export_sources.ERRORS as e:
        fail(str(e))
    knob = f", network interpolation (default alpha {_DEFAULT_ALPHA.value:g})" if knob else ""
    print(f"exported {name} version {path.rsplit('/', 1)[-1]} (x{meta['scale']}{knob}) to {path}")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
