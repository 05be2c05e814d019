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
import os
import sys
from typing import Callable, Iterator, Optional, Union

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from sr_keras.image import limits, tiling
from sr_keras.image.imageio import check_pixels, decode_image, pil_to_array
from sr_keras.image.limits import check_alpha
from sr_keras.image.png_writer import PngWriter
from sr_keras.infer import resolve, runtime
from sr_keras.models import footprint
from sr_keras.utils import progress as progress_lib

DEFAULT_TILE = limits.DEFAULT_TILE
DEFAULT_MAX_INPUT_PIXELS = limits.DEFAULT_MAX_INPUT_PIXELS  # Refused from the header, before decoding.
_SIZE_FLAG = "max_input_pixels"  # Named in ImageTooLargeError: the argument of `load` that raises the limit.
DEFAULT_OVERLAP = None  # None: the model's measured receptive field (at least 16), so tiles never show seams.
PRECISIONS = limits.PRECISIONS


def _numpy(out) -> np.ndarray:
    """A model call's output as a writable array: a tensor's copy, or the numpy array ONNX and LiteRT return."""
    return out.numpy() if hasattr(out, "numpy") else out


class Cancelled(RuntimeError):
    """`should_stop()` asked to stop (a deadline passed, or the client went away)."""


class Enhancer:
    """A loaded super-resolution model with image-format handling and tiling."""

    def __init__(self, path: str, tile: Optional[int] = None, tile_overlap: Optional[int] = DEFAULT_OVERLAP,
                 precision: str = "auto", self_ensemble: bool = False,
                 max_input_pixels: Optional[int] = DEFAULT_MAX_INPUT_PIXELS):
        limits.check_tile(tile)
        limits.check_overlap(tile_overlap)
        limits.check_max_pixels(max_input_pixels)
        self._raised_tiles = set()
        self.path = path
        self._tile = tile  # None: the model's own (`default_tile`), found when first needed.
        self.tile_overlap = tile_overlap
        self.self_ensemble = self_ensemble
        self.max_input_pixels = max_input_pixels
        self._alpha_fns = {}
        # precision_note: why `auto` chose float32 on a CPU with native bfloat16 ("" otherwise).
        loaded, self.precision, self.precision_note = runtime.tile_functions_in(path, precision, PRECISIONS)
        self._fn, self.scale, self.metadata = loaded.fn, loaded.scale, loaded.metadata
        self.signatures, self._make_alpha_fn = loaded.signatures, loaded.make_alpha_fn
        self._keras = loaded.keras

    def __repr__(self) -> str:
        name = self.metadata.get("model_name") or self.metadata.get("model") or os.path.basename(self.path)
        overlap = "receptive field" if self.tile_overlap is None else self.tile_overlap
        knob = f", alpha={self.default_alpha:g}" if self.default_alpha is not None else ""
        why = f" ({self.precision_note})" if self.precision_note else ""
        return (f"Enhancer({name!r}, x{self.scale}, precision={self.precision}{why}, tile={self.tile}, "
                f"tile_overlap={overlap}{knob}, path={self.path!r})")

    @property
    def interpolation(self) -> bool:
        """True when `alpha` can be chosen (a model exported from a run with a GAN phase)."""
        return self._make_alpha_fn is not None

    @property
    def default_alpha(self) -> Optional[float]:
        """The alpha the model runs at when none is given (None: no interpolation)."""
        return self.metadata.get("interpolation", {}).get("default_alpha") if self.interpolation else None

    def model_fn(self, alpha: Optional[float] = None) -> Callable:
        """The model's one untiled call, float32 [N, h, w, 3] in [0, 1] -> [N, sh, sw, 3] clipped to [0, 1], at
        `alpha` (None: as exported): for batches of small crops (a distillation set's teacher), where tiling is
        not needed."""
        if alpha is None:
            return self._fn
        if not self.interpolation:
            raise ValueError("alpha needs a model exported with network interpolation (sr-export of a run with a "
                             "GAN phase); this one has none")
        alpha = check_alpha(alpha)
        if alpha not in self._alpha_fns:
            self._alpha_fns = {alpha: self._make_alpha_fn(alpha)}  # One alpha at a time: a Keras copy is big.
        return self._alpha_fns[alpha]

    @functools.cached_property
    def receptive_field(self) -> int:
        """How far (in input pixels) one input pixel can change the output: measured once, by perturbation."""
        return tiling.measure_receptive_field(lambda x: _numpy(self._fn(tf.constant(x))), self.scale)

    def default_overlap(self) -> int:
        """The tiles' context: as sr-export measured it, in float32 (a bfloat16 probe measures a wider field from
        rounding noise alone, which only costs time), else measured here."""
        recorded = self.metadata.get("tiling", {}).get("overlap")
        return int(recorded) if recorded else tiling.default_overlap(self.receptive_field)

    @property
    def tile(self) -> int:
        """The core tile side calls use when they give none: the one passed to `load`, else `default_tile()`."""
        if self._tile is None:
            self._tile = self.default_tile()
        return self._tile

    @tile.setter
    def tile(self, tile: int) -> None:
        self._tile = limits.check_tile(tile)

    def default_tile(self) -> int:
        """The largest tile up to DEFAULT_TILE that the model's memory allows (`tiling.memory_tile`), from the
        largest activation sr-export recorded (or that the rebuilt Keras generator has); DEFAULT_TILE for an
        export that recorded none and runs as exported."""
        per_pixel = self.metadata.get("tiling", {}).get("activation_bytes_per_pixel")
        if per_pixel is None and self._keras is not None:
            per_pixel = footprint.activation_bytes_per_pixel(self._keras)
        return tiling.memory_tile(per_pixel, self.default_overlap()) if per_pixel else DEFAULT_TILE

    def _tile_fn(self, on_call: Optional[Callable[[], None]], alpha: Optional[float] = None
                 ) -> Callable[[np.ndarray], np.ndarray]:
        """float32 [h, w, 3] in [0, 1] -> float32 [h*s, w*s, 3] in [0, 1], for one tile."""
        fn = self.model_fn(alpha)

        def run(x):
            out = _numpy(fn(tf.convert_to_tensor(x[None], tf.float32)))[0]
            if on_call:
                on_call()
            return out
        return tiling.self_ensemble(run) if self.self_ensemble else run

    def _on_call(self, calls: int, progress: bool, should_stop: Optional[Callable[[], bool]]):
        bar = None
        if progress and calls > 1:

            bar = progress_lib.bar(calls, unit_name="tile")
        if bar is None and should_stop is None:
            return None

        def on_call():
            if bar is not None:
                bar.add(1)
            if should_stop is not None and should_stop():
                raise Cancelled("stopped between tiles")
        return on_call

    def check_size(self, height: int, width: int) -> None:
        """Raises ImageTooLargeError when an input is over this model's `max_input_pixels`."""
        check_pixels(width, height, self.max_input_pixels, _SIZE_FLAG)

    def enhance_bands(self, image: np.ndarray, tile: Optional[int] = None, tile_overlap: Optional[int] = None,
                      progress: bool = False, should_stop: Optional[Callable[[], bool]] = None,
                      alpha: Optional[float] = None) -> Iterator:
        """Like `enhance` for an array, but yields the output in horizontal bands, top to bottom.

        Memory stays one band of tiles (plus the input), whatever the image size, so a caller that writes each band
        out (see `png_writer.PngWriter`) never holds the whole result. Bands have the input's dtype and channels
        ([rows, W * scale] for a 2-D input).

        Raises:
          ValueError: an unsupported shape or dtype, or floats outside [0, 1] or not finite.
          ImageTooLargeError: over `max_input_pixels`.
          Cancelled: `should_stop()` answered True (it is asked after every model call).
        """
        model_alpha = alpha  # Checked before any work (ValueError for a bad value or a model without the knob).
        self.model_fn(model_alpha)
        limits.check_tile(tile)
        limits.check_overlap(tile_overlap)
        arr = np.asarray(image)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected H x W, H x W x 1, H x W x 3 or H x W x 4, got shape {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"empty image of shape {arr.shape}")
        self.check_size(arr.shape[0], arr.shape[1])
        tile = self.tile if tile is None else tile
        overlap = self.tile_overlap if tile_overlap is None else tile_overlap
        if overlap is None:
            overlap = self.default_overlap() if tile and max(arr.shape[:2]) > tile else 0
        if limits.safe_tile(tile, overlap) != tile:
            if (tile, overlap) not in self._raised_tiles:  # Said once per setting, not per image.
                self._raised_tiles.add((tile, overlap))
                print(f"sr_keras: tile={tile} is smaller than its context of {overlap} px; using tile={overlap}",
                      file=sys.stderr, flush=True)
            tile = limits.safe_tile(tile, overlap)
        x = arr[..., None] if arr.ndim == 2 else arr
        top = _value_range(x)
        channels = x.shape[2]

        def unit(t):  # A tile in float32 [0, 1]; done per tile, so the whole image is never copied to float.
            t = t.astype(np.float32)
            if top != 1.0:
                t /= top
            return np.clip(t, 0.0, 1.0, out=t)
        calls = tiling.count_tiles(arr.shape[0], arr.shape[1], tile, overlap) * (8 if self.self_ensemble else 1)
        model = self._tile_fn(self._on_call(calls, progress, should_stop), model_alpha)
        if channels >= 3:
            bands = tiling.tiled_bands(lambda t: model(unit(t)), x[..., :3], self.scale, tile, overlap)
        else:  # Gray runs as RGB, one tile at a time.
            bands = tiling.tiled_bands(lambda t: model(np.repeat(unit(t), 3, axis=2)), x[..., :1], self.scale, tile,
                                       overlap)
        alpha_channel = None
        if channels in (2, 4):  # Alpha is upscaled with bicubic, in the same bands (a tile's context is ample).
            def bicubic(t):
                size = (t.shape[0] * self.scale, t.shape[1] * self.scale)
                return tf.image.resize(unit(t), size, "bicubic").numpy()
            alpha_channel = tiling.tiled_bands(bicubic, x[..., -1:], self.scale, tile, overlap)  # Same bands.
        for band in bands:
            if channels in (1, 2):
                band = tf.image.rgb_to_grayscale(band).numpy()
            if alpha_channel is not None:
                band = np.concatenate([band, np.clip(next(alpha_channel), 0.0, 1.0)], axis=2)
            if arr.ndim == 2:
                band = band[..., 0]
            if top == 1.0:
                yield band.astype(arr.dtype, copy=False)
            else:  # In place: a band of a wide image is tens of MB.
                np.multiply(band, top, out=band)
                np.clip(np.round(band, out=band), 0, top, out=band)
                yield band.astype(arr.dtype)
            del band  # Released before the next band is computed.

    def write_png(self, image: np.ndarray, f, icc_profile: Optional[bytes] = None, text: Optional[dict] = None,
                  png_compression: int = limits.DEFAULT_PNG_COMPRESSION, exif: Optional[bytes] = None, **kw) -> None:
        """Enhances a uint8/uint16 array into a PNG written to the binary file `f`, band by band as the tiles finish,
        so memory never holds the decoded output; `png_compression` is the zlib level (0..9). Keyword arguments go
        to `enhance_bands`."""
        arr = np.asarray(image)
        if arr.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"a PNG holds uint8 or uint16 pixels, got {arr.dtype}")
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        writer = PngWriter(f, arr.shape[1] * self.scale, arr.shape[0] * self.scale, channels,
                           16 if arr.dtype == np.uint16 else 8, icc_profile, text, level=png_compression, exif=exif)
        for band in self.enhance_bands(arr, **kw):
            writer.write_rows(band)
            del band  # Not held while the next band is computed.
        writer.close()

    def enhance(self, image: Union[np.ndarray, Image.Image], tile: Optional[int] = None,
                tile_overlap: Optional[int] = None, progress: bool = False,
                should_stop: Optional[Callable[[], bool]] = None,
                alpha: Optional[float] = None) -> Union[np.ndarray, Image.Image]:
        """Upscales an image by the model's scale.

        Args:
          image: numpy uint8/uint16/float (H x W, H x W x 1, H x W x 3 or H x W x 4; floats in [0, 1]), a PIL image
            (EXIF orientation applied, ICC profile kept), or a file path (gives an array of the file's kind).
          tile, tile_overlap: override the tiling (LR pixels; tile=0 runs the whole image at once). The default
            overlap is the model's receptive field, the least that leaves no seam.
          progress: show a progress bar over the tiles (for large images, which take minutes on a CPU).
          should_stop: asked after every model call; True stops the work with `Cancelled` (deadlines, clients
            that went away).
          alpha: network interpolation, for models exported from a run with a GAN phase: 0 gives the PSNR-oriented
            generator, 1 the GAN generator, between them a blend of their weights (ESRGAN). None: the export's
            `default_alpha`.

        Returns:
          The same kind as the input: same dtype, channel layout, and PIL-ness. Memory beyond the input is the
          output itself plus one band of tiles.

        Raises:
          ValueError: an unsupported image (shape, dtype, floats outside [0, 1]).
          ImageTooLargeError: more pixels than `max_input_pixels` (load(..., max_input_pixels=) raises it).
        """
        if isinstance(image, (str, os.PathLike)):  # A file: decoded as sr-enhance does (EXIF, 16-bit, alpha).
            image = decode_image(image, self.max_input_pixels, _SIZE_FLAG).pixels
        if isinstance(image, Image.Image):
            return self._enhance_pil(image, tile, tile_overlap, progress, should_stop, alpha)
        arr = np.asarray(image)
        out, row = None, 0
        for band in self.enhance_bands(arr, tile, tile_overlap, progress, should_stop, alpha):
            if out is None:  # Allocated in the output dtype: uint8 output costs 3 bytes per pixel, not 12.
                out = np.empty((arr.shape[0] * self.scale, arr.shape[1] * self.scale) + band.shape[2:], band.dtype)
            out[row:row + band.shape[0]] = band
            row += band.shape[0]
        return out

    def _enhance_pil(self, img: Image.Image, tile, overlap, progress, should_stop, alpha) -> Image.Image:
        self.check_size(img.size[1], img.size[0])  # Before a lazily opened file is decoded.
        icc = img.info.get("icc_profile")
        img = ImageOps.exif_transpose(img)
        if img.mode == "F":  # 32-bit float: kept as float, in its own range (0..1, 0..255 or 0..65535).
            arr = np.asarray(img, np.float32)
            top = _float_top(arr)
            out = Image.fromarray(self.enhance(arr / top, tile, overlap, progress, should_stop, alpha) * top, mode="F")
        else:
            out = self.enhance(pil_to_array(img), tile, overlap, progress, should_stop, alpha)
            out = Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out)  # 16-bit gray stays I;16.
            if img.mode == "CMYK":  # Back in its own kind (computed in RGB, as Pillow converts it).
                out = out.convert("CMYK")
        if icc:
            out.info["icc_profile"] = icc
        return out


