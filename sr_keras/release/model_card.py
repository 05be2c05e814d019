"""The default model's card: exporting a finished run as the package's default model, evaluating it on held-out
photos, and writing MODEL_CARD.md and card.json beside it. `sr_keras/cli/make_default_model.py` is its binary, and
`make default-model` runs the whole recipe (`RECIPE`, `reproduce`).

Only the SavedModel ships: the Keras generator is rebuilt from it on demand
(`reader.generator_from_saved_model`), which keeps the package small.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
from typing import Callable, Iterable, Optional

import tensorflow as tf

from sr_keras.data import photos, sources
from sr_keras.evaluate import protocol, report
from sr_keras.infer import enhancer as inference
from sr_keras.release import card_text
from sr_keras.release.card_text import TARGET_GAIN_DB  # noqa: F401 - part of this API.
from sr_keras.models import exactness, precision
from sr_keras.savedmodel import layout, reader, writer
from sr_keras.train import curves, run_dir
from sr_keras.train.run_dir import RunDir, run_of_checkpoint
from sr_keras.utils import safe_files

TEST_IMAGES = ("tfrecords/free_photos/test", "tfrecords/free_photos/test_libs")  # Filled by sr-fetch-photos.
PAUSE_SECONDS = 600  # Gaps between logged steps longer than this are pauses, not training time.
# The recipe of the shipped model, in its one place: `make default-model` runs it (`reproduce`), the card prints it.
RECIPE = (
    ("sr-fetch-photos", "--out_dir=tfrecords/free_photos"),
    ("sr-build-tfrecords", "--source=sample,dir:tfrecords/free_photos/images", "--val_fraction=0",
     "--out_dir=tfrecords/photos_x4"),
    ("sr-build-tfrecords", "--source=sample,dir:tfrecords/free_photos/images", "--val_fraction=0",
     "--train_rescales=0.75,0.5", "--out_dir=tfrecords/photos_x4_ms"),
    ("sr-train", "--model=srgan", "--preset=photo_x4", "--workdir=runs/photo_x4", "--mixed_precision=mixed_bfloat16",
     "--seed=0"),
    ("sr-train", "--model=srgan", "--preset=photo_x4_ms", "--workdir=runs/photo_x4_ms",
     "--mixed_precision=mixed_bfloat16", "--seed=1"),
)
RECIPE_WORKDIR = "runs/photo_x4_ms"  # The last stage's run: what ships.
# Console script -> module, to run the recipe with this interpreter (the scripts need not be on PATH).
_MODULES = {"sr-fetch-photos": "sr_keras.cli.fetch_photos", "sr-build-tfrecords": "sr_keras.cli.build_tfrecords",
            "sr-train": "sr_keras.cli.train", "sr-make-real-set": "sr_keras.cli.make_real_set"}


def recipe_text() -> str:
    lines = [" ".join(step) for step in RECIPE]
    lines.append(f"python -m sr_keras.cli.make_default_model --workdir={RECIPE_WORKDIR}")
    return "\n".join(lines)


def reproduce(log=print, recipe: tuple = RECIPE) -> None:
    """Runs every step of `recipe` in order (each resumes or rebuilds as its command does); raises on a failure."""
    for step in recipe:
        log("$ " + " ".join(step))
        subprocess.run([sys.executable, "-m", _MODULES[step[0]], *step[1:]], check=True)


def training_seconds(workdir: str) -> tuple:
    """(seconds, how): wall time between logged steps (gaps over 10 min, i.e. pauses, left out), or an
    estimate from the logged per-step rates."""
    run = RunDir(workdir)
    rows = run.read_metrics()  # Tolerates a last line cut short by a kill.
    times = [r["time"] for r in rows if "time" in r]
    if len(times) > 1:
        gaps = [b - a for a, b in zip(times, times[1:]) if 0 <= b - a < PAUSE_SECONDS]
        return sum(gaps), "measured: wall clock between logged steps"
    rates = [r["images_per_s"] for r in rows if "images_per_s" in r]
    step = run.read_config().batch_size / statistics.median(rates)
    return step * rows[-1]["step"], "estimated: median logged step time x steps"


def training_stages(workdir: str) -> list:
    """[{workdir, steps, seconds, how, data}] of the run and, first, the runs it was initialised from
    (--init_checkpoint), so the card's time covers the whole recipe."""
    stages = []
    seen = set()
    while workdir and workdir not in seen:
        seen.add(workdir)
        cfg = RunDir(workdir).read_config()
        seconds, how = training_seconds(workdir)
        stages.insert(0, {"workdir": workdir, "steps": cfg.total_steps, "seconds": seconds, "how": how,
                          "data": cfg.data, "learning_rate": cfg.learning_rate})
        source = run_of_checkpoint(cfg.init_checkpoint) if cfg.init_checkpoint else None
        workdir = source.path if source else ""
    return stages


