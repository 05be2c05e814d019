"""The VGG19 perceptual feature extractor (SRGAN's content loss).

`vgg54` = block5_conv4 features (the paper's VGG5,4); `vgg22` = block2_conv2 (VGG2,2). Input is RGB in [0, 1];
`VGGPreprocess` applies `keras.applications.vgg19.preprocess_input` (caffe style: 0..255, RGB->BGR, ImageNet
mean subtracted) inside the model, so callers never have to remember it.
"""

from __future__ import annotations

import os

import keras
from absl import logging

VGG_LAYERS = {"vgg54": "block5_conv4", "vgg22": "block2_conv2"}
# Real-ESRGAN's perceptual loss: VGG19 conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 before their ReLU, L1, weighted.
PERCEPTUAL_TAPS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4")
PERCEPTUAL_WEIGHTS = (0.1, 0.1, 1.0, 1.0, 1.0)
# Keras's VGG19 takes caffe-style input (0..255 minus the mean), torchvision's (which Real-ESRGAN's weights assume)
# ImageNet-standardised input: features are about 255 x 0.226 larger here, so they are divided by it.
CAFFE_TO_TORCH = 1.0 / (255.0 * 0.226)
WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


class VGGWeightsError(RuntimeError):
    """The ImageNet VGG19 weights are not available. The message names the file and where to put it."""


def keras_cache_path() -> str:
    """Where `keras.applications.VGG19(weights="imagenet")` looks for (and downloads) its weights."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(keras_home, "models", WEIGHTS_FILE)


@keras.saving.register_keras_serializable(package="sr_keras")
class VGGPreprocess(keras.layers.Layer):
    """[0, 1] RGB -> VGG19's caffe-style input (0..255 BGR minus the ImageNet mean)."""

    def call(self, x):
        return keras.applications.vgg19.preprocess_input(x * 255.0)


def imagenet_weights_available() -> bool:
    """True when the ImageNet VGG19 notop weights are cached, or were just downloaded into the Keras cache."""
    if os.path.exists(keras_cache_path()):
        return True
    try:
        keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    except Exception:  # noqa: BLE001 - offline: URLError, HTTPError, hash mismatch... all mean "not available".
        return False
    return True


def missing_weights_message(reason: str = "") -> str:
    return (f"VGG19 ImageNet weights not found: place {WEIGHTS_FILE} in {os.path.dirname(keras_cache_path())}/ "
            f"or pass --vgg_weights=PATH (--vgg_weights=none for a non-perceptual smoke run){reason}")


def build_vgg_extractor(layer: str = "vgg54", weights: str = "imagenet") -> keras.Model:
    """A frozen model mapping [0, 1] RGB images to VGG19 features of `layer`.

    Args:
      layer: "vgg54" (block5_conv4) or "vgg22" (block2_conv2).
      weights: "imagenet" (cached file, else Keras downloads it), a path to the notop .h5 file, or "none"
        (random init: tests and offline smoke runs only; the loss is then not perceptual).

    Raises:
      VGGWeightsError: the weights are unavailable, in one line that names the fix.
    """
    if layer not in VGG_LAYERS:
        raise ValueError(f"unknown VGG layer {layer!r}; choose one of {list(VGG_LAYERS)}")
    if weights == "none":
        logging.warning("!" * 80 + "\n--vgg_weights=none: VGG19 is RANDOMLY initialised; the content loss is NOT "
                        "perceptual. Use this only for tests and offline smoke runs.\n" + "!" * 80)
        base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    elif weights == "imagenet":
        try:
            base = keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as e:  # Download failures come as many types; users need the fix, not the trace.
            raise VGGWeightsError(missing_weights_message(f" ({type(e).__name__})")) from None
    else:
        path = os.path.expanduser(weights)
        if not os.path.isfile(path):
            raise VGGWeightsError(missing_weights_message(f" (--vgg_weights={weights}: no such file)"))
        base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        try:
            base.load_weights(path)
        except Exception as e:
            raise VGGWeightsError(f"--vgg_weights={weights} is not the VGG19 notop weights file "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    base.trainable = False
    # === Functional Model ===
    inputs = keras.Input((None, None, 3), name="rgb")
    x = VGGPreprocess(name="vgg_preprocess")(inputs)
    out_layer = VGG_LAYERS[layer]
    for lyr in base.layers[1:]:
        x = lyr(x)
        if lyr.name == out_layer:
            break
    extractor = keras.Model(inputs, x, name=f"vgg19_{layer}")
    extractor.trainable = False
    return extractor


def build_vgg19_taps(weights: str = "imagenet", taps=PERCEPTUAL_TAPS) -> keras.Model:
    """[0, 1] RGB -> VGG19 features at `taps` (Keras layer names), each taken before its ReLU (as Real-ESRGAN's
    perceptual loss), scaled by CAFFE_TO_TORCH. `weights` as `build_vgg_extractor`."""
    base = build_vgg_extractor("vgg54", weights)
    inputs = keras.Input((None, None, 3), name="rgb")
    x, outs = base.get_layer("vgg_preprocess")(inputs), []
    for lyr in base.layers[2:]:
        if isinstance(lyr, keras.layers.Conv2D):
            linear = keras.layers.Conv2D(lyr.filters, lyr.kernel_size, padding="same", name=lyr.name)
            x = linear(x)
            linear.set_weights(lyr.get_weights())
            if lyr.name in taps:
                outs.append(keras.layers.Rescaling(CAFFE_TO_TORCH, name=f"{lyr.name}_scaled")(x))
            x = keras.layers.ReLU(name=f"{lyr.name}_relu")(x)
        else:
            x = lyr(x)
        if len(outs) == len(taps):
            break
    model = keras.Model(inputs, outs, name="vgg19_taps")
    model.trainable = False
    return model