def _float_top(arr: np.ndarray) -> float:
    """The range a PIL float image is stored in: 1, 255 or 65535 (the smallest that holds its maximum)."""
    if not np.isfinite(arr).all():
        raise ValueError("the image holds NaN or infinite values")
    peak = float(arr.max(initial=0.0))
    for top in (1.0, 255.0, 65535.0):
        if peak <= top:
            return top
    raise ValueError(f"float image with values up to {peak:g}: expected 0..1, 0..255 or 0..65535")


def _value_range(x: np.ndarray) -> float:
    """The value that means full white for an input array; floats must already be in [0, 1]."""
    if x.dtype == np.uint8:
        return 255.0
    if x.dtype == np.uint16:
        return 65535.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"unsupported dtype {x.dtype}; use uint8, uint16 or float in [0, 1]")
    if not np.isfinite(x).all():
        raise ValueError("the image holds NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:  # A little rounding past the ends is clipped; a 0..255 float is an error.
        hint = " (it looks like 0..255: divide by 255, or pass uint8)" if hi <= 255 else ""
        raise ValueError(f"float images must be in [0, 1]; this one spans {lo:g}..{hi:g}{hint}")
    return 1.0


def load(spec: Optional[str] = None, tile: Optional[int] = None, tile_overlap: Optional[int] = DEFAULT_OVERLAP,
         precision: str = "auto", self_ensemble: bool = False,
         max_input_pixels: Optional[int] = limits.DEFAULT_MAX_INPUT_PIXELS) -> Enhancer:
    """`sr_keras.load`: any model reference (`resolve.resolve`) as an `Enhancer`; see its docstring."""
    return Enhancer(resolve.resolve(spec), tile=tile, tile_overlap=tile_overlap, precision=precision,
                    self_ensemble=self_ensemble, max_input_pixels=max_input_pixels)
