"""One resolver: every kind of model reference becomes what to load, with one set of errors and suggestions.
`sr_keras.load`, sr-serve, sr-export, sr-evaluate and Beam all go through it.

    classify(spec)    what the reference is (no TensorFlow, nothing converted): a `Reference`
    model_base(spec)  its model base path (a folder of numbered versions, what TF Serving serves), converting a zoo
                      name or a user's ncnn pair into the cache on first use
    resolve(spec)     the version folder, or the .keras / .onnx / .tflite file, to load

References: None, "" or "default" (the best model this install has); a zoo name (`sr_keras.zoo.NAMES`, any case,
or `zoo:NAME` to be explicit); a user's ncnn `.param`/`.bin`; a model folder, a version folder; a `.keras`, `.onnx`
or `.tflite` file. A bare name that is both a zoo name and a path here is the zoo's model, and a note says how to
ask for the path instead (`./NAME`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, Optional

from sr_keras import zoo
from sr_keras.savedmodel import layout
from sr_keras.utils.quiet import quiet_import
from sr_keras.zoo import user_ncnn

ZOO_PREFIX = "zoo:"


@dataclasses.dataclass(frozen=True)
class Reference:
    """What a model reference names. kind: default | zoo | ncnn | path."""

    kind: str
    spec: str  # As given.
    name: Optional[str] = None  # The zoo name (kind zoo), or the ncnn pair's model name.
    path: Optional[str] = None  # The file or folder (kinds ncnn and path).

    @property
    def label(self) -> str:
        """How tables and URLs name it: `default`, the zoo name, the ncnn file's stem, or the path."""
        return {"default": "default", "zoo": self.name, "ncnn": self.name}.get(self.kind) or self.spec


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def classify(spec: Optional[str], note: Callable[[str], None] = _note) -> Reference:
    """What `spec` refers to, decided without loading or converting anything.

    Raises:
      ModelNotFoundError: an unknown `zoo:` name, or a bare word that is neither a name nor a path (with the
        closest name).
    """
    if spec is None or str(spec).strip() in ("", "default"):
        return Reference("default", "default")
    spec = str(spec)
    name = zoo.name_of(spec)
    if spec.lower().startswith(ZOO_PREFIX) and name is None:
        raise layout.ModelNotFoundError(f"{spec}: not a zoo name{zoo.did_you_mean(spec[len(ZOO_PREFIX):])}; the "
                                        f"names are {', '.join(zoo.NAMES)}")
    bare = os.sep not in spec and "/" not in spec and not spec.startswith(".")
    if name:
        if bare and os.path.lexists(spec):
            note(f"--model={spec} is the zoo's {name}, not the {'folder' if os.path.isdir(spec) else 'file'} "
                 f"{spec} here; pass ./{spec} for that one")
        return Reference("zoo", spec, name=name)
    if user_ncnn.is_ncnn_path(spec):
        return Reference("ncnn", spec, name=user_ncnn.model_name(spec), path=spec)
    if bare and not os.path.lexists(spec) and not spec.endswith((".keras", ".onnx", ".tflite")):
        raise layout.ModelNotFoundError(f"{spec}: not a model folder, file or name{zoo.did_you_mean(spec)}; the "
                                        f"names are {', '.join(zoo.NAMES)} (sr-models lists them)")
    return Reference("path", spec, path=spec)


def model_base(ref: Reference, log=None) -> str:
    """The model base path (or the model file) of a classified reference; a zoo name or an ncnn pair is converted
    into the cache first, on first use.

    Raises:
      ModelNotFoundError, SavedModelError: nothing usable there, or a file that cannot be converted.
    """
    quiet_import()
    # Here, not at the top: classifying stays light (the zoo's cache imports TensorFlow when it converts).
    from sr_keras.zoo import cache as zoo_cache

    if ref.kind == "default":
        return zoo_cache.ensure(zoo_cache.default_name(), log=log)
    if ref.kind == "zoo":
        return zoo_cache.ensure(ref.name, log=log)
    if ref.kind == "ncnn":
        try:
            return user_ncnn.ensure(ref.path, log=log)
        except user_ncnn.ncnn.NcnnFormatError as e:
            raise layout.SavedModelError(str(e)) from None
    return os.path.expanduser(ref.path)


def resolve(spec=None, note: Callable[[str], None] = _note) -> str:
    """A model reference (or a `Reference` that `classify` made) -> the version folder (or .keras, .onnx, .tflite
    file) to load.

    Raises:
      ModelNotFoundError: nothing usable there (the message says what was expected, or what to install).
      SavedModelError: a user's file that cannot be converted.
    """
    return layout.resolve(model_base(spec if isinstance(spec, Reference) else classify(spec, note)))
