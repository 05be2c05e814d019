"""The LR/HR TFRecord schema: one `tf.train.Example` per image pair.

Features:
  hr, lr          PNG bytes (lossless, 8-bit RGB)
  hr_shape, lr_shape   int64 [3]: height, width, channels
  scale           int64
  key             bytes: where the image came from (relative path, tfds id, sample name)
  deg/blur_sigma, deg/noise_sigma  float; deg/jpeg_quality int64 (all 0 for the bicubic degradation)
"""

from __future__ import annotations

import os
import struct

import numpy as np
import tensorflow as tf

from sr_keras.data.degradation import RealisticParams

SHARD_PATTERN = "{split}-{index:05d}-of-{count:05d}.tfrecord"

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
    """Encodes an (hr, lr) uint8 pair as a serialized example."""
    return make_example(encode_png(hr), encode_png(lr), hr.shape, lr.shape, scale, key,
                        params).SerializeToString()


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
