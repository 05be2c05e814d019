"""Enhancing files on disk: what `sr-enhance` does, importable.

Each input becomes `<stem>_x<scale>.png`; gray stays gray, alpha stays alpha, 16-bit stays 16-bit, the ICC profile
is kept (8-bit outputs). `compare=True` also writes `<stem>_x<scale>_compare.png`: bicubic | model, labelled.
"""

from __future__ import annotations

import glob
import io
import os
from typing import Iterable

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from sr_keras.data.degradation import bicubic_upscale
from sr_keras.data.sources import walk_files
from sr_keras.imageio import IMAGE_EXTENSIONS, ImageError, decode_image, to_rgb8


def expand_inputs(spec: str) -> list:
    """A file, a folder (recursively, image extensions only) or a glob -> sorted file list."""
    if os.path.isdir(spec):
        return [p for p in walk_files(spec) if p.lower().endswith(IMAGE_EXTENSIONS)]
    if os.path.isfile(spec):
        return [spec]
    return sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))


def encode_png(pixels: np.ndarray, icc_profile=None) -> bytes:
    """PNG bytes for uint8/uint16 H x W x C (C in 1..4); 8-bit and 16-bit gray keep the ICC profile."""
    if pixels.dtype == np.uint16 and pixels.shape[-1] != 1:
        return tf.io.encode_png(pixels).numpy()  # Pillow cannot hold 16-bit colour; TF writes it losslessly.
    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    img.save(buf, format="PNG", icc_profile=icc_profile) if icc_profile else img.save(buf, format="PNG")
    return buf.getvalue()


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


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def enhance_files(enhancer, paths: Iterable[str], output_dir: str, compare: bool = False, tile=None,
                  tile_overlap=None, progress: bool = True, model_label: str = "model") -> dict:
    """Enhances each file; a bad file is reported and skipped. Returns {"written": [...], "failed": {path: why}}."""
    paths = list(paths)
    os.makedirs(output_dir, exist_ok=True)
    bar = None
    if progress and len(paths) > 1:
        from keras.utils import Progbar

        bar = Progbar(len(paths), unit_name="image")
    written, failed, used = [], {}, set()
    for i, path in enumerate(paths):
        try:
            decoded = decode_image(path)
            # One file: a bar over its tiles instead (a large photo takes minutes on a CPU).
            sr = enhancer.enhance(decoded.pixels, tile=tile, tile_overlap=tile_overlap,
                                  progress=progress and len(paths) == 1)
            stem = os.path.splitext(os.path.basename(path))[0]
            name = f"{stem}_x{enhancer.scale}"
            while name in used:  # Same stem in two folders: keep both.
                name += "_"
            used.add(name)
            out = os.path.join(output_dir, f"{name}.png")
            _atomic_write(out, encode_png(sr, decoded.icc_profile))
            written.append(out)
            if compare:
                pic = comparison(to_rgb8(decoded), to_rgb8(type(decoded)(pixels=sr)), model_label)
                cmp_path = os.path.join(output_dir, f"{name}_compare.png")
                buf = io.BytesIO()
                pic.save(buf, format="PNG")
                _atomic_write(cmp_path, buf.getvalue())
                written.append(cmp_path)
        except (ImageError, OSError, ValueError) as e:
            failed[path] = str(e) if isinstance(e, ImageError) else f"{type(e).__name__}: {e}"
            print(f"skipped {path}: {failed[path]}", flush=True)
        if bar is not None:
            bar.update(i + 1)
    return {"written": written, "failed": failed}
