"""Builds sharded LR/HR TFRecords from a source, in parallel, atomically, with a manifest.

`build_tfrecords(BuildConfig(...))` is the library entry point; `sr-build-tfrecords` is its thin binary.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing.pool
import os
import shutil
import time
from typing import Iterable, Optional

import numpy as np

from sr_keras.data import BUILD_SCALES, schema, shards
from sr_keras.data import sources as sources_lib
from sr_keras.data.degradation import (
    DEGRADATIONS,
    center_square_resize,
    crop_to_multiple,
    degrade,
    rescale,
)
from sr_keras.data.shards import RECORDS_PER_SHARD, BuildError  # noqa: F401 - part of this API.
from sr_keras.image.imageio import ImageError, load_rgb8
from sr_keras.utils import progress, safe_files

SCALES = BUILD_SCALES




@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Resolved options of one build (written into manifest.json as "config")."""

    source: str = "sample"
    out_dir: str = ""  # Default: tfrecords/<dataset>_x<scale>.
    split: tuple = ("train", "validation")  # tfds splits; folder sources always produce train and val.
    val_fraction: float = 0.1
    scale: int = 4
    hr_size: int = -1  # -1: the source's default (128 for tfds faces, 0 = whole images otherwise).
    min_side: int = 96
    num_shards: int = 0  # 0: one shard per RECORDS_PER_SHARD training records.
    workers: int = 0  # 0: all cores.
    degradation: str = "bicubic"
    seed: int = 0
    max_images: int = 0  # 0: no limit (per split).
    tfds_data_dir: Optional[str] = None
    # Multi-scale augmentation of the train split (as Real-ESRGAN's DF2K multiscale set): each training image
    # also yields pairs from copies of its HR shrunk by these factors (antialiased bicubic), so few photos
    # show their textures at several sizes. Empty: one pair per image. val/test are never rescaled.
    train_rescales: tuple = ()
    # Inputs with more pixels are skipped, judged from the file header before decoding (a 97 KB PNG can hold
    # 100 million pixels). 100 MP covers any camera's photos.
    max_input_pixels: int = 100_000_000
    verbose: bool = True


@dataclasses.dataclass(frozen=True)
class _Job:
    """What a worker needs to turn one source item into one serialized example."""

    scale: int
    hr_size: int
    min_side: int
    degradation: str
    seed: int
    max_pixels: int = 0


def process_item(item: sources_lib.SourceItem, job: _Job, factor: float = 1.0) -> tuple:
    """Returns ("ok", key, (serialized_example, hr_shorter_side)) or ("skip", key_or_path, reason). Never raises for bad input.

    factor < 1: the pair is made from the HR shrunk by `factor` first, under the key `<key>@<factor>`.
    """
    where = item.path or item.key
    try:
        if item.pixels is not None:
            px = np.asarray(item.pixels)
            if px.dtype != np.uint8 or px.ndim != 3 or px.shape[-1] != 3:
                return ("skip", where, f"unsupported in-memory image {px.dtype} {px.shape}")
            hr = px
        else:
            hr = load_rgb8(item.path, max_pixels=job.max_pixels)
    except ImageError as e:
        return ("skip", where, str(e))
    except OSError as e:
        return ("skip", where, f"unreadable: {e.strerror or e}")
    key = item.key
    if factor != 1:
        hr, key, where = rescale(hr, factor), f"{item.key}@{factor:g}", f"{where}@{factor:g}"
    if job.hr_size > 0:
        hr = center_square_resize(hr, job.hr_size)
    else:
        short = min(hr.shape[:2])
        if short < max(job.min_side, job.scale):
            return ("skip", where, f"too small: shorter side {short} px < --min_side={job.min_side}")
        hr = crop_to_multiple(hr, job.scale)
    lr, params = degrade(hr, job.scale, job.degradation, key=key, seed=job.seed)
    return ("ok", key, (schema.serialize_pair(hr, lr, job.scale, key, params), min(hr.shape[:2])))


def _make(job: _Job, item: sources_lib.SourceItem, factor: float) -> tuple:
    return process_item(item, job, factor)


def _process_star(args):
    return process_item(*args)


