"""The user cache folder every download and conversion goes under (converted zoo models, loss networks, sources)."""

from __future__ import annotations

import os

CACHE_ENV = "SR_KERAS_CACHE"


def cache_dir() -> str:
    """$SR_KERAS_CACHE, else $XDG_CACHE_HOME/sr_keras, else ~/.cache/sr_keras."""
    if os.environ.get(CACHE_ENV):
        return os.path.expanduser(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sr_keras")
