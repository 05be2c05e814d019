"""Evaluating models against bicubic on HR photos: numbers (JSON, Markdown) and comparison pictures.

Each HR image is degraded exactly as the training data was (crop to a multiple of the scale, antialiased bicubic
down, rounded to uint8; `sr_keras.data.degradation`). Every method's uint8 output is scored with the project's one
protocol, `metrics.score` (PSNR-Y and SSIM-Y with `scale` border pixels shaved, and RGB PSNR), the same one the
validation logged during training uses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from sr_keras import metrics
from sr_keras import progress as progress_lib
from sr_keras.data import degradation, pipeline, schema, sources
from sr_keras.data.degradation import bicubic_upscale
from sr_keras.enhance_lib import expand_inputs
from sr_keras.imageio import ImageError, load_rgb8

KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "grid", "seconds")


@dataclasses.dataclass
class EvalImage:
    name: str
    hr: np.ndarray  # uint8 [h, w, 3], a multiple of the scale
    lr: np.ndarray  # uint8 [h/s, w/s, 3]


def _centre(hr: np.ndarray, crop: int) -> np.ndarray:
    if not crop:
        return hr
    y, x = (hr.shape[0] - crop) // 2, (hr.shape[1] - crop) // 2
    return hr[max(0, y):max(0, y) + crop, max(0, x):max(0, x) + crop]


def _from_hr(name: str, hr: np.ndarray, scale: int, crop: int = 0) -> EvalImage:
    hr = degradation.crop_to_multiple(_centre(hr, crop), scale)
    return EvalImage(name, hr, degradation.bicubic_downscale(hr, scale))


def _crop_pair(image: EvalImage, crop: int, scale: int) -> EvalImage:
    """The centre crop of a stored pair, aligned as training validation takes it (`pipeline.center_aligned_crop`)."""
    if not crop:
        return image
    c = crop // scale
    y, x = (image.lr.shape[0] - c) // 2, (image.lr.shape[1] - c) // 2
    return EvalImage(image.name, image.hr[y * scale:(y + c) * scale, x * scale:(x + c) * scale],
                     image.lr[y:y + c, x:x + c])


def load_images(spec: str, scale: int, crop: int = 0) -> tuple:
    """`sample` (the held-back sample photos), a TFRecord folder (its val split), a folder, a file or a glob.

    `crop`: score N x N HR centre crops instead of whole images (what training validation logs as val_crop<N>/).

    Returns:
      (images, skipped): EvalImage list and {path: reason} for files that could not be read.
    """
    skipped = {}
    if spec == "sample":
        root = sources.sample_dir()
        return [_from_hr(n, load_rgb8(os.path.join(root, n)), scale, crop) for n in sources.SAMPLE_VAL], skipped
    if os.path.isdir(spec) and os.path.exists(schema.manifest_path(spec)):
        manifest = schema.read_manifest(spec)
        if manifest.scale != scale:
            raise ValueError(f"--images={spec} was built for x{manifest.scale}, not x{scale}")
        images = []
        for raw in tf.data.TFRecordDataset(pipeline.shard_files(manifest, "val")):
            ex = schema.parse_example(raw)
            image = EvalImage(ex["key"].numpy().decode(), ex["hr"].numpy(), ex["lr"].numpy())
            if min(image.hr.shape[:2]) >= crop:  # As training validation, images smaller than the crop are left out.
                images.append(_crop_pair(image, crop, scale))
        return images, skipped
    paths = expand_inputs(spec)
    if not paths:
        raise ValueError(f"--images={spec}: no images found")
    images = []
    for p in paths:
        try:
            hr = load_rgb8(p)
        except (ImageError, OSError) as e:
            skipped[p] = str(e)
            continue
        if min(hr.shape[:2]) < 2 * scale + 1:
            skipped[p] = f"too small for x{scale} with {scale} border pixels shaved"
            continue
        images.append(_from_hr(os.path.relpath(p, spec) if os.path.isdir(spec) else os.path.basename(p), hr, scale,
                               crop))
    return images, skipped


def _detail_box(hr: np.ndarray, size: int) -> tuple:
    """The size x size HR window with the most gradient energy (where SR differences show)."""
    g = hr.astype(np.float32).mean(-1)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1]
    ii = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    h, w = energy.shape
    size = min(size, h, w)
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x), size


def comparison_grid(image: EvalImage, outputs: dict, scores: dict, scale: int) -> Image.Image:
    """LR (nearest) | bicubic | each model | HR, labelled with PSNR-Y, over zoomed insets of a detailed region."""
    h, w = image.hr.shape[:2]
    lr_up = np.repeat(np.repeat(image.lr, scale, 0), scale, 1)
    panels = [("LR (nearest)", lr_up)] + [(f"{k} {scores[k]['psnr_y']:.2f} dB", v) for k, v in outputs.items()]
    panels.append(("HR (ground truth)", image.hr))
    y, x, size = _detail_box(image.hr, max(16, min(h, w) // 4))
    zoom = max(1, min(w // size, 4))
    label_h, gap = 18, 6
    canvas = Image.new("RGB", (len(panels) * (w + gap) - gap, label_h + h + gap + size * zoom), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (label, arr) in enumerate(panels):
        left = i * (w + gap)
        canvas.paste(Image.fromarray(arr), (left, label_h))
        draw.rectangle((left + x, label_h + y, left + x + size - 1, label_h + y + size - 1), outline=(255, 0, 0))
        crop = Image.fromarray(arr[y:y + size, x:x + size]).resize((size * zoom, size * zoom), Image.NEAREST)
        canvas.paste(crop, (left, label_h + h + gap))
        draw.text((left + 2, 3), label, fill=(0, 0, 0))
    return canvas


def score_methods(methods: dict, images: list, scale: int, on_image=None) -> dict:
    """The one scoring loop (sr-evaluate, training validation and the zoo's figures all use it).

    Args:
      methods: {label: fn(lr uint8 [h, w, 3]) -> sr uint8 [sh, sw, 3]}; None for bicubic.
      images: EvalImage list.
      on_image: called as on_image(index, image, {label: sr}, {label: scores}) after each image.

    Returns:
      {label: {image name: {psnr_y, ssim_y, psnr_rgb, colour_shift_rgb, grid, seconds}}}, by `metrics.score` and
      `metrics.artefacts` (bicubic is the artefacts' reference).
    """
    out = {label: {} for label in methods}
    for i, img in enumerate(images):
        bicubic = bicubic_upscale(img.lr, scale)
        outputs, per = {}, {}
        for label, fn in methods.items():
            start = time.perf_counter()
            sr = bicubic if fn is None else fn(img.lr)
            seconds = time.perf_counter() - start
            outputs[label] = sr
            per[label] = out[label][img.name] = {**metrics.score(img.hr, sr, scale),
                                                 **metrics.artefacts(img.hr, sr, bicubic, scale), "seconds": seconds}
        if on_image is not None:
            on_image(i, img, outputs, per)
    return out


def mean_scores(per_image: dict) -> dict:
    """Means over the images; the colour shift is the largest |mean over images| of the three channels' shifts."""
    means = {k: float(np.mean([v[k] for v in per_image.values()])) for k in KEYS}
    rgb = np.mean([v["colour_shift_rgb"] for v in per_image.values()], axis=0)
    means["colour_shift_rgb"] = [float(v) for v in rgb]
    means["colour_shift"] = float(np.abs(rgb).max())
    means["flags"] = metrics.artefact_flags(means["colour_shift"], means["grid"])
    return means


def evaluate(models: dict, images: list, scale: int, out_dir: Optional[str] = None, progress: bool = True,
             tile: Optional[int] = None) -> dict:
    """Scores bicubic and each model ({label: Enhancer}) on `images`; writes grids and reports to `out_dir`.

    Returns:
      {"methods": {label: {"mean": {...}, "images": {name: {...}}}}, "scale": s, "protocol": "..."}
    """
    for label, m in models.items():
        if m.scale != scale:
            raise ValueError(f"model {label} is x{m.scale}, but --scale={scale}")
    bar = progress_lib.bar(len(images), unit_name="image") if progress else None
    if out_dir:
        os.makedirs(os.path.join(out_dir, "comparisons"), exist_ok=True)

    def on_image(i, img, outputs, per):
        if out_dir:
            safe = img.name.replace("/", "_").rsplit(".", 1)[0]
            comparison_grid(img, outputs, per, scale).save(os.path.join(out_dir, "comparisons", f"{safe}.png"))
        if bar is not None:
            bar.update(i + 1)
    fns = {"bicubic": None, **{label: (lambda lr, m=m: m.enhance(lr, tile=tile)) for label, m in models.items()}}
    methods = score_methods(fns, images, scale, on_image)
    results = {"scale": scale, "protocol": f"PSNR/SSIM on the BT.601 Y channel, {scale} border pixels shaved; "
               "LR = antialiased bicubic downscale of the HR crop to a multiple of the scale",
               "methods": {label: {"mean": mean_scores(per_img), "images": per_img,
                                   "alpha": getattr(models.get(label), "alpha", None)}
                           for label, per_img in methods.items()}}
    if out_dir:
        write_reports(results, out_dir)
        plot_against_alpha(results, os.path.join(out_dir, "alpha.png"))
    return results


def model_label(enhancer, spec: str, taken: set) -> str:
    """A model's row label: its export name and version (or `default`, or the path), plus the note of an SRGAN
    trained without its perceptual loss, e.g. "demo_srgan v1 (MSE content: VGG19 weights unavailable)"."""
    meta = enhancer.metadata
    if spec in ("default", ""):
        label = "default"
    elif meta.get("model_name"):
        label = f"{meta['model_name']} v{meta.get('version', '?')}"
    else:
        label = os.path.basename(os.path.normpath(spec))
    note = meta.get("training", {}).get("content_note")
    if note:
        label += f" ({note})"
    while label in taken:
        label += "'"
    taken.add(label)
    return label


class AtAlpha:
    """A model at one network-interpolation point (a row of `sr-evaluate --alpha`)."""

    def __init__(self, enhancer, alpha: float):
        self.enhancer, self.alpha, self.scale = enhancer, alpha, enhancer.scale

    def enhance(self, image, tile=None):
        return self.enhancer.enhance(image, tile=tile, alpha=self.alpha)


def alpha_row_label(label: str, alpha: float) -> str:
    return f"{label} alpha={alpha:g}"


def alpha_rows(label: str, enhancer, alphas: list) -> dict:
    """{row label: model} for `evaluate`: one row per alpha for a model with network interpolation, else one."""
    if not alphas or not enhancer.interpolation:
        return {label: enhancer}
    return {alpha_row_label(label, a): AtAlpha(enhancer, a) for a in alphas}


def plot_against_alpha(results: dict, path: str) -> Optional[str]:
    """PSNR-Y, colour shift and grid score against alpha for each model evaluated at several alphas (matplotlib;
    bicubic and the flag limits as reference lines). Returns the path, or None when no model has alpha rows."""
    series = {}
    for label, m in results["methods"].items():
        if m.get("alpha") is not None:
            series.setdefault(label.rsplit(" alpha=", 1)[0], []).append((m["alpha"], m["mean"]))
    if not series:
        return None
    # Here, not at the top: matplotlib costs a second at start-up; only the alpha plot needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # After use("Agg"), which must come first.

    bic = results["methods"]["bicubic"]["mean"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    panels = (("psnr_y", "PSNR-Y (dB), higher is closer", [(bic["psnr_y"], "bicubic", ":")]),
              ("colour_shift", "colour shift (uint8 levels)", [(metrics.COLOUR_SHIFT_LIMIT, "flag limit", "--")]),
              ("grid", "grid score (x bicubic's)", [(1.0, "bicubic", ":"), (metrics.GRID_LIMIT, "flag limit", "--")]))
    for ax, (key, title, refs) in zip(axes, panels):
        for model, points in series.items():
            points.sort()
            ax.plot([a for a, _ in points], [p[key] for _, p in points], "o-", label=model)
        for value, ref_label, style in refs:
            ax.axhline(value, color="gray", linestyle=style, label=ref_label)
        ax.set_xlabel("alpha (0: PSNR generator, 1: GAN generator)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[2].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(f"x{results['scale']}, {len(next(iter(results['methods'].values()))['images'])} images: "
                 "network interpolation, distortion against artefacts")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown_table(results: dict) -> str:
    """Means per method. A method with a colour shift over 2 levels or more periodic error energy than bicubic
    (a grid) is flagged in its last column."""
    bic = results["methods"]["bicubic"]["mean"]
    lines = ["| method | PSNR-Y (dB) | vs bicubic | SSIM-Y | PSNR-RGB (dB) | colour shift (levels) | grid (x bicubic) "
             "| s/image | flags |", "|---|---|---|---|---|---|---|---|---|"]
    for label, m in results["methods"].items():
        a = m["mean"]
        flags = ", ".join(a.get("flags", [])) if label != "bicubic" else ""
        lines.append(f"| {label} | {a['psnr_y']:.2f} | {a['psnr_y'] - bic['psnr_y']:+.2f} | {a['ssim_y']:.4f} | "
                     f"{a['psnr_rgb']:.2f} | {a.get('colour_shift', 0):.2f} | {a.get('grid', 1):.2f} | "
                     f"{a['seconds']:.3f} | {'**' + flags + '**' if flags else 'none'} |")
    return "\n".join(lines)


def write_reports(results: dict, out_dir: str) -> None:
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    names = list(next(iter(results["methods"].values()))["images"])
    per_image = ["| image | " + " | ".join(results["methods"]) + " |", "|---|" + "---|" * len(results["methods"])]
    for n in names:
        per_image.append(f"| {n} | " + " | ".join(f"{m['images'][n]['psnr_y']:.2f} / {m['images'][n]['ssim_y']:.4f}"
                                                  for m in results["methods"].values()) + " |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(f"# x{results['scale']} results\n\n{results['protocol']}.\n\n## Mean\n\n{markdown_table(results)}\n\n"
                f"## Per image (PSNR-Y dB / SSIM-Y)\n\n" + "\n".join(per_image) + "\n")
