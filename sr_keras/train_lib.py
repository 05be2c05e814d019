"""`train_and_evaluate(cfg, workdir, strategy)`: phases, checkpoints, evaluation and summaries.

Phase 1 trains the generator alone with a pixel loss (`pretrain_steps`, the SRResNet phase); phase 2 trains the
GAN (`gan_steps`) from the phase-1 generator. Rerunning with the same workdir resumes from the latest checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sr_keras import config as config_lib
from sr_keras import checkpoints, curves, losses, metrics, models, progress
from sr_keras.data import pipeline, schema
from sr_keras.data.degradation import bicubic_upscale
from sr_keras.distribute import is_chief
from sr_keras.run_dir import RunDir, resolve_checkpoint as _resolve, run_of_checkpoint
from sr_keras.trainer import LOG_KEYS, AdversarialTrainer, make_optimizer


class TrainError(ValueError):
    """A bad combination of options or data, found before training starts. One line that names the fix."""


def validate(cfg: config_lib.TrainConfig, strategy: tf.distribute.Strategy) -> schema.Manifest:
    """Checks the config against the data and the strategy; returns the data's manifest (read here, once)."""
    scale = cfg.model.scale
    if cfg.hr_crop % scale:
        raise TrainError(f"--hr_crop={cfg.hr_crop} is not divisible by the scale {scale}")
    if cfg.eval_crop % scale:
        raise TrainError(f"eval_crop={cfg.eval_crop} is not divisible by the scale {scale}")
    if cfg.model.kind == "srgan" and cfg.hr_crop % 16:
        raise TrainError(f"--hr_crop={cfg.hr_crop}: the SRGAN discriminator halves 4 times; use a multiple of 16")
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise TrainError(f"--batch_size={cfg.batch_size} is not divisible by the {replicas} replicas")
    if scale not in config_lib.SCALES:
        raise TrainError(f"--scale={scale}: the generators upsample by {', '.join(map(str, config_lib.SCALES))}")
    if cfg.schedule not in config_lib.SCHEDULES:
        raise TrainError(f"schedule={cfg.schedule}: choose one of {', '.join(config_lib.SCHEDULES)}")
    if cfg.content_loss not in config_lib.CONTENT_LOSSES:
        raise TrainError(f"content_loss={cfg.content_loss}: choose one of {config_lib.CONTENT_LOSSES}")
    if cfg.init_checkpoint:
        resolve_checkpoint(cfg.init_checkpoint)
    if not os.path.isdir(cfg.data):
        raise TrainError(f"--data={cfg.data}: no such folder; build it with "
                         f"sr-build-tfrecords --scale={scale} --out_dir={cfg.data}")
    try:
        manifest = schema.read_manifest(cfg.data)
    except schema.ManifestError as e:
        raise TrainError(str(e)) from None
    if manifest.scale != scale:
        raise TrainError(f"--data={cfg.data} was built for x{manifest.scale}, but the model is x{scale}; rebuild "
                         f"with sr-build-tfrecords --scale={scale}, or train with --scale={manifest.scale}")
    for split in ("train", "val"):
        if not manifest.counts.get(split):
            raise TrainError(f"--data={cfg.data} has no {split!r} examples; rebuild it with a val split "
                             "(--val_fraction) or more images")
    return manifest


MSE_FALLBACK_NOTE = "MSE content: VGG19 weights unavailable"
# The adversarial weight of the SRGAN-MSE fallback (at most; a lower --adv_weight stays). The MSE content is
# smaller than a perceptual loss, so the VGG recipes' 5e-3 lets the adversarial term take over. Measured offline on
# the sample_x4 preset (grid score on the sample validation photos, 1 = bicubic's; two or three runs each):
# 5e-3: 1.11 (nearest upsampler) to 17 (pixel shuffle); the paper's 1e-3: 1.04, 1.05, 1.16; 5e-4: 1.03, 1.04.
SRGAN_MSE_ADV_WEIGHT = 5e-4