def _file_size(path: Optional[str]) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def resolve_config(cfg: BuildConfig, source: sources_lib.Source) -> BuildConfig:
    """Fills defaults that depend on the source and validates the combination."""
    if cfg.scale not in SCALES:
        raise BuildError(f"--scale={cfg.scale}: choose one of {SCALES}")
    if cfg.degradation not in DEGRADATIONS:
        raise BuildError(f"--degradation={cfg.degradation}: choose one of {DEGRADATIONS}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise BuildError(f"--val_fraction={cfg.val_fraction}: must be in [0, 1)")
    bad = [f for f in cfg.train_rescales if not 0 < f < 1]
    if bad:
        raise BuildError(f"--train_rescales={','.join(map(str, cfg.train_rescales))}: each factor must be between 0 "
                         "and 1 (exclusive), e.g. 0.75,0.5")
    hr_size = source.default_hr_size if cfg.hr_size < 0 else cfg.hr_size
    if hr_size and hr_size % cfg.scale:
        raise BuildError(f"--hr_size={hr_size} is not a multiple of --scale={cfg.scale}")
    out_dir = cfg.out_dir or os.path.join("tfrecords", f"{source.name}_x{cfg.scale}")
    workers = cfg.workers or os.cpu_count() or 1
    return dataclasses.replace(cfg, hr_size=hr_size, out_dir=out_dir, workers=workers)


def _progress(total: Optional[int], verbose: bool, label: str):
    if not verbose:
        return None

    print(f"{label}:", flush=True)
    return progress.bar(total, unit_name="image", stateful_metrics=["img/s"])




def _previous_manifest(out_dir: str, cfg_dict: dict, splits: Iterable[str]) -> dict:
    """Entries of splits this build does not touch, kept when the previous build was compatible."""
    if not os.path.exists(schema.manifest_path(out_dir)):
        return {}
    try:
        old = schema.read_manifest(out_dir)
    except schema.ManifestError:  # Damaged or of another format: nothing is carried over.
        return {}
    same = all(old.config.get(k) == cfg_dict[k] for k in ("source", "scale", "hr_size", "degradation",
                                                          "train_rescales"))
    keep = {s for s in old.counts if s not in splits} if same else set()
    return {
        "counts": {s: n for s, n in old.counts.items() if s in keep},
        "hr_min_side": {s: n for s, n in old.hr_min_side.items() if s in keep},
        "shards": [dataclasses.asdict(sh) for sh in old.shards if sh.split in keep],
        "skipped": [sk for sk in old.skipped if sk.get("split") in keep],
    }


def _run_split(split, items, pool, job, shard_set, total, verbose, skipped, factors=(1.0,), label="") -> None:
    bar = _progress(total and total * len(factors), verbose, f"[{split}] -> {label}")
    start, done = time.time(), 0
    args = ((item, job, f) for item in items for f in factors)
    results = pool.imap(_process_star, args, chunksize=1) if pool else map(_process_star, args)
    for status, where, payload in results:
        done += 1
        if status == "ok":
            shard_set.write(*payload)
        else:
            skipped.append({"path": where, "reason": payload, "split": split})
        if bar is not None:
            rate = done / max(time.time() - start, 1e-9)
            bar.update(done, values=[("img/s", rate)])


def build_tfrecords(cfg: BuildConfig, beam_options=None) -> schema.Manifest:
    """Builds `<out_dir>/<split>-NNNNN-of-NNNNN.tfrecord` shards plus `manifest.json`.

    Bad inputs are skipped with a reason and listed in the manifest; shards appear under their final
    names only once complete. Returns the manifest (as every reader sees it). With `beam_options` (Beam
    PipelineOptions) the examples are made and the shards written by an Apache Beam pipeline (`beam_build`):
    the same records, shards and manifest, in another order within and across shards.

    Raises:
      BuildError / sources.SourceError: no valid image at all, a bad option, or an unwritable output.
    """
    try:
        source = sources_lib.resolve_source(cfg.source, list(cfg.split), cfg.val_fraction, cfg.tfds_data_dir,
                                            cfg.max_images)
    except sources_lib.SourceError as e:
        raise BuildError(str(e)) from None
    cfg = resolve_config(cfg, source)
    staging = shards.staging_dir(cfg.out_dir)
    try:
        manifest = _build_into(staging, cfg, source, beam_options)
        shards.carry_over(cfg.out_dir, staging, list(source.splits))
        schema.write_manifest(schema.Manifest.from_dict(staging, manifest))
        safe_files.replace_dir(staging, cfg.out_dir)  # The commit point: all or nothing.
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return schema.read_manifest(cfg.out_dir)


def split_items(split: str, cfg: BuildConfig, source) -> tuple:
    """(the split's items in build order, its shard count, its multi-scale factors, its expected count)."""
    items = source.items(split)
    if cfg.max_images and not cfg.source.startswith("tfds:"):  # tfds slices its own splits.
        items = [it for i, it in enumerate(items) if i < cfg.max_images]
    if isinstance(source.splits[split], list):
        # Largest files first: with few big photos, a large one started last would leave the other
        # workers idle (longest-processing-time-first). Same order for any worker count.
        items = sorted(items, key=lambda it: (-_file_size(it.path), it.key))
    hint = source.counts_hint.get(split)
    if cfg.max_images and hint:
        hint = min(hint, cfg.max_images)
    factors = (1.0,) + tuple(cfg.train_rescales) if split == "train" else (1.0,)
    train_hint = source.counts_hint.get("train")
    count = shards.shards_for(split, cfg, hint and hint * len(factors),
                              train_hint and train_hint * (1 + len(cfg.train_rescales)))
    return items, count, factors, hint


def _build_splits(staging: str, cfg: BuildConfig, source, job: _Job, manifest: dict) -> None:
    pool = None
    if cfg.workers > 1:
        # Threads, not processes: decoding (Pillow) and resizing/encoding (TF ops) release the GIL, and
        # threads start at once where a process that imports TF takes seconds.
        pool = multiprocessing.pool.ThreadPool(cfg.workers)
    try:
        for split in source.splits:
            items, count, factors, hint = split_items(split, cfg, source)
            shard_set = shards.ShardSet(staging, split, count)
            _run_split(split, items, pool, job, shard_set, hint, cfg.verbose, manifest["skipped"], factors,
                       cfg.out_dir)
            manifest["counts"][split] = shard_set.n
            if shard_set.sides:  # Lets the reader reject crops larger than every image, up front.
                manifest["hr_min_side"][split] = {"min": min(shard_set.sides), "max": max(shard_set.sides)}
            manifest["shards"].extend(shard_set.close())
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _build_into(staging: str, cfg: BuildConfig, source, beam_options=None) -> dict:
    job = _Job(cfg.scale, cfg.hr_size, cfg.min_side, cfg.degradation, cfg.seed, cfg.max_input_pixels)
    splits = list(source.splits)
    cfg_dict = dataclasses.asdict(cfg)
    cfg_dict["split"] = list(cfg.split)
    cfg_dict["train_rescales"] = list(cfg.train_rescales)
    manifest = {"format": schema.FORMAT, "dataset": source.name, "config": cfg_dict,
                "counts": {}, "shards": [], "skipped": [], "hr_min_side": {}}
    previous = _previous_manifest(cfg.out_dir, cfg_dict, splits)
    start = time.time()
    if beam_options is not None:
        # Here, not at the top: apache-beam is an optional extra (sr-build-tfrecords --beam_pipeline_options).
        from sr_keras.data import beam_build

        plans = {}
        for split in source.splits:
            items, count, factors, _ = split_items(split, cfg, source)
            plans[split] = (count, [(item, f) for item in items for f in factors])
        beam_build.build_splits(staging, plans, functools.partial(_make, job), manifest, beam_options, cfg.verbose)
    else:
        _build_splits(staging, cfg, source, job, manifest)
    if sum(manifest["counts"].values()) == 0:
        raise BuildError(f"no valid image found in {cfg.source} ({len(manifest['skipped'])} files skipped; "
                         "see the reasons above)" if manifest["skipped"] else f"no input found in {cfg.source}")
    for key in ("counts", "hr_min_side"):
        manifest[key] = {**previous.get(key, {}), **manifest[key]}
    manifest["shards"] = previous.get("shards", []) + manifest["shards"]
    manifest["skipped"] = previous.get("skipped", []) + manifest["skipped"]
    manifest["seconds"] = round(time.time() - start, 3)
    return manifest
