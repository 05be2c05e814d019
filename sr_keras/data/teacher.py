"""Distillation data: degraded LR crops with a teacher model's output on each, computed once into TFRecords.

    sr-build-tfrecords --teacher=realesrgan_x4plus --data=tfrecords/photos_x4_real --out_dir=tfrecords/photos_x4_teacher

For every training photo of `data` (a folder sr-build-tfrecords built, split `train`), `crops_per_image` HR crops of
`hr_size` are cut at seeded places, each is degraded by Real-ESRGAN's second-order model (`real_degradation`, seeded
per crop), and the teacher runs on the degraded LR. Each example holds `hr` (the clean crop: the adversarial term's
real images), `lr` (the degraded input) and `teacher` (the teacher's output: the pixel and perceptual terms' target).

One shard per photo, named by a hash of its key: a shard is written under a temporary name and renamed when whole,
so a killed build resumes where it stopped (finished photos are skipped, a half-written shard is redone, nothing is
written twice), photos added to `data` later cost only their own shards, and every seed depends on the photo's key
and the crop's index, never on the order of the work. The manifest (`schema.Manifest`, format and reader shared with
every dataset) is rewritten after each photo. The teacher runs in float32, so its targets are the same bits on
every CPU: a build resumed on another machine stays one dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from sr_keras.data import real_degradation, schema
from sr_keras.data import shards as shards_lib
from sr_keras.utils import progress, safe_files

TEACHER_FEATURE = "teacher"
SHARD_PREFIX = "train-"
SEED_STREAM = 0x7EAC4E5  # Seeds of the teacher set, apart from the training pipeline's streams.


class TeacherBuildError(RuntimeError):
    """The teacher set cannot be built (one line naming the fix)."""


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    data: str  # A dataset sr-build-tfrecords built (its train split's HR images are the photos).
    out_dir: str
    teacher: str = "realesrgan_x4plus"  # A model name or path `sr_keras.load` takes.
    hr_size: int = 256  # HR crop side (the teacher sees hr_size / scale LR pixels).
    crops_per_image: int = 16
    degradation: str = "realesrgan"  # real_degradation.PRESETS.
    seed: int = 0
    batch: int = 8  # Crops per teacher call.


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") >> 1


def shard_name(key: str) -> str:
    return f"{SHARD_PREFIX}{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.tfrecord"


def crop_boxes(key: str, shape: tuple, cfg: TeacherConfig, scale: int) -> list:
    """(y, x) of each HR crop of the photo `key` (multiples of `scale`, so LR and HR stay aligned); seeded by the key
    and the crop's index alone."""
    rng = np.random.default_rng([cfg.seed, SEED_STREAM, _key_hash(key)])
    h, w = (shape[0] - cfg.hr_size) // scale, (shape[1] - cfg.hr_size) // scale
    return [(int(rng.integers(0, h + 1)) * scale, int(rng.integers(0, w + 1)) * scale)
            for _ in range(cfg.crops_per_image)]


def degrade_crop(hr: np.ndarray, key: str, index: int, cfg: TeacherConfig, scale: int) -> np.ndarray:
    """The degraded LR (uint8) of one HR crop, seeded by the photo's key and the crop's index."""
    seed = tf.constant([(cfg.seed * 1_000_003 + SEED_STREAM) & 0x7FFFFFFF, (_key_hash(key) + index) & 0x7FFFFFFF],
                       tf.int64)
    lr = real_degradation.degrade(tf.constant(hr, tf.float32) / 255.0, seed,
                                  real_degradation.PRESETS[cfg.degradation], scale)
    return np.asarray(tf.cast(tf.round(lr * 255.0), tf.uint8))


def run_teacher(fn: Callable, lr: np.ndarray) -> np.ndarray:
    """The teacher's output on a batch of uint8 LR crops, rounded to uint8 as every stored image is."""
    out = np.asarray(fn(tf.constant(lr.astype(np.float32) / 255.0)), np.float32)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _serialize(hr, lr, target, scale: int, key: str) -> bytes:
    example = schema.make_example(schema.encode_png(hr), schema.encode_png(lr), hr.shape, lr.shape, scale, key)
    example.features.feature[TEACHER_FEATURE].bytes_list.value.append(schema.encode_png(target))
    return example.SerializeToString(deterministic=True)