def resolve_content_loss(cfg: config_lib.TrainConfig) -> config_lib.TrainConfig:
    """The config with the content loss that will really run.

    A perceptual (VGG) content loss with `vgg_weights=imagenet` needs the ImageNet weights. When they are neither
    cached nor downloadable, `vgg_fallback=mse` trains SRGAN-MSE (the SRGAN paper's MSE-content variant) and notes
    why in `content_note`; random VGG features are used only when asked for (`vgg_weights=none`).

    Raises:
      VGGWeightsError: the weights are unavailable and `vgg_fallback=error`, or an explicit weights path is bad.
    """
    if not cfg.content_loss.startswith("vgg") or cfg.vgg_weights != "imagenet":
        return cfg
    from sr_keras.models.vgg import VGGWeightsError, imagenet_weights_available, missing_weights_message

    if imagenet_weights_available():
        return cfg
    if cfg.vgg_fallback != "mse":
        raise VGGWeightsError(missing_weights_message())
    adv_weight = min(cfg.adv_weight, SRGAN_MSE_ADV_WEIGHT)
    message = (f"{MSE_FALLBACK_NOTE}: training SRGAN-MSE (the paper's MSE-content variant; adversarial weight "
               f"{adv_weight:g}). For the perceptual VGG54 loss, {missing_weights_message().split(': ', 1)[1]}")
    logging.warning(message)
    print(f"note: {message}", flush=True)
    return dataclasses.replace(cfg, content_loss="mse", content_note=MSE_FALLBACK_NOTE, adv_weight=adv_weight)


def _check_workdir_config(run_dir: RunDir, cfg: config_lib.TrainConfig) -> None:
    if not run_dir.is_run():
        return
    old = run_dir.read_config_dict()
    if old.get("model") != dataclasses.asdict(cfg.model):
        raise TrainError(f"--workdir={run_dir.path} holds a run of a different model ({old.get('model')}); "
                         "use a new --workdir")


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
    if cfg.schedule == "cosine":
        g = keras.optimizers.schedules.CosineDecay(rate, max(1, cfg.total_steps), alpha=cfg.cosine_floor)
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
            content = losses.make_content_loss(cfg.content_loss, cfg.vgg_weights, cfg.vgg_feature_scale)
            pixel = losses.mse_loss if cfg.pretrain_loss == "mse" else losses.l1_loss
            self.g_learning_rate, self.d_learning_rate = learning_rates(cfg)
            g_opt = make_optimizer(self.g_learning_rate, cfg.adam_beta1, cfg.mixed_precision)
            d_opt = make_optimizer(self.d_learning_rate, cfg.adam_beta1, cfg.mixed_precision)
            self.trainer = AdversarialTrainer(self.generator, self.discriminator, content, pixel, g_opt, d_opt,
                                              strategy, content_weight=cfg.content_weight,
                                              pixel_weight=cfg.pixel_weight, adv_weight=cfg.adv_weight,
                                              d_steps=cfg.d_steps, ema_decay=cfg.ema_decay,
                                              jit_compile=cfg.jit_compile)
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
        status = tf.train.Checkpoint(ema_generator=state.generator).read(prefix)
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
    """Loads a zoo model's converted weights (`zoo.keras_generator`) into this run's generator and EMA."""
    from sr_keras import zoo

    source, _ = zoo.keras_generator(name)
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
        step = int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))
        total = run_dir.read_config().total_steps
    except (OSError, ValueError, KeyError, TypeError, tf.errors.OpError):
        return ""
    return (f"{prefix} is step {step} of the {total} its run was set to; that run has not finished"
            if step < total else "")


def _eval_examples(cfg: config_lib.TrainConfig, manifest: schema.Manifest) -> list:
    """The first `eval_images` validation pairs, uint8 [1, h, w, 3] each (what `evaluate` scores)."""
    ds = pipeline.eval_dataset(manifest, "val", hr_crop=cfg.eval_crop, batch_size=1, as_float=False)
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(cfg.eval_images)]


