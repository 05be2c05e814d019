"""One runtime: a model version (a SavedModel, a `.keras` file, an ONNX or LiteRT file) as the one untiled call the
Enhancer tiles around, in the precision asked for. Format x precision is decided here, once: a SavedModel runs as
exported in float32 or is rebuilt in Keras under a mixed policy; a `.keras` file is rebuilt; ONNX and LiteRT files
run in their own runtimes, as converted. `precision="auto"` is bfloat16 on a CPU with native bfloat16 and no GPU.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

import keras
import tensorflow as tf

from sr_keras.image.tiling import ScaleError, measure_scale
from sr_keras.models.interpolation import interpolated_generator
from sr_keras.models import exactness
from sr_keras.models.precision import exactness_check, inference_copy
from sr_keras.savedmodel import portable_runtime as portable
from sr_keras.savedmodel import signatures
from sr_keras.savedmodel.layout import METADATA_FILE, SavedModelError, read_metadata
from sr_keras.savedmodel.reader import (
    generator_from_saved_model,
    interpolation_ends,
    load_keras,
)
from sr_keras.utils import hardware


@dataclasses.dataclass
class TileFunctions:
    """How to run one untiled call of a loaded model (`inference.Enhancer` tiles around it).

    fn: float32 [N, h, w, 3] in [0, 1] -> float32 [N, sh, sw, 3] clipped to [0, 1].
    make_alpha_fn: alpha -> such a function at that network-interpolation point (None: the model has no knob).
    signatures: the SavedModel's signatures when it runs as exported ({} for a rebuilt Keras generator).
    """

    fn: Callable
    scale: int
    metadata: dict
    signatures: dict
    make_alpha_fn: Optional[Callable] = None
    keras: Optional[keras.Model] = None  # The rebuilt generator, in its policy (None when run as exported).
    exactness: Optional[dict] = None  # Rebuilt in a low precision: its `precision.exactness_check` record.


def _keras_fn(generator):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def run(x):
        return tf.clip_by_value(tf.cast(generator(x, training=False), tf.float32), 0.0, 1.0)
    return run


def tile_functions(path: str, policy: Optional[str] = None) -> TileFunctions:
    """Loads a version folder or .keras file for tiled inference. float32 (`policy` None) runs the exported graph as
    it is; a mixed policy (`mixed_bfloat16`, `mixed_float16`) rebuilds the Keras generator computing in it (weights
    stay float32), as does a .keras file."""
    if portable.format_of(path):
        if policy:
            raise SavedModelError(f"{path}: an ONNX or LiteRT file runs as converted (float32); precision applies "
                                  "to SavedModels and .keras files")
        return portable_tile_functions(path)
    if path.endswith(".keras") or policy:
        generator, meta = load_keras(path) if path.endswith(".keras") else generator_from_saved_model(path)
        check = None
        if policy:  # Which layers stay float32 for this model: recorded at export, else measured now.
            check = exactness.record(meta, policy) or exactness_check(generator, policy)

        def in_policy(g):
            return inference_copy(g, policy, check["float32_layers"]) if policy else g
        model = in_policy(generator)
        fn = _keras_fn(model)
        make = None
        if "interpolation" in meta:
            psnr, gan = interpolation_ends(path)

            def make(a):
                return _keras_fn(in_policy(interpolated_generator(psnr, gan, a)))
        return TileFunctions(fn, measure_scale(lambda x: fn(tf.constant(x))), meta, {}, make, model, check)
    saved = tf.saved_model.load(path)  # The closures below keep the loaded object (and its variables) alive.
    if hasattr(saved, signatures.TILE_FUNCTION):  # One untiled model call (exports since 0.2).
        def fn(x):
            return getattr(saved, signatures.TILE_FUNCTION)(x)
    else:  # Older exports: their enhance_float signature runs the whole input at once.
        sig, name = saved.signatures[signatures.ENHANCE_FLOAT.name], signatures.ENHANCE_FLOAT

        def fn(x):
            return sig(**{name.input: x})[name.output]
    make = None
    if hasattr(saved, signatures.TILE_ALPHA_FUNCTION):
        def make(a):
            return lambda x: getattr(saved, signatures.TILE_ALPHA_FUNCTION)(x, tf.constant(a, tf.float32))
    return TileFunctions(fn, int(saved.scale.numpy()), read_metadata(path), saved.signatures, make)


def portable_tile_functions(path: str) -> TileFunctions:
    """An ONNX or LiteRT file, or a version folder holding one, for tiled inference. Its metadata is the version's
    (sr-export) or, for a user's own file, what can be measured: the scale, from the output of a small input."""
    try:
        run = portable.runner(path)
        version_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        meta = read_metadata(version_dir) if os.path.isfile(os.path.join(version_dir, METADATA_FILE)) else {}
        scale = measure_scale(run)
    except (portable.PortableModelError, ScaleError) as e:
        raise SavedModelError(f"{path}: {e}") from None
    if meta.get("scale") not in (None, scale):
        raise SavedModelError(f"{path}: its metadata says x{meta['scale']}, the model upscales x{scale}")
    if not meta:
        meta = {"model": os.path.splitext(os.path.basename(path))[0], "scale": scale,
                "source": os.path.abspath(path)}
    meta = {**meta, "format": portable.format_of(path), "runtime": run.runtime, "layout": run.layout}
    return TileFunctions(run, scale, meta, {})


