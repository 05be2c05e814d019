"""Shards of a dataset being built: how many, their writers, and the staging folder that replaces the dataset in
one step (carrying over the splits this build does not touch). The layout's names are `schema`'s."""

from __future__ import annotations

import math
import os
import shutil
from typing import Iterable, Optional

import tensorflow as tf

from sr_keras.data import schema
from sr_keras.data import sources as sources_lib
from sr_keras.utils import safe_files

RECORDS_PER_SHARD = 2000  # ~80 MB of 128x128 faces per shard; large enough for sequential reads.


class BuildError(RuntimeError):
    """The build cannot proceed (no valid image, an unwritable output). The message names the fix."""


def shards_for(split: str, cfg, hint: Optional[int], train_hint: Optional[int]) -> int:
    if cfg.num_shards and split == "train":
        return cfg.num_shards
    n = hint or 1
    if cfg.num_shards and train_hint:
        return max(1, min(cfg.num_shards, math.ceil(cfg.num_shards * n / train_hint)))
    return max(1, math.ceil(n / RECORDS_PER_SHARD))


class ShardSet:
    """Writes one split's shards into the (private) staging folder of a build."""

    def __init__(self, out_dir: str, split: str, count: int):
        self.out_dir, self.split = out_dir, split
        self.finals = [schema.SHARD_PATTERN.format(split=split, index=i, count=count) for i in range(count)]
        self.writers = [tf.io.TFRecordWriter(os.path.join(out_dir, f)) for f in self.finals]
        self.records = [0] * count
        self.n = 0
        self.sides = []

    def write(self, serialized: bytes, hr_side: int) -> None:
        self.sides.append(hr_side)
        i = self.n % len(self.writers)  # Round-robin keeps shards balanced and the order deterministic.
        self.writers[i].write(serialized)
        self.records[i] += 1
        self.n += 1

    def close(self) -> list:
        """Closes the shards and returns their manifest entries (file, split, records, bytes, sha256)."""
        for w in self.writers:
            w.close()
        shards = []
        for final, n in zip(self.finals, self.records):
            path = os.path.join(self.out_dir, final)
            shards.append({"file": final, "split": self.split, "records": n, "bytes": os.path.getsize(path),
                           "sha256": sources_lib.sha256_file(path)})
        return shards


def staging_dir(out_dir: str) -> str:
    """A fresh private folder beside `out_dir` that becomes `out_dir` only when the build is complete."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    label = f"build-{os.path.basename(os.path.abspath(out_dir))}-"
    try:
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise NotADirectoryError(20, "it is a file")
        os.makedirs(parent, exist_ok=True)
        safe_files.remove_stale_temps(parent)  # Left by killed builds (never a live one's, nor a finished one).
        return safe_files.make_temp_dir(parent, label)
    except OSError as e:
        raise BuildError(f"cannot write to --out_dir={out_dir}: {e.strerror or e}") from None


def carry_over(out_dir: str, staging: str, rebuilt: Iterable[str]) -> None:
    """Links every file of the previous `out_dir` that this build does not replace into the staging folder.

    Shards of the splits being rebuilt and the manifest are replaced; anything else (other splits, the user's
    own files) is kept. Hard links cost no space and no copy; a filesystem without them gets a copy.
    """
    if not os.path.isdir(out_dir):
        return
    rebuilt = tuple(f"{s}-" for s in rebuilt)
    for name in os.listdir(out_dir):
        src = os.path.join(out_dir, name)
        if name == schema.MANIFEST or (name.startswith(rebuilt) and name.endswith(".tfrecord")):
            continue
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, os.path.join(staging, name), symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(src, os.path.join(staging, name))


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


