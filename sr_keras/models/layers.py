"""Custom layers shared by the generators. Each is a Layer subclass with get_config (no Lambda layers), so
models save and load as `.keras` under safe_mode and export as SavedModels."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="sr_keras")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel convolution's rearrangement (Shi et al. 2016): [h, w, c*r*r] -> [h*r, w*r, c]."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return tf.nn.depth_to_space(x, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.factor
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def bicubic_phase_weights(factor: int, a: float = -0.5, table_size: int = 1024) -> np.ndarray:
    """[factor, 5] weights of input offsets -2..2 for each output phase of `tf.image.resize(method="bicubic")`
    (half-pixel centres, Keys' cubic with a = -0.5), as TF computes them: from its 1024-entry coefficient table,
    in float32, so the convolution below reproduces the resize to float rounding."""
    w = np.zeros((factor, 5), np.float64)
    f32 = np.float32

    def near(i):  # Keys' cubic at distance i / table_size (< 1) and at 1 + that (TF's coeffs_table).
        d = f32(i / table_size)
        return f32(((a + 2) * d - (a + 3)) * d * d + 1)

    def far(i):
        d = f32(i / table_size) + 1
        return f32(((a * d - 5 * a) * d + 8 * a) * d - 4 * a)

    for k in range(factor):
        t = f32(k + 0.5) * f32(1.0 / factor) - f32(0.5)  # Source position of output phase k, from input i.
        i0 = int(np.floor(t))
        o = int(np.rint(f32(t - i0) * table_size))
        for off, weight in zip(range(i0 - 1, i0 + 3), (far(o), near(o), near(table_size - o), far(table_size - o))):
            w[k, off + 2] = weight
    return w


@keras.saving.register_keras_serializable(package="sr_keras")
class BicubicUpsample(keras.layers.Layer):
    """Bicubic upscaling by an integer factor; the base of the VDSR-style global residual (`bicubic_skip`).

    Equal to `tf.image.resize(method="bicubic")` (to float rounding), but built from ops that every runtime has:
    one 5x5 convolution gives the factor x factor phases of each input pixel and `depth_to_space` places them.
    Taps outside the image get no weight and the rest are renormalised, as TF does: the same convolution of an
    image of ones gives the divisor. So the layer exports to ONNX and LiteRT builtins (TF's ResizeBicubic would
    need LiteRT's Flex delegate)."""

    method = "bicubic"

    def __init__(self, factor: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        r, c = self.factor, int(input_shape[-1])
        w = bicubic_phase_weights(r)
        kernel = np.zeros((5, 5, c, r * r * c), np.float32)
        ones = np.zeros((5, 5, 1, r * r), np.float32)
        for ky in range(r):
            for kx in range(r):
                ones[:, :, 0, ky * r + kx] = np.outer(w[ky], w[kx])
                for ch in range(c):  # depth_to_space's channel order: (ky * r + kx) * c + ch.
                    kernel[:, :, ch, (ky * r + kx) * c + ch] = ones[:, :, 0, ky * r + kx]
        self._kernel, self._ones_kernel = kernel, ones

    def call(self, x):
        pad = [[0, 0], [2, 2], [2, 2], [0, 0]]
        x32 = tf.cast(x, tf.float32)
        y = tf.nn.depth_to_space(tf.nn.conv2d(x32, self._kernel, 1, pad), self.factor)
        norm = tf.nn.depth_to_space(tf.nn.conv2d(tf.ones_like(x32[..., :1]), self._ones_kernel, 1, pad), self.factor)
        return tf.cast(y / norm, x.dtype)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="sr_keras")
class BilinearUpsample(BicubicUpsample):
    """Bilinear upscaling by an integer factor (half-pixel centres, as PyTorch's align_corners=False), for inputs of
    any size (Keras's UpSampling2D needs static sizes for bilinear)."""

    method = "bilinear"

    def build(self, input_shape):
        pass

    def call(self, x):
        size = tf.shape(x)[1:3] * self.factor
        return tf.cast(tf.image.resize(x, size, method=self.method), x.dtype)


BN_MOMENTUM = 0.9


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """BatchNorm whose batch statistics are synchronised across replicas, so a global batch split over N devices
    normalises exactly like the same batch on one device (a no-op outside tf.distribute)."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=True, name=name)


def residual_block(x, filters: int, activation: str, name: str, use_bn: bool = True):
    """conv3x3 - BN - act - conv3x3 - BN, plus the identity skip (SRResNet / the DCGAN variant).
    `use_bn=False` drops both BatchNorms, as EDSR (Lim et al. 2017) does for PSNR-oriented models."""
    skip = x
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    if use_bn:
        x = batch_norm(f"{name}_bn1")(x)
    x = activate(x, activation, f"{name}_act")
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    if use_bn:
        x = batch_norm(f"{name}_bn2")(x)
    return keras.layers.Add(name=f"{name}_add")([skip, x])


def activate(x, activation: str, name: str):
    """prelu (one slope per channel: shared over H and W), relu, or leaky (slope 0.2)."""
    if activation == "prelu":
        return keras.layers.PReLU(shared_axes=[1, 2], name=name)(x)
    if activation == "relu":
        return keras.layers.ReLU(name=name)(x)
    if activation == "leaky":
        return keras.layers.LeakyReLU(negative_slope=0.2, name=name)(x)
    raise ValueError(f"unknown activation {activation!r}")


def image_output(x, lr, scale: int, bicubic_skip: bool, name: str):
    """Adds the bicubic base when `bicubic_skip`, and returns float32 (also under mixed precision). The base and
    the sum are computed in float32: in bfloat16 (8-bit mantissa) they would round away corrections smaller than
    about one uint8 level, which are most of what the network adds to the base early in training."""
    if bicubic_skip:
        base = BicubicUpsample(scale, dtype="float32", name="bicubic_base")(lr)
        x = keras.layers.Add(dtype="float32", name="global_residual")([base, x])
    return keras.layers.Activation("linear", dtype="float32", name=name)(x)
