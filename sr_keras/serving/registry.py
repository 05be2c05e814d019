"""Model versions under a TF Serving model base path: discovery by polling, loading, and the serving policy.

Like TF Serving's default ("latest") policy, the newest version that loads is served; a new version folder is picked
up without a restart, and the previous one keeps serving until the new one has loaded. A version that fails to load
is reported in the status (without server paths) and does not replace the one being served; it is tried again
when its folder changes (a repaired or completed copy). When the newest version is broken, the newest older one
that loads is served, at start-up too.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2

from sr_keras.infer import enhancer
from sr_keras.savedmodel import layout
from sr_keras.savedmodel.layout import complete_versions
from sr_keras.serving import rest
from sr_keras.serving.predict import SIGNATURES


@dataclasses.dataclass
class Version:
    number: int
    state: str  # LOADING | AVAILABLE | END
    model: Optional[object] = None  # An `enhancer.Enhancer` while AVAILABLE.
    error: str = ""
    signatures: dict = dataclasses.field(default_factory=dict)  # `rest.describe_signatures` of the model.
    fingerprint: tuple = ()  # What the folder looked like when it was loaded or failed.
    seconds_per_pixel: Optional[float] = None  # Measured at load (`measure_cost`), per input pixel.


_PATH_LIKE = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s'\"/\\:;,)]+)+[/\\]?")


# TensorFlow's errors carry graph internals: a "Graph execution error" preamble with the Python stack of the node,
# then the message, then `{{node ...}}`, `[[...]]` or `[Op:...]`. Only the message means anything to a client.
_TF_PREAMBLE = re.compile(r"^(Graph execution error:|Detected at node|\s+File |\s{2,}\S)")
_TF_MARKERS = re.compile(r"\s*(?:for '\{\{|\{\{|\[\[|\[Op:|\(defined at ).*$")


def public_error(e: BaseException) -> str:
    """An error message fit for clients: the exception type and the first line of its message, with file paths
    and TensorFlow op internals removed."""
    message = getattr(e, "message", None) if type(e).__module__.startswith("tensorflow") else None
    lines = [line for line in str(message if message is not None else e).splitlines()
             if line.strip() and not _TF_PREAMBLE.match(line)]
    text = _TF_MARKERS.sub("", lines[0]) if lines else ""
    text = " ".join(f"{type(e).__name__}: {text}".split()).rstrip(" :")
    return _PATH_LIKE.sub("<path>", text)[:300]


def folder_fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes when anything in the folder does."""
    out = []
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            out.append((os.path.relpath(p, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def writable_by_others(base_path: str) -> list:
    """The model base path and the folders in it that users other than the owner may write to."""

    found = []
    for root, dirs, _ in os.walk(base_path):
        try:
            mode = os.stat(root).st_mode
        except OSError:
            continue
        if mode & (stat.S_IWOTH | stat.S_IWGRP) and not mode & stat.S_ISVTX:
            found.append(root)
        if root != base_path:
            dirs[:] = []  # The base path and the version folders are what matter.
    return found


class ModelRegistry:
    """The versions of one model name.

    Args:
      loader: version folder -> a servable model (default: `enhancer.Enhancer` with the given options).
    """

    def __init__(self, name: str, base_path: str, keep_versions: int = 1,
                 loader: Optional[Callable[[str], object]] = None):
        self.name = name
        self.base_path = base_path
        self.keep_versions = keep_versions
        self.loader = loader or _load_enhancer
        self._versions: dict = {}
        self._lock = threading.Lock()

    def on_disk(self) -> list:
        """Complete version folders (numeric name with saved_model.pb), ascending."""

        return complete_versions(self.base_path)

    def poll(self) -> None:
        """Serves the newest version on disk that loads; retires versions beyond `keep_versions`.

        Versions newer than the one being served are tried, newest first, each once per change of its folder.
        """
        with self._lock:
            serving = max((n for n, v in self._versions.items() if v.state == "AVAILABLE"), default=-1)
        for number in reversed(self.on_disk()):
            if number <= serving:
                return
            if self._try_load(number):
                return

    def _try_load(self, number: int) -> bool:
        path = os.path.join(self.base_path, str(number))
        fingerprint = folder_fingerprint(path)
        with self._lock:
            known = self._versions.get(number)
            if known is not None and known.error and known.fingerprint == fingerprint:
                return False  # Failed before and nothing changed since: not worth another load.
            self._versions[number] = Version(number, "LOADING", fingerprint=fingerprint)
        try:
            model = self.loader(path)
            signatures = served_signatures(model, path)
            cost = measure_cost(model)
            if cost:
                model.tile = stoppable_tile(model, cost)
        except Exception as e:  # Any load failure: keep serving what we had.
            logging.error("version %d of %s failed to load: %s", number, self.name, e)
            with self._lock:
                self._versions[number] = Version(number, "END", error=public_error(e), fingerprint=fingerprint)
            return False
        with self._lock:
            previous = max((n for n, v in self._versions.items() if v.state == "AVAILABLE"), default=None)
            self._versions[number] = Version(number, "AVAILABLE", model, fingerprint=fingerprint,
                                             signatures=signatures, seconds_per_pixel=cost)
            available = sorted(n for n, v in self._versions.items() if v.state == "AVAILABLE")
            for n in available[:-self.keep_versions]:
                self._versions[n] = Version(n, "END")  # Dropping the reference unloads it.
        cost_text = f", {cost * 1e6:.3g} s per input MP" if cost else ""
        if previous is None:
            logging.info("serving %s version %d%s", self.name, number, cost_text)
        else:  # A hot load: one line in the server's log, whatever the verbosity.
            print(f"hot-loaded {self.name} version {number} from {path} (was version {previous}){cost_text}",
                  file=sys.stderr, flush=True)
        return True

    def get(self, version: Optional[int] = None) -> Optional[Version]:
        """The requested (or latest) AVAILABLE version, or None."""
        with self._lock:
            available = {n: v for n, v in self._versions.items() if v.state == "AVAILABLE"}
        if not available:
            return None
        if version is None:
            return available[max(available)]
        return available.get(version)

    def status(self, version: Optional[int] = None) -> list:
        """[(number, state, error message)] of the known versions (or of `version`), newest first."""
        with self._lock:
            items = sorted(self._versions.values(), key=lambda v: -v.number)
        return [(v.number, v.state, v.error) for v in items if version is None or v.number == version]


PROBE_SIDE = 64  # Input side of the cost probe: a few tiles' worth of work, even for the slowest zoo model.
PROBE_RUNS = 5  # Timed runs of the probe; the median is the cost, so one run's noise (another load) cannot set it.
PROBE_BUDGET_SECONDS = 3.0  # ... fewer (at least one) for a model so slow that five would delay serving.


def measure_cost(model) -> Optional[float]:
    """Seconds per input pixel of `model.enhance` on this machine: the median of up to PROBE_RUNS runs on a
    PROBE_SIDE square of noise, after one that builds the graph. Small inputs cost more per pixel than photos, which
    errs on the safe side. None for a model that cannot be probed (its requests still run, under the default
    limits)."""
    x = np.random.default_rng(0).integers(0, 256, (PROBE_SIDE, PROBE_SIDE, 3), dtype=np.uint8)
    try:
        model.enhance(x)
        times, begin = [], time.perf_counter()
        while len(times) < PROBE_RUNS and (not times or time.perf_counter() - begin < PROBE_BUDGET_SECONDS):
            start = time.perf_counter()
            model.enhance(x)
            times.append(time.perf_counter() - start)
        return float(np.median(times)) / x[..., 0].size
    except Exception as e:  # noqa: BLE001 - a probe failure must not stop a model that loads from serving.
        logging.warning("could not measure the cost of a model (%s); it gets the default limits", e)
        return None


STOP_STEP_SECONDS = 2.0  # A served request checks for a hang-up or its deadline at least this often.


def stoppable_tile(model, seconds_per_pixel: float) -> int:
    """The tile side a served request runs in: the model's own, or smaller for a slow model, so that one tile
    (with its context) takes about STOP_STEP_SECONDS and a request whose client hung up, or whose deadline passed,
    stops within that even when the whole image would fit in one tile. Never larger than the model's own, and not
    made smaller than four times the context (more context than core would double the work) or 64 px."""
    overlap = model.default_overlap()
    fits = int((STOP_STEP_SECONDS / seconds_per_pixel) ** 0.5) - 2 * overlap
    tile = model.tile  # 0: whole images at once, bounded here too.
    if tile and fits >= tile:
        return tile
    floor = max(fits, 4 * overlap, 64)
    return min(tile, floor) if tile else floor


def _load_enhancer(path: str):
    return enhancer.Enhancer(path, max_input_pixels=None)  # The server checks its own per-request limit.


def served_signatures(model, path: str) -> dict:
    """`rest.describe_signatures` of what a version answers: the loaded model's signatures, or for a model rebuilt
    in bfloat16 (the default on CPUs with it), whose requests run through the rebuilt generator, the export's own,
    read from its saved_model.pb without loading the graph and the weights a second time.

    Raises:
      ValueError: a signature sr-export writes is missing.
    """
    if model.signatures:
        described = rest.describe_signatures(model.signatures)
    else:
        with open(os.path.join(path, layout.SAVED_MODEL_FILE), "rb") as f:
            graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0]

        def specs(infos):  # TensorInfo protos -> Specs, as of the loaded signatures' TensorSpecs.
            return {n: rest.spec_of(tf.TensorSpec(tf.TensorShape(t.tensor_shape), tf.dtypes.as_dtype(t.dtype)))
                    for n, t in infos.items()}
        described = {name: {"inputs": specs(d.inputs), "outputs": specs(d.outputs)}
                     for name, d in graph.signature_def.items() if not name.startswith("__")}  # Not the init op.
    missing = [s for s in SIGNATURES if s not in described]
    if missing:
        raise ValueError(f"not an sr-export SavedModel: no {', '.join(missing)} signature")
    return described