def evaluate(generator: keras.Model, examples: list, scale: int) -> tuple:
    """Mean scores of SR and of bicubic under the evaluation protocol (`metrics.score`, as sr-evaluate reports
    them), plus bicubic|SR|HR panels.

    Args:
      examples: (lr, hr) uint8 [1, h, w, 3] pairs.

    Returns:
      ({psnr_y, ssim_y, psnr_rgb, colour_shift, grid, bicubic_psnr_y, ...}, [uint8 panel [1, H, 3W, 3], ...]).
      `colour_shift` and `grid` are the GAN artefact scores of `metrics.artefacts` (see `metrics.artefact_flags`).
    """
    scores, shifts = {}, []
    panels = []
    for lr, hr in examples:
        sr = metrics.to_uint8(generator(tf.cast(lr, tf.float32) / 255.0, training=False)[0])
        bic = bicubic_upscale(lr[0], scale)
        for prefix, img in (("", sr), ("bicubic_", bic)):
            for k, v in metrics.score(hr[0], img, scale).items():
                scores.setdefault(prefix + k, []).append(v)
        found = metrics.artefacts(hr[0], sr, bic, scale)
        scores.setdefault("grid", []).append(found["grid"])
        shifts.append(found["colour_shift_rgb"])
        panels.append(np.concatenate([bic, sr, hr[0]], axis=1)[None])
    out = {k: float(np.mean(v)) for k, v in scores.items()}
    out["colour_shift"] = float(np.abs(np.mean(shifts, axis=0)).max())
    return out, panels


@contextlib.contextmanager
def _precision_policy(policy: Optional[str]):
    previous = keras.mixed_precision.global_policy().name
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (e.g. a preempted VM) ends the run like Ctrl-C: through `finally`, which saves a checkpoint."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # Not the main thread.
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Logger:
    """metrics.jsonl and TensorBoard, written by the chief only."""

    def __init__(self, run_dir: RunDir, chief: bool, resume_step: int = 0):
        self.chief, self.run_dir = chief, run_dir
        if chief:
            run_dir.trim_metrics(resume_step)
        self.jsonl = open(run_dir.metrics_path, "a") if chief else None
        self.writer = tf.summary.create_file_writer(run_dir.tensorboard) if chief else None

    def scalars(self, step: int, phase: int, values: dict) -> None:
        if not self.chief:
            return
        self.jsonl.write(json.dumps({"step": step, "phase": phase, "time": round(time.time(), 3),
                                     **{k: round(v, 6) for k, v in values.items()}}) + "\n")
        self.jsonl.flush()
        with self.writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)

    def images(self, step: int, panels: list) -> None:
        if not self.chief:
            return
        with self.writer.as_default(step=step):
            for i, p in enumerate(panels):
                tf.summary.image(f"val/{i}_bicubic|sr|hr", p, max_outputs=1)
        self.writer.flush()

    def flags(self, step: int, flags: list) -> None:
        """GAN artefacts found at an evaluation: a warning line, and a TensorBoard text entry."""
        if not self.chief or not flags:
            return
        text = f"step {step}: {'; '.join(flags)} (limits: metrics.COLOUR_SHIFT_LIMIT, metrics.GRID_LIMIT)"
        logging.warning("validation flagged: %s", text)
        with self.writer.as_default(step=step):
            tf.summary.text("val/flags", text)

    def curves(self) -> None:
        """The run's training curves picture, redrawn after each evaluation (after its scalars are written)."""
        if self.chief:
            curves.plot_training_curves(self.run_dir.path)

    def close(self) -> None:
        if self.chief:
            self.jsonl.close()
            self.writer.close()


