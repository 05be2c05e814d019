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

import os
import stat
from typing import Iterable, Optional

from PIL import Image

from sr_keras.enhance import output as enhance_output
from sr_keras.enhance.output import EXTENSIONS, OutputFormat  # noqa: F401 - part of this API.
from sr_keras.image.imageio import (
    NOT_REGULAR,
    DecodedImage,
    ImageError,
    decode_image,
    expand_inputs,  # noqa: F401 - part of this API.
    to_rgb8,
)
from sr_keras.utils import progress as progress_lib
from sr_keras.utils import safe_files


class EnhanceError(RuntimeError):
    """The job cannot start (for example, an output folder that cannot be written). One line naming the fix."""


def is_own_output(path: str) -> bool:
    """True for a file that sr-enhance wrote: its "Software" marker (PNG text chunk, or EXIF for JPEG/WebP), read
    from the header."""
    if not path.lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
        return False
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # A pipe would block the open; the decoder reports it.
            return False
        with Image.open(path) as img:
            software = img.info.get("Software", "") if img.format == "PNG" else img.getexif().get(enhance_output.EXIF_SOFTWARE, "")
            return str(software).startswith(enhance_output.SOFTWARE_TAG)
    except Exception:  # Unreadable: not ours; the decoder will report it properly.
        return False


_EXISTS = "exists (pass --overwrite to replace it)"
OWN_OUTPUT = "an sr-enhance output; not enhanced again"


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


def all_skipped(paths: list, output_dir: str, scale: Optional[int], output_format: OutputFormat,
                overwrite: bool = False) -> Optional[dict]:
    """{input: why} when every input would be skipped (its output exists, or it is an sr-enhance output itself), so
    a rerun of a finished batch need not load the model; None when some input needs the model, or when `scale` is
    not known without loading it. Decodes nothing: the output's format is the one asked for (or the input's)."""
    if overwrite or scale is None or not paths or not os.path.isdir(output_dir):
        return None
    suffix = output_format.suffix_for(scale)

    def guess(names, path):
        return f"{os.path.join(output_dir, names[path])}.{_asked_format(path, output_format)}"

    # A first pass that opens no file while outputs exist: a new batch stops at its first input. It may answer
    # None wrongly (names ignoring own outputs), which only costs loading the model, never a wrong skip.
    rough = output_names(paths, suffix)
    if any(not os.path.lexists(guess(rough, p)) and not is_own_output(p) for p in paths):
        return None
    own = {p for p in paths if is_own_output(p)}  # Every input looks done: decide with enhance_files' own names.
    names = output_names([p for p in paths if p not in own], suffix)
    skipped = {}
    for path in paths:
        if path in own:
            skipped[path] = OWN_OUTPUT
        elif os.path.lexists(guess(names, path)):
            skipped[path] = f"{guess(names, path)} {_EXISTS}"
        else:
            return None
    return skipped


def _asked_format(path: str, output_format: OutputFormat) -> str:
    if output_format.ext != "auto":
        return output_format.ext
    return enhance_output.SAME_FORMAT.get(os.path.splitext(path)[1].lower(), "png")


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

        bar = progress_lib.bar(len(paths), unit_name="image")
    written, failed, skipped = [], {}, {}
    cleaned = set()
    done = 0
    try:
        for i, path in enumerate(paths):
            status, why, files = enhance_file(
                enhancer, path, output_dir, names.get(path), own=path in own, compare=compare, overwrite=overwrite,
                model_label=model_label, output_format=output_format, cleaned=cleaned,
                tile=tile, tile_overlap=tile_overlap, progress=progress and len(paths) == 1, alpha=alpha)
            written += files
            done = i + 1
            if status == "note":
                progress_lib.message(f"{path}: {why}", bar)
            elif status in ("failed", "skipped"):
                (failed if status == "failed" else skipped)[path] = why
                progress_lib.message(f"skipped {path}: {why}", bar)
            if bar is not None:
                bar.update(i + 1)
    except KeyboardInterrupt:  # Outputs are written under temporary names: the one in progress leaves nothing.
        raise Stopped(done, len(paths)) from None
    return {"written": written, "failed": failed, "skipped": skipped}


