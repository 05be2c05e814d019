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
from sr_keras import checkpoints, curves, losses, metrics, models, safe_files
from sr_keras.data import builder, pipeline
from sr_keras.distribute import is_chief
from sr_keras.trainer import EMA, AdversarialTrainer, make_optimizer, reduce_logs


class TrainError(ValueError):
    """A bad combination of options or data, found before training starts. One line that names the fix."""


def validate(cfg: config_lib.TrainConfig, strategy: tf.distribute.Strategy) -> dict:
    """Checks the config against the data and the strategy; returns the data manifest."""
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
    if cfg.lr_schedule not in ("step", "cosine"):
        raise TrainError(f"lr_schedule={cfg.lr_schedule}: choose step or cosine")
    if cfg.content_loss not in config_lib.CONTENT_LOSSES:
        raise TrainError(f"content_loss={cfg.content_loss}: choose one of {config_lib.CONTENT_LOSSES}")
    if cfg.init_checkpoint:
        resolve_checkpoint(cfg.init_checkpoint)
    if not os.path.isdir(cfg.data):
        raise TrainError(f"--data={cfg.data}: no such folder; build it with "
                         f"sr-build-tfrecords --scale={scale} --out_dir={cfg.data}")
    try:
        manifest = builder.load_manifest(cfg.data)
    except builder.BuildError as e:
        raise TrainError(str(e)) from None
    if int(manifest["config"]["scale"]) != scale:
        raise TrainError(f"--data={cfg.data} was built for x{manifest['config']['scale']}, but the model is "
                         f"x{scale}; rebuild with sr-build-tfrecords --scale={scale}")
    for split in ("train", "val"):
        if not manifest["counts"].get(split):
            raise TrainError(f"--data={cfg.data} has no {split!r} examples; rebuild it with a val split "
                             "(--val_fraction) or more images")
    return manifest


def _check_workdir_config(workdir: str, cfg: config_lib.TrainConfig) -> None:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    if old.get("model") != dataclasses.asdict(cfg.model):
        raise TrainError(f"--workdir={workdir} holds a run of a different model ({old.get('model')}); "
                         "use a new --workdir")


