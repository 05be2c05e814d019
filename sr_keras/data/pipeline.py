"""The tf.data input pipeline: TFRecord shards -> batches of aligned (lr, hr) crops.

Training batches (random crops, augmented, float32 in [0, 1]), under tf.distribute:

    manifest = schema.read_manifest(data_dir)       # read once, passed on
    ds = strategy.distribute_datasets_from_function(
        lambda ctx: train_dataset(manifest, hr_crop=96, batch_size=16, input_context=ctx))

Evaluation examples (centre crops or whole images, one pass, uint8 as stored): `eval_dataset(manifest, "val")`.
`batch_size` is always the global batch; each input pipeline takes `ctx.get_per_replica_batch_size`.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import tensorflow as tf
from absl import logging

from sr_keras.data import real_degradation, schema, sources, teacher
from sr_keras.data.schema import Manifest

AUTOTUNE = tf.data.AUTOTUNE
INTERLEAVE_CYCLE = 8  # Shards read at once (more only adds open files; each is read sequentially).
# Crop seeds are (seed * SEED_STRIDE + input pipeline id, example index): distinct streams per pipeline for up to
# SEED_STRIDE pipelines, and a resumed run (seed + step) does not replay another pipeline's crops.
SEED_STRIDE = 1000


class DataError(ValueError):
    """The data folder cannot serve the request. The message names the fix."""


def _manifest(data: Union[str, Manifest]) -> Manifest:
    return data if isinstance(data, Manifest) else schema.read_manifest(data)


def shard_files(data: Union[str, Manifest], split: str, verify: bool = False) -> list:
    """The shard paths of one split, as listed in the manifest, each checked against it.

    Every shard must exist with the manifest's size and record count (read from the record headers, which is
    fast); `verify=True` also compares SHA-256 hashes (reads every byte).

    Raises:
      DataError: a missing split, or a shard that is missing or does not match (one line naming the fix).
    """
    manifest = _manifest(data)
    shards = manifest.split_shards(split)
    if not shards:
        raise DataError(f"{manifest.data_dir} has no {split!r} split (it has: {', '.join(manifest.counts)})")
    for s in shards:
        why = _shard_mismatch(os.path.join(manifest.data_dir, s.file), s, verify)
        if why:
            raise DataError(f"{manifest.data_dir} does not match its manifest ({s.file}: {why}); rebuild it with "
                            "sr-build-tfrecords")
    return manifest.shard_paths(split)


def _shard_mismatch(path: str, entry: schema.Shard, verify: bool) -> str:
    """Why a shard file differs from its manifest entry, or "" when it matches."""
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    if entry.bytes is not None and size != entry.bytes:  # Manifests from before 0.2 record no size.
        return f"{size} bytes, the manifest says {entry.bytes}"
    try:
        n = schema.count_records(path)
    except ValueError as e:
        return str(e)
    if n != entry.records:
        return f"{n} records, the manifest says {entry.records}"
    if verify and sources.sha256_file(path) != entry.sha256:
        return "SHA-256 differs from the manifest"
    return ""


def random_aligned_crop(lr: tf.Tensor, hr: tf.Tensor, hr_crop: int, scale: int, seed: tf.Tensor, *more_hr):
    """Crops the same scene from LR (hr_crop/scale) and HR (hr_crop), then flips and rotates both alike.

    Args:
      lr, hr: uint8 [h, w, 3] and [h*scale, w*scale, 3].
      seed: int [2] stateless seed, so the pipeline is reproducible.
      *more_hr: other HR-sized images of the same scene (a teacher's output), cropped and turned as `hr`.

    Returns:
      (lr, hr, *more_hr) crops.
    """
    lr_crop = hr_crop // scale
    seeds = tf.random.experimental.stateless_split(seed, 4)
    shape = tf.shape(lr)
    y = tf.random.stateless_uniform([], seeds[0], 0, shape[0] - lr_crop + 1, dtype=tf.int32)
    x = tf.random.stateless_uniform([], seeds[1], 0, shape[1] - lr_crop + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seeds[2], 0, 2, dtype=tf.int32)
    k = tf.random.stateless_uniform([], seeds[3], 0, 4, dtype=tf.int32)

    def turn(image):
        image = tf.cond(flip > 0, lambda: tf.image.flip_left_right(image), lambda: image)
        return tf.image.rot90(image, k)

    lr = lr[y:y + lr_crop, x:x + lr_crop]
    hrs = [im[y * scale:(y + lr_crop) * scale, x * scale:(x + lr_crop) * scale] for im in (hr, *more_hr)]
    return tuple(turn(im) for im in (lr, *hrs))


def center_aligned_crop(lr: tf.Tensor, hr: tf.Tensor, hr_crop: int, scale: int):
    """The deterministic (validation) version of `random_aligned_crop`, without augmentation."""
    lr_crop = hr_crop // scale
    shape = tf.shape(lr)
    y, x = (shape[0] - lr_crop) // 2, (shape[1] - lr_crop) // 2
    return (lr[y:y + lr_crop, x:x + lr_crop],
            hr[y * scale:(y + lr_crop) * scale, x * scale:(x + lr_crop) * scale])


def _to_float(*images):
    return tuple(tf.cast(im, tf.float32) / 255.0 for im in images)


def _check_crop(manifest: Manifest, split: str, hr_crop: int) -> None:
    if hr_crop % manifest.scale:
        raise DataError(f"hr_crop={hr_crop} is not divisible by the data's scale {manifest.scale}")
    sides = manifest.hr_min_side.get(split)
    if sides and hr_crop > sides["max"]:
        raise DataError(f"hr_crop={hr_crop} is larger than every {split} image (largest shorter side "
                        f"{sides['max']}); use a smaller --hr_crop")
    if sides and hr_crop > sides["min"]:
        logging.warning("hr_crop=%d: %s images with a shorter side below it are left out", hr_crop, split)


def _check_scale(manifest: Manifest, scale: Optional[int]) -> None:
    if scale is not None and scale != manifest.scale:
        raise DataError(f"{manifest.data_dir} was built for x{manifest.scale}, not x{scale}; rebuild it with "
                        f"sr-build-tfrecords --scale={scale}")


def _records(files: list, input_context: Optional[tf.distribute.InputContext], shuffle_seed: Optional[int],
             parse=None):
    """Parsed (lr, hr) uint8 pairs from `files` (or what `parse` makes of each record), split between input
    pipelines (by file when there are enough)."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    n = input_context.num_input_pipelines if input_context is not None else 1
    if n > 1 and len(files) >= n:
        ds = ds.shard(n, input_context.input_pipeline_id)
    elif n > 1:
        shard_records = True  # Fewer files than pipelines: split by record instead.
    if shuffle_seed is not None:
        ds = ds.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), INTERLEAVE_CYCLE), block_length=1,
                       num_parallel_calls=AUTOTUNE, deterministic=True)
    if shard_records:
        ds = ds.shard(n, input_context.input_pipeline_id)
    return ds.map(parse or _parse_pair, num_parallel_calls=AUTOTUNE)


