"""Enhancing files on disk: what `sr-enhance` does, importable.

Each input becomes `<stem>_x<scale>.png` under the output folder, in the same sub-folder as the input has under
the inputs' common folder (so `a/x.png` and `b/x.png` never collide). Gray stays gray, alpha stays alpha, 16-bit
stays 16-bit, the ICC profile is kept. The PNG is streamed band by band as the tiles finish, so memory does not
grow with the image. `compare=True` also writes `<stem>_x<scale>_compare.png`: bicubic | model, labelled.

Nothing is lost: an existing output is skipped unless `overwrite=True`; outputs carry a PNG text marker and are
never taken as inputs again; every file is written under an exclusive temporary name and renamed when complete
(see `safe_files`), and a failed write (a full disk) leaves nothing behind.
"""

from __future__ import annotations

import glob
import os
from typing import Iterable, Optional

import numpy as np
from PIL import Image, ImageDraw

from sr_keras import safe_files
from sr_keras.data.degradation import bicubic_upscale
from sr_keras.data.sources import walk_files
from sr_keras.imageio import IMAGE_EXTENSIONS, DecodedImage, ImageError, decode_image, to_rgb8

SOFTWARE_TAG = "sr_keras"  # PNG tEXt "Software" of every output: how sr-enhance knows its own files.
_EXISTS = "exists (pass --overwrite to replace it)"


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
    """True for a PNG that sr-enhance wrote (its "Software" text chunk, read from the header)."""
    if not path.lower().endswith(".png"):
        return False
    try:
        with Image.open(path) as img:
            return str(img.info.get("Software", "")).startswith(SOFTWARE_TAG)
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


def output_names(paths: list, scale: int) -> dict:
    """{input path: output path without extension, relative to the output folder}, distinct for every input.

    The sub-folders under the inputs' common folder are kept, so same-named files from different folders stay
    apart; `x.png` and `x.jpg` in one folder become `x_x4` and `x.jpg_x4`.
    """
    if not paths:
        return {}
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    names, seen = {}, {}
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), root)
        stem, ext = os.path.splitext(rel)
        name = f"{stem}_x{scale}"
        if name in seen:  # Same stem, other extension: keep the extension in the name.
            name = f"{stem}{ext}_x{scale}"
        seen[name] = p
        names[p] = name
    return names


def enhance_files(enhancer, paths: Iterable[str], output_dir: str, compare: bool = False, tile=None,
                  tile_overlap=None, progress: bool = True, model_label: str = "model",
                  overwrite: bool = False, alpha: Optional[float] = None) -> dict:
    """Enhances each file; a bad file is reported and skipped, and the batch goes on.

    `alpha` chooses the network-interpolation point of a model that has one (`Enhancer.enhance`).

    Returns:
      {"written": [paths], "failed": {input: why}, "skipped": {input: why}} where skipped inputs are not errors:
      an output that exists (without `overwrite`) or an input that is itself an sr-enhance output.

    Raises:
      EnhanceError: the output folder cannot be used.
    """
    prepare_output_dir(output_dir)
    paths = list(paths)
    own = {p for p in paths if is_own_output(p)}
    names = output_names([p for p in paths if p not in own], enhancer.scale)
    bar = None
    if progress and len(paths) > 1:
        from sr_keras import progress as progress_lib

        bar = progress_lib.bar(len(paths), unit_name="image")
    written, failed, skipped = [], {}, {}
    for i, path in enumerate(paths):
        if path in own:
            skipped[path] = "an sr-enhance output; not enhanced again"
        else:
            out = os.path.join(output_dir, names[path] + ".png")
            why = _enhance_one(enhancer, path, out, compare, overwrite, model_label, written,
                               dict(tile=tile, tile_overlap=tile_overlap, progress=progress and len(paths) == 1,
                                    alpha=alpha))
            if why == _EXISTS:
                skipped[path] = f"{out} {why}"
            elif why:
                failed[path] = why
        if path in failed or path in skipped:
            print(f"skipped {path}: {failed.get(path) or skipped.get(path)}", flush=True)
        if bar is not None:
            bar.update(i + 1)
    return {"written": written, "failed": failed, "skipped": skipped}


def _enhance_one(enhancer, path, out, compare, overwrite, model_label, written, kw) -> str:
    """Writes one output (and its comparison); returns why it did not, or ""."""
    if not overwrite and os.path.lexists(out):  # Checked first, so no work is done for nothing.
        return _EXISTS
    text = {"Software": f"{SOFTWARE_TAG} {model_label}", "Source": os.path.basename(path)}
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        decoded = decode_image(path, enhancer.max_input_pixels, "--max_input_pixels")
        with safe_files.atomic_open(out, overwrite=overwrite) as f:
            enhancer.write_png(decoded.pixels, f, decoded.icc_profile, text, **kw)
        written.append(out)
        if compare:  # The picture needs the whole output: read back what was just written.
            sr = decode_image(out, None).pixels
            pic = comparison(to_rgb8(decoded), to_rgb8(DecodedImage(pixels=sr)), model_label)
            cmp_path = os.path.splitext(out)[0] + "_compare.png"
            with safe_files.atomic_open(cmp_path, overwrite=overwrite) as f:
                pic.save(f, format="PNG", pnginfo=_pnginfo(text))
            written.append(cmp_path)
    except safe_files.OutputExistsError:  # It appeared while this one was computed.
        return _EXISTS
    except ImageError as e:
        return str(e)
    except MemoryError:
        return "not enough memory (try a smaller --tile)"
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e.strerror if isinstance(e, OSError) and e.strerror else e}"
    return ""


def _pnginfo(text: dict):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    return info
