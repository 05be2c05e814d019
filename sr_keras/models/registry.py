"""The one registry of generator kinds (BasicSR's ARCH_REGISTRY): each architecture's file registers how a
`ModelConfig` builds it (`@register_generator("kind")`), and `models.build` dispatches on `ModelConfig.kind`. A new
architecture is its file, one registration there, its import in `models.build`, and its row in `models.config`
(names and published sizes, light for flags)."""

from __future__ import annotations

from typing import Callable

GENERATORS: dict = {}  # kind -> fn(ModelConfig) -> keras.Model


def register_generator(kind: str) -> Callable:
    """Decorator: `fn(ModelConfig) -> keras.Model` builds the generator of `kind`."""
    def add(fn):
        if kind in GENERATORS:
            raise ValueError(f"generator kind {kind!r} is registered twice")
        GENERATORS[kind] = fn
        return fn
    return add