def _at_least(ds: tf.data.Dataset, lr_crop: int) -> tf.data.Dataset:
    return ds.filter(lambda lr, *rest: tf.reduce_min(tf.shape(lr)[:2]) >= lr_crop)


def train_dataset(data: Union[str, Manifest], hr_crop: int, batch_size: int,
                  input_context: Optional[tf.distribute.InputContext] = None, seed: int = 0,
                  scale: Optional[int] = None, cache: bool = False, crops_per_image: int = 1,
                  shuffle_buffer: int = 256, split: str = "train", degradation: str = "") -> tf.data.Dataset:
    """Training batches from a dataset built by `sr-build-tfrecords`: random aligned crops, flips, 90-degree
    rotations, shuffled, repeated forever.

    Args:
      data: the dataset folder, or its `schema.Manifest` (read once by the caller).
      hr_crop: HR crop side (a multiple of the scale); images with a shorter side below it are left out.
      batch_size: the global batch size.
      input_context: from `distribute_datasets_from_function`; splits shards across input pipelines.
      seed: seeds shuffling and crops, so runs are reproducible.
      scale: if given, must match the data's scale.
      cache: keep decoded images in memory (small datasets: decode once).
      crops_per_image: random crops taken from each decoded image (amortises decoding of large photos).
      shuffle_buffer: examples in the shuffle buffer.
      degradation: "" (the LR images stored in the shards) or a name in `real_degradation.PRESETS`: each HR crop
        is degraded on the fly (Real-ESRGAN's second-order model), seeded per example like the crops.

    Returns:
      A dataset of (lr, hr) float32 batches in [0, 1]: [b, c/s, c/s, 3] and [b, c, c, 3]; (lr, hr, teacher) from a
      distillation set (`data.teacher`), whose LR is already degraded.
    """
    manifest = _manifest(data)
    _check_scale(manifest, scale)
    files = shard_files(manifest, split)
    if hr_crop <= 0:
        raise DataError("training batches need a crop: pass hr_crop > 0 (a multiple of the scale)")
    _check_crop(manifest, split, hr_crop)
    s = manifest.scale
    distill = teacher.is_teacher_set(manifest)
    if distill and degradation:
        raise DataError(f"{manifest.data_dir} is a distillation set, whose LR crops are degraded already: train on "
                        "it without --degradation")
    ds = _at_least(_records(files, input_context, shuffle_seed=seed, parse=teacher.parse_triple if distill else None),
                   hr_crop // s)
    if cache:
        ds = ds.cache()
    ds = ds.repeat()
    if crops_per_image > 1:
        ds = ds.flat_map(lambda *ex: tf.data.Dataset.from_tensors(ex).repeat(crops_per_image))
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    stream = tf.cast(seed * SEED_STRIDE + pipeline_id, tf.int64)
    ds = ds.enumerate().map(lambda i, ex: random_aligned_crop(ex[0], ex[1], hr_crop, s, tf.stack([stream, i]),
                                                              *ex[2:]), num_parallel_calls=AUTOTUNE)
    ds = ds.map(_to_float, num_parallel_calls=AUTOTUNE)
    if degradation:
        if degradation not in real_degradation.PRESETS:
            raise DataError(f"unknown degradation {degradation!r}; choose one of {', '.join(real_degradation.PRESETS)}")
        model = real_degradation.PRESETS[degradation]
        # Its own seed stream (stream + 1 << 32), so the degradations do not repeat the crops' draws.
        ds = ds.enumerate().map(
            lambda i, pair: (real_degradation.degrade(pair[1], tf.stack([stream + (1 << 32), i]), model, s), pair[1]),
            num_parallel_calls=AUTOTUNE)
    per_replica = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    return ds.batch(per_replica, drop_remainder=True).prefetch(AUTOTUNE)


def eval_dataset(data: Union[str, Manifest], split: str = "val", hr_crop: int = 0, batch_size: int = 1,
                 input_context: Optional[tf.distribute.InputContext] = None, scale: Optional[int] = None,
                 as_float: bool = True, repeat: bool = False) -> tf.data.Dataset:
    """Evaluation batches, deterministic: centre crops of `hr_crop` (images smaller than it are left out), or whole
    images with `hr_crop=0` (which needs a per-replica batch of 1), in file order, one pass.

    Returns:
      (lr, hr) batches: float32 in [0, 1], or uint8 as stored with `as_float=False` (the evaluation protocol,
      `metrics.score`, works on uint8).
    """
    manifest = _manifest(data)
    _check_scale(manifest, scale)
    files = shard_files(manifest, split)
    per_replica = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    ds = _records(files, input_context, shuffle_seed=None)
    if hr_crop:
        _check_crop(manifest, split, hr_crop)
        s = manifest.scale
        ds = _at_least(ds, hr_crop // s).map(lambda lr, hr: center_aligned_crop(lr, hr, hr_crop, s),
                                             num_parallel_calls=AUTOTUNE)
    elif per_replica != 1:
        raise DataError("whole-image evaluation (hr_crop=0) needs a per-replica batch size of 1")
    if repeat:
        ds = ds.repeat()
    if as_float:
        ds = ds.map(_to_float, num_parallel_calls=AUTOTUNE)
    return ds.batch(per_replica).prefetch(AUTOTUNE)


def _parse_pair(serialized):
    ex = schema.parse_example(serialized)
    return ex["lr"], ex["hr"]
