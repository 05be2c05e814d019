"""Custom layers shared by the generators. Each is a Layer subclass with get_config (no Lambda layers), so
models save and load as `.keras` under safe_mode and export as SavedModels."""

from __future__ import annotations

import keras
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


@keras.saving.register_keras_serializable(package="sr_keras")
class BicubicUpsample(keras.layers.Layer):
    """Bicubic upscaling by an integer factor; the base of the VDSR-style global residual (`bicubic_skip`)."""

    method = "bicubic"

    def __init__(self, factor: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        size = tf.shape(x)[1:3] * self.factor
        return tf.cast(tf.image.resize(x, size, method=self.method), x.dtype)

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
