"""What one request may ask of sr-serve, and the start-up checks of its flags: each limit is a flag, named in the
error it causes, and a value that would refuse every request (or none of the abuse it is for) is refused at start."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server. Each is a flag of sr-serve, named in the error it causes."""

    max_request_bytes: int = 32 * 1024 * 1024  # --max_request_mb
    max_instances: int = 16  # --max_instances
    # Input pixels per request, all instances together, read from the headers. With the default model at x4 on 2
    # CPU cores a 1 MP input takes about 17 s (benchmarks/bench_memory.py), so 2 MP stays well within the deadline;
    # raise both on a GPU.
    max_input_pixels: int = 2_000_000  # --max_input_pixels
    body_timeout_seconds: float = 30.0  # --body_timeout_seconds
    # A connection that sends no complete request line and headers within this is closed (slow-header clients),
    # as is an idle keep-alive connection. A request being read or run is not affected.
    idle_timeout_seconds: float = 15.0  # --idle_timeout_seconds
    request_timeout_seconds: float = 90.0  # --request_timeout_seconds
    max_concurrent: int = 2  # --max_concurrent
    max_queue: int = 64  # --max_queue
    parse_workers: int = 1  # Processes that parse request JSON.
    max_parse_mb: int = 3072  # --max_parse_mb: address space of each parser process.

    def __post_init__(self):
        """A limit that would refuse every request (or none of the abuse it is for) is refused at start."""
        checks = (("max_request_mb", self.max_request_bytes / 2**20, self.max_request_bytes > 0, "above 0"),
                  ("max_instances", self.max_instances, self.max_instances >= 1, "at least 1"),
                  ("max_input_pixels", self.max_input_pixels, self.max_input_pixels >= 0, "0 (no limit) or more"),
                  ("body_timeout_seconds", self.body_timeout_seconds, self.body_timeout_seconds > 0, "above 0"),
                  ("idle_timeout_seconds", self.idle_timeout_seconds, self.idle_timeout_seconds > 0, "above 0"),
                  ("request_timeout_seconds", self.request_timeout_seconds, self.request_timeout_seconds > 0,
                   "above 0"),
                  ("max_concurrent", self.max_concurrent, self.max_concurrent >= 1, "at least 1"),
                  ("max_queue", self.max_queue, self.max_queue >= 1, "at least 1"),
                  ("max_parse_mb", self.max_parse_mb, self.max_parse_mb == 0 or self.max_parse_mb >= 64,
                   "0 (no cap) or at least 64"))
        for flag, value, ok, need in checks:
            if not ok or value != value:  # NaN compares unequal to itself.
                raise ValueError(f"--{flag}={value:g} must be {need}")


MIN_POLL_SECONDS = 0.1  # Polling more often than this only burns a core.


def check_port(port: int) -> None:
    """ValueError for a port outside 0..65535 (the C call would take it modulo 65536 and listen elsewhere)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"--port={port} must be 1..65535 (0: any free port)")


def check_poll_seconds(seconds: float) -> None:
    if not seconds >= MIN_POLL_SECONDS:  # NaN too.
        raise ValueError(f"--poll_seconds={seconds:g} must be at least {MIN_POLL_SECONDS:g} (polling more often "
                         "only burns a core)")
