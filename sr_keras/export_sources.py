"""Where sr-export's generator comes from: a training run (its EMA generator, and the pixel phase's for the alpha
knob), a `.keras` file, or a zoo model by name; then `savedmodel.writer.export` writes it."""

from __future__ import annotations

from typing import Optional

from sr_keras import run_dir
from sr_keras.savedmodel import layout, reader, writer
from sr_keras.zoo import cache as zoo_cache

ERRORS = (layout.ExportError, layout.ModelNotFoundError, layout.SavedModelError, run_dir.RunError, ValueError)


def generator_and_meta(workdir: Optional[str] = None, keras_model: Optional[str] = None,
                       model: Optional[str] = None, interpolation: bool = True) -> tuple:
    """(generator, metadata, PSNR-end generator or None) from exactly one of the three sources.

    Raises:
      ValueError: not exactly one source; the others of `ERRORS` for a source that cannot be used.
    """
    if sum(bool(v) for v in (workdir, keras_model, model)) != 1:
        raise ValueError("pass exactly one of --workdir (a training run), --keras_model (a .keras file) or --model "
                         "(a zoo name)")
    if model:
        return (*zoo_cache.keras_generator(model), None)
    if workdir:
        generator, meta = run_dir.generator_from_workdir(workdir)
        return generator, meta, run_dir.psnr_generator_from_workdir(workdir) if interpolation else None
    return (*reader.load_keras(keras_model), None)


def export(export_dir: str, model_name: Optional[str] = None, version: Optional[int] = None, tile: int = 0,
           max_input_pixels: int = 0, default_alpha: float = 1.0, **source) -> tuple:
    """Exports the generator of `source` (`generator_and_meta`'s arguments); returns (path, name, meta, knob)."""
    generator, meta, psnr = generator_and_meta(**source)
    name = model_name or str(meta["model"])
    path = writer.export(generator, meta, export_dir, name, version, tile, max_input_pixels, psnr_generator=psnr,
                         default_alpha=default_alpha)
    return path, name, meta, psnr is not None
