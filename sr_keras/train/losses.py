"""Losses. Every loss returns one value per example, shape [batch]; the trainer averages them over the
*global* batch (`tf.nn.compute_average_loss`), so 1 and N replicas give the same numbers."""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from sr_keras.models import lossnets, perceptual, vgg
from sr_keras.models.vgg import build_vgg_extractor

PerExampleLoss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (hr, sr) -> [batch]


def l1_loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean absolute error per example."""
    return tf.reduce_mean(tf.abs(tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)), axis=[1, 2, 3])


def mse_loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean squared error per example."""
    return tf.reduce_mean(tf.square(tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)), axis=[1, 2, 3])


def phase_mean_loss(hr: tf.Tensor, sr: tf.Tensor, period: int) -> tf.Tensor:
    """Per example: the mean absolute value of the error's mean over each of the `period` x `period` pixel phases,
    per channel, in [0, 1] units.

    It targets the two artefacts `metrics.artefacts` flags, at their source: a colour shift moves every phase's mean
    error the same way, and a checkerboard from a pixel shuffle moves them apart. A texture a GAN invents (or
    noise) averages out within each phase, so this term leaves it alone, where an L1 pixel loss strong enough to
    stop the drift would blur it.
    """
    e = tf.cast(sr, tf.float32) - tf.cast(hr, tf.float32)
    shape = tf.shape(e)
    h, w = shape[1] // period * period, shape[2] // period * period
    e = tf.reshape(e[:, :h, :w], [shape[0], h // period, period, w // period, period, shape[3]])
    return tf.reduce_mean(tf.abs(tf.reduce_mean(e, axis=[1, 3])), axis=[1, 2, 3])


class VGGContentLoss:
    """SRGAN's perceptual content loss: MSE between VGG19 features of HR and SR, features scaled by 1/12.75."""

    def __init__(self, extractor: keras.Model, feature_scale: float = 1.0 / 12.75):
        self.extractor = extractor
        self.feature_scale = feature_scale

    def __call__(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        f_hr = tf.cast(self.extractor(hr, training=False), tf.float32) * self.feature_scale
        f_sr = tf.cast(self.extractor(sr, training=False), tf.float32) * self.feature_scale
        return tf.reduce_mean(tf.square(tf.stop_gradient(f_hr) - f_sr), axis=[1, 2, 3])


class PerceptualLoss:
    """Real-ESRGAN's perceptual loss: L1 between features of several VGG layers (before ReLU), weighted and summed.

    `extractor` maps [0, 1] RGB to a list of feature maps (`vgg.build_vgg19_taps`, or VGG16's
    `perceptual.build_vgg16` offline)."""

    def __init__(self, extractor: keras.Model, layer_weights=(0.1, 0.1, 1.0, 1.0, 1.0)):
        self.extractor = extractor
        self.layer_weights = tuple(layer_weights)

    def __call__(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        total = 0.0
        for f_hr, f_sr, w in zip(self.extractor(hr, training=False), self.extractor(sr, training=False),
                                 self.layer_weights):
            diff = tf.abs(tf.stop_gradient(tf.cast(f_hr, tf.float32)) - tf.cast(f_sr, tf.float32))
            total += w * tf.reduce_mean(diff, axis=[1, 2, 3])
        return total


def _bce_with_logits(labels: float, logits: tf.Tensor) -> tf.Tensor:
    """Per example: the mean BCE over every logit of the example (one, or one per pixel for a U-Net D)."""
    logits = tf.cast(tf.reshape(logits, [tf.shape(logits)[0], -1]), tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), labels), logits=logits)
    return tf.reduce_mean(bce, axis=1)


def generator_adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating GAN loss for G: -log D(G(lr)), per example."""
    return _bce_with_logits(1.0, fake_logits)


def discriminator_losses(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tuple:
    """(-log D(hr), -log(1 - D(G(lr)))), per example."""
    return _bce_with_logits(1.0, real_logits), _bce_with_logits(0.0, fake_logits)


def discriminator_accuracy(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Per example: mean of (real judged real, fake judged fake)."""
    real = tf.reduce_mean(tf.cast(tf.reshape(real_logits, [tf.shape(real_logits)[0], -1]) > 0, tf.float32), 1)
    fake = tf.reduce_mean(tf.cast(tf.reshape(fake_logits, [tf.shape(fake_logits)[0], -1]) < 0, tf.float32), 1)
    return (real + fake) / 2.0


VGG16_FOR = {"vgg54": "conv5_3", "vgg22": "conv2_2"}  # The VGG16 layer standing in for a VGG19 one.


def _vgg16(taps, pre_activation: bool) -> keras.Model:
    return perceptual.build_vgg16(lossnets.weights("vgg16"), taps, pre_activation)


def make_content_loss(name: str, vgg_weights: str = "imagenet", feature_scale: float = 1.0 / 12.75) -> PerExampleLoss:
    """`vgg54` | `vgg22` (perceptual, SRGAN) | `percep` (Real-ESRGAN's five-layer L1) | `l1` (the DCGAN variant) |
    `mse`. `vgg_weights=vgg16`: the VGG16 ImageNet features of `sr_keras.models.lossnets` stand in for VGG19's."""
    if name in ("vgg54", "vgg22"):
        if vgg_weights == "vgg16":
            return VGGContentLoss(_vgg16((VGG16_FOR[name],), pre_activation=False), feature_scale)
        return VGGContentLoss(build_vgg_extractor(name, vgg_weights), feature_scale)
    if name == "percep":
        if vgg_weights == "vgg16":
            return PerceptualLoss(_vgg16(perceptual.VGG16_TAPS, pre_activation=True), vgg.PERCEPTUAL_WEIGHTS)
        return PerceptualLoss(vgg.build_vgg19_taps(vgg_weights), vgg.PERCEPTUAL_WEIGHTS)
    if name == "l1":
        return l1_loss
    if name == "mse":
        return mse_loss
    raise ValueError(f"unknown content loss {name!r}; choose vgg54, vgg22, percep, l1 or mse")
