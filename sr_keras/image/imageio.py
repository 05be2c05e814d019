"""Robust image decoding shared by the dataset builder, the API and the CLIs.

Every odd kind of file people actually have is handled here, once: EXIF-rotated JPEGs, CMYK, palette,
grayscale, RGBA, 16-bit PNG/TIFF, first frames of GIFs. Files that cannot be decoded raise `ImageError`
with a one-line reason, so callers can skip them and keep going.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import os
import stat
import struct
import threading
import warnings
from typing import Optional, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from sr_keras.utils.safe_files import walk_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The largest encoded file read as an input. A 100 MP photo is well under 100 MB even as a 16-bit PNG; anything
# bigger is refused from its size before it is read (a link to /dev/zero has none, and is not a regular file).
MAX_FILE_BYTES = 1 << 30
NOT_REGULAR = "not a regular file"  # How a pipe, device or socket is reported (callers skip it: not an error).


class ImageError(ValueError):
    """A file that is not a usable image. The message is the reason, in one line."""


class ImageTooLargeError(ImageError):
    """An image over the pixel limit, found from its header (or a sub-image's) before any decoding."""

    def __init__(self, width: int, height: int, max_pixels: int, flag: str = "--max_input_pixels"):
        super().__init__(f"{width}x{height} = {width * height / 1e6:.1f} MP is over the limit of "
                         f"{max_pixels / 1e6:g} MP ({flag} raises it)")
        self.width, self.height, self.max_pixels = width, height, max_pixels


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, TypeError, IndexError)


