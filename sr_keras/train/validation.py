"""Validation during training: the examples scored, their scores (the same loop and protocol as sr-evaluate:
`evaluate_lib.score_methods`) and panels, and where they go (`RunLogger`: metrics.jsonl and TensorBoard)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sr_keras.data import pipeline, schema
from sr_keras.evaluate import metrics
from sr_keras.evaluate import protocol as evaluate_lib
from sr_keras.models import lossnets
from sr_keras.train import config as config_lib
from sr_keras.train import curves
from sr_keras.train import run_dir as run_dir_lib
from sr_keras.train.run_dir import RunDir


def examples(cfg: config_lib.TrainConfig, manifest: schema.Manifest) -> list:
    """The first `eval_images` validation pairs, uint8 [1, h, w, 3] each (what `evaluate` scores)."""
    ds = pipeline.eval_dataset(manifest, "val", hr_crop=cfg.eval_crop, batch_size=1, as_float=False)
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(cfg.eval_images)]


def evaluate(generator: keras.Model, examples: list, scale: int, lpips: bool = True) -> tuple:
    """Mean scores of SR and of bicubic under the evaluation protocol (`metrics.score`, as sr-evaluate reports
    them), plus bicubic|SR|HR panels.

    Args:
      examples: (lr, hr) uint8 [1, h, w, 3] pairs.
      lpips: also score LPIPS (`TrainConfig.eval_lpips`; off in the tiny preset, where it would dominate).

    Returns:
      ({psnr_y, ssim_y, psnr_rgb, colour_shift, grid, bicubic_psnr_y, ...}, [uint8 panel [1, H, 3W, 3], ...]).
      `colour_shift` and `grid` are the GAN artefact scores of `metrics.artefacts` (see `metrics.artefact_flags`).
    """
    images = [evaluate_lib.EvalImage(str(i), hr[0], lr[0]) for i, (lr, hr) in enumerate(examples)]
    panels = []

    def sr_fn(lr):
        return metrics.to_uint8(generator(tf.cast(lr[None], tf.float32) / 255.0, training=False)[0])

    def panel(i, img, outputs, per):
        panels.append(np.concatenate([outputs["bicubic"], outputs["sr"], img.hr], axis=1)[None])
    which = ("lpips",) if lpips and _lpips_available() else ()
    per_image = evaluate_lib.score_methods({"sr": sr_fn, "bicubic": None}, images, scale, panel, which=which)
    sr, bicubic = (evaluate_lib.mean_scores(per_image[k]) for k in ("sr", "bicubic"))
    keys = ("psnr_y", "ssim_y", "psnr_rgb") + (("lpips",) if which and sr.get("lpips") is not None else ())
    out = {k: sr[k] for k in keys + ("colour_shift", "grid")}
    out.update({f"bicubic_{k}": bicubic[k] for k in keys})
    return out, panels


_LPIPS_STATE = {}


def _lpips_available() -> bool:
    """Whether LPIPS can be scored (its weights converted, or fetchable now); asked once per process, and a run
    without them logs PSNR and SSIM only, with one warning."""
    if "ok" not in _LPIPS_STATE:
        try:
            lossnets.ensure("alexnet_lpips")
            _LPIPS_STATE["ok"] = True
        except lossnets.LossNetError as e:
            logging.warning("validation without LPIPS: %s", e)
            _LPIPS_STATE["ok"] = False
    return _LPIPS_STATE["ok"]


class RunLogger:
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
        self.jsonl.write(run_dir_lib.metrics_row(step, phase, values))
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
        text = (f"step {step}: {'; '.join(flags)} (flagged above a colour shift of {metrics.COLOUR_SHIFT_LIMIT:g} "
                f"levels or a grid of {metrics.GRID_LIMIT:g}x bicubic's)")
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


