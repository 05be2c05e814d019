"""Seamless tiled inference with bounded memory.

The image is cut into core tiles of `tile` x `tile` LR pixels. Each tile is run with `overlap` pixels of real
context on every side (clamped at the image border), and neighbouring outputs are cross-faded with linear ramps
over `overlap` pixels centred on the core border. The ramps of two neighbours sum to one, and the pixels that
matter are at least overlap/2 pixels from the edge of the context each tile saw, so no seam shows.

Memory: the model only ever sees one (tile + 2 * overlap)^2 input; blending keeps one band of tile rows in
float32. Only the output array itself grows with the image.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np


def _ramp(length: int, lead: int, trail: int) -> np.ndarray:
    """1-D weights over an output span: rises over `lead` pixels, falls over `trail` pixels, 1 in between."""
    w = np.ones(length, np.float32)
    if lead:
        w[:lead] = (np.arange(lead, dtype=np.float32) + 0.5) / lead
    if trail:
        w[length - trail:] = np.minimum(w[length - trail:], ((np.arange(trail, dtype=np.float32) + 0.5) / trail)[::-1])
    return w


def _spans(size: int, tile: int, overlap: int):
    """Per core tile along one axis: (input start, input end, output start, output end, lead ramp, trail ramp),
    all in LR pixels."""
    half = overlap // 2
    starts = list(range(0, size, tile))
    if len(starts) > 1 and size - starts[-1] < overlap:
        starts.pop()  # A sliver shorter than the cross-fade joins the tile before it.
    out = []
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else size
        lead = half if i > 0 else 0
        trail = half if i < len(starts) - 1 else 0
        out.append((max(0, a - overlap), min(size, b + overlap), a - lead, b + trail, 2 * lead, 2 * trail))
    return out


def _plan(h: int, w: int, tile: int, overlap: int):
    """(row spans, column spans) of the tiles, or None when the image runs in one pass."""
    if not tile or (h <= tile and w <= tile):
        return None
    overlap = min(overlap, tile)  # A ramp wider than the tile would reach past the neighbour.
    return _spans(h, tile, overlap), _spans(w, tile, overlap)


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    """How many times `tiled_apply` calls the model on an h x w image."""
    plan = _plan(h, w, tile, overlap)
    return 1 if plan is None else len(plan[0]) * len(plan[1])


def tiled_apply(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int, tile: int = 256,
                overlap: int = 32, on_tile: Optional[Callable[[], None]] = None) -> np.ndarray:
    """Applies an SR function to an image tile by tile.

    Args:
      fn: float32 [h, w, 3] in [0, 1] -> float32 [h * scale, w * scale, 3].
      image: float32 [H, W, 3].
      scale: the model's upscaling factor.
      tile: core tile side in LR pixels (0 or >= the image: one pass).
      overlap: context and cross-fade width in LR pixels.
      on_tile: called after each model call (for progress bars).

    Returns:
      float32 [H * scale, W * scale, 3].
    """
    h, w = image.shape[:2]
    plan = _plan(h, w, tile, overlap)
    if plan is None:
        out = fn(image)
        if on_tile:
            on_tile()
        return out
    s = scale
    out = np.empty((h * s, w * s, image.shape[2]), np.float32)
    ys, xs = plan
    carry = None  # (first HR row, rows, weights) of the previous band's trailing cross-fade.
    for y0, y1, oy0, oy1, lead_y, trail_y in ys:
        band = np.zeros(((oy1 - oy0) * s, w * s, image.shape[2]), np.float32)
        for x0, x1, ox0, ox1, lead_x, trail_x in xs:
            sr = fn(image[y0:y1, x0:x1])
            if on_tile:
                on_tile()
            piece = sr[(oy0 - y0) * s:(oy1 - y0) * s, (ox0 - x0) * s:(ox1 - x0) * s]
            band[:, ox0 * s:ox1 * s] += piece * _ramp(piece.shape[1], lead_x * s, trail_x * s)[None, :, None]
        wy = _ramp(band.shape[0], lead_y * s, trail_y * s)[:, None, None]
        band *= wy
        top = oy0 * s
        if carry is not None:  # The previous band's tail and this band's head share these rows.
            c_top, c_rows = carry
            band[:c_rows.shape[0]] += c_rows
            assert c_top == top
        keep = band.shape[0] - trail_y * s
        out[top:top + keep] = band[:keep]
        carry = (top + keep, band[keep:].copy()) if trail_y else None
    return out
