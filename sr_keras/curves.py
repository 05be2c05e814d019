"""Training curves as pictures: the validation PSNR-Y gain over bicubic and the training loss against steps, read
from a run's metrics.jsonl and drawn with Pillow (TensorBoard has the same scalars, interactively)."""

from __future__ import annotations

from typing import Optional

from PIL import Image, ImageDraw

from sr_keras.run_dir import RunDir

W, H, PAD = 720, 260, 52


def _panel(draw: ImageDraw.ImageDraw, top: int, xs: list, ys: list, x_max: float, title: str, color: str,
           zero_line: bool = False) -> None:
    """One line chart in the band [top, top + H) with axes, 5 ticks per axis and a title."""
    left, right, y0, y1 = PAD, W - 16, top + 24, top + H - 30
    lo, hi = min(ys + ([0.0] if zero_line else [])), max(ys + ([0.0] if zero_line else []))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)

    def px(x, y):
        return left + (right - left) * x / max(x_max, 1), y1 - (y1 - y0) * (y - lo) / (hi - lo)

    draw.text((left, top + 4), title, fill="black")
    draw.rectangle([left, y0, right, y1], outline="#888888")
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        _, yp = px(0, yv)
        draw.line([left - 4, yp, left, yp], fill="#888888")
        draw.text((4, yp - 6), f"{yv:.3g}", fill="#444444")
        xv = x_max * i / 4
        xp, _ = px(xv, lo)
        draw.line([xp, y1, xp, y1 + 4], fill="#888888")
        draw.text((xp - 12, y1 + 6), f"{int(xv)}", fill="#444444")
    if zero_line:
        _, yz = px(0, 0.0)
        draw.line([left, yz, right, yz], fill="#bbbbbb")
    points = [px(x, y) for x, y in zip(xs, ys)]
    if len(points) > 1:
        draw.line(points, fill=color, width=2)
    for p in points if len(points) < 40 else points[-1:]:
        draw.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=color)


def plot_training_curves(workdir: str, out_png: Optional[str] = None, smooth: int = 20) -> Optional[str]:
    """Writes <workdir>/training_curves.png (or `out_png`): the validation PSNR-Y gain over bicubic, and the
    generator's training loss (moving average over `smooth` logged points). Returns the path, or None when the
    run has logged nothing yet."""
    run = RunDir(workdir)
    rows = run.read_metrics()
    val = [r for r in rows if "val/psnr_y" in r and "val/bicubic_psnr_y" in r]
    loss = [r for r in rows if "g/total" in r]
    if not val and not loss:
        return None
    x_max = max(r["step"] for r in rows)
    img = Image.new("RGB", (W, 2 * H), "white")
    draw = ImageDraw.Draw(img)
    if val:
        gains = [r["val/psnr_y"] - r["val/bicubic_psnr_y"] for r in val]
        _panel(draw, 0, [r["step"] for r in val], gains, x_max,
               f"validation PSNR-Y gain over bicubic (dB) vs step; last {gains[-1]:+.2f} dB at step "
               f"{val[-1]['step']}", "#c03030", zero_line=True)
    if loss:
        values = [r["g/total"] for r in loss]
        averaged = [sum(values[max(0, i - smooth + 1):i + 1]) / len(values[max(0, i - smooth + 1):i + 1])
                    for i in range(len(values))]
        _panel(draw, H, [r["step"] for r in loss], averaged, x_max,
               f"generator training loss (moving average of {smooth} logged points) vs step", "#3050c0")
    out_png = out_png or run.curves_path
    img.save(out_png)
    return out_png
