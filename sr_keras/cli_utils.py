"""Small helpers shared by the absl binaries."""

import os
import sys


def quiet_tf_logs() -> None:
    """Hides TF's C++ start-up chatter (oneDNN, CUDA probing) unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(message: str, code: int = 2) -> None:
    """Exits with one clear line on stderr, no stack trace."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)