class Stopped(KeyboardInterrupt):
    """Ctrl-C during a batch: how far it got (every finished output is whole; a rerun skips them)."""

    def __init__(self, done: int, total: int):
        super().__init__(f"stopped after {done} of {total} inputs; run the same command again to continue")
        self.done, self.total = done, total


def enhance_file(enhancer, path: str, output_dir: str, name: Optional[str], own: bool = False,
                 compare: bool = False, overwrite: bool = False, model_label: str = "model",
                 output_format: OutputFormat = OutputFormat(), cleaned: Optional[set] = None, **kw) -> tuple:
    """One input of `enhance_files` (also each element of the Beam job): `name` is its output path without
    extension, relative to `output_dir` (`output_names`), `own` whether it is an sr-enhance output itself.

    Returns:
      (status, why, written paths): status "written", "note" (written, with `why` to tell), "skipped" (not an
      error: an existing output, an own output, not a regular file) or "failed" (`why` is the reason).
    """
    if own:
        return "skipped", OWN_OUTPUT, []
    try:
        folder = safe_files.make_dirs_inside(output_dir, os.path.dirname(name))
    except OSError as e:
        return "failed", str(e) if isinstance(e, safe_files.UnsafePathError) else \
            f"cannot create its output folder: {e.strerror or e}", []
    if cleaned is None or folder not in cleaned:  # Temporaries of a killed earlier run.
        if cleaned is not None:
            cleaned.add(folder)
        safe_files.remove_stale_temps(folder)
    written = []
    why = _enhance_one(enhancer, path, os.path.join(output_dir, name), compare, overwrite, model_label, written,
                       output_format, kw)
    if why.endswith(_EXISTS) or why.startswith(NOT_REGULAR):
        return "skipped", why, written
    if why.startswith("note: "):
        return "note", why[6:], written
    return ("failed" if why else "written"), why, written


def _enhance_one(enhancer, path, out_stem, compare, overwrite, model_label, written, output_format,
                 kw) -> str:
    """Writes one output (and its comparison); returns why it did not (or a "note: ..."), or ""."""
    text = {"Software": f"{enhance_output.SOFTWARE_TAG} {model_label}"}
    if not output_format.strip_metadata:
        text["Source"] = os.path.basename(path)
    note = ""
    try:
        guess = f"{out_stem}.{_asked_format(path, output_format)}"
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
        out_h, out_w = (h * enhancer.scale, w * enhancer.scale) if final is None or final == enhancer.scale else (
            max(1, round(h * final)), max(1, round(w * final)))
        exif = enhance_output.output_exif(None if output_format.strip_metadata else decoded.exif, out_w, out_h,
                                          text["Software"])
        if fmt == "png" and (final is None or final == enhancer.scale):  # Streamed: memory stays one band.
            with safe_files.atomic_open(out, overwrite=overwrite) as f:
                enhancer.write_png(decoded.pixels, f, decoded.icc_profile, text,
                                   png_compression=output_format.png_compression, exif=exif, **kw)
        else:
            sr = enhancer.enhance(decoded.pixels, **kw)
            if final is not None and final != enhancer.scale:
                sr = enhance_output.resize(sr, max(1, round(h * final)), max(1, round(w * final)))
            with safe_files.atomic_open(out, overwrite=overwrite) as f:
                enhance_output.write(f, sr, fmt, output_format.quality, decoded.icc_profile, text,
                                     png_compression=output_format.png_compression,
                                     cmyk=decoded.source_mode == "CMYK", exif=exif)
        written.append(out)
        if compare:  # The picture needs the whole output: read back what was just written.
            sr = decode_image(out, None).pixels
            if sr.shape[0] != h * enhancer.scale:  # --outscale: compare at the model's own scale.
                sr = enhance_output.resize(sr, h * enhancer.scale, w * enhancer.scale)
            pic = enhance_output.comparison(to_rgb8(decoded), to_rgb8(DecodedImage(pixels=sr)), model_label)
            cmp_path = out_stem + "_compare.png"
            with safe_files.atomic_open(cmp_path, overwrite=overwrite) as f:
                pic.save(f, format="PNG", pnginfo=enhance_output.pnginfo(text))
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


