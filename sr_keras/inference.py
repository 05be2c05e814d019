"""The Python API: `sr_keras.load(path)` and `Enhancer.enhance(image)`.

    import sr_keras
    m = sr_keras.load("export/srgan")        # a model folder (its latest version), a version folder, a .keras
    big = m.enhance(np.asarray(Image.open("photo.png")))   # or a PIL image; returns the same kind

Any H x W works. Grayscale stays grayscale, alpha is upscaled separately (bicubic) and kept, uint16 stays uint16
(the model runs in float32 on the full 16-bit values), floats stay floats. Large images go through seamless
overlapping tiles (`tile`, `tile_overlap`), so memory does not grow with the image beyond the output itself.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Optional, Union

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from sr_keras import tiling
from sr_keras.imageio import pil_to_array

DEFAULT_TILE = 256
DEFAULT_OVERLAP = None  # None: the model's measured receptive field (at least 16), so tiles never show seams.
# Compute precision of the generator: float32 runs the exported graph as is; the others rebuild the Keras generator
# under a mixed policy (weights stay float32). bfloat16 suits CPUs with native bf16 (AVX512_BF16, AMX) and TPUs,
# float16 suits GPUs; on the default model bf16 was 1.60x faster on this project's CPU at -0.002 dB PSNR-Y.
PRECISIONS = {"float32": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class ModelNotFoundError(FileNotFoundError):
    """No model at the given place. The message names the fix."""


def _default_model_path() -> str:
    """The shipped default model: a TF Serving model base path (version folder `1/`) inside the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model")


def resolve_model_path(path: Optional[str]) -> str:
    """A model folder -> its latest complete version; a version folder or .keras file -> itself."""
    from sr_keras.export_lib import latest_version_dir

    if path in (None, "", "default"):
        path = _default_model_path()
        if not os.path.exists(path):
            raise ModelNotFoundError("no default model ships with this install yet; pass a model: "
                                     "sr_keras.load('export/<model_name>') or --model=PATH")
    path = os.path.expanduser(path)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{path}: no such .keras file")
        return path
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    latest = latest_version_dir(path)
    if latest is None:
        raise ModelNotFoundError(f"{path} holds no SavedModel (expected saved_model.pb, numbered version folders "
                                 "as written by sr-export, or a .keras file)")
    return latest


