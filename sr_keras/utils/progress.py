"""Progress that suits where the output goes: one line redrawn in place on a terminal, and on a file or a pipe (a
log, CI) one plain line every `LINE_EVERY_SECONDS` and at the end, instead of a bar redrawn on every step.

    bar = progress.bar(total, unit_name="step", stateful_metrics=["g/total"])
    bar.update(step, values=[("g/total", 0.1)])     # the keras.utils.Progbar interface (update, add)

The ETA follows the recent rate (the last `ETA_WINDOW_SECONDS`), not the average since the start: a run whose
second phase is slower than its first (sr-train's GAN phase: about 10x) is not promised the first phase's speed.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Optional

LINE_EVERY_SECONDS = 30.0
TERMINAL_EVERY_SECONDS = 0.5  # A terminal's line is redrawn at most this often.
ETA_WINDOW_SECONDS = 60.0


class LineProgress:
    """`keras.utils.Progbar`'s interface, printing `<label> <done>/<total> <unit>s (<pct>%), <elapsed>, ETA ...,
    metrics` at most every `every_seconds`, and when done. `redraw`: the line is redrawn in place (a terminal),
    with a newline only at the end."""

    def __init__(self, target: Optional[int], unit_name: str = "step", stateful_metrics=None,
                 every_seconds: float = LINE_EVERY_SECONDS, stream=None, label: str = "", redraw: bool = False):
        self.target, self.unit_name, self.every = target, unit_name, every_seconds
        self.stateful = set(stateful_metrics or ())
        self.stream = stream or sys.stdout
        self.label = label
        self.redraw = redraw
        self.start = time.monotonic()
        self.last_print = None
        # (time, count) of the updates of the last ETA_WINDOW_SECONDS (and the one before): the ETA's rate. The
        # first update is the oldest there can be, so start-up (graph tracing, a first call) never counts.
        self.recent = collections.deque()
        self.current = 0
        self.values = {}
        self.interrupted = False  # A message was printed over the line: draw it again at the next update.

    def update(self, current: int, values=None, finalize: Optional[bool] = None) -> None:
        self.current = current
        for name, value in values or ():
            self.values[name] = value  # The latest value (a log wants the state now, not a running mean).
        now = time.monotonic()
        if current > 0:
            self.recent.append((now, current))
            while len(self.recent) > 2 and now - self.recent[1][0] >= ETA_WINDOW_SECONDS:
                self.recent.popleft()
        done = self.target is not None and current >= self.target
        first = self.last_print is None and current > 0
        due = self.last_print is not None and (now - self.last_print >= self.every or self.interrupted)
        if not (done or first or due):
            return
        self.last_print, self.interrupted = now, False
        elapsed = now - self.start
        parts = [f"{current}/{self.target if self.target is not None else '?'} {self.unit_name}s"]
        if self.target:
            parts[0] += f" ({100.0 * current / self.target:.0f}%)"
        parts.append(f"{elapsed:.0f} s")
        since, counted = self.recent[0] if self.recent else (now, current)
        if self.target and counted < current < self.target:
            parts.append(f"ETA {(now - since) / (current - counted) * (self.target - current):.0f} s")
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.values.items()]
        text = (self.label + " " if self.label else "") + ", ".join(parts)
        if self.redraw:
            self.stream.write("\r\x1b[K" + text + ("\n" if done else ""))
            self.stream.flush()
        else:
            print(text, file=self.stream, flush=True)

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
    if isinstance(bar, LineProgress) and bar.redraw:
        bar.stream.write("\r\x1b[K")
        bar.interrupted = True
    print(text, flush=True)


def bar(target: Optional[int], unit_name: str = "step", stateful_metrics=None, verbose: bool = True):
    """A line redrawn in place on a terminal, plain lines otherwise (`LineProgress`); None when not `verbose`."""
    if not verbose:
        return None
    if is_terminal():
        return LineProgress(target, unit_name, stateful_metrics, every_seconds=TERMINAL_EVERY_SECONDS, redraw=True)
    return LineProgress(target, unit_name, stateful_metrics)
