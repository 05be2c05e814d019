"""sr-enhance: upscales photos with a trained model.

  sr-enhance photo.jpg                                               # the default model, into enhanced/
  sr-enhance --input=photo.jpg --output_dir=out                      # the same, named
  sr-enhance --model=export/srgan --input=photos/ --output_dir=out --compare
  sr-enhance --model=realesrgan_x4plus --input=photo.jpg --output_dir=out    # a zoo model (sr-models)
  sr-enhance --input=photos/ --output_dir=out --ext=jpg --quality=90 --outscale=2 --suffix=big
  sr-enhance --model=g.keras --input='shots/**/*.png' --output_dir=out --tile=128

Writes <stem>_x<scale>.<ext> per input, in the input's format unless --ext says otherwise (and
<stem>_x<scale>_compare.png with --compare), keeping the inputs' sub-folders. --outscale resizes to any final scale,
--suffix names the outputs. Existing outputs are skipped (--overwrite replaces them) and sr-enhance's own outputs are never enhanced
again. Bad or too-large files are reported and skipped; the exit status is 1 when any input failed, 2 when nothing
could run.
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs
from sr_keras.image import limits  # Leaves: no TensorFlow import, --help stays fast.
from sr_keras.utils import quiet

_MODEL = flags.DEFINE_string("model", None, "Model name (see sr-models: span_x4 and sr_keras_x4 for clean images, "
                             "sr_keras_real_x4, realesr_general_x4v3 or realesrgan_x4plus for real photos with JPEG "
                             "blocks, noise or blur), model folder, version folder, .keras file, your own ncnn .param "
                             "file (SPAN, RRDBNet or SRVGGNetCompact, its .bin beside it), or an ONNX (.onnx) or "
                             "LiteRT (.tflite) file taking float32 [0, 1] images, NHWC or NCHW (default: the best "
                             "model this install has).")
_INPUT = flags.DEFINE_string("input", None, "A file, a folder or a glob (or give them after the flags, as "
                             "`sr-enhance a.jpg b.jpg`).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "enhanced", "Where the outputs go.")
_TILE = flags.DEFINE_integer("tile", None, "Tile side in input pixels (0: whole image at once; default: "
                             f"{limits.MEMORY_TILE_TEXT}, from the model's own footprint).")
_OVERLAP = flags.DEFINE_integer("tile_overlap", None, "Context and cross-fade between tiles, in input pixels "
                                "(default: the model's receptive field, the least that shows no seam).")
_PRECISION = flags.DEFINE_enum("precision", "auto", ["auto", *limits.PRECISIONS],
                               "Compute precision (weights stay float32). auto: bfloat16 where the CPU has it "
                               "natively (AVX512_BF16, AMX: the fastest, within about 0.02 dB PSNR-Y of float32), "
                               "else float32; float16 for GPUs.")
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", False, "Average over the 8 flips/rotations of each input (8x "
                              "slower; slightly higher PSNR).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace outputs that already exist (default: skip them).")
_ALPHA = flags.DEFINE_float("alpha", None, "Network interpolation of a GAN model exported with it: 0 = its PSNR "
                            "generator (smooth, faithful), 1 = its GAN generator (sharp, invented detail), between "
                            "= a blend of their weights. Default: the export's default_alpha.")
_MAX_PIXELS = flags.DEFINE_integer("max_input_pixels", limits.DEFAULT_MAX_INPUT_PIXELS, "Skip inputs with more pixels (read from the "
                                   "header, before decoding); memory stays bounded for any size, time does not.")
_COMPARE = flags.DEFINE_bool("compare", False, "Also write a labelled bicubic | model picture.")
_EXT = flags.DEFINE_enum("ext", "auto", list(limits.OUTPUT_EXTENSIONS), "Output format: auto keeps the input's "
                         "(JPEG stays JPEG, WebP stays WebP, others PNG); JPEG cannot hold alpha or 16 bits, so such "
                         "images are written as PNG.")
_QUALITY = flags.DEFINE_integer("quality", limits.DEFAULT_QUALITY, "JPEG/WebP quality (1..100).")
_PNG_LEVEL = flags.DEFINE_integer("png_compression", limits.DEFAULT_PNG_COMPRESSION, "zlib level of PNG outputs: "
                                   "0 (fastest) to 9 (smallest); the pixels are the same.")
_SUFFIX = flags.DEFINE_string("suffix", None, "Output name suffix: <stem>_<suffix>.<ext> (default: x<outscale>).")
_OUTSCALE = flags.DEFINE_float("outscale", None, "Final scale, e.g. 2 or 3.5: the model's output resized with "
                               "Lanczos (default: the model's scale).")
_STRIP = flags.DEFINE_bool("strip_metadata", False, "Write no EXIF (camera, date, GPS...) and no source name. By "
                           "default the input's EXIF is kept, orientation reset (the pixels are upright), Software "
                           "set.")
_BEAM = flags.DEFINE_string("beam_pipeline_options", None, "Run as an Apache Beam pipeline (the beam extra) with "
                            "these options, tfds's convention: runner=DirectRunner,direct_num_workers=2 (or "
                            "runner=DataflowRunner,project=...,region=...,temp_location=gs://...). --input and "
                            "--output_dir may then be gs:// or s3:// (where TensorFlow has that filesystem); each "
                            "worker loads --model once; the same outputs, and a report file in --output_dir.")


def main(argv):
    try:
        return _main(argv)
    except KeyboardInterrupt as e:  # One line, status 130 (128 + SIGINT), as a shell expects; no partial file.
        from sr_keras.enhance import files as enhance_lib

        fail(str(e) if isinstance(e, enhance_lib.Stopped) else "stopped before any output was written",
             code=130)


def _inputs(argv) -> list:
    """--input, or the bare arguments after the flags (`sr-enhance a.jpg b.jpg`)."""
    specs = ([_INPUT.value] if _INPUT.value else []) + list(argv[1:])
    if not specs:
        fail("give the photos to enhance: sr-enhance photo.jpg (or --input=photo.jpg, a folder or a glob)")
    return specs


def _main(argv):
    specs = _inputs(argv)
    quiet_tf_logs()
    quiet.skip_at_import("matplotlib")  # Keras's plotting helper; sr-enhance draws nothing (0.7 s a process).
    from sr_keras.enhance.output import OutputFormat

    try:  # Checked before TensorFlow is imported, the inputs are listed and the model loads.
        output_format = OutputFormat(_EXT.value, _QUALITY.value, _SUFFIX.value, _OUTSCALE.value, _PNG_LEVEL.value,
                                     _STRIP.value)
        limits.check_tile(_TILE.value, "--tile")
        limits.check_overlap(_OVERLAP.value, "--tile_overlap")
        limits.check_max_pixels(_MAX_PIXELS.value, "--max_input_pixels")
        if _ALPHA.value is not None:
            limits.check_alpha(_ALPHA.value, "--alpha")
    except ValueError as e:
        fail(str(e))
    # Light: a mistyped name fails here, before TensorFlow is imported.
    from sr_keras.infer import resolve
    from sr_keras.savedmodel import layout

    try:
        model = resolve.classify(_MODEL.value)  # Once: loading below takes this Reference, not the name again.
    except layout.ModelNotFoundError as e:
        fail(str(e))
    import sr_keras
    from sr_keras.enhance import files as enhance_lib
    from sr_keras.savedmodel import layout
    if _BEAM.value:
        return _run_on_beam(output_format, specs, model)
    paths = []
    for spec in specs:
        found = enhance_lib.expand_inputs(spec)
        if not found:
            named = f"--input={spec}" if spec == _INPUT.value else spec
            fail(f"{named}: no such file, or no images in that folder/glob")
        paths += [p for p in found if p not in paths]
    from sr_keras import zoo

    done = None if _ALPHA.value is not None else enhance_lib.all_skipped(
        paths, _OUTPUT_DIR.value, zoo.scale_of(_MODEL.value), output_format, _OVERWRITE.value)
    if done is not None:  # A finished batch run again: nothing needs the model, so it is not loaded.
        for path, why in done.items():
            print(f"skipped {path}: {why}", flush=True)
        print(f"{len(done)} of {len(paths)} inputs skipped (see above)", file=sys.stderr)
        return 0
    try:
        enhancer = sr_keras.load(model, **_load_kwargs())
    except (layout.ModelNotFoundError, layout.SavedModelError) as e:
        fail(str(e))
    label = _label(enhancer)
    _note_outscale(enhancer)
    try:
        result = enhance_lib.enhance_files(enhancer, paths, _OUTPUT_DIR.value, compare=_COMPARE.value,
                                           model_label=f"{label} x{enhancer.scale}", overwrite=_OVERWRITE.value,
                                           alpha=_ALPHA.value, output_format=output_format)
    except enhance_lib.EnhanceError as e:
        fail(str(e))
    for p in result["written"]:
        print(p)
    if result["skipped"]:
        print(f"{len(result['skipped'])} of {len(paths)} inputs skipped (see above)", file=sys.stderr)
    if result["failed"]:
        print(f"{len(result['failed'])} of {len(paths)} inputs failed", file=sys.stderr)
        return 1
    return 0


def _label(enhancer) -> str:
    """The model's label on outputs (the same on Beam and here); refuses --alpha for a model without the knob."""
    label = enhancer.metadata.get("model_name") or enhancer.metadata.get("model") or "model"
    if _ALPHA.value is not None:
        if not enhancer.interpolation:
            fail(f"--alpha: {_MODEL.value or 'the default model'} has no network interpolation (only models "
                 "exported from a run with a GAN phase do)")
        label += f" alpha={_ALPHA.value:g}"
    return label


