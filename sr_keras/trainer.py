"""One adversarial trainer for both GANs.

SRGAN and the DCGAN variant differ only in what is injected here: the generator, the discriminator, the content
loss (VGG54 vs L1) and the loss weights. The step logic is written once.

Steps run in replica context (`strategy.run(trainer.train_step, ...)`). Every loss is per example and averaged
over the global batch, and every returned value is a per-replica share: summing it over replicas (what
`reduce_logs` does) gives the global batch mean, the same on 1 or N replicas.
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from sr_keras import losses

TRACKERS = ("g/total", "g/content", "g/adv", "d/real", "d/fake", "d/acc")


def _average(per_example: tf.Tensor) -> tf.Tensor:
    # Divides by the global batch (per-replica batch x replicas in sync), not the local one.
    return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32))


class AdversarialTrainer(keras.Model):
    """Trains a super-resolution GAN: Ledig et al. 2017 (SRGAN) and the DCGAN variant (Radford et al. 2016 with
    the LR image in place of the noise vector).

    Args:
      generator: lr [b, h, w, 3] in [0, 1] -> sr [b, s*h, s*w, 3].
      discriminator: hr-sized image -> one logit per example.
      content_loss: per-example (hr, sr) -> [b] loss of the adversarial phase (VGG54 for SRGAN, L1 for DCGAN).
      pixel_loss: per-example loss of the pretraining phase (MSE for SRResNet).
      g_optimizer, d_optimizer: Keras optimizers (LossScaleOptimizer under mixed_float16).
      content_weight, adv_weight: the generator loss is content_weight * content + adv_weight * adversarial.
      d_steps: discriminator updates per generator update.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, content_loss, pixel_loss,
                 g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer,
                 content_weight: float = 1.0, adv_weight: float = 1e-3, d_steps: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.content_loss = content_loss
        self.pixel_loss = pixel_loss
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.content_weight = content_weight
        self.adv_weight = adv_weight
        self.d_steps = d_steps
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKERS}

    def build_optimizers(self) -> None:
        """Creates optimizer slots now, inside the strategy scope (works around keras-team/keras#23085:
        'You must feed a value for placeholder tensor cond/...' under tf.distribute otherwise)."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, lr, training=False):
        return self.generator(lr, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    @staticmethod
    def _apply(optimizer, tape, scaled_loss, variables) -> None:
        # `scaled_loss` must come from `optimizer.scale_loss` *inside* the tape (a no-op without loss scaling),
        # and apply_gradients unscales: the LossScaleOptimizer contract under mixed_float16.
        grads = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(grads, variables))

    def pretrain_step(self, data) -> dict:
        """Phase 1 (SRResNet): the generator alone, with the pixel loss."""
        lr, hr = data
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            loss = _average(self.pixel_loss(hr, sr))
            scaled = self.g_optimizer.scale_loss(loss)
        self._apply(self.g_optimizer, tape, scaled, self.generator.trainable_variables)
        return {"g/total": loss, "g/content": loss}

    def train_step(self, data) -> dict:
        """Phase 2: one generator update and `d_steps` discriminator updates on the same batch."""
        lr, hr = data
        with tf.GradientTape() as g_tape:
            sr = self.generator(lr, training=True)
            fake_for_g = self.discriminator(sr, training=True)
            content = _average(self.content_loss(hr, sr))
            adv = _average(losses.generator_adversarial_loss(fake_for_g))
            g_total = self.content_weight * content + self.adv_weight * adv
            g_scaled = self.g_optimizer.scale_loss(g_total)
        sr = tf.stop_gradient(sr)
        for _ in range(self.d_steps):
            with tf.GradientTape() as d_tape:
                real_logits = self.discriminator(hr, training=True)
                fake_logits = self.discriminator(sr, training=True)
                d_real, d_fake = losses.discriminator_losses(real_logits, fake_logits)
                d_real, d_fake = _average(d_real), _average(d_fake)
                d_scaled = self.d_optimizer.scale_loss(d_real + d_fake)
            self._apply(self.d_optimizer, d_tape, d_scaled, self.discriminator.trainable_variables)
        self._apply(self.g_optimizer, g_tape, g_scaled, self.generator.trainable_variables)
        acc = _average(losses.discriminator_accuracy(real_logits, fake_logits))
        return {"g/total": g_total, "g/content": content, "g/adv": adv, "d/real": d_real, "d/fake": d_fake,
                "d/acc": acc}

    def update_trackers(self, logs: dict) -> None:
        """Feeds globally reduced step values into the Mean trackers (cross-replica context)."""
        for name, value in logs.items():
            self.trackers[name].update_state(value)


def reduce_logs(strategy: tf.distribute.Strategy, per_replica: dict) -> dict:
    """Sums per-replica shares into global batch means."""
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}


class EMA:
    """An exponential moving average copy of the generator (what is evaluated and exported).

    The decay warms up as min(decay, (1 + n) / (10 + n)) so that short runs are not dominated by the random
    initialisation. Moving statistics of BatchNorm are averaged too.
    """

    def __init__(self, generator: keras.Model, decay: float = 0.999):
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())
        self.decay = decay
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")
        self._source = generator

    def update(self) -> None:
        n = tf.cast(self.updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
        for ema_w, w in zip(self.model.weights, self._source.weights):
            ema_w.assign(decay * ema_w + (1.0 - decay) * tf.cast(w, ema_w.dtype))
        self.updates.assign_add(1)

    def copy_from_source(self) -> None:
        self.model.set_weights(self._source.get_weights())


def make_optimizer(lr, beta1: float, mixed_precision: Optional[str]) -> keras.optimizers.Optimizer:
    """Adam; wrapped in a dynamic LossScaleOptimizer under mixed_float16 (bf16 needs no loss scaling)."""
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=beta1)
    if mixed_precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
