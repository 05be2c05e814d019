"""Writing a generator as an ONNX or LiteRT version (`sr-export --format=onnx|litert`), verified before it is
published.

    <model_dir>/<version>/model.onnx (or model.tflite)
                          assets.extra/model.json   scale, input and output convention, recommended tile, provenance,
                                                    and the verification below

The file holds one untiled model call: float32 NHWC in [0, 1] with dynamic height and width, output the same,
clipped to [0, 1] (`portable_runtime` states the convention). It is written by Keras 3's own `Model.export`
(tf2onnx for ONNX, the TFLite converter for LiteRT, builtin ops only: no Flex delegate needed). Before the version
is published, its runtime runs crops of the bundled sample photos, and the version is refused unless every output
pixel is within one uint8 level of the Keras model's; the figures go in the metadata.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import warnings
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from sr_keras.data import sources
from sr_keras.image.imageio import load_rgb8
from sr_keras.models import footprint
from sr_keras.models.precision import float32_copy
from sr_keras.savedmodel import layout
from sr_keras.savedmodel import portable_runtime as portable
from sr_keras.version import __version__

FORMATS = ("savedmodel",) + tuple(layout.PORTABLE_FILES)
CONVERTERS = {"onnx": ("tf2onnx", "onnx"), "litert": ("tensorflow", "litert")}
INPUT_NAME = "lr_image"
VERIFY_CROP = 96  # Side of the sample-photo crops each export is checked on (input pixels).
MAX_LEVEL_DIFF = 1  # The largest uint8 difference from the Keras model that an export may show.


def _missing(fmt: str) -> layout.ExportError:
    package, extra = CONVERTERS[fmt]
    return layout.ExportError(f"--format={fmt} needs {package} and {portable.RUNTIMES[fmt][0]}: "
                              f"pip install 'sr_keras[{extra}]'")


def clipped(generator: keras.Model) -> keras.Model:
    """A float32 functional copy of `generator` whose output is clipped to [0, 1], with one named input."""
    g32 = float32_copy(generator)
    lr = keras.Input((None, None, 3), name=INPUT_NAME)
    return keras.Model(lr, keras.ops.clip(g32(lr), 0.0, 1.0), name=f"{generator.name}_clipped")


def sample_crops(side: int = VERIFY_CROP) -> list:
    """(name, float32 [1, side, side, 3]) centre crops of the bundled sample photos, or [] without them."""
    try:
        root = sources.sample_dir()
    except sources.SourceError:
        return []
    crops = []
    for name in sources.SAMPLE_VAL:
        img = load_rgb8(os.path.join(root, name))
        y, x = max(0, (img.shape[0] - side) // 2), max(0, (img.shape[1] - side) // 2)
        crops.append((name, img[y:y + side, x:x + side].astype(np.float32)[None] / 255.0))
    return crops


def compare(model: keras.Model, run, crops: list) -> dict:
    """Largest differences between the Keras model and a runtime on `crops`: in uint8 levels after rounding,
    and in float."""
    worst_level, worst_abs = 0, 0.0
    for _, x in crops:
        ref = model(tf.constant(x), training=False).numpy()
        out = run(x)
        if out.shape != ref.shape:
            raise layout.ExportError(f"the converted model returned {list(out.shape)}, Keras {list(ref.shape)}")
        worst_abs = max(worst_abs, float(np.abs(out - ref).max()))
        worst_level = max(worst_level, int(np.abs(np.round(out * 255) - np.round(ref * 255)).max()))
    return {"max_uint8_diff": worst_level, "max_abs_diff": worst_abs}


def _convert(model: keras.Model, fmt: str, path: str) -> None:
    try:
        with warnings.catch_warnings():  # tf2onnx's own use of a deprecated numpy name.
            warnings.simplefilter("ignore", FutureWarning)
            model.export(path, format=fmt, verbose=False)
    except ImportError:
        raise _missing(fmt) from None


def export(generator: keras.Model, meta: dict, export_dir: str, model_name: str, fmt: str,
           version: Optional[int] = None, tile: Optional[int] = None, max_input_pixels: int = 0) -> str:
    """Writes `<export_dir>/<model_name>/<version>/model.onnx` (or `.tflite`) atomically, verified; returns its path.

    Raises:
      ExportError: the version exists, the folder cannot be written, a converter is missing, or the converted
        model's outputs differ from the Keras model's by more than `MAX_LEVEL_DIFF`.
    """
    if fmt not in layout.PORTABLE_FILES:
        raise ValueError(f"--format={fmt}: choose one of {', '.join(FORMATS)}")
    model_dir = os.path.join(export_dir, model_name)
    version, staging = layout.prepare_version(model_dir, version, fmt)
    try:
        model = clipped(generator)
        scale = int(meta["scale"])
        record = footprint.tiling_record(model, scale, tile)
        file = os.path.join(staging, layout.PORTABLE_FILES[fmt])
        _convert(model, fmt, file)
        try:
            run = portable.runner(file)
        except portable.PortableModelError as e:
            raise layout.ExportError(str(e)) from None
        crops = sample_crops()
        check = compare(model, run, crops) if crops else None
        if check and check["max_uint8_diff"] > MAX_LEVEL_DIFF:
            raise layout.ExportError(f"the {fmt} model differs from the Keras model by {check['max_uint8_diff']} "
                                     f"uint8 levels on the sample photos (at most {MAX_LEVEL_DIFF} allowed); "
                                     "nothing was published")
        package = CONVERTERS[fmt][0]
        layout.write_metadata(staging, {
            **{k: v for k, v in meta.items() if k not in ("signatures", "tiling", "version", "model_name")},
            "format": fmt, "file": layout.PORTABLE_FILES[fmt], "version": version, "model_name": model_name,
            "input": {"name": INPUT_NAME, "dtype": "float32", "layout": "NHWC", "shape": [None, None, None, 3],
                      "range": [0, 1]},
            "output": {"dtype": "float32", "layout": "NHWC", "shape": [None, f"H*{scale}", f"W*{scale}", 3],
                       "range": [0, 1]},
            "tiling": {**record, "note": "height and width are dynamic; run tiles of this side with this much context"},
            "max_input_pixels": max_input_pixels,
            "converter": f"keras {keras.__version__} Model.export(format={fmt!r}), "
                         f"{package} {importlib.metadata.version(package)}",
            "verification": None if check is None else {
                **check, "runtime": run.runtime, "images": [name for name, _ in crops], "crop": VERIFY_CROP,
                "against": "the float32 Keras model"},
            "sr_keras_version": __version__, "tensorflow_version": tf.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        return layout.publish_version(staging, model_dir, version)
    except BaseException:
        layout.discard(staging)
        raise
