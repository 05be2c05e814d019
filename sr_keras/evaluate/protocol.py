"""Evaluating models against bicubic on HR photos: numbers (JSON, Markdown) and comparison pictures.

Each HR image is degraded exactly as the training data was (crop to a multiple of the scale, antialiased bicubic
down, rounded to uint8; `sr_keras.data.degradation`). Every method's uint8 output is scored with the project's one
protocol, `metrics.score` (PSNR-Y and SSIM-Y with `scale` border pixels shaved, and RGB PSNR), the same one the
validation logged during training uses.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from sr_keras import zoo
from sr_keras.data import degradation, pipeline, schema, sources
from sr_keras.data.degradation import bicubic_upscale
from sr_keras.evaluate import metrics, perceptual
from sr_keras.evaluate.report import comparison_grid, plot_against_alpha, write_reports
from sr_keras.image.imageio import ImageError, expand_inputs, load_rgb8
from sr_keras.utils import progress as progress_lib
from sr_keras.utils import safe_files

KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "grid", "seconds", "s_per_mp")
OPTIONAL_KEYS = ("lpips", "niqe")  # Scored when asked for (sr-evaluate --metrics); None where not defined.
METRICS = perceptual.METRICS
DEFAULT_METRICS = ("psnr", "ssim")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


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


def _lr_partners(lr_dir: str) -> dict:
    """{file stem: path} of the images in `lr_dir` (real-world paired sets: RealSR, DRealSR)."""
    if not os.path.isdir(lr_dir):
        raise ValueError(f"--lr_images={lr_dir}: no such folder")
    out = {}
    for p in sorted(safe_files.walk_files(lr_dir)):
        if p.lower().endswith(IMAGE_EXTENSIONS):
            stem = os.path.splitext(os.path.relpath(p, lr_dir))[0]
            if stem in out:
                raise ValueError(f"--lr_images={lr_dir}: two files for {stem} ({out[stem]} and {p})")
            out[stem] = p
    return out


def _paired(name: str, hr: np.ndarray, lr: np.ndarray, scale: int, crop: int) -> EvalImage:
    """A given (HR, LR) pair, HR trimmed to LR x scale (datasets crop HR to a multiple of the scale)."""
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if not (h <= hr.shape[0] < h + scale and w <= hr.shape[1] < w + scale):
        raise ValueError(f"{name}: the LR image is {lr.shape[1]}x{lr.shape[0]}, so the HR image should be "
                         f"{w}x{h} at x{scale}, not {hr.shape[1]}x{hr.shape[0]}")
    return _crop_pair(EvalImage(name, hr[:h, :w], lr), crop, scale)


_TOO_SMALL = ("too small to score: {scale} border pixels are shaved at x{scale}, and SSIM needs {window} x {window} "
              "pixels left")


def load_images(spec: str, scale: int, crop: int = 0, lr_images: str = "") -> tuple:
    """`sample` (the held-back sample photos), a TFRecord folder (its val split), a folder, a file or a glob.

    `crop`: score N x N HR centre crops instead of whole images (what training validation logs as val_crop<N>/).
    `lr_images`: a folder of given LR inputs, paired with the HR images by file stem (relative path without its
      extension), instead of bicubic downscales of them.

    Raises:
      ValueError: no images, or (with `lr_images`) an image without its partner, or a pair whose sizes do not
        match the scale, naming the file.

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
    partners = _lr_partners(lr_images) if lr_images else None
    if partners is not None:
        stems = {os.path.splitext(os.path.relpath(p, spec) if os.path.isdir(spec) else os.path.basename(p))[0]: p
                 for p in paths}
        for stem in sorted(set(stems) ^ set(partners)):
            if stem in stems:
                raise ValueError(f"{stems[stem]} has no LR partner {stem}.* in --lr_images={lr_images}")
            raise ValueError(f"{partners[stem]} has no HR partner {stem}.* in --images={spec}")
    images = []
    for p in paths:
        try:
            hr = load_rgb8(p)
        except (ImageError, OSError) as e:
            skipped[p] = str(e)
            continue
        if partners is not None:
            name = os.path.relpath(p, spec) if os.path.isdir(spec) else os.path.basename(p)
            lr_path = partners[os.path.splitext(name)[0]]
            try:
                lr = load_rgb8(lr_path)
            except (ImageError, OSError) as e:
                skipped[lr_path] = str(e)
                continue
            if min(lr.shape[:2]) * scale - 2 * scale < metrics.SSIM_WINDOW:
                skipped[p] = _TOO_SMALL.format(scale=scale, window=metrics.SSIM_WINDOW)
                continue
            images.append(_paired(name, hr, lr, scale, crop))
            continue
        if min(hr.shape[:2]) - 2 * scale < metrics.SSIM_WINDOW:
            skipped[p] = _TOO_SMALL.format(scale=scale, window=metrics.SSIM_WINDOW)
            continue
        images.append(_from_hr(os.path.relpath(p, spec) if os.path.isdir(spec) else os.path.basename(p), hr, scale,
                               crop))
    return images, skipped


