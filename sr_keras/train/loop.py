"""`train_and_evaluate(cfg, workdir, strategy)`: phases, checkpoints, evaluation and summaries.

Phase 1 trains the generator alone with a pixel loss (`pretrain_steps`, the SRResNet phase); phase 2 trains the
GAN (`gan_steps`) from the phase-1 generator. Rerunning with the same workdir resumes from the latest checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from sr_keras.data import pipeline, schema
from sr_keras.evaluate import metrics
from sr_keras.models import lossnets
from sr_keras.models.vgg import (
    VGGWeightsError,
    imagenet_weights_available,
    missing_weights_message,
)
from sr_keras.train import calibration, checkpoints, validation
from sr_keras.train import config as config_lib
from sr_keras.train import run_dir as run_dir_lib
from sr_keras.train.distribute import is_chief
from sr_keras.train.run_dir import RunDir
from sr_keras.train.state import (
    TrainError,
    TrainState,
    init_from_checkpoint,
    init_from_zoo,
    resolve_checkpoint,
)
from sr_keras.train.step import LOG_KEYS
from sr_keras.train.validation import RunLogger
from sr_keras.utils import progress


def validate(cfg: config_lib.TrainConfig, strategy: tf.distribute.Strategy) -> schema.Manifest:
    """Checks the config against the data and the strategy; returns the data's manifest (read here, once)."""
    scale = cfg.model.scale
    if cfg.hr_crop % scale:
        raise TrainError(f"--hr_crop={cfg.hr_crop} is not divisible by the scale {scale}")
    if cfg.eval_crop % scale:
        raise TrainError(f"eval_crop={cfg.eval_crop} is not divisible by the scale {scale}")
    if cfg.model.kind == "srgan" and cfg.hr_crop % 16:
        raise TrainError(f"--hr_crop={cfg.hr_crop}: the SRGAN discriminator halves 4 times; use a multiple of 16")
    if cfg.calibrate_batches < 0:
        raise TrainError(f"--calibrate_batches={cfg.calibrate_batches}: use 0 (off) or more")
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
VGG16_FALLBACK_NOTE = "VGG16 content: VGG19 weights unavailable"
RANDOM_VGG_NOTE = "random VGG features, not perceptual"
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
    if cfg.content_loss not in ("vgg54", "vgg22", "percep"):
        return cfg
    if cfg.vgg_weights == "none":  # Asked for (the tiny preset, tests): labelled, as it makes no useful model.
        return dataclasses.replace(cfg, content_note=RANDOM_VGG_NOTE)
    if cfg.vgg_weights != "imagenet":
        return cfg
    if imagenet_weights_available():
        return cfg
    if cfg.vgg_fallback == "error":
        raise VGGWeightsError(missing_weights_message())
    fix = missing_weights_message().split(": ", 1)[1]
    if cfg.vgg_fallback == "vgg16":
        try:
            lossnets.ensure("vgg16")
        except lossnets.LossNetError as e:
            why = f" (and VGG16's cannot be had either: {e})"
        else:
            message = f"{VGG16_FALLBACK_NOTE}: the content loss uses VGG16's ImageNet features. For VGG19, {fix}"
            logging.info(message)  # Said once on stdout; the log file gets it too.
            print(f"note: {message}", flush=True)
            return dataclasses.replace(cfg, vgg_weights="vgg16", content_note=VGG16_FALLBACK_NOTE)
    else:
        why = ""
    adv_weight = min(cfg.adv_weight, SRGAN_MSE_ADV_WEIGHT)
    message = (f"{MSE_FALLBACK_NOTE}{why}: training SRGAN-MSE (the paper's MSE-content variant; adversarial weight "
               f"{adv_weight:g}). For a perceptual loss, {fix}")
    logging.info(message)
    print(f"note: {message}", flush=True)
    return dataclasses.replace(cfg, content_loss="mse", content_note=MSE_FALLBACK_NOTE, adv_weight=adv_weight)


