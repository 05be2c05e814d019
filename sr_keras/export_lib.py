"""Writing a generator as a versioned SavedModel that TF Serving serves as it is (`sr-export`).

Layout (read back by `saved_models`): `<export_dir>/<model_name>/<version>/`, TF Serving's model base path, with
the metadata in `saved_models.METADATA_FILE`. A version is written under a hidden temporary name and renamed when
complete, so a server never sees half a version and an interrupted export leaves no numbered folder behind.

The signatures and their input/output names are defined in `sr_keras.signatures`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
from typing import Optional

import keras
import tensorflow as tf

import sr_keras
from sr_keras import checkpoints, models, safe_files, saved_models, signatures, tiling
from sr_keras.data import schema
from sr_keras.models.precision import float32_copy
from sr_keras.run_dir import RunDir
from sr_keras.signatures import ENHANCE, ENHANCE_FLOAT, SERVING_DEFAULT


class ExportError(RuntimeError):
    """The export cannot proceed; the message names the fix."""


# Exported signatures tile their input (as `sr_keras.load` does), so a TF Serving user gets the same bounded memory,
# and refuse inputs over a pixel limit, checked for encoded images from the file header before decoding.
DEFAULT_TILE = tiling.DEFAULT_TILE
DEFAULT_MAX_INPUT_PIXELS = 4_000_000  # Per request, all instances together (sr-export --max_input_pixels).


class SRModule(tf.Module):
    """The exported object: a float32 generator plus image-in/image-out signatures.

    Args:
      generator: the float32 Keras generator.
      scale: its upscaling factor.
      tile: core tile side in LR pixels (0: whole images at once).
      overlap: context around each tile (at least the generator's receptive field, so tiles show no seam: each
        output pixel is computed with all the input it depends on, exactly as on the whole image).
      max_input_pixels: the most input pixels one call may carry (0: no limit).
    """

    def __init__(self, generator: keras.Model, scale: int, tile: int = DEFAULT_TILE, overlap: int = 16,
                 max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS):
        super().__init__()
        self.generator = generator
        self.scale = tf.Variable(scale, dtype=tf.int32, trainable=False, name="scale")
        self._scale, self._tile, self._overlap, self._max_pixels = scale, tile, overlap, max_input_pixels

    def _run(self, lr: tf.Tensor) -> tf.Tensor:
        """float32 [N, H, W, 3] in [0, 1] -> float32 [N, sH, sW, 3] clipped to [0, 1]."""
        sr = self.generator(lr, training=False)
        return tf.clip_by_value(tf.cast(sr, tf.float32), 0.0, 1.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def sr_tile(self, lr):
        """One untiled model call (for callers that tile themselves: `sr_keras.load`, sr-serve)."""
        return self._run(lr)

    def _check_pixels(self, pixels: tf.Tensor) -> list:
        if not self._max_pixels:
            return []
        return [tf.debugging.assert_less_equal(
            tf.cast(pixels, tf.int64), tf.constant(self._max_pixels, tf.int64),
            message=f"input over the limit of {self._max_pixels / 1e6:g} MP per request (sr-export "
                    "--max_input_pixels)")]

    def _tiled(self, lr: tf.Tensor, quantize: bool) -> tf.Tensor:
        """`_run` tile by tile: float32 [N, H, W, 3] -> [N, sH, sW, 3] (uint8 when `quantize`)."""
        t, o, s = self._tile, self._overlap, self._scale
        h, w = tf.shape(lr)[1], tf.shape(lr)[2]

        def finish(sr):
            return tf.cast(tf.round(sr * 255.0), tf.uint8) if quantize else sr
        if not t:
            return finish(self._run(lr))

        def one_row(i):
            y0 = i * t
            y1, cy0 = tf.minimum(y0 + t, h), tf.maximum(y0 - o, 0)
            cy1 = tf.minimum(y1 + o, h)

            def one_tile(j, acc):
                x0 = j * t
                x1, cx0 = tf.minimum(x0 + t, w), tf.maximum(x0 - o, 0)
                cx1 = tf.minimum(x1 + o, w)
                sr = finish(self._run(lr[:, cy0:cy1, cx0:cx1]))
                core = sr[:, (y0 - cy0) * s:(y1 - cy0) * s, (x0 - cx0) * s:(x1 - cx0) * s]
                return j + 1, acc.write(j, tf.transpose(core, [2, 0, 1, 3]))  # Width first, to concat.
            cols = tf.TensorArray(tf.uint8 if quantize else tf.float32, size=0, dynamic_size=True, infer_shape=False)
            _, cols = tf.while_loop(lambda j, _: j * t < w, one_tile, [0, cols])
            return tf.transpose(cols.concat(), [2, 1, 0, 3])  # [sH_row, N, sW, 3], rows first to concat.

        def one_band(i, acc):
            return i + 1, acc.write(i, one_row(i))
        rows = tf.TensorArray(tf.uint8 if quantize else tf.float32, size=0, dynamic_size=True, infer_shape=False)
        _, rows = tf.while_loop(lambda i, _: i * t < h, one_band, [0, rows])
        out = tf.transpose(rows.concat(), [1, 0, 2, 3])
        return tf.ensure_shape(out, [None, None, None, 3])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=ENHANCE_FLOAT.input)])
    def enhance_float(self, lr_image):
        with tf.control_dependencies(self._check_pixels(tf.reduce_prod(tf.shape(lr_image)[:3]))):
            return {ENHANCE_FLOAT.output: self._tiled(tf.identity(lr_image), quantize=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=ENHANCE.input)])
    def enhance(self, lr_image):
        with tf.control_dependencies(self._check_pixels(tf.reduce_prod(tf.shape(lr_image)[:3]))):
            return {ENHANCE.output: self._tiled(tf.cast(lr_image, tf.float32) / 255.0, quantize=True)}

    def _one_image(self, data: tf.Tensor) -> tf.Tensor:
        img = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
        channels = tf.shape(img)[-1]
        rgb = tf.cond(channels < 3, lambda: tf.image.grayscale_to_rgb(img[..., :1]), lambda: img[..., :3])
        size = tf.shape(img)[:2] * self._scale
        sr8 = self._tiled(tf.cast(rgb, tf.float32)[None] / 255.0, quantize=True)[0]

        def with_alpha():
            alpha = tf.image.resize(tf.cast(img[..., -1:], tf.float32), size, "bicubic")
            alpha = tf.cast(tf.clip_by_value(tf.round(alpha), 0.0, 255.0), tf.uint8)
            color = tf.cond(channels == 2, lambda: tf.image.rgb_to_grayscale(sr8), lambda: sr8)
            return tf.io.encode_png(tf.concat([color, alpha], axis=-1))

        def gray():
            return tf.io.encode_png(tf.image.rgb_to_grayscale(sr8))

        return tf.switch_case(channels - 1, [gray, with_alpha, lambda: tf.io.encode_png(sr8), with_alpha])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_DEFAULT.input)])
    def serving_default(self, image_bytes):
        pixels = tf.reduce_sum(tf.map_fn(header_pixels, image_bytes, fn_output_signature=tf.int64))
        with tf.control_dependencies(self._check_pixels(pixels)):
            png = tf.map_fn(self._one_image, tf.identity(image_bytes), fn_output_signature=tf.TensorSpec([], tf.string))
        return {SERVING_DEFAULT.output: png}


def header_pixels(data: tf.Tensor) -> tf.Tensor:
    """Width x height of an encoded PNG, JPEG, GIF, BMP or WebP, from its header alone (in-graph; nothing is
    decoded). Other contents give 0 (`tf.io.decode_image` then rejects them)."""
    def byte(i):
        return tf.cast(tf.io.decode_raw(tf.strings.substr(data, i, 1), tf.uint8)[0], tf.int64)

    def le(i, n):
        return sum(byte(i + k) * (256 ** k) for k in range(n))

    def be(i, n):
        return sum(byte(i + k) * (256 ** (n - 1 - k)) for k in range(n))

    def webp():
        kind = tf.strings.substr(data, 12, 4)
        lossless_w = 1 + byte(21) + (byte(22) % 64) * 256
        lossless_h = 1 + byte(22) // 64 + byte(23) * 4 + (byte(24) % 16) * 1024
        return tf.case([(tf.equal(kind, "VP8 "), lambda: (le(26, 2) % 16384) * (le(28, 2) % 16384)),
                        (tf.equal(kind, "VP8L"), lambda: lossless_w * lossless_h),
                        (tf.equal(kind, "VP8X"), lambda: (1 + le(24, 3)) * (1 + le(27, 3)))],
                       default=lambda: tf.constant(0, tf.int64))

    def jpeg():
        shape = tf.image.extract_jpeg_shape(data)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    def bmp():
        h = le(22, 4)
        return le(18, 4) * tf.where(h >= 2 ** 31, 2 ** 32 - h, h)  # Negative height: a top-down BMP.

    length = tf.strings.length(data)
    head = tf.strings.substr(data, 0, 4)
    return tf.case([
        (tf.logical_and(length >= 24, tf.equal(head, b"\x89PNG")), lambda: be(16, 4) * be(20, 4)),
        (tf.logical_and(length >= 4, tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")), jpeg),
        (tf.logical_and(length >= 10, tf.equal(head, b"GIF8")), lambda: le(6, 2) * le(8, 2)),
        (tf.logical_and(length >= 26, tf.equal(tf.strings.substr(data, 0, 2), b"BM")), bmp),
        (tf.logical_and(length >= 30, tf.equal(tf.strings.substr(data, 8, 4), b"WEBP")), webp)],
        default=lambda: tf.constant(0, tf.int64))


def generator_from_workdir(workdir: str) -> tuple:
    """Rebuilds the run's generator and restores its EMA weights from the latest checkpoint.

    Returns:
      (generator, metadata dict with kind, scale, step, data, and the last validation PSNR/SSIM).
    """
    run = RunDir(workdir)
    if not run.is_run():
        raise ExportError(f"--workdir={workdir} is not a training run (no {os.path.basename(run.config_path)}); "
                          "train with sr-train first")
    cfg = run.read_config()
    generator = models.build_generator(cfg.model)
    step = tf.Variable(0, dtype=tf.int64)
    try:  # The newest checkpoint that restores: a damaged latest one falls back to the one before.
        ckpt = checkpoints.restore_newest_good(tf.train.Checkpoint(ema_generator=generator, step=step),
                                               run.checkpoints)
    except checkpoints.CheckpointError as e:
        raise ExportError(str(e)) from None
    if not ckpt:
        raise ExportError(f"--workdir={workdir} has no checkpoint yet; let sr-train run until --ckpt_every steps")
    meta = {"model": cfg.model.kind, "scale": cfg.model.scale, "steps": int(step.numpy()), "checkpoint": ckpt,
            "architecture": dataclasses.asdict(cfg.model), "training_data": _training_data(cfg.data),
            "validation": run.last_validation()}
    return generator, meta


def _training_data(data_dir: str) -> dict:
    try:
        m = schema.read_manifest(data_dir)
    except schema.ManifestError:  # The data may have moved since; the export does not need it.
        return {"path": data_dir}
    return {"path": data_dir, "dataset": m.dataset, "counts": m.counts, "degradation": m.config.get("degradation"),
            "hr_size": m.config.get("hr_size"), "train_rescales": m.config.get("train_rescales", [])}


def export(generator: keras.Model, meta: dict, export_dir: str, model_name: str,
           version: Optional[int] = None, tile: int = DEFAULT_TILE,
           max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> str:
    """Writes `<export_dir>/<model_name>/<version>/` atomically; returns its path.

    The signatures run `tile` x `tile` tiles with the generator's receptive field as context (measured here), and
    refuse requests over `max_input_pixels` (0: no limit) with INVALID_ARGUMENT, which TF Serving answers with 400.

    Raises:
      ExportError: the version already exists, or the folder cannot be written.
    """
    model_dir = os.path.join(export_dir, model_name)
    version = version or saved_models.next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} already exists; pick another --version or leave it out for the next one")
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write to {model_dir}: {e.strerror or e}") from None
    safe_files.remove_stale_temps(model_dir)  # Left by a killed export.
    tmp = safe_files.make_temp_dir(model_dir, f"v{version}-")
    g32 = float32_copy(generator)
    scale = int(meta["scale"])
    overlap = tiling.default_overlap(tiling.measure_receptive_field(
        lambda x: g32(tf.constant(x), training=False).numpy(), scale))
    module = SRModule(g32, scale, tile, overlap, max_input_pixels)
    functions = {SERVING_DEFAULT.name: module.serving_default, ENHANCE.name: module.enhance,
                 ENHANCE_FLOAT.name: module.enhance_float}
    try:
        tf.saved_model.save(module, tmp, signatures=functions)
        meta = {**meta, "tiling": {"tile": tile, "overlap": overlap}, "max_input_pixels": max_input_pixels,
                "version": version, "model_name": model_name, "sr_keras_version": sr_keras.__version__,
                "tensorflow_version": tf.__version__,
                "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "signatures": signatures.describe_all()}
        meta_path = os.path.join(tmp, saved_models.METADATA_FILE)
        os.makedirs(os.path.dirname(meta_path), exist_ok=True)
        safe_files.write_text(meta_path, json.dumps(meta, indent=2))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; TF Serving may run as another user.
        os.rename(tmp, final)  # Fails if `final` appeared meanwhile (a non-empty folder is never replaced).
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
