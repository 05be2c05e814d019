"""Copies of a functional generator that compute in another dtype policy, with the same (float32) weights."""

from __future__ import annotations

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