def _check_workdir_config(run_dir: RunDir, cfg: config_lib.TrainConfig) -> None:
    if not run_dir.is_run():
        return
    old = run_dir.read_config_dict()
    if old.get("model") != dataclasses.asdict(cfg.model):
        raise TrainError(f"--workdir={run_dir.path} holds a run of a different model ({old.get('model')}); "
                         "use a new --workdir")


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


def _calibrate(cfg, manifest: schema.Manifest, generator) -> dict:
    """The end of the GAN phase: `calibration.calibrate` on the EMA generator, over `cfg.calibrate_batches`
    training batches (a fixed seed, the same on every worker, so mirrored copies stay equal). Returns what is
    logged."""
    batches = pipeline.train_dataset(manifest, cfg.hr_crop, cfg.batch_size, seed=cfg.seed + 7919,
                                     scale=cfg.model.scale, crops_per_image=cfg.crops_per_image,
                                     degradation=cfg.degradation).take(cfg.calibrate_batches)
    correction = calibration.calibrate(generator, batches, cfg.model.scale)
    if correction is None:
        logging.info("phase calibration: %s has no per-phase output bias; left as it is", cfg.model.kind)
        return {}
    centred = correction - correction.mean(axis=(0, 1))
    grid_levels = float(np.sqrt(np.mean(centred ** 2)) * 255)
    colour_levels = float(np.abs(correction.mean(axis=(0, 1))).max() * 255)
    print(f"phase calibration: the output biases absorbed {grid_levels:.2f} levels RMS of pattern and "
          f"{colour_levels:.2f} of colour shift ({cfg.calibrate_batches} training batches)", flush=True)
    return {"calibration/pattern_levels": grid_levels, "calibration/colour_levels": colour_levels}


def _loop(cfg, manifest: schema.Manifest, state: TrainState, strategy, manager, run_dir: RunDir, chief: bool,
          verbose: bool) -> dict:
    start = state.step
    # Reseeding by the start step keeps a resumed run from replaying the crops it already trained on.
    dist = strategy.distribute_datasets_from_function(lambda ctx: pipeline.train_dataset(
        manifest, cfg.hr_crop, cfg.batch_size, input_context=ctx, seed=cfg.seed + start, scale=cfg.model.scale,
        cache=cfg.cache_data, crops_per_image=cfg.crops_per_image, shuffle_buffer=cfg.shuffle_buffer,
        degradation=cfg.degradation))
    iterator = iter(dist)
    trainer = state.trainer
    examples = validation.examples(cfg, manifest)
    if chief and verbose and start < cfg.total_steps:  # Which images the val/ numbers are, and how to reproduce them.
        crop = f" --crop={cfg.eval_crop}" if cfg.eval_crop else ""
        print(f"validation: the first {len(examples)} of the {manifest.counts.get('val', 0)} val images"
              f"{f' ({cfg.eval_crop} px centre crops)' if cfg.eval_crop else ''}; sr-evaluate --images={cfg.data} "
              f"--max_images={len(examples)}{crop} --model=<the export> scores the same", flush=True)
    logger = RunLogger(run_dir, chief, start)
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
            if phase == 2 and step == cfg.total_steps and cfg.calibrate_batches:
                record.update(_calibrate(cfg, manifest, trainer.ema.model))
            if step % cfg.log_every == 0 or step == cfg.total_steps:
                record.update(logs, images_per_s=rate, **state.learning_rate_logs())
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                scores, panels = validation.evaluate(trainer.ema.model, examples, cfg.model.scale, cfg.eval_lpips)
                val = run_dir_lib.val_prefix(cfg.eval_crop)
                record.update({f"{val}/{k}": v for k, v in scores.items()})
                flags = metrics.artefact_flags(scores["colour_shift"], scores["grid"])
                record[f"{val}/flagged"] = float(bool(flags))
                logger.images(step, panels[:4])
                logger.flags(step, flags)
                result.update(scores)
            if record:
                logger.scalars(step, phase, record)
            if f"{run_dir_lib.val_prefix(cfg.eval_crop)}/psnr_y" in record:
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
