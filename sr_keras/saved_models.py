"""Reading what sr-export wrote: a TF Serving model base path, its version folders and their metadata.

    <model_dir>/                 a model base path (TF Serving's --model_base_path)
      <version>/                 one complete export (numeric name; saved_model.pb present)
        saved_model.pb, variables/
        assets.extra/model.json  the metadata (`METADATA_FILE`): architecture, scale, tiling, limits, provenance

`export_lib` writes this layout; `inference`, `serving` and the tools read it through this module only.
"""

from __future__ import annotations

import json
import os
from typing import Optional

METADATA_FILE = os.path.join("assets.extra", "model.json")
SAVED_MODEL_FILE = "saved_model.pb"


class ModelNotFoundError(FileNotFoundError):
    """No model at the given place. The message names the fix."""


class SavedModelError(RuntimeError):
    """A model folder exists but cannot be used as asked. The message names the fix."""


def default_model_path() -> str:
    """The project's own trained model (`sr_keras_x4`), shipped in the package: a TF Serving model base path
    (version folder `1/`). `default` is the best model the install has (`zoo.default_name()`)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model")


def is_version_dir(path: str) -> bool:
    return os.path.exists(os.path.join(path, SAVED_MODEL_FILE))


def complete_versions(model_dir: str) -> list:
    """Version numbers of complete version folders (numeric name holding saved_model.pb), ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit() and is_version_dir(os.path.join(model_dir, d)))


def latest_version_dir(model_dir: str) -> Optional[str]:
    """The complete version folder with the largest number, or None."""
    versions = complete_versions(model_dir)
    return os.path.join(model_dir, str(versions[-1])) if versions else None


def next_version(model_dir: str) -> int:
    """1 + the largest numeric version folder, complete or not (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    return max((int(d) for d in os.listdir(model_dir) if d.isdigit()), default=0) + 1


def resolve_model_path(path: Optional[str]) -> str:
    """A model name, folder or file -> the version folder (or .keras file) to load.

    None, "" or "default" -> the best model this install has (`zoo.default_name()`); a zoo name (`span_x4`,
    `realesrgan_x4plus`, `sr_keras_x4`, ...: `sr_keras.zoo.NAMES`) -> its folder, converted into the cache on first
    use, unless a file or folder of that name exists here; a model folder -> its latest complete version; a
    version folder or .keras file -> itself.

    Raises:
      ModelNotFoundError: nothing usable there (the message says what was expected, or what to install).
    """
    from sr_keras import zoo

    if path in (None, "", "default"):
        path = zoo.default_name()
    if path in zoo.NAMES and not os.path.exists(path):
        path = zoo.ensure(path)
    path = os.path.expanduser(path)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{path}: no such .keras file")
        return path
    if is_version_dir(path):
        return path
    latest = latest_version_dir(path)
    if latest is None:
        looks_like_name = not os.path.exists(path) and os.sep not in path
        hint = f" (or a model name: {', '.join(zoo.NAMES)}; see sr-models)" if looks_like_name else ""
        raise ModelNotFoundError(f"{path} holds no SavedModel (expected saved_model.pb, numbered version folders "
                                 f"as written by sr-export, or a .keras file){hint}")
    return latest


def read_metadata(version_dir: str) -> dict:
    """A version's assets.extra/model.json ({} for a SavedModel not written by sr-export)."""
    path = os.path.join(version_dir, METADATA_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def load_keras(path: str) -> tuple:
    """A `.keras` generator and its metadata ({model, scale, source}); the scale is measured from the model."""
    import keras
    import tensorflow as tf

    from sr_keras.tiling import measure_scale

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
    from sr_keras import config as config_lib
    from sr_keras import models

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
    import tensorflow as tf

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
    from sr_keras import config as config_lib
    from sr_keras import models

    meta = read_metadata(version_dir)
    if "interpolation" not in meta or "architecture" not in meta:
        raise SavedModelError(f"{version_dir} has no network interpolation (export a run with a GAN phase)")
    arch = config_lib.ModelConfig(**meta["architecture"])
    psnr, gan = models.build_generator(arch), models.build_generator(arch)
    _read_variables(version_dir, "its interpolation weights do not fit", gan_generator=gan,
                    psnr_trainable=psnr.trainable_variables, psnr_non_trainable=psnr.non_trainable_variables)
    return psnr, gan
