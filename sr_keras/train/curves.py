"""Training curves as a picture: validation PSNR-Y of the model against bicubic, and the training losses, against
the step; read from a run's metrics.jsonl and drawn with matplotlib (TensorBoard has the same scalars,
interactively)."""

from __future__ import annotations

from typing import Optional

from sr_keras.train.run_dir import RunDir

SMOOTH = 20  # Logged points in the moving average of the training loss.


def _moving_average(values: list, n: int) -> list:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= n:
            total -= values[i - n]
        out.append(total / min(i + 1, n))
    return out


def training_curves_figure(rows: list, smooth: int = SMOOTH, pretrain_steps: Optional[int] = None):
    """A matplotlib Figure of metrics.jsonl rows, or None when they hold no loss and no validation.

    Top: validation PSNR-Y (dB) of the model (the EMA generator) with bicubic as the reference line. Bottom: the
    generator's training loss (moving average), log scale. A dotted line marks the start of the GAN phase.
    """
    val = [r for r in rows if "val/psnr_y" in r and "val/bicubic_psnr_y" in r]
    loss = [r for r in rows if "g/total" in r]
    if not val and not loss:
        return None
    # Here, not at the top: matplotlib costs a second at start-up; only drawing needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # After use("Agg"), which must come first.

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, constrained_layout=True)
    if val:
        steps = [r["step"] for r in val]
        top.plot(steps, [r["val/psnr_y"] for r in val], "o-", color="tab:red", label="model (EMA generator)")
        top.plot(steps, [r["val/bicubic_psnr_y"] for r in val], "--", color="gray", label="bicubic")
        gain = val[-1]["val/psnr_y"] - val[-1]["val/bicubic_psnr_y"]
        top.set_title(f"Validation PSNR-Y: {gain:+.2f} dB over bicubic at step {val[-1]['step']:,}", fontsize=11)
    top.set_ylabel("PSNR-Y (dB)")
    top.grid(alpha=0.3)
    if loss:
        values = [r["g/total"] for r in loss]
        bottom.plot([r["step"] for r in loss], _moving_average(values, smooth), color="tab:blue",
                    label=f"generator loss (moving average of {smooth} logged steps)")
        if min(values) > 0:
            bottom.set_yscale("log")
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("training step")
    bottom.grid(alpha=0.3, which="both")
    for ax in (top, bottom):
        if pretrain_steps and any(r["step"] > pretrain_steps for r in rows):
            ax.axvline(pretrain_steps, color="black", linestyle=":", label="GAN phase starts")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9, loc="best")
    return fig


def plot_training_curves(workdir: str, out_png: Optional[str] = None, smooth: int = SMOOTH) -> Optional[str]:
    """Writes the run's training curves picture (or `out_png`); returns its path, or None when the run has logged
    nothing yet. A line cut short by a kill is skipped."""
    run = RunDir(workdir)
    try:
        pretrain = run.read_config().pretrain_steps if run.is_run() else None
    except (OSError, ValueError, KeyError, TypeError):
        pretrain = None
    fig = training_curves_figure(run.read_metrics(), smooth, pretrain)
    if fig is None:
        return None
    # Here, not at the top: matplotlib costs a second at start-up; only drawing needs it.
    import matplotlib.pyplot as plt

    out_png = out_png or run.curves_path
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
