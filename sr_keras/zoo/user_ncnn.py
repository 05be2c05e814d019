"""A user's own ncnn model (a `.param` file and its `.bin`) of an architecture the zoo converts: SPAN at any
width, depth and scale, Real-ESRGAN's RRDBNet (x2^n by nearest upsampling), or its SRVGGNetCompact at any width,
depth and scale (realesr-general-x4v3, realesr-animevideov3). The architecture is read from the
graph, the weights go through the zoo's converter with all its checks (`zoo.convert.load_into`: every shape, the
hard-coded constants, activations), and the result is cached as a model folder keyed by the two files' SHA-256,
so a changed file converts anew and an unchanged one loads at once.

  sr_keras.load("my_models/4x_span.param")      sr-enhance --model=my_models/4x_span.param ...
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional

import numpy as np

from sr_keras import zoo
from sr_keras.savedmodel import layout
from sr_keras.utils import safe_files
from sr_keras.utils.downloads import sha256_file
from sr_keras.zoo import ncnn

SUFFIXES = (".param", ".bin")
_HASH_CHARS = 16  # Of the files' SHA-256, in the cache folder's name.


def is_ncnn_path(path: str) -> bool:
    return isinstance(path, str) and os.path.splitext(path)[1].lower() in SUFFIXES


def pair(path: str) -> tuple:
    """(.param, .bin) for either of the two files.

    Raises:
      ModelNotFoundError: one of them is missing (the message names it).
    """
    stem = os.path.splitext(os.path.expanduser(path))[0]
    files = (stem + ".param", stem + ".bin")
    for f in files:
        if not os.path.isfile(f):
            raise layout.ModelNotFoundError(f"{path}: an ncnn model needs both {os.path.basename(files[0])} and "
                                            f"{os.path.basename(files[1])} side by side; {f} is missing")
    return files


def architecture(layers: list, path: str = "") -> dict:
    """The `config.ModelConfig` fields of the graph `layers` (from `ncnn.read_model`).

    Raises:
      NcnnFormatError: neither SPAN nor RRDBNet, or a layer count neither could have.
    """
    types = [lyr.type for lyr in layers]
    convs = [lyr for lyr in layers if lyr.type == "Convolution"]
    if not convs:
        raise ncnn.NcnnFormatError(f"{path}: no convolutions: not a super-resolution model")
    filters = int(convs[0].params.get(0, 0))
    if "PReLU" in types and "PixelShuffle" in types and layers[-1].type == "Interp":
        raise ncnn.NcnnFormatError(f"{path}: the graph ends in a resize of the network's output (as the x2 and x3 "
                                   "files of realesr-animevideov3 do); convert the x4 file and pass --outscale")
    if "PReLU" in types and "PixelShuffle" in types and "Interp" in types:  # SRVGGNetCompact: first, body, last.
        shuffle = next(lyr for lyr in layers if lyr.type == "PixelShuffle")
        scale = int(shuffle.params.get(0, 0)) if isinstance(shuffle.params.get(0, 0), int) else 0
        if len(convs) >= 2 and scale >= 1:
            return {"kind": "compact", "scale": scale, "filters": filters, "num_blocks": len(convs) - 2}
    if "PixelShuffle" in types and "MemoryData" in types:  # SPAN: conv_1, 3 per block, conv_2, conv_cat, upsampler.
        blocks, rest = divmod(len(convs) - 4, 3)
        shuffle = next(lyr for lyr in layers if lyr.type == "PixelShuffle")
        scale = int(shuffle.params.get(0, 0))
        if blocks >= 1 and not rest and scale >= 2:
            return {"kind": "span", "scale": scale, "filters": filters, "num_blocks": blocks}
    interps = types.count("Interp")
    if interps and "Eltwise" in types:  # RRDBNet: conv_first, 15 per block, conv_body, one per x2, conv_hr, last.
        blocks, rest = divmod(len(convs) - 4 - interps, 15)
        if blocks >= 1 and not rest and len(convs) > 1:
            return {"kind": "rrdb", "scale": 2 ** interps, "filters": filters, "num_blocks": blocks,
                    "growth": int(convs[1].params.get(0, 0))}
    raise ncnn.NcnnFormatError(f"{path}: not an architecture sr_keras converts (SPAN, Real-ESRGAN's SRVGGNetCompact, "
                               f"or its RRDBNet with nearest upsampling; {len(convs)} convolutions, layer types "
                               f"{', '.join(sorted(set(types)))})")


def keras_generator(path: str):
    """(Keras generator with the file's weights, metadata) for a user's `.param`/`.bin` pair.

    Raises:
      ModelNotFoundError: a file is missing. NcnnFormatError: not a model the zoo's converter takes.
    """
    # TensorFlow, only when converting: resolving a cached conversion does not need it.
    from sr_keras import models
    from sr_keras.models import config
    from sr_keras.zoo import convert

    param, weights = pair(path)
    layers = ncnn.read_model(param, weights)
    arch = architecture(layers, param)
    try:  # The whole graph first: its wiring, operations and (size-checked) weights bound what gets built.
        convert.check_graph(layers, arch)
        generator = models.build_generator(config.ModelConfig(**arch))
        convert.load_into(generator, layers, arch["kind"])
        _compare_with_ncnn(generator, param, weights, arch["scale"])
    except ncnn.NcnnFormatError as e:
        raise ncnn.NcnnFormatError(f"{param}: {e}") from None
    files = {os.path.basename(f): {"sha256": sha256_file(f)} for f in (param, weights)}
    meta = {"model": model_name(param), "scale": arch["scale"], "architecture": arch,
            "summary": f"a user's ncnn model ({os.path.basename(param)}: {arch['kind']} x{arch['scale']}, "
                       f"{arch['filters']} channels, {arch['num_blocks']} blocks)",
            "psnr_oriented": arch["kind"] == "span", "parameters": int(generator.count_params()),
            "provenance": {"format": "ncnn param/bin", "files": files, "license": "the user's own (unknown here)",
                           "license_short": "user's own"},
            "conversion": f"sr_keras.zoo.user_ncnn.keras_generator({os.path.basename(param)!r})"}
    return generator, meta


NCNN_PROBE = (20, 28)  # LR side of the image a conversion is compared on with ncnn's own run of the file.


def _compare_with_ncnn(generator, param: str, weights: str, scale: int) -> None:
    """When the `ncnn` package is installed: the converted model and ncnn's own float32 run of the same files agree
    within one uint8 level on a probe image (edges, a gradient and flat colour), or the conversion is refused."""
    try:
        from sr_keras.zoo.reference import NcnnModel  # Needs the optional ncnn package.

        reference = NcnnModel("", threads=1, files=(param, weights, scale))
    except (ImportError, RuntimeError):  # No ncnn here, or a file it reads otherwise: the graph check holds.
        return
    h, w = NCNN_PROBE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    probe = np.stack([xx / w, yy / h, ((xx // 5 + yy // 5) % 2) * 0.8 + 0.1], -1).astype(np.float32)
    probe[4:9, 6:20] = (0.9, 0.2, 0.1)  # A flat block with hard edges.
    try:
        theirs = np.asarray(reference(probe), np.float32)
    except RuntimeError:  # Blobs not named as the zoo's files name them: the graph check above still holds.
        return
    ours = np.asarray(generator(probe[None], training=False), np.float32)[0]
    level = lambda a: np.round(np.clip(a, 0, 1) * 255)  # noqa: E731
    if theirs.shape != ours.shape:
        raise ncnn.NcnnFormatError(f"ncnn's own run gives {theirs.shape}, the conversion {ours.shape}")
    worst = float(np.abs(level(ours) - level(theirs)).max())
    if worst > 1:
        raise ncnn.NcnnFormatError(f"the conversion differs from ncnn's own run of the file by up to {worst:.0f} "
                                   "levels on a probe image: a graph sr_keras cannot reproduce")


def model_name(param: str) -> str:
    """A model name for URLs and labels: the file's stem, in the characters model names allow."""
    stem = os.path.splitext(os.path.basename(param))[0]
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in stem).strip(".") or "user_ncnn"


