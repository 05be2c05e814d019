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

import hashlib
from typing import Optional

import keras
import numpy as np

from sr_keras.models import exactness


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


def inference_copy(generator: keras.Model, policy: str, also_float32=()) -> keras.Model:
    """A copy of `generator` for inference in a mixed `policy` (mixed_bfloat16, mixed_float16), same weights, in
    which only the convolutions of the body compute in the low precision (`float32_layers` stay float32, and the
    layers named in `also_float32`: what `exactness_check` measured this model to need)."""
    config = generator.get_config()
    keep = float32_layers(generator, config) | set(also_float32)
    for layer in config["layers"]:
        layer["config"] = _policy_to(layer["config"], "float32" if layer["config"]["name"] in keep else policy)
    clone = keras.Model.from_config(config)
    clone.set_weights(generator.get_weights())
    return clone


# --- The exactness check: which layers bfloat16 inference keeps in float32 for one model, measured. -----------------
#
# Measured on span_x4 (AVX512_BF16 EPYC, benchmarks/bench_bf16.py on evaluate.varied_set): with only the body's
# convolutions in bfloat16 it lost 0.19 to 0.25 dB PSNR-Y on black-and-white graphics and screenshots (0.01 on
# photos): the first block's convolutions see the features of every hard edge at full strength, and a convolution
# that feeds SPAN's attention has its rounding multiplied by the attention's input. Which layers matter depends on
# the weights, so each export measures it (`exactness_check`, recorded in its metadata) on probes with hard edges.

CHECK_BOUND_DB = 0.04  # The worst probe's PSNR-Y loss bfloat16 may cost (the targets: 0.05 on any image, 0.02 on photos).
CHECK_MAX_FLOAT32_SHARE = 0.5  # Keeping more of the body in float32 than this gains too little: float32 instead.
_MAX_GROUPS = 24  # A deep body is measured in this many runs of consecutive convolutions,
_DEEP_CONVOLUTIONS, _DEEP_GROUPS = 100, 8  # and a very deep one in fewer: each candidate of realesrgan_x4plus's 350
# convolutions costs about 8 s to build, trace and run, so 24 groups made its first use take 5 minutes.


