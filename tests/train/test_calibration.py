"""Phase calibration: a generator's per-phase output offset (the GAN checkerboard) moves into its output biases."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from sr_keras.models import build, config
from sr_keras.models.compact import build_compact_generator
from sr_keras.models.layers import PixelShuffle
from sr_keras.train import calibration
from sr_keras.train import config as train_config
from sr_keras.train import loop


def _pattern(seed=1):
    return np.random.default_rng(seed).normal(0, 0.01, (4, 4, 3)).astype(np.float32)


def test_a_phase_pattern_added_to_the_output_is_found_and_removed():
    g = build_compact_generator(4, filters=8, num_blocks=2)
    rng = np.random.default_rng(0)
    lrs = [rng.random((2, 9, 11, 3)).astype(np.float32) for _ in range(3)]
    clean = [g(lr, training=False).numpy() for lr in lrs]  # The "HR": the generator's own output, no pattern.
    handle = calibration.phase_bias(g, 4)
    assert handle is not None and handle.layer.name == "body_6"
    pattern = _pattern()
    calibration._shift(handle, pattern)  # Now every output pixel (i, j) mod 4 is off by pattern[i, j].
    np.testing.assert_allclose(calibration.phase_error(g, zip(lrs, clean), 4), pattern, atol=1e-6)
    correction = calibration.calibrate(g, zip(lrs, clean), 4)
    np.testing.assert_allclose(correction, -pattern, atol=1e-6)
    for lr, hr in zip(lrs, clean):
        np.testing.assert_allclose(g(lr, training=False).numpy(), hr, atol=1e-5)


def test_generators_whose_output_is_not_linear_in_a_phase_bias_are_left_alone():
    srgan = build.build_generator(config.ModelConfig(filters=8, num_blocks=1, upsample_filters=32))  # srresnet tail.
    assert calibration.phase_bias(srgan, 4) is None
    before = [w.copy() for w in srgan.get_weights()]
    lr = np.random.default_rng(2).random((1, 6, 6, 3)).astype(np.float32)
    assert calibration.calibrate(srgan, [(lr, np.zeros((1, 24, 24, 3), np.float32))], 4) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, srgan.get_weights()))
    # A shuffle fed by a biased convolution is not enough: the path to the output must be linear in the bias.
    lr_in = keras.Input((None, None, 3))
    shuffled = PixelShuffle(4)(keras.layers.Conv2D(48, 3, padding="same")(lr_in))
    assert calibration.phase_bias(keras.Model(lr_in, keras.layers.Activation("linear")(shuffled)), 4)
    assert calibration.phase_bias(keras.Model(lr_in, keras.layers.Activation("sigmoid")(shuffled)), 4) is None
    espcn = config.ModelConfig(filters=8, num_blocks=1, upsampler="espcn")
    for cfg in (espcn, dataclasses.replace(espcn, bicubic_skip=True),
                config.ModelConfig(kind="span", filters=8, num_blocks=2)):
        assert calibration.phase_bias(build.build_generator(cfg), 4), cfg


def test_the_gan_phase_ends_calibrated(sample_data, tmp_path, capsys):
    cfg = train_config.get_preset("tiny")
    cfg = dataclasses.replace(cfg, data=sample_data, model=dataclasses.replace(cfg.model, kind="compact", filters=8,
                                                                               num_blocks=2),
                              pretrain_steps=2, gan_steps=2, calibrate_batches=3, eval_every=100)
    result = loop.train_and_evaluate(cfg, str(tmp_path / "run"), verbose=False)
    assert "phase calibration: the output biases absorbed" in capsys.readouterr().out
    assert result["step"] == 4
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        last = [line for line in f if "calibration/pattern_levels" in line]
    assert len(last) == 1 and '"step": 4' in last[0]
    # What was saved is calibrated: its phase error on the same batches is now zero.
    from sr_keras.train import run_dir

    g, _ = run_dir.generator_from_workdir(str(tmp_path / "run"))
    batches = loop.pipeline.train_dataset(cfg.data, cfg.hr_crop, cfg.batch_size, seed=cfg.seed + 7919, scale=4,
                                          crops_per_image=cfg.crops_per_image).take(3)
    assert np.abs(calibration.phase_error(g, batches, 4)).max() < 1e-5
    assert tf.reduce_all(tf.math.is_finite(g(np.zeros((1, 4, 4, 3), np.float32))))
