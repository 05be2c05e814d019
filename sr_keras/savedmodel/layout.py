"""The model artifact on disk: a TF Serving model base path, its version folders, their metadata and the card.

    <model_dir>/                 a model base path (TF Serving's --model_base_path)
      card.json                  optional (`CARD_FILE`): provenance, figures and, for cached conversions, hashes
      <version>/                 one complete export (numeric name; saved_model.pb present)
        saved_model.pb, variables/   (or model.onnx / model.tflite: `PORTABLE_FILES`, sr-export --format)
        assets.extra/model.json  the metadata (`METADATA_FILE`): architecture, scale, tiling, limits, provenance

This module names that layout once and does both the reading and the (atomic) writing of it; `writer` builds what
goes in a version, `reader` rebuilds generators from one. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Optional

from sr_keras.utils import safe_files

METADATA_FILE = os.path.join("assets.extra", "model.json")
SAVED_MODEL_FILE = "saved_model.pb"
# A version of another format (`sr-export --format`) holds its one model file instead of saved_model.pb.
PORTABLE_FILES = {"onnx": "model.onnx", "litert": "model.tflite"}
PORTABLE_SUFFIXES = {".onnx": "onnx", ".tflite": "litert"}
CARD_FILE = "card.json"


class ModelNotFoundError(FileNotFoundError):
    """No model at the given place. The message names the fix."""


class SavedModelError(RuntimeError):
    """A model folder exists but cannot be used as asked. The message names the fix."""


class ExportError(RuntimeError):
    """The export cannot proceed; the message names the fix."""


def shipped_model_path(folder: str = "default_model") -> str:
    """One of the project's own trained models, shipped in the package (`sr_keras/<folder>`): a TF Serving model
    base path (version folder `1/`)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), folder)


def default_model_path() -> str:
    """The project's own PSNR model (`sr_keras_x4`)."""
    return shipped_model_path("default_model")


def version_format(path: str) -> Optional[str]:
    """'savedmodel', 'onnx' or 'litert' for a complete version folder, else None."""
    if os.path.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return "savedmodel"
    return next((fmt for fmt, name in PORTABLE_FILES.items() if os.path.isfile(os.path.join(path, name))), None)


def is_version_dir(path: str) -> bool:
    return version_format(path) is not None


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


def resolve(path: str) -> str:
    """A model folder or file -> the version folder (or .keras file) to load. Reads only: names of the zoo are
    turned into folders before this (`sr_keras.load`, `zoo.cache.ensure`).

    Raises:
      ModelNotFoundError: nothing usable there (the message says what was expected).
    """
    path = os.path.expanduser(path)
    suffix = os.path.splitext(path)[1].lower()
    if path.endswith(".keras") or suffix in PORTABLE_SUFFIXES:
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{path}: no such {suffix} file")
        return path
    if is_version_dir(path):
        return path
    latest = latest_version_dir(path)
    if latest is None:
        raise ModelNotFoundError(f"{path} holds no model (expected saved_model.pb, numbered version folders "
                                 "as written by sr-export, or a .keras, .onnx or .tflite file)")
    return latest


def read_metadata(version_dir: str) -> dict:
    """A version's assets.extra/model.json ({} for a SavedModel not written by sr-export)."""
    path = os.path.join(version_dir, METADATA_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_metadata(version_dir: str, meta: dict) -> None:
    path = os.path.join(version_dir, METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    safe_files.write_text(path, json.dumps(meta, indent=2))


def read_card(model_dir: str) -> Optional[dict]:
    """The model base path's card.json, or None when it has none.

    Raises:
      ValueError: it is not a JSON object.
    """
    try:
        with open(os.path.join(model_dir, CARD_FILE)) as f:
            card = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(card, dict):
        raise ValueError(f"{CARD_FILE} is not a JSON object")
    return card


CARD_KEYS = ("model", "scale", "summary", "parameters", "provenance", "sample_photos")


def card_record(model: str, scale: int, summary: str, parameters: int, provenance: dict,
                sample_photos: Optional[dict], **extra) -> dict:
    """The one card layout, for zoo conversions and the shipped model alike: `CARD_KEYS` first, then what the
    producer adds (hashes of a cached conversion's `files`, a trained model's recipe, stages and tests).

    `provenance` holds at least `license` and `license_short`; `sample_photos` is `zoo.cache.measure`'s record
    ({model: {psnr_y, ssim_y}, bicubic: {...}, gain_db, images}) or None when not measured."""
    missing = {"license", "license_short"} - set(provenance)
    if missing:
        raise ValueError(f"a card's provenance needs {sorted(missing)}")
    return {"model": model, "scale": int(scale), "summary": summary, "parameters": int(parameters),
            "provenance": provenance, "sample_photos": sample_photos, **extra}


def write_card(model_dir: str, card: dict) -> None:
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ValueError(f"a card needs {missing} (build it with card_record)")
    safe_files.write_text(os.path.join(model_dir, CARD_FILE), json.dumps(card, indent=2))


def prepare_version(model_dir: str, version: Optional[int], fmt: str = "savedmodel") -> tuple:
    """(version number, staging folder) for a new version of `model_dir` in format `fmt`: the next number unless
    given, and an exclusively created temporary beside the version folders, which `publish_version` renames into
    place.

    Raises:
      ExportError: the version exists, the base path holds versions of another format (a server would take the
        newest for its own), or the folder cannot be written.
    """
    held = {version_format(os.path.join(model_dir, str(v))) for v in complete_versions(model_dir)} - {fmt}
    if held:
        raise ExportError(f"{model_dir} holds {'/'.join(sorted(held))} versions, and a model base path holds one "
                          f"format (TF Serving would take a {fmt} version for its latest): use another --model_name, "
                          f"such as {os.path.basename(os.path.normpath(model_dir))}_{fmt}")
    version = version or next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} already exists; pick another --version or leave it out for the next one")
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write to {model_dir}: {e.strerror or e}") from None
    safe_files.remove_stale_temps(model_dir)  # Left by a killed export (never a live one's).
    return version, safe_files.make_temp_dir(model_dir, f"v{version}-")


def publish_version(staging: str, model_dir: str, version: int) -> str:
    """Renames a complete staging folder to `<model_dir>/<version>` (a server never sees half a version)."""
    final = os.path.join(model_dir, str(version))
    os.chmod(staging, 0o755)  # mkdtemp makes 0700; TF Serving may run as another user.
    os.rename(staging, final)  # Fails if `final` appeared meanwhile (a non-empty folder is never replaced).
    return final


def discard(staging: str) -> None:
    shutil.rmtree(staging, ignore_errors=True)