def train_and_evaluate(cfg: config_lib.TrainConfig, workdir: str,
                       strategy: Optional[tf.distribute.Strategy] = None, verbose: bool = True) -> dict:
    """Trains (or resumes) a run in `workdir`; returns the last evaluation and the final step.

    Raises:
      TrainError: a bad option or data combination, before anything is built.
    """
    strategy = strategy or tf.distribute.get_strategy()
    manifest = validate(cfg, strategy)
    if cfg.gan_steps:
        cfg = resolve_content_loss(cfg)
    chief = is_chief(strategy)
    run_dir = RunDir(workdir)
    os.makedirs(workdir, exist_ok=True)
    _check_workdir_config(run_dir, cfg)
    if chief:
        run_dir.write_config(cfg)
    with _precision_policy(cfg.mixed_precision), _sigterm_as_interrupt():
        state = TrainState(cfg, strategy)
        # Workers other than the chief save into a scratch folder (MultiWorkerMirroredStrategy needs every worker
        # to save); only the chief's checkpoints are the run's.
        ckpt_dir = run_dir.checkpoints if chief else tempfile.mkdtemp(prefix="srk_ckpt_")
        manager = tf.train.CheckpointManager(state.checkpoint, ckpt_dir, max_to_keep=cfg.keep_checkpoints)
        try:
            restored = checkpoints.restore_newest_good(state.checkpoint, ckpt_dir)
        except checkpoints.CheckpointError as e:
            raise TrainError(str(e)) from None
        if restored:
            start = state.step
            phase = 1 if start < cfg.pretrain_steps else 2
            logging.info("resumed from step %d (phase %d) of %s", start, phase, restored)
            print(f"Resumed from step {start} (phase {phase}) of {restored}", flush=True)
        elif cfg.init_checkpoint:
            source = init_from_checkpoint(state, cfg.init_checkpoint)
            print(f"Generator initialised from the EMA generator of {source}", flush=True)
        elif cfg.init_from:
            init_from_zoo(state, cfg.init_from)
            print(f"Generator initialised from {cfg.init_from} (sr-models)", flush=True)
        try:
            return _loop(cfg, manifest, state, strategy, manager, run_dir, chief, verbose)
        finally:
            if not chief:
                shutil.rmtree(ckpt_dir, ignore_errors=True)


def _loop(cfg, manifest: schema.Manifest, state: TrainState, strategy, manager, run_dir: RunDir, chief: bool,
          verbose: bool) -> dict:
    start = state.step
    # Reseeding by the start step keeps a resumed run from replaying the crops it already trained on.
    dist = strategy.distribute_datasets_from_function(lambda ctx: pipeline.train_dataset(
        manifest, cfg.hr_crop, cfg.batch_size, input_context=ctx, seed=cfg.seed + start, scale=cfg.model.scale,
        cache=cfg.cache_data, crops_per_image=cfg.crops_per_image, shuffle_buffer=cfg.shuffle_buffer))
    iterator = iter(dist)
    trainer = state.trainer
    examples = _eval_examples(cfg, manifest)
    logger = _Logger(run_dir, chief, start)
    bar = progress.bar(cfg.total_steps, unit_name="step", stateful_metrics=["phase", "img/s", *LOG_KEYS[2]],
                       verbose=verbose)
    if bar is not None:
        bar.update(start)
    result = {"step": start}
    saved = start
    step = start
    try:
        last = time.perf_counter()
        while step < cfg.total_steps:
            phase = 1 if step < cfg.pretrain_steps else 2
            if phase == 2 and step == cfg.pretrain_steps:
                # Kept for network interpolation (sr-export, alpha): the PSNR end of the knob. Every worker writes
                # (a multi-worker save is collective); only the chief's copy is the run's.
                scratch = None if chief else RunDir(tempfile.mkdtemp(prefix="srk_psnr_"))
                (scratch or run_dir).save_psnr_generator(trainer.ema.model)
                if scratch is not None:
                    shutil.rmtree(scratch.path, ignore_errors=True)
                trainer.start_gan_phase()
            logs = {k: float(v) for k, v in trainer.train_step(iterator, phase).items()}
            step += 1
            now = time.perf_counter()
            rate = cfg.batch_size / max(now - last, 1e-9)
            last = now
            record = {}
            if step % cfg.log_every == 0 or step == cfg.total_steps:
                record.update(logs, images_per_s=rate, **state.learning_rate_logs())
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                scores, panels = evaluate(trainer.ema.model, examples, cfg.model.scale)
                record.update({f"val/{k}": v for k, v in scores.items()})
                flags = metrics.artefact_flags(scores["colour_shift"], scores["grid"])
                record["val/flagged"] = float(bool(flags))
                logger.images(step, panels[:4])
                logger.flags(step, flags)
                result.update(scores)
            if record:
                logger.scalars(step, phase, record)
            if "val/psnr_y" in record:
                logger.curves()
            if step % cfg.ckpt_every == 0:
                manager.save(checkpoint_number=step)
                saved = step
            if bar is not None:
                bar.update(step, values=[("phase", phase), ("img/s", rate)] + list(logs.items()))
    finally:
        if step != saved:
            manager.save(checkpoint_number=step)  # Also on Ctrl-C / SIGTERM; kill -9 resumes from the last one.
        logger.close()
    result["step"] = step
    return result