def _photos(data: str):
    """(key, HR uint8) of the train split of `data`, in file order."""
    manifest = schema.read_manifest(data)
    files = manifest.shard_paths("train")
    if not files:
        raise TeacherBuildError(f"{data} has no train split: build it with sr-build-tfrecords first")
    for serialized in tf.data.TFRecordDataset(files):
        ex = schema.parse_example(serialized)
        yield ex["key"].numpy().decode("utf-8"), ex["hr"].numpy()


def _config_record(cfg: TeacherConfig, manifest: schema.Manifest, teacher_meta: dict) -> dict:
    return {"scale": manifest.scale, "hr_size": cfg.hr_size, "degradation": f"{cfg.degradation} (second order)",
            "crops_per_image": cfg.crops_per_image, "seed": cfg.seed, "source_data": os.path.abspath(cfg.data),
            "source": manifest.dataset, "teacher": teacher_meta,
            "degradation_model": dataclasses.asdict(real_degradation.PRESETS[cfg.degradation])}


def teacher_of(enhancer) -> tuple:
    """(teacher_fn, teacher_meta) of a loaded model (`sr_keras.load(name, precision="float32")`)."""
    meta = enhancer.metadata
    return enhancer.model_fn(), {
        "model": meta.get("model"), "scale": enhancer.scale, "precision": enhancer.precision,
        "provenance": {k: meta.get("provenance", {}).get(k) for k in ("package", "package_version", "files",
                                                                      "license")}}


def build(cfg: TeacherConfig, teacher_fn: Callable, teacher_meta: Optional[dict] = None, stop_after: int = 0
          ) -> schema.Manifest:
    """Builds (or resumes) the teacher set at `cfg.out_dir`; returns its manifest.

    Args:
      teacher_fn: the teacher's untiled call, float32 [b, h, w, 3] in [0, 1] -> [b, h*s, w*s, 3] (`teacher_of`).
      teacher_meta: what the manifest records of the teacher (`teacher_of`); a resumed build must have the same.
      stop_after: > 0 stops after that many new photos (tests of resuming).

    Raises:
      TeacherBuildError: no such data, a folder holding another build's shards, or an unknown degradation.
    """
    if cfg.degradation not in real_degradation.PRESETS:
        raise TeacherBuildError(f"unknown degradation {cfg.degradation!r}: choose one of "
                                f"{', '.join(real_degradation.PRESETS)}")
    try:
        source = schema.read_manifest(cfg.data)
    except schema.ManifestError as e:
        raise TeacherBuildError(str(e)) from None
    scale = source.scale
    if (teacher_meta or {}).get("scale") not in (None, scale):
        raise TeacherBuildError(f"the teacher {cfg.teacher} is x{teacher_meta['scale']}, but {cfg.data} is x{scale}")
    if cfg.hr_size % scale:
        raise TeacherBuildError(f"--hr_size={cfg.hr_size} is not a multiple of the data's scale {scale}")
    teacher_meta = teacher_meta or {"model": cfg.teacher, "precision": "float32", "provenance": None}
    record = json.loads(json.dumps(_config_record(cfg, source, teacher_meta)))  # As the manifest stores it.
    os.makedirs(cfg.out_dir, exist_ok=True)
    previous = _previous(cfg.out_dir)
    if previous is not None and {k: v for k, v in previous.config.items() if k != "source_data"} != \
            {k: v for k, v in record.items() if k != "source_data"}:
        raise TeacherBuildError(f"{cfg.out_dir} holds a teacher set built with other options; choose another "
                                "--out_dir, or delete it to rebuild")
    safe_files.remove_stale_temps(cfg.out_dir)
    val = _copy_val(source, cfg.out_dir)
    total = source.counts.get("train", 0)
    bar = progress.LineProgress(total, unit_name="photo", label=f"teacher {cfg.teacher}", every_seconds=10.0)
    shards, skipped, done_new, new_since_write, start = [], [], 0, 0, time.monotonic()
    for i, (key, hr) in enumerate(_photos(cfg.data)):
        path = os.path.join(cfg.out_dir, shard_name(key))
        if min(hr.shape[:2]) < cfg.hr_size:
            skipped.append({"path": key, "reason": f"shorter side {min(hr.shape[:2])} < hr_size {cfg.hr_size}",
                            "split": "train"})
        elif not os.path.isfile(path):
            if stop_after and done_new >= stop_after:
                break
            _write_shard(path, key, hr, cfg, scale, teacher_fn)
            done_new += 1
        if os.path.isfile(path):
            shards.append(schema.Shard(file=os.path.basename(path), split="train",
                                       records=cfg.crops_per_image, sha256="", bytes=os.path.getsize(path)))
            if new_since_write != done_new:  # After each new photo, not after photos a resumed build skips.
                _write_manifest(cfg.out_dir, source, record, shards + val, skipped, time.monotonic() - start,
                                previous)
                new_since_write = done_new
        bar.update(i + 1)
    return _write_manifest(cfg.out_dir, source, record, shards + val, skipped, time.monotonic() - start, previous)


