"""Distillation sets (sr-build-tfrecords --teacher): seeded, one shard per photo, resumable without duplicates,
targets that are the teacher's own output; and a few distillation steps that lower the loss."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.data import builder, schema, teacher
from sr_keras.data.pipeline import train_dataset


def _tiny_teacher(scale=4):
    """A fixed, nonlinear x`scale` model standing in for the teacher (the real one is too slow for a unit test)."""
    def fn(lr):
        up = tf.image.resize(lr, tf.shape(lr)[1:3] * scale, "bicubic")
        return tf.clip_by_value(up + 0.1 * tf.sin(6.0 * up), 0.0, 1.0)
    return fn


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sample") / "sample_x4")
    builder.build_tfrecords(builder.BuildConfig(source="sample", out_dir=out, val_fraction=0.0, workers=1, verbose=False))
    return out


def _records(folder):
    manifest = schema.read_manifest(folder)
    out = []
    for path in manifest.shard_paths("train"):
        for r in tf.data.TFRecordDataset(path):
            lr, hr, target = teacher.parse_triple(r)
            key = tf.io.parse_single_example(r, schema.FEATURES)["key"].numpy().decode()
            out.append((key, lr.numpy(), hr.numpy(), target.numpy()))
    return out


def test_a_killed_build_resumes_without_duplicates_and_matches_an_unbroken_one(sample, tmp_path):
    cfg = teacher.TeacherConfig(data=sample, out_dir=str(tmp_path / "t"), teacher="tiny", hr_size=64,
                                crops_per_image=3)
    first = teacher.build(cfg, _tiny_teacher(), stop_after=4)
    assert first.counts["train"] == 12 and len(first.split_shards("train")) == 4
    os.makedirs(os.path.join(cfg.out_dir, ".tmp-teacher-killed"))  # What a kill mid-photo leaves: ignored.
    resumed = teacher.build(cfg, _tiny_teacher())
    whole = teacher.build(dataclasses_replace(cfg, out_dir=str(tmp_path / "w")), _tiny_teacher())
    photos = schema.read_manifest(sample).counts["train"]
    assert resumed.counts["train"] == whole.counts["train"] == 3 * photos
    a, b = _records(cfg.out_dir), _records(str(tmp_path / "w"))
    keys = [k for k, *_ in a]
    assert len(keys) == len(set(keys)) == 3 * photos  # No duplicates.
    by_key = {k: rest for k, *rest in b}
    for k, lr, hr, target in a:  # The same bits as the build that was never killed: every seed is per photo.
        assert all(np.array_equal(x, y) for x, y in zip((lr, hr, target), by_key[k]))
    assert resumed.counts["val"] == schema.read_manifest(sample).counts["val"] > 0  # The source's validation.


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_targets_are_the_teachers_own_output_on_degraded_crops(sample, tmp_path):
    cfg = teacher.TeacherConfig(data=sample, out_dir=str(tmp_path / "t"), teacher="tiny", hr_size=64,
                                crops_per_image=2)
    teacher.build(cfg, _tiny_teacher(), stop_after=3)
    fn = _tiny_teacher()
    for key, lr, hr, target in _records(cfg.out_dir):
        assert lr.shape == (16, 16, 3) and hr.shape == target.shape == (64, 64, 3)
        assert np.array_equal(teacher.run_teacher(fn, lr[None])[0], target)
        # The LR is degraded (second order: blur, noise, JPEG), not the bicubic downscale of the HR.
        bicubic = tf.image.resize(hr[None].astype(np.float32), (16, 16), "bicubic", antialias=True)[0].numpy()
        assert np.abs(lr.astype(np.float32) - bicubic).mean() > 1.0
    manifest = json.load(open(os.path.join(cfg.out_dir, schema.MANIFEST)))
    assert manifest["config"]["teacher"]["model"] == "tiny" and manifest["config"]["crops_per_image"] == 2


def test_a_folder_built_with_other_options_is_refused(sample, tmp_path):
    cfg = teacher.TeacherConfig(data=sample, out_dir=str(tmp_path / "t"), teacher="tiny", hr_size=64,
                                crops_per_image=2)
    teacher.build(cfg, _tiny_teacher(), stop_after=1)
    with pytest.raises(teacher.TeacherBuildError, match="other options"):
        teacher.build(dataclasses_replace(cfg, crops_per_image=3), _tiny_teacher())


def test_batches_of_a_distillation_set_carry_the_target_turned_with_the_crop(sample, tmp_path):
    cfg = teacher.TeacherConfig(data=sample, out_dir=str(tmp_path / "t"), teacher="tiny", hr_size=64,
                                crops_per_image=2)
    teacher.build(cfg, _tiny_teacher(), stop_after=2)
    lr, hr, target = next(iter(train_dataset(cfg.out_dir, hr_crop=32, batch_size=4, seed=1)))
    assert lr.shape == (4, 8, 8, 3) and hr.shape == target.shape == (4, 32, 32, 3)
    # The target is the teacher's output on this very LR crop (same flips and turns), up to the crop's border.
    again = teacher.run_teacher(_tiny_teacher(), np.round(lr.numpy() * 255).astype(np.uint8)).astype(np.float32)
    inner = np.abs(again[:, 8:-8, 8:-8] - target.numpy()[:, 8:-8, 8:-8] * 255).mean()
    assert inner < 6.0, inner
    with pytest.raises(Exception, match="degraded already"):
        train_dataset(cfg.out_dir, hr_crop=32, batch_size=4, degradation="realesrgan")


@pytest.mark.slow
def test_a_few_distillation_steps_lower_the_loss(sample, tmp_path):
    """The compact generator, phase 1 (L1 to the teacher) then the GAN phase, on a distillation set."""
    from sr_keras.models import config as model_config
    from sr_keras.train import config, loop, run_dir

    cfg = teacher.TeacherConfig(data=sample, out_dir=str(tmp_path / "t"), teacher="tiny", hr_size=64,
                                crops_per_image=4)
    teacher.build(cfg, lambda lr: tf.image.resize(lr, tf.shape(lr)[1:3] * 4, "bicubic"))  # Smooth: learnable.
    train = dataclasses_replace(
        config.get_preset("tiny"), data=cfg.out_dir, hr_crop=32, batch_size=4, pretrain_steps=40, gan_steps=4,
        pretrain_loss="l1",
        learning_rate=2e-3, vgg_weights="none", log_every=1, eval_every=1000, ckpt_every=1000, eval_lpips=False,
        model=model_config.ModelConfig(kind="compact", scale=4, filters=8, num_blocks=2, d_filters=8,
                                       discriminator="unet_sn"))
    keras.utils.set_random_seed(0)  # As sr-train does: the same start on every run.
    loop.train_and_evaluate(train, str(tmp_path / "run"), verbose=False)
    rows = [r for r in run_dir.RunDir(str(tmp_path / "run")).read_metrics() if "g/content" in r]
    first = np.mean([r["g/content"] for r in rows[:5]])
    last = np.mean([r["g/content"] for r in rows if r["step"] <= 40][-5:])
    print("distillation L1, first and last 5 steps:", first, last)
    assert last < 0.8 * first, (first, last)
    assert any("g/adv" in r for r in rows)  # The GAN phase ran on the same batches (lr, hr, teacher).