def _summary(results: dict, images: str) -> dict:
    """The card's view of an sr-evaluate result: means, mean gain and per-image PSNR-Y of bicubic and model."""
    means = {k: results["methods"][k]["mean"] for k in results["methods"]}
    return {"images": images, "mean": means, "gain_db": means["default"]["psnr_y"] - means["bicubic"]["psnr_y"],
            "per_image_psnr_y": {n: {"bicubic": results["methods"]["bicubic"]["images"][n]["psnr_y"],
                                     "model": results["methods"]["default"]["images"][n]["psnr_y"]}
                                 for n in results["methods"]["default"]["images"]}}


def training_photos(splits=("train",)) -> list:
    """Rows of (photos, source, licence) for the card: the sample photos and `photos.PHOTOS` of `splits`."""
    rows = [{"photos": ", ".join(p for p in sources.SAMPLE_PHOTOS if p not in sources.SAMPLE_VAL),
             "source": "scikit-image's bundled data (skimage/data; origins in its README.txt)",
             "license": "BSD-3-Clause with scikit-image / public domain (per skimage/data/README.txt)"}]
    train = [p for p in photos.PHOTOS if p.split in splits]
    for pkg in photos.PACKAGES:
        for lic in sorted({p.license for p in train if p.package == pkg}):
            names = [f"{p.name} ({p.author})" for p in train if p.package == pkg and p.license == lic]
            rows.append({"photos": ", ".join(names), "source": f"Debian package {pkg}", "license": lic})
    return rows


def make_default_model(workdir: str, eval_out: str, out_dir: Optional[str] = None,
                       test_images: Iterable[str] = TEST_IMAGES) -> str:
    """Exports a finished run as the default model, evaluates it and writes its card; returns the card's path.

    The model folder (`out_dir`, default the package's default_model/) is replaced in one atomic step, and only
    when everything succeeded.

    Raises:
      run_dir.RunError: no run, or no checkpoint to export; layout.ExportError: the export cannot be written.
    """
    generator, meta = run_dir.generator_from_workdir(workdir)
    meta["model_name"] = "default"

    def card_for(version_dir: str) -> tuple:
        enhancer = inference.Enhancer(version_dir, precision="float32")  # Figures: the same on every CPU.
        results, validation, tests = _evaluate(enhancer, eval_out, test_images)
        curves.plot_training_curves(workdir, os.path.join(eval_out, "training_curves.png"))
        card = build_card(workdir, meta, generator.count_params(), _folder_mb(version_dir), results, validation,
                          tests)
        return card, card_text.card_markdown(card, report.markdown_table(results))
    return publish(generator, meta, out_dir or layout.default_model_path(), "default_model", card_for)


