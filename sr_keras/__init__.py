"""sr_keras: super-resolution GANs (SRGAN and a DCGAN variant) in TensorFlow / Keras 3.

    import sr_keras
    model = sr_keras.load("span_x4")          # a zoo name, a model folder, a version folder, a .keras file, or
    big = model.enhance(image)                # nothing (the best model this install has); numpy or PIL in and out

The walk of `load` is one-way: a zoo name becomes a model folder (`zoo.cache.ensure`, which converts on first use),
the folder a version (`savedmodel.layout.resolve`, which only reads), the version an `inference.Enhancer`.
"""

import os
from typing import Optional

from sr_keras.limits import DEFAULT_MAX_INPUT_PIXELS
from sr_keras.quiet import quiet_import
from sr_keras.version import __version__  # noqa: F401 - the package's version.


def resolve_model_path(path: Optional[str] = None) -> str:
    """A model name, folder or file -> the version folder (or .keras file) to load. A user's ncnn `.param`/`.bin`
    pair is converted into the cache first (`zoo.user_ncnn`).

    None, "" or "default" -> the best model this install has; a zoo name (`sr_keras.zoo.NAMES`) -> its cache
    folder, converted on first use, unless a file or folder of that name exists here; a model folder -> its latest
    complete version; a version folder or .keras file -> itself.

    Raises:
      ModelNotFoundError: nothing usable there (the message says what was expected, or what to install).
    """
    quiet_import()
    # Here, not at the top: `import sr_keras` stays light (the zoo's cache imports TensorFlow).
    from sr_keras import zoo
    from sr_keras.savedmodel import layout
    from sr_keras.zoo import cache as zoo_cache
    from sr_keras.zoo import user_ncnn

    if path in (None, "", "default"):
        path = zoo_cache.default_name()
    if not os.path.exists(path) and zoo.match_name(path):  # Names match case-insensitively.
        path = zoo_cache.ensure(zoo.match_name(path))
    elif user_ncnn.is_ncnn_path(path):  # A user's own ncnn pair: converted with the zoo's checks, cached.
        try:
            path = user_ncnn.ensure(path)
        except user_ncnn.ncnn.NcnnFormatError as e:
            raise layout.SavedModelError(str(e)) from None
    try:
        return layout.resolve(path)
    except layout.ModelNotFoundError:
        if not os.path.exists(path) and os.sep not in path and not path.endswith(".keras"):
            raise layout.ModelNotFoundError(f"{path}: not a model folder, file or name{zoo.did_you_mean(path)}; "
                                            f"the names are {', '.join(zoo.NAMES)} (sr-models lists them)") from None
        raise


def load(path: Optional[str] = None, tile: Optional[int] = None, tile_overlap: Optional[int] = None,
         precision: str = "auto", self_ensemble: bool = False,
         max_input_pixels: Optional[int] = DEFAULT_MAX_INPUT_PIXELS):
    """Loads a model for `enhance()`.

    Args:
      path: a zoo name (`span_x4`, ...: sr-models), a model folder (its latest version), a version folder, a
        `.keras` file, or None for the best model this install has.
      tile: core tile side in input pixels (0: whole images at once); None: the largest up to DEFAULT_TILE that
        the model's memory allows (`Enhancer.default_tile`: 512 for span_x4, 352 for realesrgan_x4plus).
      tile_overlap: context around each tile; None: the model's measured receptive field (no seams).
      precision: auto (the default): bfloat16 on a CPU with native bfloat16 (AVX512_BF16 or AMX), where it is
        the fastest and stays within about 0.02 dB PSNR-Y of float32, else float32 (and float32 for a model that
        cannot be rebuilt in bfloat16, such as an ONNX file); or float32, bfloat16 / float16 explicitly
        (`inference.PRECISIONS`).
      self_ensemble: average the outputs for the 8 flips/rotations of the input (8x slower, slightly better PSNR).
      max_input_pixels: larger inputs raise `ImageTooLargeError` before any work (None or 0: no limit).

    Returns:
      An `inference.Enhancer`.
    """
    quiet_import()
    # Here, not at the top: TensorFlow is imported when a model is loaded, not with the package (quietly).
    from sr_keras import inference

    return inference.Enhancer(resolve_model_path(path), tile=tile, tile_overlap=tile_overlap, precision=precision,
                              self_ensemble=self_ensemble, max_input_pixels=max_input_pixels)