def _note_outscale(enhancer) -> None:
    """Says which part of --outscale the model does, when the rest is a plain resize."""
    if _OUTSCALE.value is not None and _OUTSCALE.value > enhancer.scale:
        print(f"note: the model upscales x{enhancer.scale}; the rest of --outscale={_OUTSCALE.value:g} "
              f"(x{_OUTSCALE.value / enhancer.scale:.3g}) is a Lanczos resize, which adds no detail", file=sys.stderr)


def _load_kwargs() -> dict:
    return dict(tile=_TILE.value, tile_overlap=_OVERLAP.value, precision=_PRECISION.value,
                self_ensemble=_ENSEMBLE.value, max_input_pixels=_MAX_PIXELS.value or None)


def _run_on_beam(output_format, specs: list, model) -> int:
    beam_enhance, options = cli_utils.beam_pipeline_options(_BEAM.value, "sr_keras.enhance.beam")
    import sr_keras
    from sr_keras.enhance import files as enhance_lib
    from sr_keras.savedmodel import layout

    if len(specs) != 1:
        fail("--beam_pipeline_options takes one --input (a file, a folder or a glob)")
    paths = beam_enhance.list_inputs(specs[0])
    if not paths:
        fail(f"--input={specs[0]}: no such file, or no images in that folder/glob")
    try:  # Loaded here too: a bad --model fails at once, and the scale and label name the outputs.
        enhancer = sr_keras.load(model, **_load_kwargs())
    except (layout.ModelNotFoundError, layout.SavedModelError) as e:
        fail(str(e))
    label = _label(enhancer)
    _note_outscale(enhancer)
    try:
        result = beam_enhance.run(paths, _OUTPUT_DIR.value, options, _MODEL.value, _load_kwargs(), enhancer.scale,
                                  compare=_COMPARE.value, overwrite=_OVERWRITE.value, alpha=_ALPHA.value,
                                  model_label=f"{label} x{enhancer.scale}", output_format=output_format)
    except enhance_lib.EnhanceError as e:
        fail(str(e))
    for path, why in result["failures"].items():
        print(f"failed {path}: {why}", file=sys.stderr)
    print(f"{result['written']} written, {result['skipped']} skipped, {result['failed']} failed of {len(paths)} "
          f"inputs (report: {result['report']})")
    return 1 if result["failed"] else 0


def run():
    cli_utils.run(main, fast_exit=True)  # Outputs are written and closed when main returns.


if __name__ == "__main__":
    sys.exit(run())
