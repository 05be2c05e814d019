"""Seamless tiled inference with bounded memory.

The image is cut into core tiles of `tile` x `tile` LR pixels. Each tile is run with `overlap` pixels of real
context on every side (clamped at the image border), and neighbouring outputs are cross-faded with linear ramps
over `overlap` pixels centred on the core border. The ramps of two neighbours sum to one, and the pixels that
matter are at least overlap/2 pixels from the edge of the context each tile saw, so no seam shows.

Memory: the model only ever sees one (tile + 2 * overlap)^2 input; blending keeps one band of tile rows in
float32. `tiled_bands` hands the output over band by band, so a writer that streams (PNG) never holds all of it.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Optional

import numpy as np

from sr_keras.image.limits import (  # The tile side every entry point defaults to.
    ACTIVATION_BUDGET,
    DEFAULT_TILE,
)

TILE_STEP = 32  # Memory-chosen tiles are multiples of this, and at least twice it.


def _ramp(length: int, lead: int, trail: int) -> np.ndarray:
    """1-D weights over an output span: rises over `lead` pixels, falls over `trail` pixels, 1 in between."""
    w = np.ones(length, np.float32)
    if lead:
        w[:lead] = (np.arange(lead, dtype=np.float32) + 0.5) / lead
    if trail:
        w[length - trail:] = np.minimum(w[length - trail:], ((np.arange(trail, dtype=np.float32) + 0.5) / trail)[::-1])
    return w


def _blend(out: np.ndarray, piece: Optional[np.ndarray], lead: int, trail: int, axis: int) -> None:
    """Weights `piece` (or `out` itself, when None) by `_ramp` along `axis` into `out`. Only the ramps are
    multiplied: between them the weight is 1, and no neighbour writes there (its ramp covers only the shared
    cross-fade), so those pixels are copied, which saves a pass over every output pixel."""
    n = out.shape[axis]
    w = _ramp(n, lead, trail)
    shape = [1, 1, 1]
    if lead + trail > n:  # Ramps that meet: weight everything.
        shape[axis] = n
        if piece is None:
            out *= w.reshape(shape)
        else:
            out += piece * w.reshape(shape)
        return

    def span(a, b):
        return (slice(None), slice(a, b)) if axis == 1 else (slice(a, b),)
    for a, b in ((0, lead), (n - trail, n)):
        if b > a:
            shape[axis] = b - a
            ramp = w[a:b].reshape(shape)
            if piece is None:
                out[span(a, b)] *= ramp
            else:
                out[span(a, b)] += piece[span(a, b)] * ramp
    if piece is not None:
        out[span(lead, n - trail)] = piece[span(lead, n - trail)]


def _py_where(cond, a, b):
    return a if cond else b


def tile_count(size, tile, overlap, where=_py_where):
    """How many core tiles cover `size` pixels along one axis. A last sliver shorter than the cross-fade joins the
    tile before it. Plain arithmetic, so it runs on Python ints and, with `where=tf.where`, on scalar tensors (the
    exported graph tiles with these very spans)."""
    n = (size + tile - 1) // tile
    return where((n > 1) & (size - (n - 1) * tile < overlap), n - 1, n)


def tile_span(i, n, size, tile, overlap, minimum=min, maximum=max, where=_py_where) -> tuple:
    """(context start, context end, core start, core end) of core tile `i` of `n` along one axis: the core is what
    the tile contributes, the context what the model sees for it (clamped at the image border)."""
    a = i * tile
    b = where(i + 1 < n, a + tile, size)
    return maximum(a - overlap, 0), minimum(b + overlap, size), a, b


def _spans(size: int, tile: int, overlap: int):
    """Per core tile along one axis: (input start, input end, output start, output end, lead ramp, trail ramp),
    all in LR pixels. The outputs reach half the overlap past the core, where neighbours cross-fade."""
    half = overlap // 2
    n = tile_count(size, tile, overlap)
    out = []
    for i in range(n):
        c0, c1, a, b = tile_span(i, n, size, tile, overlap)
        lead = half if i > 0 else 0
        trail = half if i < n - 1 else 0
        out.append((c0, c1, a - lead, b + trail, 2 * lead, 2 * trail))
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


def tiled_bands(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int, tile: int = DEFAULT_TILE,
                overlap: int = 32, on_tile: Optional[Callable[[], None]] = None) -> Iterator[np.ndarray]:
    """Applies an SR function tile by tile and yields the output in horizontal bands, top to bottom.

    The bands are final (all cross-fades done) and together cover the output exactly once, so a caller can
    write each to a file and drop it: memory then holds one band of tile rows, never the whole output.

    Args:
      fn: an [h, w, C] tile of `image` -> float32 [h * scale, w * scale, C'] (C' may differ from C).
      image: [H, W, C], any dtype `fn` takes (tiles are views: the image is never copied whole).
      scale: the model's upscaling factor.
      tile: core tile side in LR pixels (0 or >= the image: one pass).
      overlap: context and cross-fade width in LR pixels.
      on_tile: called after each model call (progress bars, cancellation).

    Yields:
      float32 [rows, W * scale, C] bands.
    """
    h, w = image.shape[:2]
    plan = _plan(h, w, tile, overlap)
    if plan is None:
        out = fn(image)
        if on_tile:
            on_tile()
        yield out
        return
    s = scale
    ys, xs = plan
    carry = None  # The previous band's trailing cross-fade rows, shared with this band's head.
    for y0, y1, oy0, oy1, lead_y, trail_y in ys:
        band = None  # Allocated at the first tile: `fn` may change the channel count (gray in, RGB out).
        for x0, x1, ox0, ox1, lead_x, trail_x in xs:
            sr = fn(image[y0:y1, x0:x1])
            if on_tile:
                on_tile()
            if band is None:
                band = np.zeros(((oy1 - oy0) * s, w * s, sr.shape[2]), np.float32)
            piece = sr[(oy0 - y0) * s:(oy1 - y0) * s, (ox0 - x0) * s:(ox1 - x0) * s]
            _blend(band[:, ox0 * s:ox1 * s], piece, lead_x * s, trail_x * s, axis=1)
        _blend(band, None, lead_y * s, trail_y * s, axis=0)
        if carry is not None:
            band[:carry.shape[0]] += carry
        keep = band.shape[0] - trail_y * s
        carry = band[keep:].copy() if trail_y else None
        yield band[:keep]
        del band  # Before the next band is allocated: one band in memory at a time.


def tiled_apply(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int, tile: int = DEFAULT_TILE,
                overlap: int = 32, on_tile: Optional[Callable[[], None]] = None) -> np.ndarray:
    """`tiled_bands` assembled into one float32 [H * scale, W * scale, C] array."""
    h, w = image.shape[:2]
    out = None
    top = 0
    for band in tiled_bands(fn, image, scale, tile, overlap, on_tile):
        if out is None:
            out = np.empty((h * scale, w * scale, band.shape[2]), np.float32)
        out[top:top + band.shape[0]] = band
        top += band.shape[0]
    return out


def memory_tile(bytes_per_pixel: int, overlap: int, budget: int = ACTIVATION_BUDGET,
                largest: int = DEFAULT_TILE) -> int:
    """The default core tile side of a model whose largest activation takes `bytes_per_pixel` per input pixel
    (`models.footprint`): the largest multiple of TILE_STEP, at most `largest`, whose tile with `overlap` of context
    on each side keeps that activation within `budget` bytes (and at least 2 * TILE_STEP, however large the model)."""
    side = math.isqrt(budget // max(int(bytes_per_pixel), 1))
    return max(2 * TILE_STEP, min(largest, (side - 2 * overlap) // TILE_STEP * TILE_STEP))


def self_ensemble(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """`fn` (an [h, w, C] tile -> float32 [h*s, w*s, C]) averaged over the 8 flips and 90-degree rotations of its
    input, each undone on the output: the geometric self-ensemble (Timofte et al. 2016, EDSR+). Run per tile, it
    equals the whole-image ensemble where the tile has its full context, and keeps memory bounded. 8x the time,
    typically +0.05 to 0.2 dB."""
    def ensemble(x):
        acc = None
        for k in range(4):
            for flip in (False, True):
                t = np.rot90(x, k)
                y = fn(np.ascontiguousarray(t[:, ::-1] if flip else t))
                y = np.rot90(y[:, ::-1] if flip else y, -k)
                acc = y if acc is None else acc + y
        return acc / 8.0
    return ensemble


def measure_receptive_field(fn: Callable[[np.ndarray], np.ndarray], scale: int, half: int = 64) -> int:
    """How far (in input pixels) one input pixel can change the output of `fn`, measured by perturbation.

    Args:
      fn: float32 [1, h, w, 3] -> [1, h * scale, w * scale, 3] (numpy in, numpy or tensor out).
      scale: the upscaling factor.
      half: half the probe's side; the measurement cannot exceed it.
    """
    base = np.full((1, 2 * half + 1, 2 * half + 1, 3), 0.5, np.float32)
    bumped = base.copy()
    bumped[0, half, half] += 0.25
    diff = np.abs(np.asarray(fn(bumped)) - np.asarray(fn(base)))[0].max(-1)
    ys, xs = np.nonzero(diff > 1e-5)
    centre = (half + 0.5) * scale
    reach = max(np.abs(ys + 0.5 - centre).max(initial=0), np.abs(xs + 0.5 - centre).max(initial=0))
    return int(np.ceil(reach / scale))


def default_overlap(receptive_field: int) -> int:
    """Tile context that shows no seam: the receptive field, and at least 16 pixels."""
    return max(16, receptive_field)


class ScaleError(ValueError):
    """A model whose output is not an image at an integer scale of its input (one line, said when it loads)."""


def measure_scale(fn: Callable[[np.ndarray], np.ndarray]) -> int:
    """A model's upscaling factor, from its outputs on two probes (float32 [1, h, w, 3] -> [1, h*s, w*s, 3]): a
    smooth ramp at 8 x 12 and 12 x 8 px, so a fixed-size model, a downscaling one or one that answers NaN is found
    when it loads, not on each file.

    Raises:
      ScaleError: the outputs are not finite, not 3 channels, or not the same integer multiple (at least 1) of both
        probes' height and width.
    """
    scales = []
    for h, w in ((8, 12), (12, 8)):
        ramp = np.linspace(0.2, 0.8, h * w * 3, dtype=np.float32).reshape(1, h, w, 3)
        try:
            out = np.asarray(fn(ramp))
        except Exception as e:  # noqa: BLE001 - a model that cannot take an image at all, in any runtime.
            raise ScaleError(f"the model fails on a {w}x{h} image ({type(e).__name__}: {str(e)[:120]})") from None
        if out.ndim != 4 or out.shape[0] != 1 or out.shape[-1] != 3:
            raise ScaleError(f"the model's output has shape {list(out.shape)} for a [1, {h}, {w}, 3] input, not an "
                             "RGB image")
        if not np.all(np.isfinite(out)):
            raise ScaleError("the model's output is not finite (NaN or infinity) on a plain image")
        sy, sx = out.shape[1] / h, out.shape[2] / w
        if sy != sx or sy < 1 or sy != int(sy):
            raise ScaleError(f"the model maps {w}x{h} to {out.shape[2]}x{out.shape[1]}: not an integer upscaling "
                             "of at least 1 (a fixed-size or downscaling model)")
        scales.append(int(sy))
    if scales[0] != scales[1]:
        raise ScaleError(f"the model's scale changes with the input ({scales[0]} and {scales[1]})")
    return scales[0]
