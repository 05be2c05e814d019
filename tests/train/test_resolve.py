"""A run's config is resolved in one function, from the preset up, without TensorFlow."""

import subprocess
import sys

import pytest
from conftest import REPO

from sr_keras.train import config, resolve


def test_everything_asked_lands_on_the_preset_in_one_place():
    cfg = resolve.train_config("sample_x4", "compact", overrides={"gan_steps": 7, "batch_size": None},
                               model_overrides={"num_blocks": 3, "filters": None}, loss_weights="srgan_paper",
                               discriminator="default", degradation="realesrgan", mixed_precision="auto",
                               auto_policy=lambda: "mixed_bfloat16")
    preset = config.get_preset("sample_x4")
    assert (cfg.model.kind, cfg.model.num_blocks, cfg.model.discriminator) == ("compact", 3, "")
    assert cfg.gan_steps == 7 and cfg.batch_size == preset.batch_size  # None: not set.
    assert (cfg.pixel_weight, cfg.adv_weight) == (0.0, 1e-3)  # srgan_paper's weights.
    assert cfg.degradation == "realesrgan" and cfg.mixed_precision == "mixed_bfloat16"
    assert resolve.train_config("sample_x4", mixed_precision="none").mixed_precision is None
    assert resolve.train_config("sample_x4", mixed_precision="mixed_float16").mixed_precision == "mixed_float16"
    # An explicit override beats the named weight set, which beats the preset.
    assert resolve.train_config("sample_x4", loss_weights="srgan_paper", overrides={"adv_weight": 0.5}).adv_weight == 0.5


@pytest.mark.parametrize("kwargs, says", [
    ({"preset": "nope"}, "--preset=nope"),
    ({"preset": "tiny", "model": "compact", "generator": "rrdb"}, "--model=compact trains the compact generator"),
    ({"preset": "tiny", "loss_weights": "heavy"}, "--loss_weights=heavy"),
    ({"preset": "tiny", "mixed_precision": "float8"}, "--mixed_precision=float8"),
])
def test_a_contradiction_or_unknown_name_is_one_line(kwargs, says):
    with pytest.raises(ValueError, match=says):
        resolve.train_config(**kwargs)


def test_resolving_loads_no_tensorflow():
    code = ("import sys; from sr_keras.train import resolve; resolve.train_config('sample_x4', 'compact');"
            "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