def _loss_db(out: np.ndarray, ref: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """How far the PSNR-Y of `out` may be from float32's `ref`, both against `hr` (0..255 [h, w, 3]), as the field
    scores it (BT.601 luma, `shave` border pixels off), in dB: the larger of
      - the loss measured: |PSNR(ref) - PSNR(out)|, outputs rounded to levels as a written image is. A low-precision
        output mostly loses: its error is not noise added to float32's, it amplifies float32's own ringing along
        hard edges (measured on span_x4);
      - the loss expected of the difference alone: 10 log10(1 + MSE(out - ref) / MSE(ref - hr)), what it costs when
        it is not correlated with float32's error. On a smooth image the measured loss is a matter of luck: on colour
        wheels realesr_general_x4v3's bfloat16 output differs by 0.22 levels on average whatever is kept in float32,
        and the measured loss ranges from -0.05 to +0.28 dB with the wheel's size and rotation, so a choice of layers
        that passes one wheel fails the next. The expected loss does not depend on that luck.
    """
    luma = np.array([65.481, 128.553, 24.966]) / 255

    def mse(d):
        return max(float(np.mean(np.square(d[shave:-shave or None, shave:-shave or None] @ luma))), 1e-6)
    out, ref = np.clip(out, 0, 255), np.clip(ref, 0, 255)  # As written.
    base = mse(np.round(ref) - hr)
    measured = abs(10 * np.log10(mse(np.round(out) - hr) / base))
    expected = 10 * np.log10(1 + mse(out - ref) / base)
    return max(measured, expected)


def exactness_check(generator: keras.Model, policy: str = exactness.POLICY, bound_db: Optional[float] = None) -> dict:
    """Which layers `inference_copy(generator, policy)` must also keep in float32 for its output to stay within
    `bound_db` (default `CHECK_BOUND_DB`) of float32's on `probe_images`, measured: the body's convolutions ranked by
    what each costs alone, then kept in float32 in that order until the worst probe is within the bound. When that
    needs more than `CHECK_MAX_FLOAT32_SHARE` of them, the model runs in float32 under `precision="auto"`.

    Returns a JSON-able record: {"version", "policy", "precision": "bfloat16" | "float32", "float32_layers": [...],
    "worst_db" (the worst probe with those layers), "default_worst_db" (with none), "probes"}.
    """
    import tensorflow as tf  # Here: the rest of this module needs only Keras.

    bound_db = CHECK_BOUND_DB if bound_db is None else bound_db
    reference = float32_copy(generator)
    scale = _scale_of(reference)
    probes = probe_images(scale)
    # One trace per model for every probe size, as the exported signatures run it (free height and width).
    spec = [tf.TensorSpec([1, None, None, 3], tf.float32)]
    ref_fn = tf.function(lambda x: tf.cast(reference(x, training=False), tf.float32), input_signature=spec)
    refs = [ref_fn(tf.constant(lr)).numpy()[0] * 255 for lr, _ in probes]

    def worst(extra: set) -> float:
        model = inference_copy(reference, policy, extra)
        fn = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), input_signature=spec)
        return max(_loss_db(fn(tf.constant(lr)).numpy()[0] * 255, ref, hr[0] * 255, scale)
                   for (lr, hr), ref in zip(probes, refs))

    config = reference.get_config()
    keep = float32_layers(reference, config)
    convs = [lyr.name for lyr in reference.layers if type(lyr).__name__ in CONVOLUTIONS and lyr.name not in keep]
    record = {"version": exactness.CHECK_VERSION, "policy": policy, "probes": len(probes), "bound_db": bound_db,
              "weights_sha256": weights_digest(reference)}
    base = worst(set())
    record.update(default_worst_db=float(round(base, 4)), precision="bfloat16", float32_layers=[], worst_db=float(round(base, 4)))
    if base <= bound_db or not convs:
        record["precision"] = "bfloat16" if base <= bound_db else "float32"
        return record
    size = -(-len(convs) // (_MAX_GROUPS if len(convs) <= _DEEP_CONVOLUTIONS else _DEEP_GROUPS))
    groups = [convs[i:i + size] for i in range(0, len(convs), size)]
    every = set(convs)
    alone = [worst(every - set(g)) for g in groups]  # Only this group in the low precision.
    chosen, loss = set(), base
    for i in sorted(range(len(groups)), key=lambda i: -alone[i]):
        chosen |= set(groups[i])
        if len(chosen) > CHECK_MAX_FLOAT32_SHARE * len(convs):
            break
        loss = worst(chosen)
        if loss <= bound_db:
            record.update(float32_layers=[c for c in convs if c in chosen], worst_db=float(round(loss, 4)))
            return record
    record.update(precision="float32", float32_layers=[], worst_db=float(round(base, 4)))
    return record


def weights_digest(generator: keras.Model) -> str:
    """SHA-256 of the generator's weights as float32 bytes, in layer order: what an exactness record was measured on
    (an export reuses a record only for the same weights, `reusable_check`)."""
    digest = hashlib.sha256()
    for w in generator.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w), dtype=np.float32).tobytes())
    return digest.hexdigest()


def reusable_check(generator: keras.Model, meta: dict, policy: str = exactness.POLICY) -> Optional[dict]:
    """The current exactness record in `meta` when it was measured on exactly `generator`'s weights, else None (an
    export of a zoo model or of another export keeps its source's record instead of measuring it again)."""
    found = exactness.record(meta, policy)
    if found and found.get("bound_db") == CHECK_BOUND_DB and found.get("weights_sha256") == weights_digest(generator):
        return found
    return None


