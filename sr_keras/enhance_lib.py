"""Enhancing files on disk: what `sr-enhance` does, importable.

Each input becomes `<stem>_<suffix>.<ext>` (default `<stem>_x<scale>` in the input's own format: `OutputFormat`)
under the output folder, in the same sub-folder as the input has under the inputs' common folder (so `a/x.png` and
`b/x.png` never collide). Gray stays gray, alpha stays alpha, 16-bit stays 16-bit (in PNG), the ICC profile is
kept. A PNG at the model's scale is streamed band by band as the tiles finish, so memory does not grow with the
image; JPEG, WebP and `outscale` need the whole output in memory. `compare=True` also writes
`<stem>_<suffix>_compare.png`: bicubic | model, labelled.

Nothing is lost: an existing output is skipped unless `overwrite=True`; outputs carry a PNG text marker and are
never taken as inputs again; every file is written under an exclusive temporary name and renamed when complete
(see `safe_files`), and a failed write (a full disk) leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import stat
from typing import Iterable, Optional

import numpy as np
from PIL import Image, ImageDraw

from sr_keras import safe_files
from sr_keras.data.degradation import bicubic_upscale
from sr_keras.data.sources import walk_files
from sr_keras.imageio import IMAGE_EXTENSIONS, NOT_REGULAR, DecodedImage, ImageError, decode_image, to_rgb8

SOFTWARE_TAG = "sr_keras"  # "Software" of every output (PNG tEXt, EXIF 0x0131): how sr-enhance knows its own files.
_EXIF_SOFTWARE = 0x0131
_EXISTS = "exists (pass --overwrite to replace it)"
EXTENSIONS = ("auto", "png", "jpg", "webp")
_SAME_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".png": "png"}  # auto; anything else -> png.


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """How outputs are written (Real-ESRGAN's inference options, which users know).

    ext: auto (the input's own format: JPEG stays JPEG, WebP stays WebP, the rest PNG), png, jpg or webp. JPEG holds
      neither alpha nor 16 bits: such images are written as PNG (and reported), never silently flattened.
    quality: JPEG/WebP quality, 1..100.
    suffix: the name's suffix (`<stem>_<suffix>.<ext>`); None: `x<outscale>`.
    outscale: the final scale, for example 2 or 3.5 (the model's output resized with Lanczos, antialiased); None:
      the model's scale.
    """

    ext: str = "auto"
    quality: int = 95
    suffix: Optional[str] = None
    outscale: Optional[float] = None

    def __post_init__(self):
        if self.ext not in EXTENSIONS:
            raise ValueError(f"--ext={self.ext}: choose one of {', '.join(EXTENSIONS)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality={self.quality}: choose 1..100")
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
        fmt = _SAME_FORMAT.get(os.path.splitext(input_path)[1].lower(), "png") if self.ext == "auto" else self.ext
        channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
        if fmt == "jpg" and channels in (2, 4):
            return "png", "JPEG has no alpha: written as PNG"
        if fmt in ("jpg", "webp") and pixels.dtype == np.uint16:
            return "png", f"{fmt.upper()} has no 16-bit: written as PNG"
        return fmt, ""


class EnhanceError(RuntimeError):
    """The job cannot start (for example, an output folder that cannot be written). One line naming the fix."""


def expand_inputs(spec: str) -> list:
    """A file, a folder (recursively, image extensions only) or a glob -> sorted file list."""
    if os.path.isdir(spec):
        return [p for p in walk_files(spec) if p.lower().endswith(IMAGE_EXTENSIONS)]
    if os.path.isfile(spec):
        return [spec]
    return sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))


def is_own_output(path: str) -> bool:
    """True for a file that sr-enhance wrote: its "Software" marker (PNG text chunk, or EXIF for JPEG/WebP), read
    from the header."""
    if not path.lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
        return False
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # A pipe would block the open; the decoder reports it.
            return False
        with Image.open(path) as img:
            software = img.info.get("Software", "") if img.format == "PNG" else img.getexif().get(_EXIF_SOFTWARE, "")
            return str(software).startswith(SOFTWARE_TAG)
    except Exception:  # Unreadable: not ours; the decoder will report it properly.
        return False


def _label(img: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((6, 6), text)
    draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
    draw.text((6, 6), text, fill=(255, 255, 255))
    return img


def comparison(lr_rgb8: np.ndarray, sr_rgb8: np.ndarray, model_label: str) -> Image.Image:
    """Side by side: the input upscaled with bicubic | the model's output, each labelled."""
    h, w = sr_rgb8.shape[:2]
    bic = bicubic_upscale(lr_rgb8, h // lr_rgb8.shape[0])
    canvas = Image.new("RGB", (2 * w + 8, h), (255, 255, 255))
    canvas.paste(_label(Image.fromarray(bic), "bicubic"), (0, 0))
    canvas.paste(_label(Image.fromarray(sr_rgb8), model_label), (w + 8, 0))
    return canvas


def prepare_output_dir(output_dir: str) -> None:
    """Creates the output folder, or raises EnhanceError saying why it cannot be used."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise EnhanceError(f"--output_dir={output_dir} is a file; choose a folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise EnhanceError(f"cannot create --output_dir={output_dir}: {e.strerror or e}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise EnhanceError(f"--output_dir={output_dir} is not writable; choose another folder")


def output_names(paths: list, suffix) -> dict:
    """{input path: output path without extension, relative to the output folder}, distinct for every input.

    `suffix` is the name's suffix (an int: the scale, as `x<scale>`). The sub-folders under the inputs' common folder
    are kept, so same-named files from different folders stay apart; `x.png` and `x.jpg` in one folder become
    `x_x4` and `x.jpg_x4`.
    """
    suffix = f"x{suffix}" if isinstance(suffix, int) else suffix
    if not paths:
        return {}
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    names, seen = {}, {}
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), root)
        stem, ext = os.path.splitext(rel)
        name = f"{stem}_{suffix}" if suffix else stem
        if name in seen:  # Same stem, other extension: keep the extension in the name.
            name = f"{stem}{ext}_{suffix}" if suffix else f"{stem}{ext}"
        seen[name] = p
        names[p] = name
    return names


def enhance_files(enhancer, paths: Iterable[str], output_dir: str, compare: bool = False, tile=None,
                  tile_overlap=None, progress: bool = True, model_label: str = "model",
                  overwrite: bool = False, alpha: Optional[float] = None,
                  output_format: OutputFormat = OutputFormat()) -> dict:
    """Enhances each file; a bad file is reported and skipped, and the batch goes on.

    `alpha` chooses the network-interpolation point of a model that has one (`Enhancer.enhance`); `output_format`
    the format, quality, name suffix and final scale. An output that would be its own input (same folder, empty
    suffix, same format) is refused, even with `overwrite`.

    Returns:
      {"written": [paths], "failed": {input: why}, "skipped": {input: why}} where skipped inputs are not errors:
      an output that exists (without `overwrite`) or an input that is itself an sr-enhance output.

    Raises:
      EnhanceError: the output folder cannot be used.
    """
    prepare_output_dir(output_dir)
    paths = list(paths)
    own = {p for p in paths if is_own_output(p)}
    names = output_names([p for p in paths if p not in own], output_format.suffix_for(enhancer.scale))
    bar = None
    if progress and len(paths) > 1:
        from sr_keras import progress as progress_lib

        bar = progress_lib.bar(len(paths), unit_name="image")
    written, failed, skipped = [], {}, {}
    cleaned = set()
    for i, path in enumerate(paths):
        folder = None
        if path not in own:
            try:
                folder = safe_files.make_dirs_inside(output_dir, os.path.dirname(names[path]))
            except OSError as e:
                failed[path] = str(e) if isinstance(e, safe_files.UnsafePathError) else f"cannot create its " \
                    f"output folder: {e.strerror or e}"
        if folder is not None and folder not in cleaned:  # Temporaries of a killed earlier run.
            cleaned.add(folder)
            safe_files.remove_stale_temps(folder)
        if path in own:
            skipped[path] = "an sr-enhance output; not enhanced again"
        elif path not in failed:
            why = _enhance_one(enhancer, path, os.path.join(output_dir, names[path]), compare, overwrite,
                               model_label, written, output_format,
                               dict(tile=tile, tile_overlap=tile_overlap, progress=progress and len(paths) == 1,
                                    alpha=alpha))
            if why.endswith(_EXISTS) or why.startswith(NOT_REGULAR):
                skipped[path] = why
            elif why.startswith("note: "):
                print(f"{path}: {why[6:]}", flush=True)
            elif why:
                failed[path] = why
        if path in failed or path in skipped:
            print(f"skipped {path}: {failed.get(path) or skipped.get(path)}", flush=True)
        if bar is not None:
            bar.update(i + 1)
    return {"written": written, "failed": failed, "skipped": skipped}


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Lanczos resize (antialiased when shrinking) in float32, back to the pixels' dtype and layout."""
    import tensorflow as tf

    top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    x = pixels[..., None] if pixels.ndim == 2 else pixels
    y = tf.image.resize(x.astype(np.float32), (height, width), method="lanczos3", antialias=True).numpy()
    y = np.clip(np.round(y) if top > 1 else y, 0, top).astype(pixels.dtype)
    return y[..., 0] if pixels.ndim == 2 else y


def _write(f, pixels: np.ndarray, fmt: str, quality: int, icc: Optional[bytes], text: dict,
           cmyk: bool = False) -> None:
    """One whole image into the binary file `f` (PNG keeps 16 bits; JPEG/WebP get the marker in EXIF; a CMYK input
    written as JPEG is CMYK again)."""
    arr = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
    if fmt == "png":
        from sr_keras.imageio import PngWriter

        channels = 1 if arr.ndim == 2 else arr.shape[-1]
        writer = PngWriter(f, arr.shape[1], arr.shape[0], channels, 16 if arr.dtype == np.uint16 else 8, icc, text)
        writer.write_rows(arr)
        writer.close()
        return
    img = Image.fromarray(arr)
    if img.mode == "LA":
        img = img.convert("RGBA")
    if cmyk and fmt == "jpg" and img.mode == "RGB":
        img = img.convert("CMYK")
    exif = Image.Exif()
    exif[_EXIF_SOFTWARE] = text["Software"]
    extra = {"icc_profile": icc} if icc else {}
    if fmt == "jpg":
        img.save(f, format="JPEG", quality=quality, exif=exif, **extra)
    else:
        img.save(f, format="WEBP", quality=quality, exif=exif, **extra)


def _enhance_one(enhancer, path, out_stem, compare, overwrite, model_label, written, output_format,
                 kw) -> str:
    """Writes one output (and its comparison); returns why it did not (or a "note: ..."), or ""."""
    text = {"Software": f"{SOFTWARE_TAG} {model_label}", "Source": os.path.basename(path)}
    note = ""
    try:
        asked = output_format.ext if output_format.ext != "auto" else _SAME_FORMAT.get(
            os.path.splitext(path)[1].lower(), "png")
        guess = f"{out_stem}.{asked}"
        if os.path.realpath(guess) == os.path.realpath(path):
            return f"{guess} is an input; choose a --suffix or another --output_dir (inputs are never written)"
        if not overwrite and os.path.lexists(guess):  # Checked first, so no work is done for nothing.
            return f"{guess} {_EXISTS}"
        decoded = decode_image(path, enhancer.max_input_pixels, "--max_input_pixels")
        fmt, note = output_format.format_for(path, decoded.pixels)
        if decoded.source_mode == "CMYK" and fmt != "jpg" and not note:
            note = f"{fmt.upper()} has no CMYK: written as RGB"
        out = f"{out_stem}.{fmt}"
        if os.path.realpath(out) == os.path.realpath(path):
            return f"{out} is an input; choose a --suffix or another --output_dir (inputs are never written)"
        if not overwrite and os.path.lexists(out):
            return f"{out} {_EXISTS}"
        h, w = decoded.pixels.shape[:2]
        final = output_format.outscale
        if fmt == "png" and (final is None or final == enhancer.scale):  # Streamed: memory stays one band.
            with safe_files.atomic_open(out, overwrite=overwrite) as f:
                enhancer.write_png(decoded.pixels, f, decoded.icc_profile, text, **kw)
        else:
            sr = enhancer.enhance(decoded.pixels, **kw)
            if final is not None and final != enhancer.scale:
                sr = _resize(sr, max(1, round(h * final)), max(1, round(w * final)))
            with safe_files.atomic_open(out, overwrite=overwrite) as f:
                _write(f, sr, fmt, output_format.quality, decoded.icc_profile, text,
                       cmyk=decoded.source_mode == "CMYK")
        written.append(out)
        if compare:  # The picture needs the whole output: read back what was just written.
            sr = decode_image(out, None).pixels
            if sr.shape[0] != h * enhancer.scale:  # --outscale: compare at the model's own scale.
                sr = _resize(sr, h * enhancer.scale, w * enhancer.scale)
            pic = comparison(to_rgb8(decoded), to_rgb8(DecodedImage(pixels=sr)), model_label)
            cmp_path = out_stem + "_compare.png"
            with safe_files.atomic_open(cmp_path, overwrite=overwrite) as f:
                pic.save(f, format="PNG", pnginfo=_pnginfo(text))
            written.append(cmp_path)
    except safe_files.OutputExistsError:  # It appeared while this one was computed.
        return f"{out_stem} {_EXISTS}"
    except ImageError as e:
        return str(e)
    except MemoryError:
        return "not enough memory (try a smaller --tile)"
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e.strerror if isinstance(e, OSError) and e.strerror else e}"
    return f"note: {note}" if note else ""


def _pnginfo(text: dict):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    return info
