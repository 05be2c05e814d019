"""A training run folder (`sr-train --workdir`): its layout, named once, and every read and write of it.

    <workdir>/
      config.json           the resolved TrainConfig
      checkpoints/          ckpt-<step>.* (tf.train.CheckpointManager)
      psnr_generator/       the EMA generator at the end of the pixel (PSNR) phase, kept for network
                            interpolation with the GAN generator (written when the GAN phase starts)
      metrics.jsonl         one JSON object per logged step: step, phase, time, losses, rates, val/...
      tensorboard/          the same scalars, and validation image panels
      training_curves.png   redrawn after each evaluation

Written by `train_lib` (the chief only); read through this module by sr-export, `model_card` and `curves`. The
names of the objects in a checkpoint (`EMA_GENERATOR`, `STEP`, ...) and the `metrics.jsonl` row are part of the
layout, so they are spelled here too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Optional

import tensorflow as tf

from sr_keras import models
from sr_keras.data import schema
from sr_keras.train import checkpoints as checkpoints_lib
from sr_keras.train import config as config_lib
from sr_keras.utils import safe_files

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
PSNR_GENERATOR = "psnr_generator"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
CURVES = "training_curves.png"
# Objects in a run's checkpoints (names are part of the checkpoint format).
GENERATOR, DISCRIMINATOR, EMA_GENERATOR, EMA_UPDATES = "generator", "discriminator", "ema_generator", "ema_updates"
G_OPTIMIZER, D_OPTIMIZER, STEP = "g_optimizer", "d_optimizer", "step"


class RunError(RuntimeError):
    """A run folder that cannot be used as asked. The message names the fix."""


def val_prefix(crop: int = 0) -> str:
    """The metrics.jsonl / TensorBoard prefix of validation scores: `val` on whole images (the numbers sr-evaluate
    prints), `val_crop<N>` on N-pixel HR centre crops (`sr-evaluate --crop=N` prints those)."""
    return f"val_crop{crop}" if crop else "val"


def read_step(prefix: str) -> int:
    """The global step stored in a checkpoint."""
    return int(tf.train.load_variable(prefix, f"{STEP}/.ATTRIBUTES/VARIABLE_VALUE"))


def metrics_row(step: int, phase: int, values: dict, when: Optional[float] = None) -> str:
    """One `metrics.jsonl` line: step, phase, Unix time, then the logged scalars (6 decimals)."""
    return json.dumps({"step": int(step), "phase": int(phase), "time": round(time.time() if when is None else when, 3),
                       **{k: round(float(v), 6) for k, v in values.items()}}) + "\n"


class RunDir:
    """One run folder. Paths are properties; nothing is created until written."""

    def __init__(self, path: str):
        self.path = path

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    @property
    def config_path(self) -> str:
        return os.path.join(self.path, CONFIG)

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.path, CHECKPOINTS)

    @property
    def psnr_generator_prefix(self) -> str:
        """Checkpoint prefix of the pixel phase's EMA generator (`tf.train.Checkpoint(ema_generator=...)`)."""
        return os.path.join(self.path, PSNR_GENERATOR, EMA_GENERATOR)

    def has_psnr_generator(self) -> bool:
        return tf.io.gfile.exists(self.psnr_generator_prefix + ".index")

    def save_psnr_generator(self, generator) -> None:
        """Writes the pixel phase's EMA generator, atomically (a kill leaves the previous one or none)."""
        staging = safe_files.make_temp_dir(self.path, PSNR_GENERATOR + "-")
        try:
            tf.train.Checkpoint(**{EMA_GENERATOR: generator}).write(os.path.join(staging, EMA_GENERATOR))
            safe_files.replace_dir(staging, os.path.join(self.path, PSNR_GENERATOR))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.path, METRICS)

    @property
    def tensorboard(self) -> str:
        return os.path.join(self.path, TENSORBOARD)

    @property
    def curves_path(self) -> str:
        return os.path.join(self.path, CURVES)

    def is_run(self) -> bool:
        """True when the folder holds a run (its config.json)."""
        return os.path.exists(self.config_path)

    def read_config_dict(self) -> dict:
        with open(self.config_path) as f:
            return json.load(f)

    def read_config(self) -> config_lib.TrainConfig:
        return config_lib.from_dict(self.read_config_dict())

    def write_config(self, cfg: config_lib.TrainConfig) -> None:
        safe_files.write_text(self.config_path, json.dumps(config_lib.to_dict(cfg), indent=2))

    def read_metrics(self) -> list:
        """Every record of metrics.jsonl ([] when there is none); a line cut short by a kill is skipped."""
        rows = []
        try:
            with open(self.metrics_path) as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return rows

    def trim_metrics(self, resume_step: int) -> None:
        """Drops records after the step a run resumes from (they will be logged again), and a torn last line, so
        that metrics.jsonl holds each step once."""
        if not os.path.exists(self.metrics_path):
            return
        with open(self.metrics_path) as f:
            lines = f.readlines()
        keep = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= resume_step:
                    keep.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError, TypeError):
                continue  # A line torn by a kill.
        if len(keep) != len(lines):
            safe_files.write_text(self.metrics_path, "".join(keep))

    def last_validation(self) -> dict:
        """The last logged validation scores ({psnr_y, ssim_y, bicubic_psnr_y, ..., step}), or {}."""
        last = {}
        for rec in self.read_metrics():
            prefix = next((k.split("/", 1)[0] for k in rec if k.endswith("/psnr_y") and k.startswith("val")), None)
            if prefix:
                last = {k.split("/", 1)[1]: v for k, v in rec.items() if k.startswith(prefix + "/")}
                last["step"] = rec["step"]
                if prefix != "val":
                    last["crop"] = int(prefix[len("val_crop"):])
        return last

    def latest_checkpoint(self) -> Optional[str]:
        return tf.train.latest_checkpoint(self.checkpoints) if os.path.isdir(self.checkpoints) else None


