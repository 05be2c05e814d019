"""Rebuilding Keras generators from what sr-export wrote: a SavedModel's recorded architecture and variables,
or a `.keras` file."""

from __future__ import annotations

import json
import os
import re
import zipfile

import keras
import numpy as np
import tensorflow as tf

from sr_keras import models
from sr_keras.models import build  # noqa: F401 - registers every layer class a .keras file may name.
from sr_keras.image.tiling import ScaleError, measure_scale
from sr_keras.models import config as config_lib
from sr_keras.savedmodel.layout import (
    METADATA_FILE,
    ModelNotFoundError,
    SavedModelError,
    read_metadata,
)

MAX_KERAS_CONFIG_BYTES = 8 << 20  # A generator's config.json is kilobytes; a bigger one (a zip bomb) is not read.
_WEIGHT_LAYERS = {"Conv2D": ("filters", "kernel_size"), "Conv2DTranspose": ("filters", "kernel_size"),
                  "DepthwiseConv2D": (None, "kernel_size"), "SeparableConv2D": ("filters", "kernel_size"),
                  "Dense": ("units", None)}


def _declared_weights(config) -> int:
    """A lower bound of the float weights a Keras config declares (each weighted layer's outputs x kernel area,
    as if it had one input channel): what building it allocates at least."""
    total = 0
    if isinstance(config, dict):
        spec = _WEIGHT_LAYERS.get(config.get("class_name"))
        inner = config.get("config") if isinstance(config.get("config"), dict) else {}
        if spec:
            width = inner.get(spec[0], 1) if spec[0] else 1
            kernel = inner.get(spec[1], 1) if spec[1] else 1
            kernel = kernel if isinstance(kernel, (list, tuple)) else [kernel]
            try:
                total += int(width) * int(np.prod([int(k) for k in kernel]))
            except (TypeError, ValueError):
                raise SavedModelError("its config gives a layer a size that is not a number") from None
        total += sum(_declared_weights(v) for v in config.values())
    elif isinstance(config, list):
        total += sum(_declared_weights(v) for v in config)
    return total


def check_keras_file(path: str) -> None:
    """Reads a `.keras` archive's config without building anything: a zip holding config.json (at most
    MAX_KERAS_CONFIG_BYTES) and model.weights.h5, no Lambda layer, no class from a module outside Keras and
    sr_keras, and no layer sizes beyond what its weights file holds (building it would take the memory first).

    Raises:
      SavedModelError: one line saying which of these the file is not.
    """
    if not zipfile.is_zipfile(path):
        raise SavedModelError("not a .keras file (a .keras model is a zip archive of config.json and "
                              "model.weights.h5)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {i.filename: i for i in archive.infolist()}
            for name in ("config.json", "model.weights.h5"):
                if name not in members:
                    raise SavedModelError(f"not a whole .keras file: it has no {name}")
            if members["config.json"].file_size > MAX_KERAS_CONFIG_BYTES:
                raise SavedModelError(f"its config.json unpacks to {members['config.json'].file_size / 1e6:.0f} MB; "
                                      "a model's config is kilobytes")
            config = json.loads(archive.read("config.json"))
            weights_bytes = members["model.weights.h5"].file_size
    except (zipfile.BadZipFile, OSError, ValueError, RecursionError) as e:
        if isinstance(e, SavedModelError):
            raise
        raise SavedModelError(f"an unreadable .keras archive ({type(e).__name__})") from None
    text = json.dumps(config)
    if '"class_name": "Lambda"' in text:
        raise SavedModelError("it holds a Lambda layer (arbitrary code), which sr_keras does not load")
    modules = set(re.findall(r'"module": "([^"]*)"', text))
    foreign = sorted(m for m in modules if m.split(".")[0] not in ("keras", "sr_keras", "builtins"))
    if foreign:
        raise SavedModelError(f"it names classes from {', '.join(foreign)}, outside Keras and sr_keras")
    try:
        declared = _declared_weights(config)
    except RecursionError:
        raise SavedModelError("its config nests deeper than any model's") from None
    if 4 * declared > 2 * weights_bytes + (16 << 20):
        raise SavedModelError(f"its layers declare at least {declared:,} weights, but its weights file holds "
                              f"{weights_bytes:,} bytes")


def load_keras(path: str) -> tuple:
    """A `.keras` generator and its metadata ({model, scale, source}); the scale is measured from the model.

    Raises:
      ModelNotFoundError: no such file. SavedModelError: not a .keras model sr_keras can load (`check_keras_file`),
        or one whose output is not an image at an integer scale (one line).
    """
    if not os.path.isfile(path):
        raise ModelNotFoundError(f"{path}: no such .keras file")
    try:
        check_keras_file(path)
    except SavedModelError as e:
        raise SavedModelError(f"{path}: {e}") from None
    try:
        generator = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for a file it cannot take; one line for all.
        raise SavedModelError(f"{path}: Keras cannot load it ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
                              ) from None
    try:
        scale = measure_scale(lambda x: generator(tf.constant(x), training=False))
    except ScaleError as e:
        raise SavedModelError(f"{path}: {e}") from None
    return generator, {"model": generator.name, "scale": scale, "source": os.path.abspath(path)}


def generator_from_saved_model(version_dir: str) -> tuple:
    """Rebuilds the Keras generator of an exported version from its recorded architecture, with the weights the
    SavedModel holds (restored by object structure, so every layer must match). A SavedModel is therefore all
    that needs shipping: the Keras model, for bf16 inference, fine-tuning or inspection, comes back from it.

    Returns:
      (generator, the version's metadata).

    Raises:
      SavedModelError: no metadata, no recorded architecture, or weights that do not fit it.
    """

    meta = read_metadata(version_dir)
    if not meta:
        raise SavedModelError(f"{version_dir} has no {METADATA_FILE}: it was not exported by sr-export")
    if "architecture" not in meta:
        raise SavedModelError(f"{version_dir} records no architecture (it was exported from a .keras file); "
                              "load that .keras file instead")
    generator = models.build_generator(config_lib.ModelConfig(**meta["architecture"]))
    _read_variables(version_dir, "its weights do not fit the recorded architecture", generator=generator)
    return generator, meta


def _read_variables(version_dir: str, what: str, **objects) -> None:
    """Restores `objects` (by their attribute names in the exported module) from the version's variables.

    The rest of the module (its `scale`, other weight sets) is left unread; every given object must match.

    Raises:
      SavedModelError: missing layers, or layers of another shape ("<version_dir>: <what> (<reason>)").
    """

    try:
        status = tf.train.Checkpoint(**objects).read(os.path.join(version_dir, "variables", "variables"))
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:200]
        raise SavedModelError(f"{version_dir}: {what} ({reason})") from None


def interpolation_ends(version_dir: str) -> tuple:
    """(PSNR generator, GAN generator): the two ends of an export's network interpolation, as Keras models rebuilt
    from the recorded architecture and the SavedModel's variables.

    Raises:
      SavedModelError: the export has no interpolation, or its variables do not fit.
    """

    meta = read_metadata(version_dir)
    if "interpolation" not in meta or "architecture" not in meta:
        raise SavedModelError(f"{version_dir} has no network interpolation (export a run with a GAN phase)")
    arch = config_lib.ModelConfig(**meta["architecture"])
    psnr, gan = models.build_generator(arch), models.build_generator(arch)
    _read_variables(version_dir, "its interpolation weights do not fit", gan_generator=gan,
                    psnr_trainable=psnr.trainable_variables, psnr_non_trainable=psnr.non_trainable_variables)
    return psnr, gan
