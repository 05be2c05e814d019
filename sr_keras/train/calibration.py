"""Phase calibration: the checkerboard a GAN phase leaves, removed from the generator's output bias.

A perceptual or adversarial loss pulls each of a pixel shuffle's `scale` x `scale` output phases a little its own
way, and the pull is the same on every image: on the distilled compact GAN (real_x4_distill_gan, 400 steps) the
per-phase mean error on the 8 real-world photos correlates 0.8 to 0.94 from photo to photo, about 0.5 uint8 levels
RMS, which the grid score (`metrics.artefacts`) reads as 4.2x bicubic's. Both terms make it: 100 steps with only
the perceptual loss scored 2.9 on the validation crops, with only the adversarial one 3.3 (stage 1, L1 alone: 1.2).
Comparing SR and target at a random offset each step (so VGG's pooling grid is not aligned with the output's
phases) did not help (4.2 against 4.8 after 50 steps), and a phase-mean weight of 20 or 100 only brought it to 2.6
or 2.5 after 100 steps: the per-crop phase means are noisy, and the other losses pull the other way.

Where the pixel shuffle's input is a convolution and everything after the shuffle is linear (the compact
generator, SPAN, SRGAN's espcn tail), each phase and channel of the output has its own bias in that convolution.
`calibrate` measures the mean error per phase and channel against the HR photos over training batches and
subtracts it from those biases: the common part of the pattern (and of the colour shift) is gone, and nothing
else in the network changes. Measured on the same run, with 25 batches of 8 training crops (never the held-out
photos): grid 4.24 -> 1.43 and colour shift 2.04 -> 1.46 levels on the real-world set.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import keras
import numpy as np
import tensorflow as tf

from sr_keras.models.layers import PixelShuffle


@dataclasses.dataclass(frozen=True)
class PhaseBias:
    """The convolution whose bias sets each output phase's offset: `channel[i, j, c]` is the bias index that moves
    output pixels (i, j) mod scale of channel c, and only those."""
    layer: keras.layers.Conv2D
    channel: np.ndarray  # int [scale, scale, 3]


def phase_bias(generator: keras.Model, scale: int) -> Optional[PhaseBias]:
    """The output's per-phase bias handle of `generator`, or None when it has none: no single `scale`x pixel
    shuffle fed by a biased convolution, or a path to the output that is not linear in that bias (checked by
    moving each bias and looking at the output, so it holds for any architecture that passes)."""
    shuffles = [lyr for lyr in generator.layers if isinstance(lyr, PixelShuffle) and lyr.factor == scale]
    if len(shuffles) != 1 or not shuffles[0]._inbound_nodes:
        return None
    parents = shuffles[0]._inbound_nodes[0].parent_nodes
    conv = parents[0].operation if len(parents) == 1 else None
    if not isinstance(conv, keras.layers.Conv2D) or not conv.use_bias or conv.filters != 3 * scale * scale:
        return None
    ids = np.arange(conv.filters, dtype=np.float32).reshape(1, 1, 1, -1)
    channel = tf.nn.depth_to_space(ids, scale).numpy()[0].astype(int)  # The shuffle's own arrangement.
    handle = PhaseBias(conv, channel)
    x = np.random.default_rng(0).random((1, 6, 7, 3)).astype(np.float32)
    before = generator(x, training=False).numpy()[0].astype(np.float64)
    delta = np.zeros((scale, scale, 3), np.float32)
    delta[0, min(1, scale - 1), 1], delta[scale - 1, 0, 2] = 0.25, -0.125
    _shift(handle, delta)
    try:
        after = generator(x, training=False).numpy()[0].astype(np.float64)
    finally:
        _shift(handle, -delta)
    expected = np.tile(delta, (before.shape[0] // scale, before.shape[1] // scale, 1))
    if after.shape != before.shape or np.abs(after - before - expected).max() > 1e-4:
        return None  # Something non-linear (an activation, a clip) sits between the bias and the output.
    return handle


def _shift(handle: PhaseBias, delta: np.ndarray) -> None:
    bias = handle.layer.bias
    values = keras.ops.convert_to_numpy(bias).astype(np.float64)
    values[handle.channel.ravel()] += np.asarray(delta, np.float64).ravel()
    bias.assign(values.astype(np.float32))


def phase_error(generator: keras.Model, batches: Iterable, scale: int) -> np.ndarray:
    """Mean of SR - HR per output phase and channel, float64 [scale, scale, 3] in [0, 1] units, over `batches` of
    (lr, hr, ...) float32 images (HR is the photo: a distillation set's teacher output is not the reference)."""
    total, count = np.zeros((scale, scale, 3)), 0
    for batch in batches:
        lr, hr = batch[0], batch[1]
        error = (tf.cast(generator(lr, training=False), tf.float32) - tf.cast(hr, tf.float32)).numpy()
        b, h, w, _ = error.shape
        h, w = h // scale * scale, w // scale * scale
        total += error[:, :h, :w].reshape(b, h // scale, scale, w // scale, scale, 3).mean(axis=(1, 3)).sum(0)
        count += b
    if not count:
        raise ValueError("phase calibration needs at least one batch")
    return total / count


def calibrate(generator: keras.Model, batches: Iterable, scale: int) -> Optional[np.ndarray]:
    """Subtracts `phase_error` over `batches` from the output's per-phase biases (`phase_bias`); returns the
    correction ([scale, scale, 3], [0, 1] units), or None (and leaves the generator alone) when it has no such
    handle."""
    handle = phase_bias(generator, scale)
    if handle is None:
        return None
    error = phase_error(generator, batches, scale)
    _shift(handle, -error)
    return -error
