"""How sr-enhance writes an output: its format and name (`OutputFormat`), the encoders (the input's own kind kept:
CMYK, 16 bits, ICC profile; the "Software" marker by which sr-enhance knows its own files), the final resize and
the comparison picture."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

from sr_keras.image import limits
from sr_keras.image.png_writer import PngWriter

SOFTWARE_TAG = "sr_keras"  # "Software" of every output (PNG tEXt, EXIF 0x0131): how sr-enhance knows its own files.
EXIF_SOFTWARE = 0x0131
EXIF_IFD, EXIF_WIDTH, EXIF_HEIGHT = 0x8769, 0xA002, 0xA003  # The Exif sub-IFD and its PixelX/YDimension.
EXTENSIONS = limits.OUTPUT_EXTENSIONS
SAME_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".png": "png"}  # auto; anything else -> png.


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """How outputs are written (Real-ESRGAN's inference options, which users know).

    ext: auto (the input's own format: JPEG stays JPEG, WebP stays WebP, the rest PNG), png, jpg or webp. JPEG holds
      neither alpha nor 16 bits: such images are written as PNG (and reported), never silently flattened.
    quality: JPEG/WebP quality, 1..100.
    png_compression: the zlib level of PNG outputs, 0 (none, fastest) to 9 (smallest); the pixels are the same.
    strip_metadata: write no EXIF (camera, date, GPS...) and no source name; by default the input's EXIF is kept,
      with the orientation reset (the pixels are upright), the pixel size updated and Software set.
    suffix: the name's suffix (`<stem>_<suffix>.<ext>`); None: `x<outscale>`.
    outscale: the final scale, for example 2 or 3.5 (the model's output resized with Lanczos, antialiased); None:
      the model's scale.
    """

    ext: str = "auto"
    quality: int = limits.DEFAULT_QUALITY
    suffix: Optional[str] = None
    outscale: Optional[float] = None
    png_compression: int = limits.DEFAULT_PNG_COMPRESSION
    strip_metadata: bool = False

    def __post_init__(self):
        if self.ext not in EXTENSIONS:
            raise ValueError(f"--ext={self.ext}: choose one of {', '.join(EXTENSIONS)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality={self.quality}: choose 1..100")
        if not (isinstance(self.png_compression, int) and 0 <= self.png_compression <= 9):
            raise ValueError(f"--png_compression={self.png_compression}: choose 0 (fastest) .. 9 (smallest)")
        if self.outscale is not None and not 0 < self.outscale <= 16:
            raise ValueError(f"--outscale={self.outscale:g}: choose a scale in (0, 16]")
        if self.suffix is not None and (os.sep in self.suffix or self.suffix in (".", "..")):
            raise ValueError(f"--suffix={self.suffix!r} must be a plain name part")

    def suffix_for(self, scale: int) -> str:
        if self.suffix is not None:
            return self.suffix
        return f"x{self.outscale:g}" if self.outscale is not None else f"x{scale}"

    def format_for(self, input_path: str, pixels: np.ndarray) -> tuple:
        """(format, why it differs from the asked one or "") for one input's pixels."""
        fmt = SAME_FORMAT.get(os.path.splitext(input_path)[1].lower(), "png") if self.ext == "auto" else self.ext
        channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
        if fmt == "jpg" and channels in (2, 4):
            return "png", "JPEG has no alpha: written as PNG"
        if fmt in ("jpg", "webp") and pixels.dtype == np.uint16:
            return "png", f"{fmt.upper()} has no 16-bit: written as PNG"
        return fmt, ""


def _label(img: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((6, 6), text)
    draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
    draw.text((6, 6), text, fill=(255, 255, 255))
    return img


def comparison(lr_rgb8: np.ndarray, sr_rgb8: np.ndarray, model_label: str) -> Image.Image:
    """Side by side: the input upscaled with bicubic | the model's output, each labelled."""
    h, w = sr_rgb8.shape[:2]
    # Here, not at the top: OutputFormat is checked before TensorFlow is imported (a bad flag fails at once).
    from sr_keras.data.degradation import bicubic_upscale

    bic = bicubic_upscale(lr_rgb8, h // lr_rgb8.shape[0])
    canvas = Image.new("RGB", (2 * w + 8, h), (255, 255, 255))
    canvas.paste(_label(Image.fromarray(bic), "bicubic"), (0, 0))
    canvas.paste(_label(Image.fromarray(sr_rgb8), model_label), (w + 8, 0))
    return canvas


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Lanczos resize (antialiased when shrinking) in float32, back to the pixels' dtype and layout."""

    top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    x = pixels[..., None] if pixels.ndim == 2 else pixels
    # Here, not at the top: as `comparison`.
    import tensorflow as tf

    y = tf.image.resize(x.astype(np.float32), (height, width), method="lanczos3", antialias=True).numpy()
    y = np.clip(np.round(y) if top > 1 else y, 0, top).astype(pixels.dtype)
    return y[..., 0] if pixels.ndim == 2 else y


def output_exif(source: Optional[bytes], width: int, height: int, software: str) -> bytes:
    """The output's EXIF: the input's (`source`, orientation already reset by imageio; None: none) with the pixel
    size of the output and `software` as Software."""
    exif = Image.Exif()
    if source:
        try:
            exif.load(source)
        except Exception:  # A malformed block is dropped, never fatal: the pixels matter more.
            exif = Image.Exif()
    exif[EXIF_SOFTWARE] = software
    sub = exif.get_ifd(EXIF_IFD) if EXIF_IFD in exif else None
    if sub:
        for tag, value in ((EXIF_WIDTH, width), (EXIF_HEIGHT, height)):
            if tag in sub:
                sub[tag] = value
    return exif.tobytes()


def write(f, pixels: np.ndarray, fmt: str, quality: int, icc: Optional[bytes], text: dict,
          cmyk: bool = False, png_compression: int = limits.DEFAULT_PNG_COMPRESSION,
          exif: Optional[bytes] = None) -> None:
    """One whole image into the binary file `f` (PNG keeps 16 bits; every format gets `exif`, the input's EXIF
    from `output_exif`, or just the Software marker; a CMYK input written as JPEG is CMYK again)."""
    arr = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
    exif = exif or output_exif(None, arr.shape[1], arr.shape[0], text["Software"])
    if fmt == "png":
        channels = 1 if arr.ndim == 2 else arr.shape[-1]
        writer = PngWriter(f, arr.shape[1], arr.shape[0], channels, 16 if arr.dtype == np.uint16 else 8, icc, text,
                           level=png_compression, exif=exif)
        writer.write_rows(arr)
        writer.close()
        return
    img = Image.fromarray(arr)
    if img.mode == "LA":
        img = img.convert("RGBA")
    if cmyk and fmt == "jpg" and img.mode == "RGB":
        img = img.convert("CMYK")
    extra = {"icc_profile": icc} if icc else {}
    if fmt == "jpg":
        img.save(f, format="JPEG", quality=quality, exif=exif, **extra)
    else:
        img.save(f, format="WEBP", quality=quality, exif=exif, **extra)


def pnginfo(text: dict):

    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    return info
