"""Rebuilding Keras generators from what sr-export wrote: a SavedModel's recorded architecture and variables,
or a `.keras` file."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from sr_keras import models
from sr_keras.image.tiling import measure_scale
from sr_keras.models import config as config_lib
from sr_keras.savedmodel.layout import (
    METADATA_FILE,
    ModelNotFoundError,
    SavedModelError,
    read_metadata,
)


def load_keras(path: str) -> tuple:
    """A `.keras` generator and its metadata ({model, scale, source}); the scale is measured from the model."""

    if not os.path.isfile(path):
        raise ModelNotFoundError(f"{path}: no such .keras file")
    generator = keras.models.load_model(path, safe_mode=True, compile=False)
    scale = measure_scale(lambda x: generator(tf.constant(x), training=False))
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