def _perceptual(hr: np.ndarray, sr: np.ndarray, scale: int, which) -> dict:
    """LPIPS and NIQE (NIQE with `scale` border pixels shaved, as BasicSR); None where an image is too small."""
    out = {}
    if "lpips" in which:
        out["lpips"] = perceptual.lpips(hr, sr) if min(hr.shape[:2]) >= 32 else None
    if "niqe" in which:
        big = min(sr.shape[:2]) - 2 * scale >= perceptual.NIQE_BLOCK
        try:
            out["niqe"] = perceptual.niqe(sr, crop_border=scale) if big else None
        except (np.linalg.LinAlgError, ValueError):  # Too few textured blocks for its statistics: undefined here.
            out["niqe"] = None
    return out


def score_methods(methods: dict, images: list, scale: int, on_image=None, which=DEFAULT_METRICS) -> dict:
    """The one scoring loop (sr-evaluate, training validation and the zoo's figures all use it).

    Args:
      methods: {label: fn(lr uint8 [h, w, 3]) -> sr uint8 [sh, sw, 3]}; None for bicubic.
      images: EvalImage list.
      on_image: called as on_image(index, image, {label: sr}, {label: scores}) after each image.
      which: METRICS to score beyond PSNR and SSIM (which are always scored): "lpips", "niqe".

    Returns:
      {label: {image name: {psnr_y, ssim_y, psnr_rgb, colour_shift_rgb, grid, seconds[, lpips, niqe]}}}, by
      `metrics.score`, `metrics.artefacts` (bicubic is the artefacts' reference) and `perceptual_metrics`.
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
                                                 **metrics.artefacts(img.hr, sr, bicubic, scale), "seconds": seconds,
                                                 "s_per_mp": seconds / (sr.shape[0] * sr.shape[1] / 1e6),
                                                 **_perceptual(img.hr, sr, scale, which)}
        if on_image is not None:
            on_image(i, img, outputs, per)
    return out


def mean_scores(per_image: dict) -> dict:
    """Means over the images; the colour shift is the largest |mean over images| of the three channels' shifts."""
    means = {k: float(np.mean([v[k] for v in per_image.values()])) for k in KEYS}
    for k in OPTIONAL_KEYS:
        values = [v[k] for v in per_image.values() if v.get(k) is not None]
        if any(k in v for v in per_image.values()):
            means[k] = float(np.mean(values)) if values else None
    rgb = np.mean([v["colour_shift_rgb"] for v in per_image.values()], axis=0)
    means["colour_shift_rgb"] = [float(v) for v in rgb]
    means["colour_shift"] = float(np.abs(rgb).max())
    means["flags"] = metrics.artefact_flags(means["colour_shift"], means["grid"])
    return means


def evaluate(models: dict, images: list, scale: int, out_dir: Optional[str] = None, progress: bool = True,
             tile: Optional[int] = None, which=DEFAULT_METRICS, lr_given: bool = False) -> dict:
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
    methods = score_methods(fns, images, scale, on_image, which)
    lr = ("LR = the given images (--lr_images), paired by file stem" if lr_given else
          "LR = antialiased bicubic downscale of the HR crop to a multiple of the scale")
    extra = "; LPIPS: AlexNet, v0.1 heads" if "lpips" in which else ""
    extra += f"; NIQE: BasicSR's, Y channel, {scale} border pixels shaved" if "niqe" in which else ""
    results = {"scale": scale, "protocol": f"PSNR/SSIM on the BT.601 Y channel, {scale} border pixels shaved; "
               f"{lr}{extra}", "metrics": ["psnr", "ssim", *[m for m in which if m in OPTIONAL_KEYS]],
               "methods": {label: {"mean": mean_scores(per_img), "images": per_img,
                                   "alpha": getattr(models.get(label), "alpha", None)}
                           for label, per_img in methods.items()}}
    if out_dir:
        write_reports(results, out_dir)
        plot_against_alpha(results, os.path.join(out_dir, "alpha.png"))
    return results


def model_label(enhancer, spec: str, taken: set) -> str:
    """A model's row label: `default`, its zoo name for a model asked for by name (`span_x4`, `sr_keras_x4`, in
    any case), else its export name and version (or the path), plus the note of a GAN trained without its VGG19
    loss, e.g. "demo_srgan v1 (VGG16 content: VGG19 weights unavailable)"."""
    meta = enhancer.metadata
    name = zoo.match_name(spec)
    if spec in ("default", ""):
        label = "default"
    elif name:
        label = name
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


def sample_figures(version_dir: str) -> dict:
    """Mean PSNR-Y / SSIM-Y of a model and of bicubic on the held-back sample photos (`score_methods`, the
    project's one protocol), with the gain in dB: the figures on a zoo model's card and in zoo/figures.json."""
    # TensorFlow, only when measuring.
    from sr_keras.infer import enhancer as enhancer_lib

    enhancer = enhancer_lib.Enhancer(version_dir, precision="float32")  # Figures: the same on every CPU.
    images, _ = load_images("sample", enhancer.scale)
    per_image = score_methods({"model": enhancer.enhance, "bicubic": None}, images, enhancer.scale)
    mean = {k: {key: mean_scores(per_image[k])[key] for key in ("psnr_y", "ssim_y")} for k in ("model", "bicubic")}
    return {**mean, "gain_db": mean["model"]["psnr_y"] - mean["bicubic"]["psnr_y"],
            "images": [i.name for i in images]}
