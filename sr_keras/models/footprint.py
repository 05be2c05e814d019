"""How much memory a generator's activations take per input pixel, read from its traced graph.

The default tile of every entry point follows it (`tiling.memory_tile`): a model whose largest activation is at
the output's resolution (SRGAN's and ESRGAN's 64-channel upsampler at 4x: 4 KB per input pixel) runs smaller tiles
than SPAN, whose largest is its 208-channel concat at the input's (832 B).
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from sr_keras.image import tiling

PROBES = (64, 96)  # Input sides of the two traces: a tensor that grows with the input grows between them.
_NOT_ACTIVATIONS = frozenset({"Const", "ReadVariableOp", "VarHandleOp", "Placeholder", "NoOp"})


def _tensor_bytes(generator: keras.Model, side: int) -> list:
    """Bytes of every tensor the graph computes for one side x side RGB input, in graph order."""
    fn = tf.function(lambda lr: generator(lr, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec([1, side, side, 3], tf.float32)).graph
    return [(op.name, t.shape.num_elements() * t.dtype.size if t.shape.is_fully_defined() and t.dtype.size else 0)
            for op in graph.get_operations() if op.type not in _NOT_ACTIVATIONS for t in op.outputs]


def activation_bytes_per_pixel(generator: keras.Model) -> int:
    """The largest single activation of one call, in bytes per input pixel.

    Measured as the growth of each tensor between two traces of different input sizes, so weights (which do not
    grow) never count, whatever their size. The peak memory of a call is a few times this (measured in
    `limits.ACTIVATION_BUDGET`'s comment).
    """
    (p, small), (q, large) = ((s, _tensor_bytes(generator, s)) for s in PROBES)
    if [n for n, _ in small] == [n for n, _ in large]:  # The same ops: compare each tensor with itself.
        growth = max(b - a for (_, a), (_, b) in zip(small, large)) / (q * q - p * p)
    else:  # Shape-dependent graph: the largest tensor of the larger trace, weights included (an upper bound).
        growth = max(b for _, b in large) / (q * q)
    return int(round(growth))


def tiling_record(generator: keras.Model, scale: int, tile: Optional[int] = None, measured: Optional[dict] = None
                  ) -> dict:
    """What an export records of a float32 generator's tiles (`meta["tiling"]`): the context its tiles need (its
    receptive field, measured by perturbation), its largest activation per input pixel, and the tile its
    signatures run: `tile`, or None for the one its memory allows (`tiling.memory_tile`).

    `measured`: a record an export of the same weights wrote; its context and activation size are kept instead of
    being measured again (about 20 s for RRDBNet)."""
    if measured and isinstance(measured.get("overlap"), int) and isinstance(
            measured.get("activation_bytes_per_pixel"), int):
        overlap, per_pixel = measured["overlap"], measured["activation_bytes_per_pixel"]
    else:
        # In a graph, not eagerly: on RRDBNet's 129 px probe eager execution peaked 5 GB above the model, the graph
        # 0.2 GB.
        run = tf.function(lambda x: generator(x, training=False))
        overlap = tiling.default_overlap(tiling.measure_receptive_field(
            lambda x: run(tf.constant(x)).numpy(), scale))
        per_pixel = activation_bytes_per_pixel(generator)
    return {"tile": tiling.memory_tile(per_pixel, overlap) if tile is None else tile, "overlap": overlap,
            "activation_bytes_per_pixel": per_pixel}
