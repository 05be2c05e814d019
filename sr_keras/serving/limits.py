"""What one request may ask of sr-serve, and the start-up checks of its flags: each limit is a flag, named in the
error it causes, and a value that would refuse every request (or none of the abuse it is for) is refused at start."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Optional

# Each served model gets its own pixel limit and deadline (`for_model`). Unless a flag sets them, they follow from
# the model's cost, measured on this machine when a version loads: a model does DEFAULT_MAX_INPUT_PIXELS within
# its deadline with COST_MARGIN to spare, or as many pixels as fit in MAX_DERIVED_TIMEOUT_SECONDS when it is slower;
# its deadline is DEFAULT_REQUEST_TIMEOUT_SECONDS, or what its pixel limit needs with that margin.
DEFAULT_MAX_INPUT_PIXELS = 2_000_000
DEFAULT_REQUEST_TIMEOUT_SECONDS = 90.0
MAX_DERIVED_TIMEOUT_SECONDS = 600.0
COST_MARGIN = 2.0  # Real photos cost more per pixel than the small probe (tile overlap, PNG coding, a busy CPU).
FIXED_SECONDS = 5.0  # Decoding, queueing and encoding, on top of the model.
_PIXEL_STEP = 10_000  # Derived pixel limits are rounded down to this, so they read well on the page.


# What a per-request flag may say: a deadline shorter than any model call would refuse every request, one longer
# than a day is no deadline; a pixel limit beyond 10^10 (a 100,000 x 100,000 image) is no limit either.
MIN_REQUEST_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 86_400.0
MAX_PIXELS_LIMIT = 10**10


@dataclasses.dataclass(frozen=True)
class ModelLimits:
    """One served model's limits, as `for_model` derived them (shown on the web page, enforced per request)."""

    max_input_pixels: int  # 0: no limit.
    request_timeout_seconds: float
    seconds_per_megapixel: Optional[float]  # Measured, per input megapixel; None when it could not be.

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server. Each is a flag of sr-serve, named in the error it causes.

    `max_input_pixels` and `request_timeout_seconds` are defaults for every model (None: derived from each
    model's measured cost, see `for_model`); `model_pixels` and `model_timeouts` set them for one model by name.
    """

    max_request_bytes: int = 32 * 1024 * 1024  # --max_request_mb
    max_instances: int = 16  # --max_instances
    # Input pixels per request, all instances together, read from the headers.
    max_input_pixels: Optional[int] = None  # --max_input_pixels (0: no limit)
    body_timeout_seconds: float = 30.0  # --body_timeout_seconds
    # A connection that sends no complete request line and headers within this is closed (slow-header clients),
    # as is an idle keep-alive connection. A request being read or run is not affected.
    idle_timeout_seconds: float = 15.0  # --idle_timeout_seconds
    request_timeout_seconds: Optional[float] = None  # --request_timeout_seconds
    max_concurrent: int = 2  # --max_concurrent
    max_queue: int = 64  # --max_queue
    parse_workers: int = 1  # Processes that parse request JSON.
    max_parse_mb: int = 3072  # --max_parse_mb: address space of each parser process.
    model_pixels: Mapping[str, int] = dataclasses.field(default_factory=dict)  # --max_input_pixels=NAME=N
    model_timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)  # --request_timeout_seconds=NAME=S

    def __post_init__(self):
        """A limit that would refuse every request (or none of the abuse it is for) is refused at start."""
        pixels = [("", self.max_input_pixels)] if self.max_input_pixels is not None else []
        timeouts = [("", self.request_timeout_seconds)] if self.request_timeout_seconds is not None else []
        pixels += [(f"{name}=", n) for name, n in self.model_pixels.items()]
        timeouts += [(f"{name}=", t) for name, t in self.model_timeouts.items()]
        checks = (("max_request_mb", self.max_request_bytes / 2**20, self.max_request_bytes > 0, "above 0"),
                  ("max_instances", self.max_instances, self.max_instances >= 1, "at least 1"),
                  *((f"max_input_pixels={who}", n, 0 <= n <= MAX_PIXELS_LIMIT,
                     f"0 (no limit) or more, at most {MAX_PIXELS_LIMIT:.0e}") for who, n in pixels),
                  ("body_timeout_seconds", self.body_timeout_seconds, self.body_timeout_seconds > 0, "above 0"),
                  ("idle_timeout_seconds", self.idle_timeout_seconds, self.idle_timeout_seconds > 0, "above 0"),
                  *((f"request_timeout_seconds={who}", t, MIN_REQUEST_TIMEOUT_SECONDS <= t <= MAX_TIMEOUT_SECONDS,
                     f"from {MIN_REQUEST_TIMEOUT_SECONDS:g} to {MAX_TIMEOUT_SECONDS:g} seconds") for who, t in timeouts),
                  ("max_concurrent", self.max_concurrent, self.max_concurrent >= 1, "at least 1"),
                  ("max_queue", self.max_queue, self.max_queue >= 1, "at least 1"),
                  ("max_parse_mb", self.max_parse_mb, self.max_parse_mb == 0 or self.max_parse_mb >= 64,
                   "0 (no cap) or at least 64"))
        for flag, value, ok, need in checks:
            if not ok or value != value:  # NaN compares unequal to itself.
                flag, _, who = flag.partition("=")
                raise ValueError(f"--{flag}={who}{value:g} must be {need}")

    def check_names(self, served) -> None:
        """ValueError for a per-model limit naming no served model (a typo would silently change nothing)."""
        for flag, named in (("max_input_pixels", self.model_pixels), ("request_timeout_seconds", self.model_timeouts)):
            for name in named:
                if name not in served:
                    raise ValueError(f"--{flag}={name}=...: no model {name!r} is served here (serving: "
                                     f"{', '.join(served)})")

    def for_model(self, name: str, seconds_per_pixel: Optional[float]) -> ModelLimits:
        """`name`'s limits: set by a flag (for this model, else for all), else derived from its measured cost.

        With a cost, a derived pixel limit is what the deadline covers with COST_MARGIN to spare (at most
        DEFAULT_MAX_INPUT_PIXELS), and a derived deadline is what the pixel limit needs (at least
        DEFAULT_REQUEST_TIMEOUT_SECONDS; at most MAX_DERIVED_TIMEOUT_SECONDS when the pixels are derived too)."""
        pixels = self.model_pixels.get(name, self.max_input_pixels)
        timeout = self.model_timeouts.get(name, self.request_timeout_seconds)
        cost = seconds_per_pixel if seconds_per_pixel and seconds_per_pixel > 0 else None

        def fit(seconds: float) -> int:  # Pixels one deadline covers.
            n = (seconds - FIXED_SECONDS) / (COST_MARGIN * cost) if cost else DEFAULT_MAX_INPUT_PIXELS
            return max(_PIXEL_STEP, min(DEFAULT_MAX_INPUT_PIXELS, int(n) // _PIXEL_STEP * _PIXEL_STEP))

        def need(n: int) -> float:  # The deadline `n` pixels need.
            return DEFAULT_REQUEST_TIMEOUT_SECONDS if not (cost and n) else max(
                DEFAULT_REQUEST_TIMEOUT_SECONDS, math.ceil(FIXED_SECONDS + COST_MARGIN * cost * n))

        if pixels is None:
            pixels = fit(timeout if timeout is not None else MAX_DERIVED_TIMEOUT_SECONDS)
        if timeout is None:
            timeout = need(pixels)
        return ModelLimits(int(pixels), float(timeout), cost * 1e6 if cost else None)


def parse_per_model(text: str, flag: str, convert: Callable[[str], float]) -> tuple:
    """(value for every model or None, {model name: value}) from a flag such as `--max_input_pixels`:
    "" (derived), "2000000" (every model) or "realesrgan_x4plus=300000,span_x4=4000000", or both mixed.

    Raises:
      ValueError naming the flag and the entry that is not a number.
    """
    every, named = None, {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, _, value = entry.rpartition("=")
        try:
            number = convert(value.strip())
        except ValueError:
            raise ValueError(f"--{flag}={text}: {entry!r} is not a number or NAME=number") from None
        if not math.isfinite(number):
            raise ValueError(f"--{flag}={text}: {entry!r} is not a finite number")
        name = name.strip()
        if (name in named) if name else (every is not None):
            raise ValueError(f"--{flag}={text}: {name or 'the value for every model'} is given twice")
        if name:
            named[name] = number
        else:
            every = number
    return every, named


def count(text: str) -> int:
    """An integer flag value, also written as 2e6 or 2_000_000."""
    value = float(text.replace("_", ""))
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)


MIN_POLL_SECONDS = 0.1  # Polling more often than this only burns a core.


def check_port(port: int) -> None:
    """ValueError for a port outside 0..65535 (the C call would take it modulo 65536 and listen elsewhere)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"--port={port} must be 1..65535 (0: any free port)")


def check_poll_seconds(seconds: float) -> None:
    if not seconds >= MIN_POLL_SECONDS:  # NaN too.
        raise ValueError(f"--poll_seconds={seconds:g} must be at least {MIN_POLL_SECONDS:g} (polling more often "
                         "only burns a core)")


def cap_parser_memory(max_mb: int) -> None:
    """The parser processes' initializer: an address-space cap turns a runaway parse into MemoryError there, not an
    OOM kill of the server. Here, in a module without TensorFlow, so that starting a parser process (which imports
    what its initializer and `rest.parse_predict` need) loads neither TensorFlow nor its start-up log lines."""
    import resource  # Here: POSIX only, and only the parser processes need it.

    if max_mb:
        limit = max_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
