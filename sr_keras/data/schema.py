"""The on-disk format of a built dataset: the LR/HR TFRecord schema (one `tf.train.Example` per image pair) and
the typed manifest (`Manifest`, `read_manifest`) that lists its shards. Readers (the input pipeline, training,
evaluation) use this module only; `builder` writes through it.

Features:
  hr, lr          PNG bytes (lossless, 8-bit RGB)
  hr_shape, lr_shape   int64 [3]: height, width, channels
  scale           int64
  key             bytes: where the image came from (relative path, tfds id, sample name)
  deg/blur_sigma, deg/noise_sigma  float; deg/jpeg_quality int64 (all 0 for the bicubic degradation)
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Optional

import numpy as np
import tensorflow as tf

from sr_keras.data.degradation import RealisticParams
from sr_keras.utils import safe_files

SHARD_PATTERN = "{split}-{index:05d}-of-{count:05d}.tfrecord"
MANIFEST = "manifest.json"
FORMAT = "sr_keras.tfrecords/1"

FEATURES = {
    "hr": tf.io.FixedLenFeature([], tf.string),
    "lr": tf.io.FixedLenFeature([], tf.string),
    "hr_shape": tf.io.FixedLenFeature([3], tf.int64),
    "lr_shape": tf.io.FixedLenFeature([3], tf.int64),
    "scale": tf.io.FixedLenFeature([], tf.int64),
    "key": tf.io.FixedLenFeature([], tf.string),
    "deg/blur_sigma": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    "deg/noise_sigma": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    "deg/jpeg_quality": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def _bytes(v: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _ints(v) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x) for x in np.atleast_1d(v)]))


def _float(v: float) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))


def encode_png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(image, compression=3).numpy()


def make_example(hr_png: bytes, lr_png: bytes, hr_shape, lr_shape, scale: int, key: str,
                 params: RealisticParams = RealisticParams()) -> tf.train.Example:
    """Builds one example from already-encoded PNGs."""
    return tf.train.Example(features=tf.train.Features(feature={
        "hr": _bytes(hr_png),
        "lr": _bytes(lr_png),
        "hr_shape": _ints(hr_shape),
        "lr_shape": _ints(lr_shape),
        "scale": _ints(scale),
        "key": _bytes(key.encode("utf-8")),
        "deg/blur_sigma": _float(params.blur_sigma),
        "deg/noise_sigma": _float(params.noise_sigma),
        "deg/jpeg_quality": _ints(params.jpeg_quality),
    }))


def serialize_pair(hr: np.ndarray, lr: np.ndarray, scale: int, key: str,
                   params: RealisticParams = RealisticParams()) -> bytes:
    """Encodes an (hr, lr) uint8 pair as a serialized example: the same bytes in any process (deterministic
    serialization orders the feature map, which protobuf otherwise writes in a per-process hash order)."""
    return make_example(encode_png(hr), encode_png(lr), hr.shape, lr.shape, scale, key,
                        params).SerializeToString(deterministic=True)


def parse_example(serialized: tf.Tensor) -> dict:
    """Parses one serialized example into decoded uint8 `hr`, `lr` tensors plus the other features."""
    ex = tf.io.parse_single_example(serialized, FEATURES)
    hr = tf.io.decode_png(ex["hr"], channels=3)
    lr = tf.io.decode_png(ex["lr"], channels=3)
    hr = tf.ensure_shape(hr, [None, None, 3])
    lr = tf.ensure_shape(lr, [None, None, 3])
    return dict(ex, hr=hr, lr=lr)


def count_records(path: str) -> int:
    """Records in a TFRecord file, from the length headers alone (no payload is read).

    Each record is: uint64 length, uint32 length-CRC, `length` bytes, uint32 data-CRC.

    Raises:
      ValueError: the file ends inside a record (truncated), so it cannot be what the manifest lists.
    """
    size = os.path.getsize(path)
    n, pos = 0, 0
    with open(path, "rb") as f:
        while pos < size:
            header = f.read(12)
            if len(header) < 12:
                raise ValueError(f"truncated record header at byte {pos}")
            (length,) = struct.unpack("<Q", header[:8])
            pos += 12 + length + 4
            if pos > size:
                raise ValueError(f"record {n} runs past the end of the file")
            f.seek(pos)
            n += 1
    return n


class ManifestError(ValueError):
    """A folder is not a dataset built by sr-build-tfrecords, or its manifest is unreadable. Names the fix."""


@dataclasses.dataclass(frozen=True)
class Shard:
    """One TFRecord file as the manifest lists it."""

    file: str  # Relative to the dataset folder.
    split: str
    records: int
    sha256: str = ""
    bytes: Optional[int] = None  # None in manifests from before 0.2.


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A built dataset's `manifest.json`, typed. `config` holds the build options as recorded (`BuildConfig`)."""

    data_dir: str
    dataset: str
    scale: int
    counts: dict  # split -> examples
    shards: tuple  # of Shard
    config: dict
    hr_min_side: dict = dataclasses.field(default_factory=dict)  # split -> {"min": px, "max": px}
    skipped: tuple = ()  # of {"path", "reason", "split"}
    seconds: float = 0.0
    format: str = FORMAT

    def split_shards(self, split: str) -> list:
        return [s for s in self.shards if s.split == split]

    def shard_paths(self, split: str) -> list:
        return [os.path.join(self.data_dir, s.file) for s in self.split_shards(split)]

    @classmethod
    def from_dict(cls, data_dir: str, d: dict) -> "Manifest":
        """Raises ManifestError for a manifest of another format (a dataset this version cannot read)."""
        fmt = d.get("format", FORMAT)  # Manifests of the first builds carry none; they are this format.
        if fmt != FORMAT:
            raise ManifestError(f"{manifest_path(data_dir)} is in format {fmt!r}; this sr_keras reads {FORMAT!r}: "
                                "rebuild the dataset with sr-build-tfrecords")
        fields = {f.name for f in dataclasses.fields(Shard)}
        return cls(data_dir=data_dir, dataset=d.get("dataset", ""), scale=int(d["config"]["scale"]),
                   counts=dict(d.get("counts", {})),
                   shards=tuple(Shard(**{k: v for k, v in s.items() if k in fields}) for s in d.get("shards", [])),
                   config=dict(d["config"]), hr_min_side=dict(d.get("hr_min_side", {})),
                   skipped=tuple(d.get("skipped", [])), seconds=float(d.get("seconds", 0.0)))

    def to_dict(self) -> dict:
        """What `write_manifest` stores (`from_dict` reads it back)."""
        return {"format": self.format, "dataset": self.dataset, "config": self.config, "counts": self.counts,
                "hr_min_side": self.hr_min_side, "shards": [dataclasses.asdict(s) for s in self.shards],
                "skipped": list(self.skipped), "seconds": self.seconds}

    def summary(self) -> str:
        """A short human-readable summary."""
        cfg = self.config
        lines = [f"dataset {self.dataset!r} at {self.data_dir}: x{self.scale}, "
                 f"hr_size={cfg.get('hr_size') or 'whole images'}, degradation={cfg.get('degradation')}"]
        for split, n in self.counts.items():
            lines.append(f"  {split}: {n} examples in {len(self.split_shards(split))} shard(s)")
        lines.append(f"  skipped: {len(self.skipped)}")
        for s in self.skipped[:20]:
            lines.append(f"    {s['path']}: {s['reason']}")
        if len(self.skipped) > 20:
            lines.append(f"    ... and {len(self.skipped) - 20} more (see {MANIFEST})")
        return "\n".join(lines)


def manifest_path(data_dir: str) -> str:
    return os.path.join(data_dir, MANIFEST)


def write_manifest(manifest: Manifest) -> None:
    """Writes `<manifest.data_dir>/manifest.json` atomically."""
    safe_files.write_text(manifest_path(manifest.data_dir), json.dumps(manifest.to_dict(), indent=2))


def read_manifest(data_dir: str) -> Manifest:
    """Reads `<data_dir>/manifest.json`.

    Raises:
      ManifestError: the folder is not a built dataset, or its manifest is damaged (one line naming the fix).
    """
    path = manifest_path(data_dir)
    if not os.path.exists(path):
        raise ManifestError(f"{data_dir} is not a dataset built by sr-build-tfrecords (no {MANIFEST}); "
                            f"build one with: sr-build-tfrecords --source=sample --out_dir={data_dir}")
    try:
        with open(path) as f:
            return Manifest.from_dict(data_dir, json.load(f))
    except ManifestError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ManifestError(f"{path} is damaged ({type(e).__name__}: {str(e)[:100]}); rebuild the dataset with "
                            "sr-build-tfrecords") from None
