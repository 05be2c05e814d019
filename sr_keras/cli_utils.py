"""Small helpers shared by the absl binaries."""

import os
import sys


def quiet_tf_logs() -> None:
    """Hides TF's C++ start-up chatter and INFO logs (checkpoint sharding...) unless --verbosity asks for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import flags, logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def fail(message: str, code: int = 2) -> None:
    """Exits with one clear line on stderr, no stack trace."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)
