"""A real-world paired test set anyone can rebuild: held-out photos that packages ship, degraded once with
Real-ESRGAN's second-order model (`real_degradation`) from a fixed seed.

    sr-make-real-set --out=eval/real_set            # eval/real_set/hr/*.png and eval/real_set/lr/*.png
    sr-evaluate --images=eval/real_set/hr --lr_images=eval/real_set/lr --metrics=psnr,ssim,lpips,niqe ...

The photos are none of the training photos of the zoo's own models: scikit-image's three held-back sample photos
(`sources.SAMPLE_VAL`) and, when `sr-fetch-photos` has fetched them, its `test_libs` set (matplotlib, PyWavelets and
scikit-learn sample photos from Debian packages). Each is centre-cropped to `crop` pixels (a multiple of the
scale); image i is degraded with seed (seed, i). The draws are stateless, so the same TensorFlow version rebuilds
the same set.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from sr_keras.data import real_degradation, sources
from sr_keras.image import imageio, png_writer
from sr_keras.utils import safe_files

DEFAULT_PHOTOS = "tfrecords/free_photos/test_libs"


def photo_paths(photos_dir: str = DEFAULT_PHOTOS) -> list:
    """The held-out photos: the sample validation photos, then those in `photos_dir` (if it exists)."""
    root = sources.sample_dir()
    paths = [os.path.join(root, n) for n in sources.SAMPLE_VAL]
    if photos_dir and os.path.isdir(photos_dir):
        paths += sorted(os.path.join(photos_dir, n) for n in os.listdir(photos_dir) if not n.startswith("."))
    return paths


def _centre_crop(image: np.ndarray, crop: int, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = min(crop, h) // scale * scale, min(crop, w) // scale * scale
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top:top + ch, left:left + cw])


def build(out_dir: str, photos_dir: str = DEFAULT_PHOTOS, seed: int = 0, crop: int = 384, scale: int = 4,
          degradation: str = "realesrgan") -> list:
    """Writes out_dir/hr/<stem>.png and out_dir/lr/<stem>.png (atomically); returns the stems."""
    model = real_degradation.PRESETS[degradation]
    stems = []
    for i, path in enumerate(photo_paths(photos_dir)):
        hr = _centre_crop(imageio.load_rgb8(path), crop, scale)
        lr = real_degradation.degrade(tf.constant(hr, tf.float32) / 255.0, tf.constant([seed, i], tf.int64),
                                      model, scale)
        lr = np.round(lr.numpy() * 255.0).astype(np.uint8)
        stem = os.path.splitext(os.path.basename(path))[0]
        for sub, pixels in (("hr", hr), ("lr", lr)):
            os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
            safe_files.write_bytes(os.path.join(out_dir, sub, f"{stem}.png"), png_writer.encode_png(pixels))
        stems.append(stem)
    return stems