def _scale_of(generator: keras.Model) -> int:
    """The upscaling factor of a generator with free spatial size, from a 4 x 4 input's output."""
    out = generator.compute_output_shape((1, 4, 4, 3))
    return int(out[1] // 4)


def probe_images(scale: int) -> list:
    """[(LR, HR)] float32 [1, h, w, 3] in [0, 1]: where low precision fails first, made here (no data files): a
    black-and-white graphic of filled shapes and outlines, text, thin lines and hatching, flat colour with 1 px
    borders, a smooth colour field with soft edges, a checkerboard whose period is off the LR grid, and part of a
    smooth colour wheel (`_smooth_wheel`); LR is the field's standard degradation of HR
    (`data.degradation.bicubic_downscale`)."""
    from PIL import Image, ImageDraw  # Here: only the check draws.

    from sr_keras.data import degradation  # Here: TensorFlow, which the rest of this module does not need.

    side = 48 * scale  # 48 px of LR each: a few tiles' worth of every feature, seconds on a CPU.
    pictures = []
    img = Image.new("L", (side, side), 255)
    d = ImageDraw.Draw(img)
    d.rectangle((side // 12, side // 12, side // 2, side // 3), fill=0)
    d.ellipse((side // 2, side // 10, side - side // 10, side // 2), fill=0)
    d.polygon([(side // 10, side - side // 10), (side // 3, side // 2), (side // 2, side - side // 10)], fill=0)
    d.rectangle((side // 2 + 8, side // 2 + 8, side - 12, side - 12), outline=0, width=3)
    pictures.append(img.convert("RGB"))
    img = Image.new("RGB", (side, side), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for i, y in enumerate(range(4, side - 16, side // 8)):
        d.text((4, y), "Sharp text 0123 ABC xyz"[i % 5:], fill=(0, 0, 0) if i % 2 else (200, 20, 30))
    pictures.append(img)
    img = Image.new("L", (side, side), 255)
    d = ImageDraw.Draw(img)
    for i in range(0, side, 7):
        d.line((i, 0, 0, i), fill=0, width=1)
    for r in range(8, side // 2, 10):
        d.ellipse((side // 2 - r, side // 2 - r, side // 2 + r, side // 2 + r), outline=0, width=2)
    pictures.append(img.convert("RGB"))
    img = Image.new("RGB", (side, side), (240, 240, 240))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, side, side // 8), fill=(45, 50, 60))
    d.rectangle((side // 10, side // 5, side // 2, side - 10), fill=(255, 255, 255), outline=(150, 150, 150))
    d.rectangle((side // 2 + 6, side // 3, side - 8, side // 2), fill=(0, 120, 215))
    d.rectangle((side // 2 + 6, side // 2 + 10, side - 8, side - 20), fill=(98, 197, 84), outline=(0, 0, 0))
    pictures.append(img)
    y, x = np.mgrid[0:side, 0:side] / side
    field = np.stack([0.5 + 0.5 * np.sin(6 * x + 2 * y), 0.5 + 0.5 * np.cos(5 * y - 3 * x * y), x * y], -1)
    disc = 1 / (1 + np.exp(((x - 0.5) ** 2 + (y - 0.5) ** 2 - 0.08) * 400))  # A soft-edged disc.
    field = field * (1 - disc[..., None]) + (1 - field) * disc[..., None]
    pictures.append(Image.fromarray(np.round(field * 255).astype(np.uint8)))
    squares = ((np.arange(side)[:, None] // 25 + np.arange(side)[None] // 25) % 2) * 255  # 25 px: off the LR grid.
    pictures.append(Image.fromarray(squares.astype(np.uint8)).convert("RGB"))
    pictures.append(Image.fromarray(_smooth_wheel(4 * side)[3 * side // 2:5 * side // 2, side:2 * side]))
    out = []
    for pic in pictures:
        hr = np.asarray(pic)
        lr = degradation.bicubic_downscale(hr, scale)
        out.append((lr[None].astype(np.float32) / 255, hr[None].astype(np.float32) / 255))
    return out


def _smooth_wheel(side: int) -> np.ndarray:
    """A colour wheel with no hard edge, uint8 [side, side, 3]: white at the centre, fully saturated half-way out, black
    at the rim. A model reproduces it within a few levels, so bfloat16's rounding shows most here: on such wheels
    (192 to 384 px, x4) realesr_general_x4v3 changed 45% of the pixels by up to 4 levels, 0.01 to 0.18 dB, growing
    with the size; span_x4 changed 3% by one level. `probe_images` takes a quarter of a wheel four times the other
    probes' side (from its saturated ring to its white centre): as smooth per pixel as a 192 px LR wheel, at the
    others' cost."""
    y, x = (np.mgrid[0:side, 0:side] + 0.5) / side
    r = np.hypot(x - 0.5, y - 0.5) * 2
    hue = (np.arctan2(y - 0.5, x - 0.5) / (2 * np.pi)) % 1 * 6
    rgb = np.clip(np.abs((hue[..., None] - np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)  # Hue to RGB, fully saturated.
    sat, val = np.clip(r / 0.5, 0, 1)[..., None], np.clip((1 - r) / 0.5, 0, 1)[..., None]
    return np.round(val * (1 - sat + sat * rgb) * 255).astype(np.uint8)