def ensure(path: str, log=None) -> str:
    """The model folder of a user's ncnn pair: converted into `<cache>/user_ncnn/<name>-<hash>/` on first use (in
    a staging folder published in one rename, under a lock), then loaded from there while both files stay the
    same.

    Raises:
      ModelNotFoundError, NcnnFormatError: as `keras_generator`.
    """
    param, weights = pair(path)
    digest = sha256_file(param)[:_HASH_CHARS // 2] + sha256_file(weights)[:_HASH_CHARS // 2]
    root = os.path.join(zoo.cache_dir(), "user_ncnn")
    folder = os.path.join(root, f"{model_name(param)}-{digest}")
    if _complete(folder):
        return folder
    os.makedirs(root, exist_ok=True)
    with safe_files.locked(os.path.join(root, f".{os.path.basename(folder)}.lock")):
        if _complete(folder):  # A peer converted it while this one waited.
            return folder
        generator, meta = keras_generator(param)  # Checked first: a file that cannot convert is one line.
        (log or (lambda msg: print(msg, file=sys.stderr, flush=True)))(
            f"sr_keras: converting {param} ({meta['architecture']['kind']} x{meta['scale']}) into {folder}")
        from sr_keras.savedmodel import writer  # TensorFlow, only when converting.

        safe_files.remove_stale_temps(root)
        staging = safe_files.make_temp_dir(root, "user-")
        try:
            writer.export(generator, meta, staging, meta["model"], version=zoo.VERSION)
            safe_files.replace_dir(os.path.join(staging, meta["model"]), folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _complete(folder: str) -> Optional[str]:
    return layout.latest_version_dir(folder) if os.path.isdir(folder) else None