def resolve_checkpoint(path: str) -> str:
    """The checkpoint prefix behind a run folder, its checkpoints/ folder or a prefix; "" when there is none."""
    for folder in (os.path.join(path, CHECKPOINTS), path):
        if os.path.isdir(folder):
            latest = tf.train.latest_checkpoint(folder)
            if latest:
                return latest
    return path if tf.io.gfile.exists(path + ".index") else ""


def run_of_checkpoint(path: str) -> Optional[RunDir]:
    """The run folder (holding config.json) behind a run folder, its checkpoints/ or a checkpoint prefix."""
    path = os.path.normpath(path)
    for candidate in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        if RunDir(candidate).is_run():
            return RunDir(candidate)
    return None


def generator_from_workdir(workdir: str) -> tuple:
    """Rebuilds the run's generator and restores its EMA weights from the latest checkpoint.

    Returns:
      (generator, metadata dict with kind, scale, step, data, and the last validation PSNR/SSIM).
    """
    run = RunDir(workdir)
    if not run.is_run():
        raise RunError(f"--workdir={workdir} is not a training run (no {os.path.basename(run.config_path)}); "
                          "train with sr-train first")
    cfg = run.read_config()
    generator = models.build_generator(cfg.model)
    step = tf.Variable(0, dtype=tf.int64)
    try:  # The newest checkpoint that restores: a damaged latest one falls back to the one before.
        ckpt = checkpoints_lib.restore_newest_good(tf.train.Checkpoint(**{EMA_GENERATOR: generator, STEP: step}),
                                               run.checkpoints)
    except checkpoints_lib.CheckpointError as e:
        raise RunError(str(e)) from None
    if not ckpt:
        raise RunError(f"--workdir={workdir} has no checkpoint yet; let sr-train run until --ckpt_every steps")
    meta = {"model": cfg.model.kind, "scale": cfg.model.scale, "steps": int(step.numpy()), "checkpoint": ckpt,
            "architecture": dataclasses.asdict(cfg.model), "training_data": _training_data(cfg.data),
            "training": {"pretrain_steps": cfg.pretrain_steps, "gan_steps": cfg.gan_steps,
                         "content_loss": cfg.content_loss, "content_note": cfg.content_note,
                         "weights": {"content": cfg.content_weight, "pixel": cfg.pixel_weight,
                                     "adversarial": cfg.adv_weight, "phase": cfg.phase_weight},
                         "calibrate_batches": cfg.calibrate_batches},
            "validation": run.last_validation()}
    return generator, meta


def psnr_generator_from_workdir(workdir: str):
    """The pixel phase's EMA generator of a run whose GAN phase has started (the alpha = 0 end of network
    interpolation), or None when the run has none (no GAN phase yet, or a run from before it was kept)."""
    run = RunDir(workdir)
    if not run.is_run() or not run.has_psnr_generator():
        return None
    generator = models.build_generator(run.read_config().model)
    status = tf.train.Checkpoint(**{EMA_GENERATOR: generator}).read(run.psnr_generator_prefix)
    status.assert_existing_objects_matched()
    status.expect_partial()
    return generator


def _training_data(data_dir: str) -> dict:
    try:
        m = schema.read_manifest(data_dir)
    except schema.ManifestError:  # The data may have moved since; the export does not need it.
        return {"path": data_dir}
    return {"path": data_dir, "dataset": m.dataset, "counts": m.counts, "degradation": m.config.get("degradation"),
            "hr_size": m.config.get("hr_size"), "train_rescales": m.config.get("train_rescales", [])}


