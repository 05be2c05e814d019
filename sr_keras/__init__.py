"""sr_keras: super-resolution GANs (SRGAN and a DCGAN variant) in TensorFlow / Keras 3.

    import sr_keras
    model = sr_keras.load("span_x4")          # a zoo name, a model folder, a version folder, a .keras file, or
    big = model.enhance(image)                # nothing (the best model this install has); numpy or PIL in and out

The walk of `load` is one-way: a zoo name becomes a model folder (`zoo.cache.ensure`, which converts on first use),
the folder a version (`savedmodel.layout.resolve`, which only reads), the version an `enhancer.Enhancer`.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Optional

from sr_keras.image.limits import DEFAULT_MAX_INPUT_PIXELS
from sr_keras.utils.quiet import quiet_import
from sr_keras.version import __version__  # noqa: F401 - the package's version.


def resolve_model_path(path: Optional[str] = None) -> str:
    """A model name, folder or file -> the version folder (or file) to load: `sr_keras.infer.resolve.resolve`."""
    # Light: it imports the zoo (and TensorFlow) only when called.
    from sr_keras.infer import resolve

    return resolve.resolve(path)


def load(path=None, tile: Optional[int] = None, tile_overlap: Optional[int] = None,
         precision: str = "auto", self_ensemble: bool = False,
         max_input_pixels: Optional[int] = DEFAULT_MAX_INPUT_PIXELS):
    """Loads a model for `enhance()`.

    Args:
      path: a zoo name (`span_x4`, ...: sr-models), a model folder (its latest version), a version folder, a
        `.keras` file, or None for the best model this install has (or a `sr_keras.infer.resolve.Reference`).
      tile: core tile side in input pixels (0: whole images at once); None: the largest up to DEFAULT_TILE that
        the model's memory allows (`Enhancer.default_tile`: 512 for span_x4, 352 for realesrgan_x4plus).
      tile_overlap: context around each tile; None: the model's measured receptive field (no seams).
      precision: auto (the default): bfloat16 on a CPU with native bfloat16 (AVX512_BF16 or AMX), where it is
        the fastest and stays within about 0.02 dB PSNR-Y of float32, else float32 (and float32 for a model that
        cannot be rebuilt in bfloat16, such as an ONNX file); or float32, bfloat16 / float16 explicitly
        (`enhancer.PRECISIONS`).
      self_ensemble: average the outputs for the 8 flips/rotations of the input (8x slower, slightly better PSNR).
      max_input_pixels: larger inputs raise `ImageTooLargeError` before any work (None or 0: no limit).

    Returns:
      An `enhancer.Enhancer`.
    """
    quiet_import()
    # Here, not at the top: TensorFlow is imported when a model is loaded, not with the package (quietly).
    from sr_keras.infer import enhancer

    return enhancer.load(path, tile=tile, tile_overlap=tile_overlap, precision=precision,
                         self_ensemble=self_ensemble, max_input_pixels=max_input_pixels)

    return enhancer.Enhancer(resolve_model_path(path), tile=tile, tile_overlap=tile_overlap, precision=precision,
                              self_ensemble=self_ensemble, max_input_pixels=max_input_pixels)


# Modules that moved into folders by concern in 0.2 (old dotted name -> new). Their old paths keep working for one
# release, with a DeprecationWarning: the old name is the new module itself, not a copy.
MOVED = {f"sr_keras.{old}": f"sr_keras.{new}" for old, new in {
    "config": "train.config", "train_lib": "train.loop", "train_state": "train.state", "trainer": "train.step",
    "losses": "train.losses", "validation": "train.validation", "run_dir": "train.run_dir",
    "checkpoints": "train.checkpoints", "distribute": "train.distribute", "curves": "train.curves",
    "evaluate_lib": "evaluate.protocol", "evaluate_report": "evaluate.report", "metrics": "evaluate.metrics",
    "perceptual_metrics": "evaluate.perceptual", "lossnets": "models.lossnets", "inference": "infer.enhancer",
    "portable_runtime": "savedmodel.portable_runtime", "signatures": "savedmodel.signatures", "enhance_lib": "enhance.files",
    "enhance_output": "enhance.output", "beam_enhance": "enhance.beam", "beam_options": "utils.beam_options",
    "imageio": "image.imageio", "png_writer": "image.png_writer", "tiling": "image.tiling",
    "limits": "image.limits", "safe_files": "utils.safe_files", "progress": "utils.progress",
    "quiet": "utils.quiet", "export_sources": "release.export_sources", "model_card": "release.model_card",
    "model_card_text": "release.card_text", "real_model": "release.real_model", "demo": "release.demo",
}.items()}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module's old name as its new module, with a DeprecationWarning."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # The new module ran when it was imported.


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
