"""Where sr-export's generator comes from: a training run (its EMA generator, and the pixel phase's for the alpha
knob), a `.keras` file, or a zoo model by name; then `savedmodel.writer.export` writes it."""

from __future__ import annotations

from typing import Optional

from sr_keras import zoo
from sr_keras.image.limits import check_alpha
from sr_keras.infer import resolve
from sr_keras.models import exactness
from sr_keras.models.interpolation import interpolated_generator
from sr_keras.savedmodel import layout, portable, reader, writer
from sr_keras.train import run_dir
from sr_keras.zoo import cache as zoo_cache
from sr_keras.zoo import user_ncnn

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
        ref = resolve.classify(model)
        name = ref.name if ref.kind == "zoo" else zoo_cache.default_name() if ref.kind == "default" else None
        if name in zoo.SHIPPED:  # The project's own trained models: rebuilt from their shipped SavedModel.
            model_dir = layout.shipped_model_path(zoo.SHIPPED[name])
            version_dir = layout.resolve(model_dir)
            generator, meta = reader.generator_from_saved_model(version_dir)
            meta = {**meta, "provenance": (layout.read_card(model_dir) or {}).get("provenance")}
            psnr = reader.interpolation_ends(version_dir)[0] if interpolation and "interpolation" in meta else None
            return generator, {**meta, "model": name}, psnr
        if ref.kind == "ncnn":  # A user's own ncnn pair, converted with the zoo's checks.
            return (*user_ncnn.keras_generator(ref.path), None)
        if name is None:
            raise layout.ModelNotFoundError(f"--model={model}: not a zoo name or an ncnn .param; export a .keras "
                                            "file with --keras_model, or a run with --workdir")
        generator, meta = zoo_cache.keras_generator(name)
        return generator, {**meta, **_cached_measurements(name)}, None
    if workdir:
        generator, meta = run_dir.generator_from_workdir(workdir)
        return generator, meta, run_dir.psnr_generator_from_workdir(workdir) if interpolation else None
    return (*reader.load_keras(keras_model), None)


def _cached_measurements(name: str) -> dict:
    """The zoo cache's exactness and tiling records of `name`, when it has converted it: the export keeps them if
    they were measured on the same weights (`precision.reusable_check`) instead of measuring them again (about 40 s
    for RRDBNet)."""
    try:
        meta = layout.read_metadata(layout.resolve(zoo.model_dir(name)))
    except (OSError, ValueError, layout.SavedModelError):
        return {}
    return {k: meta[k] for k in (exactness.METADATA_KEY, "tiling") if k in meta}


def export(export_dir: str, model_name: Optional[str] = None, version: Optional[int] = None, tile: Optional[int] = None,
           max_input_pixels: int = 0, default_alpha: Optional[float] = None, fmt: str = "savedmodel",
           precision: str = "float32", **source) -> tuple:
    """Exports the generator of `source` (`generator_and_meta`'s arguments) as a `fmt` version; returns (path,
    name, meta, knob). ONNX and LiteRT hold one network-interpolation point: `default_alpha`, else the source's
    own default (1: the GAN end of a run)."""
    if precision != "float32" and fmt != "savedmodel":
        raise ValueError(f"--precision={precision} is for SavedModels (TF Serving); ONNX and LiteRT files are float32 "
                         "(their runtimes choose their own precision)")
    generator, meta, psnr = generator_and_meta(**source)
    if default_alpha is None:
        default_alpha = meta.get("interpolation", {}).get("default_alpha", 1.0)
    if fmt == "savedmodel":
        name = model_name or str(meta["model"])
        path = writer.export(generator, meta, export_dir, name, version, tile, max_input_pixels,
                             psnr_generator=psnr, default_alpha=default_alpha, precision=precision)
        return path, name, meta, psnr is not None
    name = model_name or f"{meta['model']}_{fmt}"
    if psnr is not None:
        generator = interpolated_generator(psnr, generator, check_alpha(default_alpha))
        meta = {**meta, "interpolation": {"alpha": default_alpha, "note": "one point of the knob, fixed at export"}}
    meta = {k: v for k, v in meta.items() if k != "interpolation"} if psnr is None else meta
    return portable.export(generator, meta, export_dir, name, fmt, version, tile, max_input_pixels), name, meta, False