def publish(generator, meta: dict, target: str, folder_name: str, card_for: Callable[[str], tuple],
            **export_kwargs) -> str:
    """The release path both shipped models take: export `generator` (`writer.export`, version 1, with
    `export_kwargs`) into a staging folder beside `target`, let `card_for(version_dir)` evaluate it and return
    (card dict, MODEL_CARD.md text), write both, and replace `target` in one atomic step, only when all of it
    succeeded (a failure leaves the model that was there). Returns the card's path."""
    target = os.path.abspath(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = safe_files.make_temp_dir(os.path.dirname(target), f"{folder_name}-")
    try:
        version_dir = writer.export(generator, meta, staging, folder_name, version=1, **export_kwargs)
        card, markdown = card_for(version_dir)
        folder = os.path.join(staging, folder_name)
        layout.write_card(folder, card)
        safe_files.write_text(os.path.join(folder, "MODEL_CARD.md"), markdown)
        os.chmod(folder, 0o755)
        safe_files.replace_dir(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(target, "MODEL_CARD.md")


def refresh_exactness(version_dir: str) -> dict:
    """Measures a published model's bfloat16 exactness record again (`precision.exactness_check`) when its
    model.json holds none that is current (the check's probes or rule changed: `exactness.CHECK_VERSION`), so that
    loading it does not measure it on every start. Returns the record; the weights and the card are not touched."""
    meta = layout.read_metadata(version_dir)
    found = exactness.record(meta)
    if found is not None:
        return found
    generator, _ = reader.generator_from_saved_model(version_dir)
    meta[exactness.METADATA_KEY] = precision.exactness_check(generator)
    layout.write_metadata(version_dir, meta)
    return meta[exactness.METADATA_KEY]


def _folder_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs) / 1e6


def _evaluate(enhancer, eval_out: str, test_images: Iterable[str]) -> tuple:
    """sr-evaluate's code on the held-back sample photos and each present held-out folder.

    Returns:
      (the sample photos' results, their card summary, [card summaries of the held-out folders]).
    """
    scale = enhancer.scale
    images, _ = protocol.load_images("sample", scale)
    results = protocol.evaluate({"default": enhancer}, images, scale, eval_out)
    validation = _summary(results, "held-back sample photos: " + ", ".join(sources.SAMPLE_VAL))
    mp = sum(i.lr.shape[0] * i.lr.shape[1] * scale ** 2 for i in images) / 1e6
    sec = sum(v["seconds"] for v in results["methods"]["default"]["images"].values())
    validation["runtime"] = {"seconds_per_image": sec / len(images), "output_mp_per_s": mp / sec}
    tests = []
    for folder in test_images:
        if not os.path.isdir(folder):
            continue
        held_out, _ = protocol.load_images(folder, scale)
        test_results = protocol.evaluate({"default": enhancer}, held_out, scale,
                                             os.path.join(eval_out, os.path.basename(folder)))
        tests.append({**_summary(test_results, f"{len(held_out)} photos in {folder}"), "folder": folder,
                      "table": report.markdown_table(test_results)})
    return results, validation, tests


def _pooled(validation: dict, tests: list) -> dict:
    """The mean and the lowest PSNR-Y gain over every unseen photo."""
    gains = {name: v["model"] - v["bicubic"] for name, v in validation["per_image_psnr_y"].items()}
    gains.update({f"{os.path.basename(t['folder'])}/{name}": v["model"] - v["bicubic"] for t in tests
                  for name, v in t["per_image_psnr_y"].items()})
    worst = min(gains, key=gains.get)
    return {"count": len(gains), "gain_db": statistics.fmean(gains.values()), "min_gain_db": gains[worst],
            "min_image": worst}


def _data_section(training_data: dict, cfg: dict) -> dict:
    scale = cfg["model"]["scale"]
    rescales = training_data.get("train_rescales") or []
    records = training_data.get("counts", {}).get("train")
    train_count = records // (1 + len(rescales)) if records else None  # Photos, not their rescaled copies.
    sizes = (f", each also at {' and '.join(f'{f:g}' for f in rescales)}x size (`--train_rescales`, "
             f"{records} training pairs in all)" if rescales else "")
    return {"count": train_count,
            "description": f"{train_count or '?'} photos: the scikit-image sample photos (`--source=sample`) and free "
                           "wallpaper photos from pinned Debian packages (`sr-fetch-photos`, each reduced 2x or 4x)"
                           f"{sizes}; x{scale} antialiased bicubic degradation, random {cfg['hr_crop']}x"
                           f"{cfg['hr_crop']} HR crops with flips and 90-degree rotations. Per-photo authors: "
                           "tfrecords/free_photos/CREDITS.md after `sr-fetch-photos`, or sr_keras/data/photos.py.",
            "train": training_photos(), "val": list(sources.SAMPLE_VAL)}


def build_card(workdir: str, meta: dict, parameters: int, size_mb: float, results: dict, validation: dict,
               tests: list) -> dict:
    """card.json's content for the run in `workdir`, exported with `meta` and evaluated as `_evaluate` does."""

    cfg = dataclasses.asdict(RunDir(workdir).read_config())
    stages = training_stages(workdir)
    runtime = validation.pop("runtime")
    sample = {"model": {k: validation["mean"]["default"][k] for k in ("psnr_y", "ssim_y")},
              "bicubic": {k: validation["mean"]["bicubic"][k] for k in ("psnr_y", "ssim_y")},
              "gain_db": validation["gain_db"], "images": list(sources.SAMPLE_VAL)}
    provenance = {"license": "Apache-2.0 (this project)", "license_short": "Apache-2.0",
                  "recipe": "sr_keras/release/model_card.py RECIPE (make default-model)"}
    return layout.card_record(
        "sr_keras_x4", cfg["model"]["scale"], "this project's own SRGAN-family model, trained with its recipe "
        "(MODEL_CARD.md)", parameters, provenance, sample, **{
        "architecture": cfg["model"], "size_mb": size_mb,
        "steps": sum(st["steps"] for st in stages), "stages": stages, "config": cfg,
        "training_seconds": sum(st["seconds"] for st in stages), "training_time_how": stages[-1]["how"],
        "machine": f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}",
        "architecture_text": card_text.architecture_text(cfg["model"]), "recipe": recipe_text(),
        "data": _data_section(meta["training_data"], cfg),
        "validation": validation, "tests": tests, "all_unseen": _pooled(validation, tests),
        "runtime": f"{runtime['seconds_per_image']:.2f} s per image ({runtime['output_mp_per_s']:.2f} output MP/s) "
                   f"through sr_keras.load() on {os.cpu_count()} CPU cores, float32."})
