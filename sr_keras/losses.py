"""Losses. Every loss returns one value per example, shape [batch]; the trainer averages them over the
*global* batch (`tf.nn.compute_average_loss`), so 1 and N replicas give the same numbers."""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from sr_keras.models.vgg import build_vgg_extractor

PerExampleLoss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (hr, sr) -> [batch]


def l1_loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean absolute error per example."""
    return tf.reduce_mean(tf.abs(tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)), axis=[1, 2, 3])


def mse_loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean squared error per example."""
    return tf.reduce_mean(tf.square(tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)), axis=[1, 2, 3])


class VGGContentLoss:
    """SRGAN's perceptual content loss: MSE between VGG19 features of HR and SR, features scaled by 1/12.75."""

    def __init__(self, extractor: keras.Model, feature_scale: float = 1.0 / 12.75):
        self.extractor = extractor
        self.feature_scale = feature_scale

    def __call__(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        f_hr = tf.cast(self.extractor(hr, training=False), tf.float32) * self.feature_scale
        f_sr = tf.cast(self.extractor(sr, training=False), tf.float32) * self.feature_scale
        return tf.reduce_mean(tf.square(tf.stop_gradient(f_hr) - f_sr), axis=[1, 2, 3])


def _bce_with_logits(labels: float, logits: tf.Tensor) -> tf.Tensor:
    logits = tf.cast(tf.reshape(logits, [tf.shape(logits)[0]]), tf.float32)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), labels), logits=logits)


def generator_adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating GAN loss for G: -log D(G(lr)), per example."""
    return _bce_with_logits(1.0, fake_logits)


def discriminator_losses(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tuple:
    """(-log D(hr), -log(1 - D(G(lr)))), per example."""
    return _bce_with_logits(1.0, real_logits), _bce_with_logits(0.0, fake_logits)


def discriminator_accuracy(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Per example: mean of (real judged real, fake judged fake)."""
    real = tf.cast(tf.reshape(real_logits, [-1]) > 0, tf.float32)
    fake = tf.cast(tf.reshape(fake_logits, [-1]) < 0, tf.float32)
    return (real + fake) / 2.0


def make_content_loss(name: str, vgg_weights: str = "imagenet", feature_scale: float = 1.0 / 12.75) -> PerExampleLoss:
    """`vgg54` | `vgg22` (perceptual, SRGAN) | `l1` (the DCGAN variant) | `mse`."""
    if name in ("vgg54", "vgg22"):

        return VGGContentLoss(build_vgg_extractor(name, vgg_weights), feature_scale)
    if name == "l1":
        return l1_loss
    if name == "mse":
        return mse_loss
    raise ValueError(f"unknown content loss {name!r}; choose vgg54, vgg22, l1 or mse")
