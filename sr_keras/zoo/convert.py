"""ncnn layers (`zoo.ncnn.read_model`) -> weights of the matching Keras generator (`models.span`,
`models.rrdbnet`, `models.compact`). Convolutions are matched in graph order and every shape is checked; the constants the Keras
graph hard-codes (SPAN's mean and range, ESRGAN's residual scale, nearest upsampling) are checked against the file.
"""

from __future__ import annotations

import keras
import numpy as np

from sr_keras.models import rrdbnet, span
from sr_keras.zoo.ncnn import NcnnFormatError


def _torch_shuffle_order(channels_out: int, factor: int) -> np.ndarray:
    """Output-channel order that makes tf.nn.depth_to_space (channel (i*r + j)*C + c) read what PyTorch's
    pixel_shuffle (channel c*r*r + i*r + j) reads."""
    r2 = factor * factor
    return np.array([c * r2 + p for p in range(r2) for c in range(channels_out)])


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise NcnnFormatError(f"the ncnn graph does not match the Keras architecture: {what}")


def check_compact_graph(layers: list, scale: int) -> None:
    """The exact SRVGGNetCompact graph: input -> split -> (Convolution -> PReLU) x n -> Convolution -> PixelShuffle
    (PyTorch order), added to a nearest x`scale` Interp of the input; every layer's inputs are the previous one's
    outputs, so a rewired, renamed or substituted layer is refused instead of converting into another model.

    Raises:
      NcnnFormatError: the graph differs (the message names the first layer that does).
    """
    _check(len(layers) >= 7 and [lyr.type for lyr in layers[:2]] == ["Input", "Split"],
           "the graph does not start with an Input and a Split of it")
    data, halves = layers[0].outputs[0], layers[1].outputs
    _check(layers[1].inputs == [data] and len(halves) == 2, f"{layers[1].name} splits the input in two")
    body = layers[2:-4]
    blob = body[0].inputs[0] if body and body[0].inputs else ""
    _check(blob in halves, "the first convolution reads the input")
    (split_a,) = [h for h in halves if h != blob] or [""]
    _check(len(body) % 2 == 0 and body, "convolutions and PReLUs alternate")
    for i, lyr in enumerate(body):
        _check(lyr.type == ("Convolution" if i % 2 == 0 else "PReLU"),
               f"{lyr.name} is a {lyr.type}, a {'Convolution' if i % 2 == 0 else 'PReLU'} was expected")
        _check(lyr.inputs == [blob] and len(lyr.outputs) == 1, f"{lyr.name} does not follow the layer before it")
        _check(lyr.type != "Convolution" or lyr.params.get(9, 0) == 0, f"{lyr.name}: a fused activation")
        _check(lyr.type != "PReLU" or lyr.params.get(0, 1) in (1, body[i - 1].params.get(0)),
               f"{lyr.name}: {lyr.params.get(0)} slopes for {body[i - 1].params.get(0)} channels")
        blob = lyr.outputs[0]
    last, shuffle, interp, add = layers[-4:]
    _check(last.type == "Convolution" and last.inputs == [blob] and last.params.get(9, 0) == 0,
           f"{last.name}: the last convolution follows the body")
    _check(last.params.get(0) == 3 * scale * scale, f"{last.name}: {last.params.get(0)} outputs, not 3 x {scale}^2")
    _check(shuffle.type == "PixelShuffle" and shuffle.inputs == last.outputs and shuffle.params.get(0) == scale
           and shuffle.params.get(1, 0) == 0, f"{shuffle.name}: one PyTorch-order x{scale} pixel shuffle")
    _check(interp.type == "Interp" and interp.inputs == [split_a] and interp.params.get(0) == 1
           and interp.params.get(1) == float(scale) and interp.params.get(2) == float(scale),
           f"{interp.name}: nearest x{scale} upsampling of the input")
    _check(add.type == "BinaryOp" and sorted(add.inputs) == sorted(shuffle.outputs + interp.outputs)
           and add.params.get(0, 0) == 0 and not add.params.get(1, 0), f"{add.name}: the upsampled input added")


