"""sr-export: writes a trained generator as a versioned SavedModel for TF Serving and sr_keras.load().

  sr-export --workdir=runs/srgan --model_name=srgan            # -> export/srgan/<next version>/
  sr-export --keras_model=g.keras --model_name=mine --version=7
  sr-export --model=realesrgan_x4plus                          # a zoo model (sr-models) -> export/realesrgan_x4plus/
  sr-export --model=span_x4 --format=onnx                      # -> export/span_x4_onnx/<version>/model.onnx
  sr-export --model=span_x4 --format=litert                    # -> export/span_x4_litert/<version>/model.tflite
  sr-export --model_config_file=export/models.config           # TF Serving's config for every SavedModel in export/
"""

import os
import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs
from sr_keras.image import limits  # A leaf: no TensorFlow import, --help stays fast.

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run: its latest checkpoint's EMA generator is used.")
_KERAS = flags.DEFINE_string("keras_model", None, "A .keras generator file instead of --workdir.")
_MODEL = flags.DEFINE_string("model", None, "A zoo model by name (span_x4, realesrgan_x4plus, ...: see sr-models), "
                             "converted from its original weights, or your own ncnn .param file (SPAN or RRDBNet, its "
                             ".bin beside it), instead of --workdir.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "TF Serving model base path root.")
_NAME = flags.DEFINE_string("model_name", None, "Model name (default: the model kind, e.g. srgan).")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: the next integer, from 1).")
_TILE = flags.DEFINE_integer("tile", None, "The signatures run tiles of this side (input pixels; 0: whole images), "
                             f"so memory stays bounded for any allowed input (default: {limits.MEMORY_TILE_TEXT}, "
                             "measured on the model; recorded in its metadata).")
_MAX_PIXELS = flags.DEFINE_integer("max_input_pixels", limits.DEFAULT_EXPORT_MAX_INPUT_PIXELS, "The signatures refuse requests with more input "
                                   "pixels (all instances together; 0: no limit).")
_DEFAULT_ALPHA = flags.DEFINE_float("default_alpha", None, "For a run with a GAN phase: the network-interpolation "
                                    "point of the plain signatures (0: the pixel phase's generator, 1: the GAN "
                                    "generator; default: the model's own, 1 for a run). The `_alpha` signatures "
                                    "take any alpha per request; ONNX and LiteRT hold this one point.")
_FORMAT = flags.DEFINE_enum("format", "savedmodel", ["savedmodel", "onnx", "litert"],
                            "savedmodel (TF Serving, sr_keras.load), onnx (model.onnx, for onnxruntime) or litert "
                            "(model.tflite, for phones: ai-edge-litert). ONNX and LiteRT take float32 NHWC in [0, 1] "
                            "with dynamic height and width, and are verified against the Keras model before they "
                            "are published. Default model name: <model>_<format>.")
_CONFIG = flags.DEFINE_string("model_config_file", None, "Write or update TF Serving's --model_config_file listing "
                              "every SavedModel base path under --export_dir (absolute paths; entries for other "
                              "places are kept). With no model to export, only the file is written.")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "bfloat16"], "What the SavedModel's graph computes in. bfloat16: the body's "
    "convolutions in bfloat16, element-wise ops and the edge convolutions in float32 (within about 0.02 dB PSNR-Y "
    "of float32), for TF Serving on CPUs with native bfloat16 (AVX512_BF16, AMX) or TPUs: elsewhere it is emulated, "
    "and slower. Recorded in the version's metadata.")
_INTERPOLATION = flags.DEFINE_bool("interpolation", True, "Export the network-interpolation knob when the run has a "
                                   "GAN phase (--nointerpolation: the GAN generator alone).")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.release import export_sources
    from sr_keras.savedmodel import layout, serving_config

    if _CONFIG.value and not (_WORKDIR.value or _KERAS.value or _MODEL.value):
        return _write_config(serving_config)
    try:
        path, name, meta, knob = export_sources.export(
            _EXPORT_DIR.value, _NAME.value, _VERSION.value, _TILE.value, _MAX_PIXELS.value, _DEFAULT_ALPHA.value,
            fmt=_FORMAT.value, workdir=_WORKDIR.value, keras_model=_KERAS.value, model=_MODEL.value,
            interpolation=_INTERPOLATION.value, precision=_PRECISION.value)
    except export_sources.ERRORS as e:
        fail(str(e))
    if knob:
        knob = f", network interpolation (default alpha {meta.get('interpolation', {}).get('default_alpha', 1):g})"
    elif "alpha" in meta.get("interpolation", {}):
        knob = f", alpha {meta['interpolation']['alpha']:g}"
    precision = f", {_PRECISION.value}" if _PRECISION.value != "float32" else ""
    print(f"exported {name} version {path.rsplit('/', 1)[-1]} (x{meta['scale']}{knob or ''}{precision}) to {path}")
    if _FORMAT.value != "savedmodel":
        check = layout.read_metadata(path).get("verification")
        print(f"  verified against the Keras model: at most {check['max_uint8_diff']} uint8 level(s) apart on "
              f"{', '.join(check['images'])} ({check['runtime']})" if check else
              "  not verified: the sample photos need scikit-image")
    return _write_config(serving_config) if _CONFIG.value else 0


def _write_config(serving_config) -> int:
    try:
        names = serving_config.update(_CONFIG.value, _EXPORT_DIR.value)
    except (OSError, ValueError) as e:
        fail(f"--model_config_file={_CONFIG.value}: {e}")
    print(f"wrote {_CONFIG.value}: {', '.join(names) or 'no models'} (tensorflow_model_server "
          f"--model_config_file={os.path.abspath(_CONFIG.value)})")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
