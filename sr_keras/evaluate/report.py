"""sr-evaluate's reports: the Markdown tables, results.json, the comparison pictures and the alpha plot on the
perception-distortion plane."""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from sr_keras.evaluate import metrics


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


def comparison_grid(image, outputs: dict, scores: dict, scale: int) -> Image.Image:
    """LR (nearest) | bicubic | each model | HR, labelled with PSNR-Y (and LPIPS when scored), over zoomed insets
    of a detailed region. `image`: an `evaluate_lib.EvalImage`."""
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
    plane = bic.get("lpips") is not None
    fig, axes = plt.subplots(1, 4 if plane else 3, figsize=(17 if plane else 13, 4.2), constrained_layout=True)
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
    if plane:  # The perception-distortion plane (Blau & Michaeli, CVPR 2018): PSNR-Y against LPIPS.
        ax = axes[3]
        for model, points in series.items():
            ax.plot([p["psnr_y"] for _, p in points], [p["lpips"] for _, p in points], "o-")
            for a, p in points:
                ax.annotate(f"{a:g}", (p["psnr_y"], p["lpips"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        ax.plot([bic["psnr_y"]], [bic["lpips"]], "ks")
        ax.annotate("bicubic", (bic["psnr_y"], bic["lpips"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("PSNR-Y (dB), higher is closer")
        ax.set_ylabel("LPIPS, lower looks closer")
        ax.set_title("perception-distortion plane (labels: alpha)", fontsize=10)
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
    extra = [(k, title) for k, title in (("lpips", "LPIPS"), ("niqe", "NIQE")) if k in bic]
    lines = ["| method | PSNR-Y (dB) | vs bicubic | SSIM-Y | " + "".join(f"{t} | " for _, t in extra) +
             "PSNR-RGB (dB) | colour shift (levels) | grid (x bicubic) | s/image | s/MP | flags |",
             "|---|---|---|---|" + "---|" * len(extra) + "---|---|---|---|---|---|"]
    for label, m in results["methods"].items():
        a = m["mean"]
        flags = ", ".join(a.get("flags", [])) if label != "bicubic" else ""
        cells = "".join("n/a | " if a.get(k) is None else f"{a[k]:.4f} | " for k, _ in extra)
        lines.append(f"| {label} | {a['psnr_y']:.2f} | {a['psnr_y'] - bic['psnr_y']:+.2f} | {a['ssim_y']:.4f} | "
                     f"{cells}{a['psnr_rgb']:.2f} | {a.get('colour_shift', 0):.2f} | {a.get('grid', 1):.2f} | "
                     f"{a['seconds']:.3f} | {a.get('s_per_mp', 0):.3f} | {'**' + flags + '**' if flags else 'none'} |")
    return "\n".join(lines)


def write_reports(results: dict, out_dir: str) -> None:
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    names = list(next(iter(results["methods"].values()))["images"])
    keys = [("psnr_y", "PSNR-Y dB", ".2f"), ("ssim_y", "SSIM-Y", ".4f")] + [
        (k, t, ".4f") for k, t in (("lpips", "LPIPS"), ("niqe", "NIQE")) if k in results.get("metrics", ())]

    def cell(v: dict) -> str:
        return " / ".join("n/a" if v.get(k) is None else format(v[k], fmt) for k, _, fmt in keys)
    per_image = ["| image | " + " | ".join(results["methods"]) + " |", "|---|" + "---|" * len(results["methods"])]
    for n in names:
        per_image.append(f"| {n} | " + " | ".join(cell(m["images"][n]) for m in results["methods"].values()) + " |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(f"# x{results['scale']} results\n\n{results['protocol']}.\n\n## Mean\n\n{markdown_table(results)}\n\n"
                f"## Per image ({' / '.join(t for _, t, _ in keys)})\n\n" + "\n".join(per_image) + "\n")
