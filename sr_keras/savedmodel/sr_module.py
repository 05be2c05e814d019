"""The exported object: a float32 generator with image-in/image-out signatures that tile in the graph.

The signatures and their input/output names are defined in `sr_keras.savedmodel.signatures`; the tiles are those of
`sr_keras.image.tiling` (the same spans as the numpy path), so a TF Serving user gets the same bounded memory.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from sr_keras.image import tiling
from sr_keras.image.limits import ALPHA_RANGE, DEFAULT_EXPORT_MAX_INPUT_PIXELS
from sr_keras.models.interpolation import blend, interpolated_generator
from sr_keras.savedmodel import signatures
from sr_keras.savedmodel.signatures import ENHANCE, ENHANCE_FLOAT, SERVING_DEFAULT

DEFAULT_TILE = tiling.DEFAULT_TILE


def _clipped(sr: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(tf.cast(sr, tf.float32), 0.0, 1.0)


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
                 max_input_pixels: int = DEFAULT_EXPORT_MAX_INPUT_PIXELS):
        super().__init__()
        self.generator = generator
        self.scale = tf.Variable(scale, dtype=tf.int32, trainable=False, name="scale")
        self._scale, self._tile, self._overlap, self._max_pixels = scale, tile, overlap, max_input_pixels

    def _run(self, lr: tf.Tensor) -> tf.Tensor:
        """float32 [N, H, W, 3] in [0, 1] -> float32 [N, sH, sW, 3] clipped to [0, 1]."""
        return _clipped(self.generator(lr, training=False))

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

    def _tiled(self, lr: tf.Tensor, quantize: bool, run=None) -> tf.Tensor:
        """`run` (default `_run`) tile by tile: float32 [N, H, W, 3] -> [N, sH, sW, 3] (uint8 when `quantize`).

        The tiles are `tiling.tile_span`'s, as in the numpy path; each keeps its core (its context is at least the
        receptive field, so the cores join without a seam and no cross-fade is needed)."""
        t, o, s = self._tile, self._overlap, self._scale
        run = run or self._run
        h, w = tf.shape(lr)[1], tf.shape(lr)[2]
        dtype = tf.uint8 if quantize else tf.float32

        def finish(sr):
            return tf.cast(tf.round(sr * 255.0), tf.uint8) if quantize else sr
        if not t:
            return finish(run(lr))
        span = dict(minimum=tf.minimum, maximum=tf.maximum, where=tf.where)
        rows, cols = tiling.tile_count(h, t, o, tf.where), tiling.tile_count(w, t, o, tf.where)

        def one_row(i):
            cy0, cy1, y0, y1 = tiling.tile_span(i, rows, h, t, o, **span)

            def one_tile(j, acc):
                cx0, cx1, x0, x1 = tiling.tile_span(j, cols, w, t, o, **span)
                sr = finish(run(lr[:, cy0:cy1, cx0:cx1]))
                core = sr[:, (y0 - cy0) * s:(y1 - cy0) * s, (x0 - cx0) * s:(x1 - cx0) * s]
                return j + 1, acc.write(j, tf.transpose(core, [2, 0, 1, 3]))  # Width first, to concat.
            parts = tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False)
            _, parts = tf.while_loop(lambda j, _: j < cols, one_tile, [0, parts])
            return tf.transpose(parts.concat(), [2, 1, 0, 3])  # [sH_row, N, sW, 3], rows first to concat.

        def one_band(i, acc):
            return i + 1, acc.write(i, one_row(i))
        bands = tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False)
        _, bands = tf.while_loop(lambda i, _: i < rows, one_band, [0, bands])
        out = tf.transpose(bands.concat(), [1, 0, 2, 3])
        return tf.ensure_shape(out, [None, None, None, 3])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=ENHANCE_FLOAT.input)])
    def enhance_float(self, lr_image):
        with tf.control_dependencies(self._check_pixels(tf.reduce_prod(tf.shape(lr_image)[:3]))):
            return {ENHANCE_FLOAT.output: self._tiled(tf.identity(lr_image), quantize=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=ENHANCE.input)])
    def enhance(self, lr_image):
        with tf.control_dependencies(self._check_pixels(tf.reduce_prod(tf.shape(lr_image)[:3]))):
            return {ENHANCE.output: self._tiled(tf.cast(lr_image, tf.float32) / 255.0, quantize=True)}

    def _one_image(self, data: tf.Tensor, run=None) -> tf.Tensor:
        img = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
        channels = tf.shape(img)[-1]
        rgb = tf.cond(channels < 3, lambda: tf.image.grayscale_to_rgb(img[..., :1]), lambda: img[..., :3])
        size = tf.shape(img)[:2] * self._scale
        sr8 = self._tiled(tf.cast(rgb, tf.float32)[None] / 255.0, quantize=True, run=run)[0]

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

    def signature_functions(self) -> dict:
        return {SERVING_DEFAULT.name: self.serving_default, ENHANCE.name: self.enhance,
                ENHANCE_FLOAT.name: self.enhance_float}


_ALPHA = signatures.ALPHA_INPUT


class InterpolatedSRModule(SRModule):
    """An SRModule with network interpolation: every signature also has an `_alpha` variant whose generator weights
    are (1 - alpha) * PSNR + alpha * GAN, blended in the graph per instance (`Layer.stateless_call`: no variable is
    written, so concurrent requests with different alphas never interfere). The plain signatures run the weights
    blended at `default_alpha`, baked in at export (no per-request cost).

    Args:
      psnr_generator, gan_generator: float32 generators of one architecture (the ends of the knob).
      default_alpha: the alpha of the plain signatures.
      Others as SRModule.
    """

    def __init__(self, psnr_generator: keras.Model, gan_generator: keras.Model, scale: int, default_alpha: float,
                 tile: int = DEFAULT_TILE, overlap: int = 16, max_input_pixels: int = DEFAULT_EXPORT_MAX_INPUT_PIXELS):
        baked = gan_generator if default_alpha == 1.0 else interpolated_generator(psnr_generator, gan_generator,
                                                                                  default_alpha)
        super().__init__(baked, scale, tile, overlap, max_input_pixels)
        self.gan_generator = gan_generator  # The template of stateless_call, and the alpha = 1 weights.
        self.psnr_trainable = [tf.Variable(v, trainable=False) for v in psnr_generator.trainable_variables]
        self.psnr_non_trainable = [tf.Variable(v, trainable=False) for v in psnr_generator.non_trainable_variables]
        self.default_alpha = tf.Variable(default_alpha, dtype=tf.float32, trainable=False, name="default_alpha")

    def _blended(self, alpha: tf.Tensor) -> tuple:
        """(trainable, non-trainable) weight tensors at `alpha`: computed once per image, used by every tile."""
        g = self.gan_generator
        return (blend(self.psnr_trainable, g.trainable_variables, alpha),
                blend(self.psnr_non_trainable, g.non_trainable_variables, alpha))

    def _run_blended(self, lr: tf.Tensor, weights: tuple) -> tf.Tensor:
        sr, _ = self.gan_generator.stateless_call(weights[0], weights[1], lr, training=False)
        return _clipped(sr)

    def _run_alpha(self, lr: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
        return self._run_blended(lr, self._blended(alpha))

    @staticmethod
    def _check_alpha(alpha: tf.Tensor, n: tf.Tensor) -> list:
        lo, hi = ALPHA_RANGE
        in_range = f"{_ALPHA} must be in [{lo:g}, {hi:g}]"
        return [tf.debugging.assert_equal(tf.shape(alpha)[0], n, message=f"give one {_ALPHA} per instance"),
                tf.debugging.assert_greater_equal(alpha, lo, message=in_range),
                tf.debugging.assert_less_equal(alpha, hi, message=in_range)]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([], tf.float32)])
    def sr_tile_alpha(self, lr, alpha):
        """One untiled model call at `alpha` (for callers that tile themselves)."""
        return self._run_alpha(lr, alpha)

    def _per_instance(self, lr: tf.Tensor, alpha: tf.Tensor, quantize: bool) -> tf.Tensor:
        def one(args):
            x, a = args
            weights = self._blended(a)
            return self._tiled(x[None], quantize, run=lambda t: self._run_blended(t, weights))[0]
        out = tf.map_fn(one, (lr, alpha), fn_output_signature=tf.TensorSpec([None, None, 3],
                                                                            tf.uint8 if quantize else tf.float32))
        return tf.ensure_shape(out, [None, None, None, 3])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=ENHANCE_FLOAT.input),
                                  tf.TensorSpec([None], tf.float32, name=_ALPHA)])
    def enhance_float_alpha(self, lr_image, alpha):
        checks = self._check_pixels(tf.reduce_prod(tf.shape(lr_image)[:3])) + self._check_alpha(
            alpha, tf.shape(lr_image)[0])
        with tf.control_dependencies(checks):
            return {ENHANCE_FLOAT.output: self._per_instance(tf.identity(lr_image), alpha, quantize=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=ENHANCE.input),
                                  tf.TensorSpec([None], tf.float32, name=_ALPHA)])
    def enhance_alpha(self, lr_image, alpha):
        checks = self._check_pixels(tf.reduce_prod(tf.shape(lr_image)[:3])) + self._check_alpha(
            alpha, tf.shape(lr_image)[0])
        with tf.control_dependencies(checks):
            return {ENHANCE.output: self._per_instance(tf.cast(lr_image, tf.float32) / 255.0, alpha, quantize=True)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_DEFAULT.input),
                                  tf.TensorSpec([None], tf.float32, name=_ALPHA)])
    def serving_default_alpha(self, image_bytes, alpha):
        pixels = tf.reduce_sum(tf.map_fn(header_pixels, image_bytes, fn_output_signature=tf.int64))
        with tf.control_dependencies(self._check_pixels(pixels) + self._check_alpha(alpha, tf.shape(image_bytes)[0])):
            def one(args):
                weights = self._blended(args[1])
                return self._one_image(args[0], lambda t: self._run_blended(t, weights))
            png = tf.map_fn(one, (tf.identity(image_bytes), alpha), fn_output_signature=tf.TensorSpec([], tf.string))
        return {SERVING_DEFAULT.output: png}

    def signature_functions(self) -> dict:
        return {**super().signature_functions(),
                signatures.alpha_name(SERVING_DEFAULT.name): self.serving_default_alpha,
                signatures.alpha_name(ENHANCE.name): self.enhance_alpha,
                signatures.alpha_name(ENHANCE_FLOAT.name): self.enhance_float_alpha}


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


