"""Writing a generator as a versioned SavedModel that TF Serving serves as it is (`sr-export`).

A version is built in a hidden staging folder and renamed when complete (`layout.prepare_version` /
`publish_version`), so a server never sees half a version and an interrupted export leaves no numbered folder.
"""

from __future__ import annotations

import datetime
import os
from typing import Optional

import keras
import tensorflow as tf

from sr_keras.image.limits import DEFAULT_EXPORT_MAX_INPUT_PIXELS, check_alpha
from sr_keras.models import exactness, footprint
from sr_keras.models.precision import exactness_check, float32_copy, inference_copy, reusable_check
from sr_keras.savedmodel import layout, signatures
from sr_keras.savedmodel.sr_module import InterpolatedSRModule, SRModule
from sr_keras.version import __version__


def export(generator: keras.Model, meta: dict, export_dir: str, model_name: str,
           version: Optional[int] = None, tile: Optional[int] = None,
           max_input_pixels: int = DEFAULT_EXPORT_MAX_INPUT_PIXELS, psnr_generator: Optional[keras.Model] = None,
           default_alpha: float = 1.0, precision: str = "float32") -> str:
    """Writes `<export_dir>/<model_name>/<version>/` atomically; returns its path.

    The signatures run `tile` x `tile` tiles (None: the largest its memory allows, `tiling.memory_tile`) with the
    generator's receptive field as context (both measured here, `footprint.tiling_record`), and
    refuse requests over `max_input_pixels` (0: no limit) with INVALID_ARGUMENT, which TF Serving answers with 400.
    With `psnr_generator` (the pixel phase's generator of the same run), `generator` is the GAN end of a network-
    interpolation knob: the export gets the `_alpha` signatures, and the plain ones run at `default_alpha`.
    `precision="bfloat16"`: the graph runs the body's convolutions in bfloat16, as `sr_keras.load(precision=
    "bfloat16")` does (`models.precision.inference_copy`, with the layers its exactness check keeps in float32),
    for TF Serving on CPUs with native bfloat16 or on TPUs; the tile context is still measured in float32, and the
    metadata records the precision. Every export records that check (`exactness`), which `precision="auto"` reads.

    Raises:
      ExportError: the version already exists, or the folder cannot be written.
    """
    model_dir = os.path.join(export_dir, model_name)
    version, staging = layout.prepare_version(model_dir, version)
    try:
        module, meta = _module(generator, meta, tile, max_input_pixels, psnr_generator, default_alpha, precision)
        tf.saved_model.save(module, staging, signatures=module.signature_functions())
        layout.write_metadata(staging, {
            **meta, "version": version, "model_name": model_name, "sr_keras_version": __version__,
            "tensorflow_version": tf.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "signatures": signatures.describe_all(interpolation=psnr_generator is not None)})
        return layout.publish_version(staging, model_dir, version)
    except BaseException:
        layout.discard(staging)
        raise


PRECISIONS = {"float32": None, "bfloat16": "mixed_bfloat16"}  # What an export's graph computes in.


def _module(generator, meta: dict, tile: int, max_input_pixels: int, psnr_generator, default_alpha: float,
            precision: str = "float32") -> tuple:
    """(the module to save, `meta` with its tiling, limit, precision and interpolation) for a float32 copy of
    `generator` (or its `precision` inference copy), with the context of its tiles measured, in float32, from its
    receptive field."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: an export computes in {' or '.join(PRECISIONS)}")
    g32 = float32_copy(generator)
    scale = int(meta["scale"])
    # Which layers bfloat16 inference keeps in float32 for this model (or that it runs in float32 under auto),
    # measured once here: sr_keras.load and a bfloat16 export read it. When `meta` comes from an export of the same
    # weights (a zoo model's cached conversion, another export), its check and tile measurements are kept.
    check = reusable_check(g32, meta)
    record = footprint.tiling_record(g32, scale, tile, meta.get("tiling") if check else None)
    check = check or exactness_check(g32, PRECISIONS["bfloat16"])
    tile, overlap = record["tile"], record["overlap"]
    meta = {**meta, "tiling": record, "max_input_pixels": max_input_pixels, "precision": precision,
            exactness.METADATA_KEY: check}

    def computing(g):  # The copy the graph runs: float32, or the body's convolutions in bfloat16.
        low = PRECISIONS[precision]
        return g if low is None else inference_copy(g, low, check["float32_layers"])

    if psnr_generator is None:
        return SRModule(computing(g32), scale, tile, overlap, max_input_pixels), meta
    default_alpha = check_alpha(default_alpha)
    module = InterpolatedSRModule(computing(float32_copy(psnr_generator)), computing(g32), scale, default_alpha,
                                  tile, overlap, max_input_pixels)
    return module, {**meta, "interpolation": {"default_alpha": default_alpha, "blend": "weights",
                                              "ends": "alpha 0: the pixel (PSNR) phase's EMA generator; alpha 1: "
                                                      "the GAN phase's"}}