class _Run:
    """Everything built inside the strategy scope."""

    def __init__(self, cfg: config_lib.TrainConfig, strategy: tf.distribute.Strategy):
        m = cfg.model
        with strategy.scope():
            self.generator = models.build_generator(m)
            self.discriminator = models.build_discriminator(m, cfg.hr_crop)
            content = losses.make_content_loss(cfg.content_loss, cfg.vgg_weights, cfg.vgg_feature_scale)
            pixel = losses.mse_loss if cfg.pretrain_loss == "mse" else losses.l1_loss
            if cfg.lr_schedule == "cosine":
                self.g_lr = keras.optimizers.schedules.CosineDecay(cfg.lr, max(1, cfg.total_steps), alpha=0.01)
            else:
                decay_at = cfg.pretrain_steps + int(cfg.gan_steps * cfg.lr_decay_at)
                self.g_lr = keras.optimizers.schedules.PiecewiseConstantDecay([decay_at], [cfg.lr, cfg.lr * 0.1])
            # D only steps in phase 2, so its own iteration count restarts there.
            self.d_lr = keras.optimizers.schedules.PiecewiseConstantDecay(
                [int(cfg.gan_steps * cfg.lr_decay_at) * cfg.d_steps], [cfg.lr, cfg.lr * 0.1])
            g_opt = make_optimizer(self.g_lr, cfg.adam_beta1, cfg.mixed_precision)
            d_opt = make_optimizer(self.d_lr, cfg.adam_beta1, cfg.mixed_precision)
            self.trainer = AdversarialTrainer(self.generator, self.discriminator, content, pixel, g_opt, d_opt,
                                              content_weight=cfg.content_weight, adv_weight=cfg.adv_weight,
                                              d_steps=cfg.d_steps)
            self.trainer.build_optimizers()
            self.ema = EMA(self.generator, cfg.ema_decay)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.checkpoint = tf.train.Checkpoint(
                generator=self.generator, discriminator=self.discriminator, ema_generator=self.ema.model,
                ema_updates=self.ema.updates, g_optimizer=g_opt, d_optimizer=d_opt, step=self.step)


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a run folder, its checkpoints/ folder or a prefix; TrainError if there is none."""
    for folder in (os.path.join(path, "checkpoints"), path):
        if os.path.isdir(folder):
            latest = tf.train.latest_checkpoint(folder)
            if latest:
                return latest
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise TrainError(f"--init_checkpoint={path}: no checkpoint there; give a run's --workdir or a checkpoint "
                     "prefix such as runs/photo_x4/checkpoints/ckpt-14000")


def checkpoint_run_dir(path: str) -> str:
    """The run folder (the one holding config.json) behind an --init_checkpoint value: a run folder, its
    checkpoints/ or a checkpoint prefix. Empty when there is none."""
    path = os.path.normpath(path)
    for candidate in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        if os.path.exists(os.path.join(candidate, "config.json")):
            return candidate
    return ""


def init_from_checkpoint(run: "_Run", path: str) -> str:
    """Loads another run's EMA generator into this run's generator and EMA; returns the checkpoint used.

    Only the generator is read: the discriminator, optimizers and step start fresh. The architectures must
    match (same ModelConfig), else TrainError.
    """
    prefix = resolve_checkpoint(path)
    try:
        status = tf.train.Checkpoint(ema_generator=run.generator).read(prefix)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise TrainError(f"--init_checkpoint={path}: its generator does not match this --model/--preset "
                         f"architecture ({str(e).splitlines()[0][:200]})") from None
    status.expect_partial()  # The rest of that checkpoint (D, optimizers, step) is deliberately not read.
    run.ema.copy_from_source()
    unfinished = _unfinished_note(prefix)
    if unfinished:
        logging.warning(unfinished)
        print(f"warning: {unfinished}", flush=True)
    return prefix


def _unfinished_note(prefix: str) -> str:
    """A warning when the checkpoint is from before the end of its run (e.g. stage 1 was stopped early)."""
    run_dir = checkpoint_run_dir(prefix)
    if not run_dir:
        return ""
    try:
        step = int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))
        with open(os.path.join(run_dir, "config.json")) as f:
            src = json.load(f)
        total = int(src["pretrain_steps"]) + int(src["gan_steps"])
    except (OSError, ValueError, KeyError, tf.errors.OpError):
        return ""
    return (f"{prefix} is step {step} of the {total} its run was set to; that run has not finished"
            if step < total else "")


def _make_step_fn(run: _Run, strategy, step_method, jit_compile: bool):
    replica_fn = tf.function(step_method, jit_compile=True) if jit_compile else step_method

    @tf.function
    def step_fn(iterator):
        logs = reduce_logs(strategy, strategy.run(replica_fn, args=(next(iterator),)))
        run.ema.update()
        run.trainer.update_trackers(logs)
        run.step.assign_add(1)
        return logs

    return step_fn


def _eval_examples(cfg: config_lib.TrainConfig) -> list:
    ds = pipeline.make_dataset(cfg.data, "val", hr_crop=cfg.eval_crop, batch_size=1, training=False)
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(cfg.eval_images)]


def evaluate(generator: keras.Model, examples: list, scale: int) -> tuple:
    """Mean PSNR-Y/SSIM-Y (scale pixels shaved) of SR and of bicubic, plus bicubic|SR|HR panels (uint8)."""
    scores = {k: [] for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y")}
    panels = []
    for lr, hr in examples:
        sr = tf.clip_by_value(generator(lr, training=False), 0.0, 1.0)
        bic = tf.clip_by_value(tf.image.resize(lr, hr.shape[1:3], "bicubic"), 0.0, 1.0)
        for prefix, img in (("", sr), ("bicubic_", bic)):
            scores[prefix + "psnr_y"].append(float(metrics.psnr(hr, img, scale)[0]))
            scores[prefix + "ssim_y"].append(float(metrics.ssim(hr, img, scale)[0]))
        panels.append(tf.cast(tf.round(tf.concat([bic, sr, hr], axis=2) * 255.0), tf.uint8).numpy())
    return {k: float(np.mean(v)) for k, v in scores.items()}, panels


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

    def __init__(self, workdir: str, chief: bool, resume_step: int = 0):
        self.chief, self.workdir = chief, workdir
        path = os.path.join(workdir, "metrics.jsonl")
        if chief and os.path.exists(path):
            _trim_metrics(path, resume_step)
        self.jsonl = open(path, "a") if chief else None
        self.writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard")) if chief else None

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

    def curves(self) -> None:
        """<workdir>/training_curves.png, redrawn after each evaluation (after its scalars are written)."""
        if self.chief:
            curves.plot_training_curves(self.workdir)

    def close(self) -> None:
        if self.chief:
            self.jsonl.close()
            self.writer.close()


def _trim_metrics(path: str, resume_step: int) -> None:
    """Drops records after the step a run resumes from (they will be logged again), and a torn last line, so that
    metrics.jsonl holds each step once."""
    with open(path) as f:
        lines = f.readlines()
    keep = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= resume_step:
                keep.append(line if line.endswith("\n") else line + "\n")
        except (ValueError, KeyError, TypeError):
            continue  # A line torn by a kill.
    if len(keep) != len(lines):
        safe_files.write_text(path, "".join(keep))


def train_and_evaluate(cfg: config_lib.TrainConfig, workdir: str,
                       strategy: Optional[tf.distribute.Strategy] = None, verbose: bool = True) -> dict:
    """Trains (or resumes) a run in `workdir`; returns the last evaluation and the final step.

    Raises:
      TrainError: a bad option or data combination, before anything is built.
    """
    strategy = strategy or tf.distribute.get_strategy()
    validate(cfg, strategy)
    chief = is_chief(strategy)
    os.makedirs(workdir, exist_ok=True)
    _check_workdir_config(workdir, cfg)
    if chief:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(config_lib.to_dict(cfg), f, indent=2)
    with _precision_policy(cfg.mixed_precision), _sigterm_as_interrupt():
        run = _Run(cfg, strategy)
        ckpt_dir = os.path.join(workdir, "checkpoints") if chief else tempfile.mkdtemp(prefix="srk_ckpt_")
        manager = tf.train.CheckpointManager(run.checkpoint, ckpt_dir, max_to_keep=cfg.keep_checkpoints)
        try:
            restored = checkpoints.restore_newest_good(run.checkpoint, ckpt_dir)
        except checkpoints.CheckpointError as e:
            raise TrainError(str(e)) from None
        if restored:
            start = int(run.step.numpy())
            phase = 1 if start < cfg.pretrain_steps else 2
            logging.info("resumed from step %d (phase %d) of %s", start, phase, restored)
            print(f"Resumed from step {start} (phase {phase}) of {restored}", flush=True)
        elif cfg.init_checkpoint:
            source = init_from_checkpoint(run, cfg.init_checkpoint)
            print(f"Generator initialised from the EMA generator of {source}", flush=True)
        try:
            return _loop(cfg, run, strategy, manager, workdir, chief, verbose)
        finally:
            if not chief:
                shutil.rmtree(ckpt_dir, ignore_errors=True)


def _loop(cfg, run: _Run, strategy, manager, workdir: str, chief: bool, verbose: bool) -> dict:
    start = int(run.step.numpy())
    # Reseeding by the start step keeps a resumed run from replaying the crops it already trained on.
    dist = strategy.distribute_datasets_from_function(lambda ctx: pipeline.make_dataset(
        cfg.data, "train", cfg.hr_crop, cfg.batch_size, input_context=ctx, seed=cfg.seed + start,
        scale=cfg.model.scale, cache=cfg.cache_data, crops_per_image=cfg.crops_per_image))
    iterator = iter(dist)
    fns = {1: _make_step_fn(run, strategy, run.trainer.pretrain_step, cfg.jit_compile),
           2: _make_step_fn(run, strategy, run.trainer.train_step, cfg.jit_compile)}
    examples = _eval_examples(cfg)
    logger = _Logger(workdir, chief, start)
    bar = keras.utils.Progbar(cfg.total_steps, stateful_metrics=["phase", "img/s", "g/total", "g/content",
                                                                  "g/adv", "d/real", "d/fake", "d/acc"],
                              verbose=1 if verbose else 0)
    bar.update(start)
    result = {"step": start}
    saved = start
    step = start
    try:
        last = time.perf_counter()
        while step < cfg.total_steps:
            phase = 1 if step < cfg.pretrain_steps else 2
            if phase == 2 and step == cfg.pretrain_steps:
                run.ema.copy_from_source()  # Phase 2 starts from the phase-1 generator, EMA included.
            logs = {k: float(v) for k, v in fns[phase](iterator).items()}
            step += 1
            now = time.perf_counter()
            rate = cfg.batch_size / max(now - last, 1e-9)
            last = now
            record = {}
            if step % cfg.log_every == 0 or step == cfg.total_steps:
                record.update(logs, images_per_s=rate,
                              **{"lr/generator": float(run.g_lr(run.trainer.g_optimizer.iterations)),
                                 "lr/discriminator": float(run.d_lr(run.trainer.d_optimizer.iterations))})
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                scores, panels = evaluate(run.ema.model, examples, cfg.model.scale)
                record.update({f"val/{k}": v for k, v in scores.items()})
                logger.images(step, panels[:4])
                result.update(scores)
            if record:
                logger.scalars(step, phase, record)
            if "val/psnr_y" in record:
                logger.curves()
            if step % cfg.ckpt_every == 0:
                manager.save(checkpoint_number=step)
                saved = step
            bar.update(step, values=[("phase", phase), ("img/s", rate)] + list(logs.items()))
    finally:
        if step != saved:
            manager.save(checkpoint_number=step)  # Also on Ctrl-C / SIGTERM; kill -9 resumes from the last one.
        logger.close()
    result["step"] = step
    return result