def auto_precision() -> str:
    """`precision="auto"`: bfloat16 on a CPU with native bfloat16 (AVX512_BF16 or AMX) and no GPU, else float32."""
    if not tf.config.list_logical_devices("GPU") and hardware.native_bf16_cpu():
        return "bfloat16"
    return "float32"


def tile_functions_in(path: str, precision: str, policies: dict) -> tuple:
    """(`tile_functions` of `path`, the precision it computes in, why auto chose float32 or "") for `precision`: a
    key of `policies` ({name: mixed policy or None}) or "auto" (`auto_precision`). Under auto, a model that cannot
    be rebuilt in bfloat16 (an ONNX or LiteRT file, a SavedModel without its architecture) runs as exported, in
    float32, and so does one whose exactness check (`models.precision.exactness_check`) failed. A float32 load of
    an `sr-export --precision=bfloat16` graph reports the graph's own precision.

    Raises:
      ValueError: an unknown precision. SavedModelError: as `tile_functions`.
    """
    auto = precision == "auto"
    precision = auto_precision() if auto else precision
    if precision not in policies:
        raise ValueError(f"precision={precision!r}: choose one of auto, {', '.join(policies)}")
    why = ""
    if auto and policies[precision]:
        recorded = _recorded_check(path, policies[precision])
        if recorded and recorded["precision"] == "float32":
            precision, why = "float32", inexact_note(recorded)
    try:
        loaded = tile_functions(path, policies[precision])
    except SavedModelError:
        if not (auto and policies[precision]):
            raise
        precision, loaded = "float32", tile_functions(path, None)
    if auto and loaded.exactness and loaded.exactness["precision"] == "float32":  # Measured at this load.
        precision, why, loaded = "float32", inexact_note(loaded.exactness), tile_functions(path, None)
    if policies[precision] is None and loaded.metadata.get("precision") in policies:
        precision = loaded.metadata["precision"]
    return loaded, precision, why


def inexact_note(check: dict) -> str:
    """Why `precision="auto"` runs a model in float32 although the CPU has native bfloat16."""
    return (f"bfloat16 is {check['default_worst_db']:.2f} dB off float32 on the check's probes and could not be "
            f"made exact (bound {check['bound_db']:g} dB)")


def _recorded_check(path: str, policy: str) -> Optional[dict]:
    """The exactness record an export wrote for `policy`, when `path` is a version folder that has one."""
    if not os.path.isdir(path):
        return None
    try:
        return exactness.record(read_metadata(path), policy)
    except (OSError, ValueError, SavedModelError):
        return None
