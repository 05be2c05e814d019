"""Running a predict request on a served model: the three sr-export signatures, tile by tile, with limits.

The REST server does not call a signature's graph in one go: it runs the model through `Enhancer` (the same
seamless tiles as `sr_keras.load`), so that memory is bounded, and it can stop between tiles when the client
hangs up or the request's deadline passes. The answers are those of the signatures (`sr_keras.savedmodel.signatures`):

  serving_default  image bytes -> PNG bytes (8-bit; gray stays gray, alpha is kept; EXIF orientation applied)
  enhance          uint8 [N, H, W, 3] -> uint8 [N, sH, sW, 3]
  enhance_float    float32 [N, H, W, 3] in [0, 1] -> float32 [N, sH, sW, 3]
and, for models with network interpolation, their `_alpha` variants (an `alpha` in [0, 1] per instance).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
from typing import Callable, Optional

import numpy as np

from sr_keras.image import imageio
from sr_keras.savedmodel import signatures
from sr_keras.serving.rest import RestError

SIGNATURES = signatures.NAMES


def request_pixels(sig_name: str, inputs: dict) -> int:
    """Input pixels of a request, all instances together, read from the image headers (nothing is decoded).

    Raises:
      RestError(400): an instance that is not an image.
    """
    value = inputs[signatures.base_signature(sig_name).input]
    if signatures.base_signature(sig_name) != signatures.SERVING_DEFAULT:  # [N, H, W, 3], as parsing checked.
        return int(np.prod(value.shape[:3]))
    total = 0
    for data in value.reshape(-1):
        try:
            w, h = imageio.probe_size(data)
        except imageio.ImageError as e:
            raise _undecodable(e) from None
        total += w * h
    return total


def _undecodable(e: Exception) -> RestError:
    """400 for an instance that cannot be decoded, saying "not an image" once (the decoder's own reason may say it)."""
    why = str(e)
    what = why if why.startswith("not an image") else f"not a decodable image ({why})"
    return RestError(400, f"{signatures.SERVING_DEFAULT.input}: {what}")


def check_request_size(sig_name: str, inputs: dict, max_pixels: int, model: str = "") -> None:
    """RestError(413) naming --max_input_pixels when a request holds more pixels than `model` takes."""
    pixels = request_pixels(sig_name, inputs)
    if max_pixels and pixels > max_pixels:
        raise RestError(413, _too_many(pixels, max_pixels, model))


def _too_many(pixels: Optional[int] = None, max_pixels: Optional[int] = None, model: str = "") -> str:
    held = f"{pixels / 1e6:.2f} MP of input" if pixels is not None else "more input pixels than allowed"
    most = f"at most {max_pixels / 1e6:g} MP" if max_pixels else "no more"
    who = f"model {model!r} takes" if model else "this server takes"
    return f"the request holds {held}; {who} {most} per request (--max_input_pixels)"


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def release_memory() -> None:
    """Returns freed heap memory to the system (glibc's malloc_trim): a request's decoded image and tiles are
    large, and without this the process keeps its peak size forever."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def run(enhancer, sig_name: str, inputs: dict, should_stop: Optional[Callable[[], bool]] = None,
        max_pixels: Optional[int] = None, model: str = "") -> dict:
    """Runs one request. Raises RestError(400) for an image that cannot be decoded, RestError(413) for images whose
    decoded pixels, all together, are over `max_pixels` (the headers were checked before; a container can hold
    more than its header says); `Cancelled` goes up. The memory the request used is given back to the system."""
    try:
        return _run(enhancer, sig_name, inputs, should_stop, max_pixels, model)
    finally:
        release_memory()


def _run(enhancer, sig_name, inputs, should_stop, max_pixels, model) -> dict:
    served = SIGNATURES + (tuple(signatures.alpha_name(n) for n in SIGNATURES) if enhancer.interpolation else ())
    if sig_name not in served:
        raise RestError(400, f"signature {sig_name!r} cannot be served here; use one of {list(served)}")
    sig = signatures.base_signature(sig_name)
    value = inputs[sig.input]
    alphas = [None] * len(value)
    if sig_name.endswith(signatures.ALPHA_SUFFIX):
        alphas = [float(a) for a in np.asarray(inputs[signatures.ALPHA_INPUT]).reshape(-1)]
        if len(alphas) != len(value):
            raise RestError(400, f"give one {signatures.ALPHA_INPUT} per instance ({len(value)}), got {len(alphas)}")
    if sig == signatures.SERVING_DEFAULT:
        budget = [max_pixels, max_pixels, model]  # What the instances decoded so far leave for the next.
        out = np.array([_one_png(enhancer, data, should_stop, a, budget) for data, a in zip(value.reshape(-1), alphas)],
                       dtype=object)
        return {sig.output: out.reshape(value.shape)}
    return {sig.output: np.stack([enhancer.enhance(img, should_stop=should_stop, alpha=a)
                                  for img, a in zip(value, alphas)])}


def _one_png(enhancer, data: bytes, should_stop, alpha=None, budget=(None, None, "")) -> bytes:
    limit = budget[0]
    if limit is not None and limit <= 0:
        raise RestError(413, _too_many(max_pixels=budget[1], model=budget[2]))
    try:
        decoded = imageio.decode_image(data, limit, "--max_input_pixels")
    except imageio.ImageTooLargeError as e:
        raise RestError(413, f"an image holds more pixels than its header says: {e}") from None
    except imageio.ImageError as e:
        raise _undecodable(e) from None
    if limit is not None:
        budget[0] = limit - decoded.pixels.shape[0] * decoded.pixels.shape[1]
    buf = io.BytesIO()  # Streamed band by band: memory holds the compressed PNG, not the decoded output.
    enhancer.write_png(imageio.to_uint8(decoded.pixels), buf, should_stop=should_stop, alpha=alpha)  # 8-bit, as the graph.
    return buf.getvalue()
