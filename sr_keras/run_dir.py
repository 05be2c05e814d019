"""A training run folder (`sr-train --workdir`): its layout, named once, and every read and write of it.

    <workdir>/
      config.json           the resolved TrainConfig
      checkpoints/          ckpt-<step>.* (tf.train.CheckpointManager)
      psnr_generator/       the EMA generator at the end of the pixel (PSNR) phase, kept for network
                            interpolation with the GAN generator (written when the GAN phase starts)
      metrics.jsonl         one JSON object per logged step: step, phase, time, losses, rates, val/...
      tensorboard/          the same scalars, and validation image panels
      training_curves.png   redrawn after each evaluation

Written by `train_lib` (the chief only); read by `export_lib`, `model_card` and `curves`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Optional

import tensorflow as tf

from sr_keras import config as config_lib
from sr_keras import safe_files

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
PSNR_GENERATOR = "psnr_generator"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
CURVES = "training_curves.png"


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
        return os.path.join(self.path, PSNR_GENERATOR, "ema_generator")

    def has_psnr_generator(self) -> bool:
        return tf.io.gfile.exists(self.psnr_generator_prefix + ".index")

    def save_psnr_generator(self, generator) -> None:
        """Writes the pixel phase's EMA generator, atomically (a kill leaves the previous one or none)."""
        staging = safe_files.make_temp_dir(self.path, PSNR_GENERATOR + "-")
        try:
            tf.train.Checkpoint(ema_generator=generator).write(os.path.join(staging, "ema_generator"))
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
            if "val/psnr_y" in rec:
                last = {k.split("/", 1)[1]: v for k, v in rec.items() if k.startswith("val/")}
                last["step"] = rec["step"]
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
