"""Copies of a functional generator that compute in another dtype policy, with the same (float32) weights.

`inference_copy` is what bfloat16 / float16 inference runs: only the body's convolutions compute in the low
precision. Measured through `sr_keras.load(precision="bfloat16")` on 12 scikit-image photos (256 px crops, x4,
PSNR-Y against float32; benchmarks/bench_bf16.py): with every layer in bfloat16, span_x4 lost 0.037 dB on average
and up to 0.28 dB (2.6 dB on a smooth colour wheel); keeping the element-wise ops, the first convolution (its input,
the mean-shifted pixels times 255, loses a quarter of a level when rounded to bfloat16) and the last three in
float32, it is within 0.0204 dB on every photo (mean +0.0008; 0.034 dB on the colour wheel), and sr_keras_x4 within
0.0026 dB (0.13 dB before).

Two later steps, measured on span_x4 on an AVX512_BF16 EPYC (2 cores, one process, s per output MP at 512 / 768
px): SiLUs between two body convolutions also compute in bfloat16 (their inputs and outputs are bfloat16 anyway):
0.249 / 0.250 -> 0.238 / 0.236, and no PSNR-Y change above 0.0001 dB on the same photos. Fusing SPAN's attention
into one XLA kernel gave 0.232 / 0.230 more, but XLA compiles it again for every new tile shape (0.15 s each, and
a cache that grows with every image size a server sees), which costs a one-photo sr-enhance more than it saves: not
done. With the attention in bfloat16 as well, a photo lost 0.042 dB, so it stays float32.
"""

from __future__ import annotations

from typing import Optional

import keras


def _policy_to(obj, name: str):
    """A Keras config with every layer's dtype policy replaced by `name` (mixed or float32)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "DTypePolicy" and isinstance(obj.get("config"), dict):
            return {**obj, "config": {**obj["config"], "name": name}}
        return {k: _policy_to(v, name) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_policy_to(v, name) for v in obj]
    return obj


def with_policy(generator: keras.Model, policy: str) -> keras.Model:
    """A copy of a functional generator computing in `policy` (float32, mixed_bfloat16, ...), same weights.

    `clone_model` keeps each layer's serialized dtype policy, so changing the global policy does not do this.
    """
    clone = keras.Model.from_config(_policy_to(generator.get_config(), policy))
    clone.set_weights(generator.get_weights())
    return clone


def float32_copy(generator: keras.Model) -> keras.Model:
    """A float32 copy of a mixed-precision generator (float16 internals must not reach TF Serving)."""
    if all(lyr.dtype_policy.name == "float32" for lyr in generator.layers):
        return generator
    return with_policy(generator, "float32")


CONVOLUTIONS = ("Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "Dense")
EDGE_CONVOLUTIONS = (1, 3)  # Kept in float32 by `inference_copy`: the first one, and the last three.
ACTIVATIONS = ("Activation", "ReLU", "LeakyReLU", "PReLU")  # Element-wise: low precision between two convs.


def _producers(layer_config: dict) -> set:
    """Names of the layers whose outputs a functional config's layer takes."""
    found = set()

    def walk(obj):
        if isinstance(obj, dict):
            if "keras_history" in obj:
                found.add(obj["keras_history"][0])
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)
    walk(layer_config.get("inbound_nodes", []))
    return found


def float32_layers(generator: keras.Model, config: Optional[dict] = None) -> set:
    """Names of the layers `inference_copy` keeps in float32: every layer that is not a convolution (element-wise
    ops, normalisation, reshapes, the pixel shuffle), the first convolution and the last three; except an
    activation that takes a low-precision convolution's output and only feeds low-precision convolutions (those
    round its output to the low precision anyway: SPAN's SiLUs but the one that feeds its concat).

    config: `generator.get_config()`, when the caller has it already (it is read for the layers' connections).
    """
    convs = [lyr.name for lyr in generator.layers if type(lyr).__name__ in CONVOLUTIONS]
    first, last = EDGE_CONVOLUTIONS
    edge = set(convs[:first]) | set(convs[-last:])
    low = set(convs) - edge
    layers = (config or generator.get_config())["layers"]
    producers = {lyr["config"]["name"]: _producers(lyr) for lyr in layers}
    consumers = {name: {c for c, ps in producers.items() if name in ps} for name in producers}
    between = {name for name, lyr in zip(producers, layers) if lyr["class_name"] in ACTIVATIONS
               and producers[name] and consumers[name] and producers[name] | consumers[name] <= low}
    return {lyr.name for lyr in generator.layers if lyr.name not in convs or lyr.name in edge} - between


def inference_copy(generator: keras.Model, policy: str) -> keras.Model:
    """A copy of `generator` for inference in a mixed `policy` (mixed_bfloat16, mixed_float16), same weights, in
    which only the convolutions of the body compute in the low precision (`float32_layers` stay float32)."""
    config = generator.get_config()
    keep = float32_layers(generator, config)
    for layer in config["layers"]:
        layer["config"] = _policy_to(layer["config"], "float32" if layer["config"]["name"] in keep else policy)
    clone = keras.Model.from_config(config)
    clone.set_weights(generator.get_weights())
    return clone
