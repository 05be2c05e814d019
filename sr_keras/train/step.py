"""One adversarial trainer for both GANs, owning the whole training step.

SRGAN and the DCGAN variant differ only in what is injected here: the generator, the discriminator, the content
loss (VGG54 vs L1) and the loss weights. The step is written once, and all of it lives here: the replica step,
`strategy.run`, the reduction of its values over replicas, the EMA update and the step counter.

    trainer = AdversarialTrainer(generator, discriminator, content_loss, pixel_loss, g_opt, d_opt, strategy)
    logs = trainer.train_step(iterator, phase=2)   # global batch means, the same on 1 or N replicas

It is deliberately not a `keras.Model`: Keras's `fit()` would average what each replica returns, and a step that
updates two networks with their own optimizers and an EMA copy does not fit that contract.
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from sr_keras.train import losses, run_dir

LOG_KEYS = {1: ("g/total", "g/content"),
            2: ("g/total", "g/content", "g/pixel", "g/phase", "g/adv", "d/real", "d/fake", "d/acc")}
# EMA warm-up: the decay used at update n is min(decay, (1 + n) / (EMA_WARMUP + n)), so that short runs are not
# dominated by the random initialisation (as in TF's ExponentialMovingAverage with num_updates).
EMA_WARMUP = 10.0


def _average(per_example: tf.Tensor) -> tf.Tensor:
    # Divides by the global batch (per-replica batch x replicas in sync), not the local one.
    return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32))


class EMA:
    """An exponential moving average copy of the generator (what is evaluated and exported).

    Moving statistics of BatchNorm are averaged too. See `EMA_WARMUP`.
    """

    def __init__(self, generator: keras.Model, decay: float = 0.999):
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())
        self.decay = decay
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")
        self._source = generator

    def update(self) -> None:
        n = tf.cast(self.updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + n) / (EMA_WARMUP + n))
        for ema_w, w in zip(self.model.weights, self._source.weights):
            ema_w.assign(decay * ema_w + (1.0 - decay) * tf.cast(w, ema_w.dtype))
        self.updates.assign_add(1)

    def copy_from_source(self) -> None:
        self.model.set_weights(self._source.get_weights())


class AdversarialTrainer:
    """Trains a super-resolution GAN: Ledig et al. 2017 (SRGAN) and the DCGAN variant (Radford et al. 2016 with
    the LR image in place of the noise vector). Build it inside `strategy.scope()`.

    Args:
      generator: lr [b, h, w, 3] in [0, 1] -> sr [b, s*h, s*w, 3].
      discriminator: hr-sized image -> one logit per example.
      content_loss: per-example (hr, sr) -> [b] loss of the adversarial phase (VGG54 for SRGAN, L1 for DCGAN).
      pixel_loss: per-example loss of the pretraining phase (MSE for SRResNet).
      gan_pixel_loss: per-example pixel term of the adversarial phase (L1, as BasicSR/ESRGAN), weighted by
        `pixel_weight`.
      g_optimizer, d_optimizer: Keras optimizers (LossScaleOptimizer under mixed_float16).
      strategy: the tf.distribute strategy the trainer was built under (default: the current one).
      content_weight, pixel_weight, adv_weight, phase_weight: the phase-2 generator loss is content_weight *
        content + pixel_weight * gan_pixel_loss + phase_weight * phase-mean loss (`losses.phase_mean_loss` at the
        generator's scale) + adv_weight * adversarial.
      d_steps: discriminator updates per generator update.
      ema_decay: decay of the EMA generator (`self.ema.model`).
      jit_compile: XLA-compile the replica step.
      clip_norm: if > 0, each replica's gradients are clipped to this global norm before the update. Adam is
        invariant to a constant gradient scale, so this only tames rare spikes (SPAN fine-tuned on real-world
        degradations: median norm 1, 99th percentile 5, one batch in 300 at 5,400, which blew the model up).
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, content_loss, pixel_loss,
                 g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer,
                 strategy: Optional[tf.distribute.Strategy] = None, content_weight: float = 1.0,
                 adv_weight: float = 5e-3, d_steps: int = 1, ema_decay: float = 0.999, jit_compile: bool = False,
                 pixel_weight: float = 0.0, gan_pixel_loss=losses.l1_loss, clip_norm: float = 0.0,
                 phase_weight: float = 0.0):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.generator = generator
        self.discriminator = discriminator
        self.content_loss = content_loss
        self.pixel_loss = pixel_loss
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.content_weight = content_weight
        self.pixel_weight = pixel_weight
        self.gan_pixel_loss = gan_pixel_loss
        self.adv_weight = adv_weight
        self.phase_weight = phase_weight
        self.d_steps = d_steps
        self.jit_compile = jit_compile
        self.clip_norm = clip_norm
        with self.strategy.scope():
            # Optimizer slots are created now, inside the scope (keras-team/keras#23085: "You must feed a value for
            # placeholder tensor cond/..." under tf.distribute otherwise).
            g_optimizer.build(generator.trainable_variables)
            d_optimizer.build(discriminator.trainable_variables)
            self.ema = EMA(generator, ema_decay)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self._step_fns = {}

    def checkpoint_objects(self) -> dict:
        """What a checkpoint of this trainer holds (names are part of the checkpoint format)."""
        return {run_dir.GENERATOR: self.generator, run_dir.DISCRIMINATOR: self.discriminator,
                run_dir.EMA_GENERATOR: self.ema.model, run_dir.EMA_UPDATES: self.ema.updates,
                run_dir.G_OPTIMIZER: self.g_optimizer, run_dir.D_OPTIMIZER: self.d_optimizer, run_dir.STEP: self.step}

    def train_step(self, iterator, phase: int) -> dict:
        """One global step of `phase` (1: pixel pretraining, 2: GAN) on the next batch of `iterator` (a distributed
        iterator of (lr, hr) batches). Updates the networks and the EMA, counts the step, and returns the global
        batch means of the losses as scalar tensors (keys: `LOG_KEYS[phase]`)."""
        if phase not in self._step_fns:
            self._step_fns[phase] = self._make_step_fn({1: self._pretrain_replica, 2: self._gan_replica}[phase])
        return self._step_fns[phase](iterator)

    def start_gan_phase(self) -> None:
        """Phase 2 starts from the phase-1 generator, EMA included."""
        self.ema.copy_from_source()

    def _make_step_fn(self, replica_step):
        replica_fn = tf.function(replica_step, jit_compile=True) if self.jit_compile else replica_step

        @tf.function
        def step_fn(iterator):
            shares = self.strategy.run(replica_fn, args=(next(iterator),))
            # Each replica returns its share of the global mean (`_average`); the sum is the global mean.
            logs = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in shares.items()}
            self.ema.update()
            self.step.assign_add(1)
            return logs
        return step_fn

    def _apply(self, optimizer, tape, scaled_loss, variables) -> None:
        # `scaled_loss` must come from `optimizer.scale_loss` *inside* the tape (a no-op without loss scaling),
        # and apply_gradients unscales: the LossScaleOptimizer contract under mixed_float16.
        grads = tape.gradient(scaled_loss, variables)
        if self.clip_norm:
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):  # Clip the unscaled norm.
                limit = self.clip_norm * tf.cast(optimizer.dynamic_scale, tf.float32)
            else:
                limit = self.clip_norm
            grads, _ = tf.clip_by_global_norm(grads, limit)
        optimizer.apply_gradients(zip(grads, variables))

    def _pretrain_replica(self, data) -> dict:
        """Phase 1 (SRResNet): the generator alone, with the pixel loss."""
        lr, _, target = _unpack(data)
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            loss = _average(self.pixel_loss(target, sr))
            scaled = self.g_optimizer.scale_loss(loss)
        self._apply(self.g_optimizer, tape, scaled, self.generator.trainable_variables)
        return {"g/total": loss, "g/content": loss}

    def _gan_replica(self, data) -> dict:
        """Phase 2: one generator update and `d_steps` discriminator updates on the same batch."""
        lr, hr, target = _unpack(data)
        with tf.GradientTape() as g_tape:
            sr = self.generator(lr, training=True)
            fake_for_g = self.discriminator(sr, training=True)
            content = _average(self.content_loss(target, sr))
            pixel = _average(self.gan_pixel_loss(target, sr))
            adv = _average(losses.generator_adversarial_loss(fake_for_g))
            # Colour is anchored on the photo itself, even when a teacher's output is the target: a teacher's own
            # colour shift (realesrgan_x4plus: 3.6 levels on the real-world set) is not distilled.
            phase = _average(losses.phase_mean_loss(hr, sr, tf.shape(sr)[1] // tf.shape(lr)[1]))
            g_total = (self.content_weight * content + self.pixel_weight * pixel + self.phase_weight * phase
                       + self.adv_weight * adv)
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
        return {"g/total": g_total, "g/content": content, "g/pixel": pixel, "g/phase": phase, "g/adv": adv,
                "d/real": d_real, "d/fake": d_fake, "d/acc": acc}


def _unpack(data) -> tuple:
    """(lr, hr, target): the content terms' target is a teacher's output when the batch carries one (a distillation
    set, `data.teacher`), else the HR photo; the discriminator's real images are always the HR photos."""
    lr, hr = data[0], data[1]
    return lr, hr, data[2] if len(data) > 2 else hr


def make_optimizer(learning_rate, beta1: float, mixed_precision: Optional[str]) -> keras.optimizers.Optimizer:
    """Adam; wrapped in a dynamic LossScaleOptimizer under mixed_float16 (bf16 needs no loss scaling)."""
    opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta1)
    if mixed_precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
