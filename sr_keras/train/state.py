"""What a run trains and checkpoints (`TrainState`), its learning-rate schedules, and where its generator may start
from: another run's checkpoint (`init_from_checkpoint`) or a zoo model (`init_from_zoo`)."""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

from sr_keras import models
from sr_keras.train import config as config_lib
from sr_keras.train import losses
from sr_keras.train import run_dir as run_dir_lib
from sr_keras.train.run_dir import resolve_checkpoint as _resolve
from sr_keras.train.run_dir import run_of_checkpoint
from sr_keras.train.step import AdversarialTrainer, make_optimizer
from sr_keras.zoo import cache as zoo_cache


class TrainError(ValueError):
    """A bad combination of options or data, found before training starts. One line that names the fix."""


class FollowSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The discriminator's schedule: the generator's, at the global step the discriminator's iteration falls in.

    D only steps in phase 2 (`d_steps` times per step), so its own iteration count starts at 0 there: iteration i
    uses `schedule(offset + i // d_steps)`. Both networks then move at one rate, as in the SRGAN paper.
    """

    def __init__(self, schedule, offset: int, d_steps: int = 1):
        self.schedule, self.offset, self.d_steps = schedule, offset, d_steps

    def __call__(self, iteration):
        return self.schedule(self.offset + iteration // self.d_steps)

    def get_config(self) -> dict:
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "offset": self.offset,
                "d_steps": self.d_steps}


def learning_rates(cfg: config_lib.TrainConfig) -> tuple:
    """(generator, discriminator) learning-rate schedules, each over its own optimizer's iterations."""
    rate = cfg.learning_rate
    span = cfg.schedule_steps or cfg.total_steps
    if cfg.schedule == "cosine" and cfg.warmup_steps:
        g = keras.optimizers.schedules.CosineDecay(0.0, max(1, span - cfg.warmup_steps), alpha=cfg.cosine_floor,
                                                   warmup_target=rate, warmup_steps=cfg.warmup_steps)
    elif cfg.schedule == "cosine":
        g = keras.optimizers.schedules.CosineDecay(rate, max(1, span), alpha=cfg.cosine_floor)
    else:
        decay_at = cfg.pretrain_steps + int(cfg.gan_steps * cfg.decay_at)
        g = keras.optimizers.schedules.PiecewiseConstantDecay([decay_at], [rate, rate * cfg.decay_factor])
    return g, FollowSchedule(g, cfg.pretrain_steps, cfg.d_steps)


class TrainState:
    """Everything a run trains and checkpoints, built from its config inside the strategy scope.

    Attributes:
      generator, discriminator: the Keras networks being trained.
      trainer: the `AdversarialTrainer` that owns the step (`trainer.train_step(iterator, phase)`), the EMA
        generator (`trainer.ema.model`, what is evaluated and exported) and the step counter (`trainer.step`).
      g_learning_rate, d_learning_rate: the learning-rate schedules (logged).
      checkpoint: a `tf.train.Checkpoint` of all of it (the layout `sr-export --workdir` reads).
    """

    def __init__(self, cfg: config_lib.TrainConfig, strategy: tf.distribute.Strategy):
        m = cfg.model
        with strategy.scope():
            self.generator = models.build_generator(m)
            self.discriminator = models.build_discriminator(m, cfg.hr_crop)
            # A run without a GAN phase never computes the content loss, so it needs no loss network (and no VGG
            # weights).
            content = (losses.make_content_loss(cfg.content_loss, cfg.vgg_weights, cfg.vgg_feature_scale)
                       if cfg.gan_steps else None)
            pixel = losses.mse_loss if cfg.pretrain_loss == "mse" else losses.l1_loss
            self.g_learning_rate, self.d_learning_rate = learning_rates(cfg)
            g_opt = make_optimizer(self.g_learning_rate, cfg.adam_beta1, cfg.mixed_precision)
            d_opt = make_optimizer(self.d_learning_rate, cfg.adam_beta1, cfg.mixed_precision)
            self.trainer = AdversarialTrainer(self.generator, self.discriminator, content, pixel, g_opt, d_opt,
                                              strategy, content_weight=cfg.content_weight,
                                              pixel_weight=cfg.pixel_weight, adv_weight=cfg.adv_weight,
                                              d_steps=cfg.d_steps, ema_decay=cfg.ema_decay,
                                              jit_compile=cfg.jit_compile, clip_norm=cfg.clip_norm,
                                              phase_weight=cfg.phase_weight)
            self.checkpoint = tf.train.Checkpoint(**self.trainer.checkpoint_objects())

    @property
    def step(self) -> int:
        return int(self.trainer.step.numpy())

    def learning_rate_logs(self) -> dict:
        t = self.trainer
        return {"learning_rate/generator": float(self.g_learning_rate(t.g_optimizer.iterations)),
                "learning_rate/discriminator": float(self.d_learning_rate(t.d_optimizer.iterations))}


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a run folder, its checkpoints/ folder or a prefix; TrainError if there is none."""
    prefix = _resolve(path)
    if not prefix:
        raise TrainError(f"--init_checkpoint={path}: no checkpoint there; give a run's --workdir or a checkpoint "
                         "prefix such as runs/photo_x4/checkpoints/ckpt-14000")
    return prefix


def init_from_checkpoint(state: TrainState, path: str) -> str:
    """Loads another run's EMA generator into this run's generator and EMA; returns the checkpoint used.

    Only the generator is read: the discriminator, optimizers and step start fresh. The architectures must
    match (same ModelConfig), else TrainError.
    """
    prefix = resolve_checkpoint(path)
    try:
        status = tf.train.Checkpoint(**{run_dir_lib.EMA_GENERATOR: state.generator}).read(prefix)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise TrainError(f"--init_checkpoint={path}: its generator does not match this --model/--preset "
                         f"architecture ({str(e).splitlines()[0][:200]})") from None
    status.expect_partial()  # The rest of that checkpoint (D, optimizers, step) is deliberately not read.
    state.trainer.ema.copy_from_source()
    unfinished = _unfinished_note(prefix)
    if unfinished:
        logging.warning(unfinished)
        print(f"warning: {unfinished}", flush=True)
    return prefix


def init_from_zoo(state: TrainState, name: str) -> None:
    """Loads a zoo model's converted weights (`zoo_cache.keras_generator`) into this run's generator and EMA."""

    source, _ = zoo_cache.keras_generator(name)
    if len(source.weights) != len(state.generator.weights) or any(
            a.shape != b.shape for a, b in zip(source.weights, state.generator.weights)):
        raise TrainError(f"--init_from={name}: its architecture differs from this run's generator")
    state.generator.set_weights(source.get_weights())
    state.trainer.ema.copy_from_source()


def _unfinished_note(prefix: str) -> str:
    """A warning when the checkpoint is from before the end of its run (e.g. stage 1 was stopped early)."""
    run_dir = run_of_checkpoint(prefix)
    if run_dir is None:
        return ""
    try:
        step = run_dir_lib.read_step(prefix)
        total = run_dir.read_config().total_steps
    except (OSError, ValueError, KeyError, TypeError, tf.errors.OpError):
        return ""
    return (f"{prefix} is step {step} of the {total} its run was set to; that run has not finished"
            if step < total else "")