class Enhancer:
    """A loaded super-resolution model with image-format handling and tiling."""

    def __init__(self, path: str, tile: int = DEFAULT_TILE, tile_overlap: Optional[int] = DEFAULT_OVERLAP,
                 precision: str = "float32", self_ensemble: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.path = path
        self.tile, self.tile_overlap = tile, tile_overlap
        self.precision = precision
        self.self_ensemble = self_ensemble
        self.metadata = {}
        if path.endswith(".keras") or precision != "float32":
            import keras

            from sr_keras import export_lib

            if path.endswith(".keras"):
                generator = keras.models.load_model(path, safe_mode=True, compile=False)
            else:
                generator, self.metadata = export_lib.generator_from_saved_model(path)
            if PRECISIONS[precision]:
                generator = export_lib.with_policy(generator, PRECISIONS[precision])
            self._keras = generator

            @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
            def run(x):
                return tf.clip_by_value(tf.cast(generator(x, training=False), tf.float32), 0.0, 1.0)
            self._fn = run
            self.scale = int(self._fn(tf.zeros([1, 4, 4, 3])).shape[1]) // 4
        else:
            self._saved = tf.saved_model.load(path)
            sig = self._saved.signatures["enhance_float"]
            self._fn = lambda x: sig(lr_image=x)["sr_image"]
            self.scale = int(self._saved.scale.numpy())
            meta_path = os.path.join(path, "assets.extra", "model.json")
            if os.path.exists(meta_path):
                with open(meta_path) as f:
                    self.metadata = json.load(f)

    @functools.cached_property
    def receptive_field(self) -> int:
        """How far (in input pixels) one input pixel can change the output: measured once, by perturbation."""
        half = 64
        base = np.full((1, 2 * half + 1, 2 * half + 1, 3), 0.5, np.float32)
        bumped = base.copy()
        bumped[0, half, half] += 0.25
        diff = np.abs(self._fn(tf.constant(bumped)).numpy() - self._fn(tf.constant(base)).numpy())[0].max(-1)
        ys, xs = np.nonzero(diff > 1e-5)
        centre = (half + 0.5) * self.scale
        reach = max(np.abs(ys + 0.5 - centre).max(initial=0), np.abs(xs + 0.5 - centre).max(initial=0))
        return int(np.ceil(reach / self.scale))

    def default_overlap(self) -> int:
        return max(16, self.receptive_field)

    def _sr_rgb(self, rgb: np.ndarray, tile: int, overlap: int, progress: bool = False) -> np.ndarray:
        """float32 [h, w, 3] in [0, 1] -> float32 [h*s, w*s, 3] in [0, 1]."""
        def run(x):
            return self._fn(tf.convert_to_tensor(x[None], tf.float32))[0].numpy()
        on_tile = None
        calls = progress and tiling.count_tiles(rgb.shape[0], rgb.shape[1], tile, overlap) * (
            8 if self.self_ensemble else 1)
        if calls > 1:
            from keras.utils import Progbar

            bar = Progbar(calls, unit_name="tile")
            on_tile = lambda: bar.add(1)  # noqa: E731
        if not self.self_ensemble:
            return tiling.tiled_apply(run, rgb, self.scale, tile, overlap, on_tile)
        # Geometric self-ensemble (Timofte et al. 2016, EDSR+): the mean over the 8 flips and 90-degree rotations,
        # each undone on the output. 8x the time, for a PSNR gain of typically 0.05 to 0.2 dB.
        acc = None
        for k in range(4):
            for flip in (False, True):
                x = np.rot90(rgb, k)
                x = x[:, ::-1] if flip else x
                y = tiling.tiled_apply(run, np.ascontiguousarray(x), self.scale, tile, overlap, on_tile)
                y = np.rot90(y[:, ::-1] if flip else y, -k)
                acc = y if acc is None else acc + y
        return acc / 8.0

    def enhance(self, image: Union[np.ndarray, Image.Image], tile: Optional[int] = None,
                tile_overlap: Optional[int] = None, progress: bool = False) -> Union[np.ndarray, Image.Image]:
        """Upscales an image by the model's scale.

        Args:
          image: numpy uint8/uint16/float (H x W, H x W x 1, H x W x 3 or H x W x 4; floats in [0, 1]) or a PIL image
            (EXIF orientation applied, ICC profile kept).
          tile, tile_overlap: override the tiling (LR pixels; tile=0 runs the whole image at once). The default
            overlap is the model's receptive field, the least that leaves no seam.
          progress: show a progress bar over the tiles (for large images, which take minutes on a CPU).

        Returns:
          The same kind as the input: same dtype, channel layout, and PIL-ness.
        """
        tile = self.tile if tile is None else tile
        overlap = self.tile_overlap if tile_overlap is None else tile_overlap
        if overlap is None and tile and max(np.shape(image)[:2]) > tile:
            overlap = self.default_overlap()
        if isinstance(image, Image.Image):
            return self._enhance_pil(image, tile, overlap, progress)
        return self._enhance_array(np.asarray(image), tile, overlap, progress)

    def _enhance_array(self, arr: np.ndarray, tile: int, overlap: int, progress: bool = False) -> np.ndarray:
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected H x W, H x W x 1, H x W x 3 or H x W x 4, got shape {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"empty image of shape {arr.shape}")
        squeeze = arr.ndim == 2
        x = arr[..., None] if squeeze else arr
        if arr.dtype == np.uint8:
            top = 255.0
        elif arr.dtype == np.uint16:
            top = 65535.0
        elif np.issubdtype(arr.dtype, np.floating):
            top = 1.0
        else:
            raise ValueError(f"unsupported dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
        f = x.astype(np.float32) / top
        channels = f.shape[2]
        color = f[..., :3] if channels >= 3 else np.repeat(f[..., :1], 3, axis=2)
        sr = self._sr_rgb(np.clip(color, 0.0, 1.0), tile, overlap, progress)
        if channels in (1, 2):
            sr = (tf.image.rgb_to_grayscale(sr).numpy())
        if channels in (2, 4):
            size = (f.shape[0] * self.scale, f.shape[1] * self.scale)
            alpha = tf.image.resize(f[..., -1:], size, "bicubic").numpy()
            sr = np.concatenate([sr, np.clip(alpha, 0.0, 1.0)], axis=2)
        if squeeze:
            sr = sr[..., 0]
        if top == 1.0:
            return sr.astype(arr.dtype)
        return np.clip(np.round(sr * top), 0, top).astype(arr.dtype)

    def _enhance_pil(self, img: Image.Image, tile: int, overlap: int, progress: bool = False) -> Image.Image:
        icc = img.info.get("icc_profile")
        out = self._enhance_array(pil_to_array(ImageOps.exif_transpose(img)), tile, overlap, progress)
        result = Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out)  # 16-bit gray stays I;16.
        if icc:
            result.info["icc_profile"] = icc
        return result


def load(path: Optional[str] = None, tile: int = DEFAULT_TILE, tile_overlap: Optional[int] = DEFAULT_OVERLAP,
         precision: str = "float32", self_ensemble: bool = False) -> Enhancer:
    """Loads a model for `enhance()`.

    Args:
      path: a model folder (its latest version is used), a version folder (holding saved_model.pb), a `.keras`
        file, or None for the default model that ships with the package.
      precision: float32 (default), or bfloat16 / float16 for faster inference on hardware that has them
        (see PRECISIONS); a SavedModel needs the architecture sr-export records.
      self_ensemble: average the outputs for the 8 flips/rotations of the input (8x slower, slightly better PSNR).
    """
    return Enhancer(resolve_model_path(path), tile=tile, tile_overlap=tile_overlap, precision=precision,
                    self_ensemble=self_ensemble)