def _write_shard(path, key, hr, cfg, scale, teacher_fn) -> None:
    records = []
    boxes = crop_boxes(key, hr.shape, cfg, scale)
    crops = [hr[y:y + cfg.hr_size, x:x + cfg.hr_size] for y, x in boxes]
    lrs = [degrade_crop(c, key, k, cfg, scale) for k, c in enumerate(crops)]
    for b in range(0, len(crops), cfg.batch):
        targets = run_teacher(teacher_fn, np.stack(lrs[b:b + cfg.batch]))
        for k in range(b, min(b + cfg.batch, len(crops))):
            records.append(_serialize(crops[k], lrs[k], targets[k - b], scale, f"{key}#{k}"))
    staging = safe_files.make_temp_dir(os.path.dirname(path), "teacher-")
    try:  # Whole or absent: a kill mid-photo redoes this photo only (its staging folder is removed on resume).
        tmp = os.path.join(staging, os.path.basename(path))
        with tf.io.TFRecordWriter(tmp) as writer:
            for r in records:
                writer.write(r)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_val(source: schema.Manifest, out_dir: str) -> list:
    """The source's validation shards, linked (or copied) in unchanged: training validates on what the source
    validates on (plain pairs, which the evaluation pipeline reads as any dataset's)."""
    out = []
    for shard in source.split_shards("val"):
        name = "val-" + os.path.basename(shard.file).split("-", 1)[1]
        target = os.path.join(out_dir, name)
        if not os.path.isfile(target):
            tmp = os.path.join(safe_files.make_temp_dir(out_dir, "val-"), name)
            shards_lib._link_or_copy(os.path.join(source.data_dir, shard.file), tmp)
            os.replace(tmp, target)
            shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)
        out.append(dataclasses.replace(shard, file=name))
    return out


def _previous(out_dir: str) -> Optional[schema.Manifest]:
    try:
        return schema.read_manifest(out_dir)
    except schema.ManifestError:
        return None


def _write_manifest(out_dir, source, record, shards, skipped, seconds, previous) -> schema.Manifest:
    seconds += previous.seconds if previous is not None else 0.0
    sides = {"train": {"min": record["hr_size"], "max": record["hr_size"]}, "val": source.hr_min_side.get("val")}
    manifest = schema.Manifest(
        data_dir=out_dir, dataset=f"{source.dataset}+teacher", scale=source.scale,
        counts={split: sum(s.records for s in shards if s.split == split) for split in ("train", "val")},
        shards=tuple(shards), config=record,
        hr_min_side={k: v for k, v in sides.items() if v}, skipped=tuple(skipped), seconds=seconds)
    schema.write_manifest(manifest)
    return manifest


def parse_triple(serialized):
    """(lr, hr, teacher) uint8 from one teacher-set example."""
    ex = tf.io.parse_single_example(serialized, {**schema.FEATURES,
                                                 TEACHER_FEATURE: tf.io.FixedLenFeature([], tf.string)})
    decode = lambda b: tf.ensure_shape(tf.io.decode_png(b, channels=3), [None, None, 3])  # noqa: E731
    return decode(ex["lr"]), decode(ex["hr"]), decode(ex[TEACHER_FEATURE])


def is_teacher_set(manifest: schema.Manifest) -> bool:
    return "teacher" in manifest.config