def _check_constants(layers: list, kind: str) -> None:

    if kind == "span":
        means = [lyr.weights["data"].ravel() for lyr in layers if lyr.type == "MemoryData"]
        _check(len(means) == 1 and np.allclose(means[0], span.RGB_MEAN, atol=1e-6), f"input mean {means}")
        ranges = [lyr.params.get(2) for lyr in layers if lyr.type == "BinaryOp" and lyr.params.get(1) == 1
                  and lyr.params.get(0) == 2]
        _check(ranges[:1] == [span.IMG_RANGE], f"input range {ranges[:1]}")
        shuffles = [lyr for lyr in layers if lyr.type == "PixelShuffle"]
        _check(len(shuffles) == 1 and shuffles[0].params.get(1, 0) == 0, "one PyTorch-order pixel shuffle")
    if kind == "compact":
        check_compact_graph(layers, next((lyr.params.get(0) for lyr in layers if lyr.type == "PixelShuffle"), 0))
    if kind == "rrdb":
        for lyr in layers:
            if lyr.type == "Eltwise":
                _check(lyr.params.get(1) == [rrdbnet.RESIDUAL_SCALE, 1.0], f"{lyr.name} coefficients")
            if lyr.type == "Interp":
                _check(lyr.params.get(0) == 1 and lyr.params.get(1) == 2.0, f"{lyr.name}: nearest x2")


def load_into(generator: keras.Model, layers: list, kind: str) -> None:
    """Sets `generator`'s weights from ncnn `layers` of the same architecture.

    Raises:
      NcnnFormatError: the graph does not match (a layer count, a shape or a constant differs).
    """
    _check_constants(layers, kind)
    convs = [lyr for lyr in layers if lyr.type == "Convolution"]
    targets = [lyr for lyr in generator.layers if isinstance(lyr, keras.layers.Conv2D)]
    _check(len(convs) == len(targets), f"{len(convs)} convolutions in the file, {len(targets)} in the model")
    names = {lyr.name for lyr in generator.layers}
    shuffle = next((lyr.factor for lyr in generator.layers if type(lyr).__name__ == "PixelShuffle"), None)
    for src, dst in zip(convs, targets):
        kernel = src.weights["weight"].transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
        bias = src.weights.get("bias", np.zeros(kernel.shape[-1], np.float32))
        _check(src.params.get(2, 1) == 1 and src.params.get(3, 1) == 1, f"{src.name}: stride and dilation 1")
        _check(src.params.get(4, 0) == kernel.shape[0] // 2, f"{src.name}: 'same' padding")
        fused = src.params.get(9, 0)  # 0: none, 2: leaky ReLU with slope params[10].
        _check(fused in (0, 2) and (fused == 2) == (f"{dst.name}_lrelu" in names)
               and (fused == 0 or src.params.get(10) == [0.2]), f"{src.name}: activation {fused} after {dst.name}")
        if shuffle and dst is targets[-1] and kind in ("span", "compact"):
            order = _torch_shuffle_order(kernel.shape[-1] // shuffle ** 2, shuffle)
            kernel, bias = kernel[..., order], bias[order]
        expected = tuple(v.shape for v in dst.weights)
        _check(expected == (kernel.shape, bias.shape), f"{src.name} {kernel.shape} vs {dst.name} {expected[0]}")
        dst.set_weights([kernel, bias])
    slopes = [lyr for lyr in layers if lyr.type == "PReLU"]
    prelus = [lyr for lyr in generator.layers if isinstance(lyr, keras.layers.PReLU)]
    _check(len(slopes) == len(prelus), f"{len(slopes)} PReLUs in the file, {len(prelus)} in the model")
    for src, dst in zip(slopes, prelus):
        alpha = dst.weights[0]
        dst.set_weights([np.broadcast_to(src.weights["slope"], alpha.shape).astype(np.float32)])
