"""Progress that suits where the output goes: Keras' progress bar on a terminal, and on a file or a pipe (a log, CI)
one plain line every `LINE_EVERY_SECONDS` and at the end, instead of a bar redrawn on every step.

    bar = progress.bar(total, unit_name="step", stateful_metrics=["g/total"])
    bar.update(step, values=[("g/total", 0.1)])     # the keras.utils.Progbar interface (update, add)
"""

from __future__ import annotations

import sys
import time
from typing import Optional

LINE_EVERY_SECONDS = 30.0


class LineProgress:
    """`keras.utils.Progbar`'s interface, printing `<label> <done>/<total> <unit>s (<pct>%), <elapsed>, ETA ...,
    metrics` at most every `every_seconds`, and when done."""

    def __init__(self, target: Optional[int], unit_name: str = "step", stateful_metrics=None,
                 every_seconds: float = LINE_EVERY_SECONDS, stream=None, label: str = ""):
        self.target, self.unit_name, self.every = target, unit_name, every_seconds
        self.stateful = set(stateful_metrics or ())
        self.stream = stream or sys.stdout
        self.label = label
        self.start = time.monotonic()
        self.last_print = None
        self.rate_start = None  # (time, count) of the first update: the ETA's rate is measured from there, so
        # start-up (graph tracing, a model's first call) does not inflate it.
        self.current = 0
        self.values = {}

    def update(self, current: int, values=None, finalize: Optional[bool] = None) -> None:
        self.current = current
        for name, value in values or ():
            self.values[name] = value  # The latest value (a log wants the state now, not a running mean).
        now = time.monotonic()
        if self.rate_start is None and current > 0:
            self.rate_start = (now, current)
        done = self.target is not None and current >= self.target
        first = self.last_print is None and current > 0
        if not (done or first or (self.last_print is not None and now - self.last_print >= self.every)):
            return
        self.last_print = now
        elapsed = now - self.start
        parts = [f"{current}/{self.target if self.target is not None else '?'} {self.unit_name}s"]
        if self.target:
            parts[0] += f" ({100.0 * current / self.target:.0f}%)"
        parts.append(f"{elapsed:.0f} s")
        since, counted = self.rate_start
        if self.target and counted < current < self.target:
            parts.append(f"ETA {(now - since) / (current - counted) * (self.target - current):.0f} s")
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.values.items()]
        print((self.label + " " if self.label else "") + ", ".join(parts), file=self.stream, flush=True)

    def add(self, n: int, values=None) -> None:
        self.update(self.current + n, values)


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def message(text: str, bar=None) -> None:
    """Prints one line of `text` while `bar` (from `bar()`, or None) is showing: on a terminal the bar's partial
    line is cleared first (the bar draws itself again on its next update), so the two never run together."""
    if bar is not None and not isinstance(bar, LineProgress):
        sys.stdout.write("\r\x1b[K")
    print(text, flush=True)


def bar(target: Optional[int], unit_name: str = "step", stateful_metrics=None, verbose: bool = True):
    """A Keras progress bar on a terminal, a `LineProgress` otherwise; None when not `verbose`."""
    if not verbose:
        return None
    if is_terminal():
        # Here, not at the top: Keras (and so TensorFlow) only when a bar is shown on a terminal.
        from keras.utils import Progbar

        return Progbar(target, stateful_metrics=stateful_metrics, unit_name=unit_name)
    return LineProgress(target, unit_name, stateful_metrics)