def read_file(path: Union[str, os.PathLike], max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file. A FIFO, device or socket is refused without reading (opened non-blocking, so
    a pipe with no writer cannot hang us), and so is a file over `max_bytes`.

    Raises:
      ImageError: not a regular file, or too big.
      OSError: it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device" if
                    stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket" if
                    stat.S_ISSOCK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "a special file")
            raise ImageError(f"{NOT_REGULAR} ({kind}); only regular files are read")
        if st.st_size > max_bytes:
            raise ImageError(f"file of {st.st_size / 2**20:.0f} MB is over the {max_bytes / 2**20:.0f} MB "
                             "input limit")
        # Read what the size says (+1 to see growth), then more until EOF: a file that grows while it is read is
        # still bounded, and no buffer of `max_bytes` is ever allocated for a small file.
        chunks, total, want = [], 0, min(st.st_size, max_bytes) + 1
        while total <= max_bytes:
            chunk = f.read(min(want, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total, want = total + len(chunk), 1 << 20
        data = b"".join(chunks)
    if len(data) > max_bytes:
        raise ImageError(f"file grew past the {max_bytes / 2**20:.0f} MB input limit while it was read")
    return data


# Pillow checks the size of every image it is about to decode, sub-images of containers included (an ICNS or ICO
# entry is a whole PNG whose own header can say 13000 x 13000 where the container said 128 x 128), through
# `Image._decompression_bomb_check`. Routing that check through the limit of the decode in progress (per thread:
# the server decodes in several) refuses such an image before its pixels exist. The size of what was actually
# decoded is checked again afterwards (`_check_decoded`), for any decoder that does not ask.
_LIMIT = threading.local()
_pillow_bomb_check = getattr(Image, "_decompression_bomb_check", None)


def _bomb_check(size, *args, **kwargs) -> None:
    limit = getattr(_LIMIT, "value", None)
    if limit is not None:
        check_pixels(int(size[0]), int(size[1]), *limit)
    if _pillow_bomb_check is not None:
        _pillow_bomb_check(size, *args, **kwargs)


if _pillow_bomb_check is not None:
    Image._decompression_bomb_check = _bomb_check


@contextlib.contextmanager
def _pixel_limit(max_pixels: Optional[int], flag: str):
    previous = getattr(_LIMIT, "value", None)
    _LIMIT.value = (max_pixels, flag) if max_pixels else None
    try:
        yield
    finally:
        _LIMIT.value = previous


def _open(data: bytes) -> Image.Image:
    """Opens encoded bytes, reading the header only (nothing is decoded yet).

    Raises:
      ImageError: not an image, or a header too broken to read.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Our own limit is checked next.
            return Image.open(io.BytesIO(data))
    except ImageError:  # Our own limit, asked by Pillow for an image inside the file (`_bomb_check`).
        raise
    except Image.DecompressionBombError as e:  # Over twice Pillow's own limit (about 179 MP).
        raise ImageError(f"image too large: {e}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (no decoder recognises its contents)") from None
    except _DECODE_ERRORS as e:
        raise ImageError(f"truncated or corrupt image: {e}") from None


def probe_size(data: bytes) -> tuple:
    """(width, height) from the header alone: nothing is decoded (a 97 KB PNG can claim 10000 x 10000).

    Raises:
      ImageError: not an image, or a header too broken to read.
    """
    with _open(data) as img:
        return img.size


def check_pixels(width: int, height: int, max_pixels: Optional[int], flag: str = "--max_input_pixels") -> None:
    """Raises ImageTooLargeError when width * height is over `max_pixels` (None or 0: no limit)."""
    if max_pixels and width * height > max_pixels:
        raise ImageTooLargeError(width, height, max_pixels, flag)


@dataclasses.dataclass
class DecodedImage:
    """Pixels in their own kind, plus what is needed to write them back the same way.

    Attributes:
      pixels: uint8 or uint16 array, H x W x C with C in {1, 3, 4}, already EXIF-oriented.
      icc_profile: the embedded ICC profile bytes, if any.
      source_mode: the PIL mode the file was stored in (for messages and metadata).
      exif: the file's EXIF (camera, date, GPS, ...) with its orientation reset to 1, since `pixels` are already
        oriented; None when it has none or it cannot be parsed.
    """

    pixels: np.ndarray
    icc_profile: Optional[bytes] = None
    source_mode: str = ""
    exif: Optional[bytes] = None


def _png_bit_depth(data: bytes) -> int:
    if data[:8] != _PNG_SIGNATURE or len(data) < 25:
        return 8
    return data[24]


def _decode_png16(data: bytes) -> np.ndarray:
    """Pillow reduces 16-bit RGB PNGs to 8 bits by truncation; TF decodes all 16 bits."""
    import tensorflow as tf  # Local: keeps `import sr_keras.image.imageio` light for worker processes.

    return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF orientation values 1..8 -> (transpose?, rot90 k); see the EXIF 2.3 spec, tag 0x0112.
    ops = {2: (False, 0, True), 3: (False, 2, False), 4: (False, 2, True), 5: (True, 0, False),
           6: (False, 3, False), 7: (True, 2, False), 8: (False, 1, False)}
    if orientation not in ops:
        return pixels
    transpose, k, flip = ops[orientation]
    if transpose:
        pixels = np.transpose(pixels, (1, 0, 2))
    if k:
        pixels = np.rot90(pixels, k)
    if flip:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16)[..., None]
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 32-bit integer/float files: assume 16-bit range when values exceed 8 bits, else 8-bit.
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        dtype = np.uint16 if top > 255 else np.uint8
        return np.clip(np.round(arr), 0, top).astype(dtype)[..., None]
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"))[..., None]
    if mode == "LA" or mode == "La":
        return np.asarray(img.convert("LA"))
    if mode == "P":
        has_alpha = "transparency" in img.info
        return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    if mode in ("RGBA", "RGBa", "PA"):
        return np.asarray(img.convert("RGBA"))
    # RGB, CMYK, YCbCr, LAB, HSV and friends.
    return np.asarray(img.convert("RGB"))


def decode_image(source: Union[bytes, str, os.PathLike], max_pixels: Optional[int] = None,
                 flag: str = "--max_input_pixels") -> DecodedImage:
    """Decodes a file path or encoded bytes into oriented pixels.

    Args:
      source: a path, or the encoded bytes of a JPEG/PNG/WebP/BMP/TIFF/GIF (first frame).
      max_pixels: refuse larger images (checked from the header, before decoding); None or 0: no limit.
      flag: what raises the limit, named in the error.

    Returns:
      A `DecodedImage`.

    Raises:
      ImageError: the file is empty, truncated, corrupt or not an image.
      ImageTooLargeError: over `max_pixels`.
    """
    data = read_file(source) if isinstance(source, (str, os.PathLike)) else bytes(source)
    with _pixel_limit(max_pixels, flag):
        img = _open(data)
        check_pixels(*img.size, max_pixels, flag)  # From the header, before anything is decoded.
        try:
            img.load()  # Forces a full decode so truncation surfaces here, not later.
        except ImageTooLargeError:  # A sub-image bigger than its container said (ICNS, ICO): not decoded.
            raise
        except MemoryError:
            raise ImageError("not enough memory to decode this image") from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"truncated or corrupt image: {e}") from None
    _check_decoded(img, max_pixels, flag)
    try:
        exif = img.getexif()
        orientation = exif.get(0x0112, 1)
        if 0x0112 in exif:
            exif[0x0112] = 1  # The pixels are turned upright below.
        exif_bytes = exif.tobytes() if len(exif) else None
    except Exception:  # Malformed EXIF must not cost us the pixels.
        orientation, exif_bytes = 1, None
    icc = img.info.get("icc_profile")
    mode = img.mode
    try:
        if img.format == "PNG" and _png_bit_depth(data) == 16 and mode not in ("I;16", "I;16B", "I"):
            pixels = _decode_png16(data)
        else:
            pixels = pil_to_array(img)
    except Exception as e:  # pragma: no cover - defensive: exotic modes Pillow opens but cannot convert.
        raise ImageError(f"unsupported image mode {mode}: {e}") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError("image has no pixels")
    pixels = _apply_orientation(pixels, int(orientation) if isinstance(orientation, int) else 1)
    return DecodedImage(pixels=pixels, icc_profile=icc, source_mode=mode, exif=exif_bytes)


def _check_decoded(img: Image.Image, max_pixels: Optional[int], flag: str) -> None:
    """The limit, on what the decoder really produced (a container can hold a bigger image than its header says)."""
    sizes = {tuple(img.size)}
    core = getattr(img, "_im", None)  # The decoded pixels' own size, where the plugin set img.size from a header.
    if core is not None:
        sizes.add(tuple(core.size))
    for w, h in sizes:
        try:
            check_pixels(w, h, max_pixels, flag)
        except ImageTooLargeError:
            img.close()
            raise


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Converts uint16 pixels to uint8 with rounding (65535 -> 255); uint8 passes through."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return np.round(pixels.astype(np.float32) / 257.0).astype(np.uint8)
    raise TypeError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")


def to_rgb8(decoded: DecodedImage, background: int = 255) -> np.ndarray:
    """Returns H x W x 3 uint8 RGB: gray is replicated, alpha is composited over `background`."""
    px = to_uint8(decoded.pixels)
    channels = px.shape[-1]
    if channels in (2, 4):
        alpha = px[..., -1:].astype(np.float32) / 255.0
        color = px[..., :-1].astype(np.float32)
        px = np.round(color * alpha + background * (1.0 - alpha)).astype(np.uint8)
        channels -= 1
    if channels == 1:
        px = np.repeat(px, 3, axis=-1)
    return np.ascontiguousarray(px)


def load_rgb8(path: Union[str, os.PathLike], max_pixels: Optional[int] = None) -> np.ndarray:
    """Reads a file as oriented 8-bit RGB. Raises `ImageError` with the reason when it cannot."""
    return to_rgb8(decode_image(path, max_pixels))


def expand_inputs(spec: str) -> list:
    """A file, a folder (recursively, image extensions only) or a glob -> sorted file list."""
    if os.path.isdir(spec):
        return [p for p in walk_files(spec) if p.lower().endswith(IMAGE_EXTENSIONS)]
    if os.path.isfile(spec):
        return [spec]
    return sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))
