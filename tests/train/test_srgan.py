"""SRGAN as the field runs it: the GAN-phase loss weights, the offline SRGAN-MSE fallback, and network interpolation
(alpha) through the Keras model, the SavedModel, sr_keras.load, sr-enhance, sr-evaluate and REST."""

import base64
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import offline, png_bytes, run_cli
from PIL import Image

from sr_keras.infer import enhancer
from sr_keras.models.interpolation import interpolated_generator
from sr_keras.savedmodel import layout, signatures, writer
from sr_keras.train import config, loop, run_dir
from sr_keras.train import state as train_state
from sr_keras.train.run_dir import RunDir


def _batch(seed=0, n=4, hr=32):
    r = np.random.default_rng(seed)
    hr_img = r.random((n, hr, hr, 3)).astype("float32")
    return tf.image.resize(hr_img, (hr // 4, hr // 4), "bicubic", antialias=True).numpy(), hr_img


def _gan_step_logs(cfg):
    keras.utils.set_random_seed(0)
    state = train_state.TrainState(cfg, tf.distribute.get_strategy())
    it = iter(tf.data.Dataset.from_tensors(_batch()).repeat())
    return {k: float(v) for k, v in state.trainer.train_step(it, phase=2).items()}


def test_each_loss_weight_reaches_the_generator_loss(sample_data):
    base = dataclasses.replace(config.get_preset("tiny"), data=sample_data)
    assert (base.content_weight, base.pixel_weight, base.adv_weight) == (1.0, 1e-2, 5e-3)  # BasicSR / ESRGAN.
    assert base.phase_weight == 1.0  # On in every recipe: a GAN's colour shift and checkerboard.
    logs = _gan_step_logs(base)
    assert logs["g/total"] == pytest.approx(logs["g/content"] + 1e-2 * logs["g/pixel"] + 5e-3 * logs["g/adv"]
                                            + logs["g/phase"], rel=1e-5)
    heavier = _gan_step_logs(dataclasses.replace(base, pixel_weight=0.5, adv_weight=0.25))
    for k in ("g/content", "g/pixel", "g/adv"):  # Same start, same batch: the terms are the same...
        assert heavier[k] == pytest.approx(logs[k], rel=1e-5)
    # ... and the total moves by exactly the change of each weight times its term.
    assert heavier["g/total"] - logs["g/total"] == pytest.approx(
        (0.5 - 1e-2) * logs["g/pixel"] + (0.25 - 5e-3) * logs["g/adv"], rel=1e-4)
    paper = config.LOSS_WEIGHTS["srgan_paper"]
    assert (paper["pixel_weight"], paper["adv_weight"]) == (0.0, 1e-3)
    assert config.get_preset("tiny", "dcgan").pixel_weight == 0.0  # Its content loss is already L1.


def test_offline_srgan_falls_back_to_mse_and_says_so(sample_data, tmp_path, monkeypatch, capsys):
    from sr_keras.models import vgg

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # No cached weights here.
    monkeypatch.setenv("SR_KERAS_CACHE", str(tmp_path / "cache"))  # Nor VGG16's (the first fallback).
    offline(monkeypatch)  # A real failed download, whether or not this machine has a network.
    assert not vgg.imagenet_weights_available()
    cfg = dataclasses.replace(config.get_preset("tiny"), data=sample_data, content_loss="vgg54",
                              vgg_weights="imagenet", pretrain_steps=1, gan_steps=1, eval_every=2)
    resolved = loop.resolve_content_loss(cfg)
    assert resolved.content_loss == "mse" and resolved.content_note == "MSE content: VGG19 weights unavailable"
    assert resolved.adv_weight == loop.SRGAN_MSE_ADV_WEIGHT == 5e-4  # Smaller: the MSE content is small.
    out = capsys.readouterr().out
    assert "SRGAN-MSE" in out and "VGG16's cannot be had either" in out
    with pytest.raises(vgg.VGGWeightsError, match="place vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        loop.resolve_content_loss(dataclasses.replace(cfg, vgg_fallback="error"))
    asked = dataclasses.replace(cfg, vgg_weights="none")  # Random features only when asked for.
    assert loop.resolve_content_loss(asked) == dataclasses.replace(asked, content_note=loop.RANDOM_VGG_NOTE)
    # Through a run: the config and the export say which content loss was used, and sr-evaluate's label shows it.
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(cfg, workdir, verbose=False)
    assert RunDir(workdir).read_config().content_loss == "mse"
    generator, meta = run_dir.generator_from_workdir(workdir)
    path = writer.export(generator, meta, str(tmp_path / "exp"), "srgan")
    from sr_keras.evaluate import protocol

    label = protocol.model_label(enhancer.Enhancer(path), path, set())
    assert label == "srgan v1 (MSE content: VGG19 weights unavailable)"


@pytest.fixture(scope="module")
def gan_run(sample_data, tmp_path_factory):
    """A tiny SRGAN run with both phases, exported with its alpha knob (default alpha 0.8)."""
    root = tmp_path_factory.mktemp("gan_run")
    workdir = str(root / "run")
    cfg = dataclasses.replace(config.get_preset("tiny"), data=sample_data, pretrain_steps=3, gan_steps=3,
                              learning_rate=1e-3, ckpt_every=3, eval_every=6)
    loop.train_and_evaluate(cfg, workdir, verbose=False)
    gan, meta = run_dir.generator_from_workdir(workdir)
    psnr = run_dir.psnr_generator_from_workdir(workdir)
    path = writer.export(gan, meta, str(root / "exp"), "srgan", psnr_generator=psnr, default_alpha=0.8)
    return workdir, psnr, gan, path


def _uint8(generator, lr8):
    return np.round(np.clip(generator(lr8[None].astype("float32") / 255.0, training=False).numpy()[0], 0, 1) * 255)


def test_the_run_keeps_the_pixel_phase_generator(gan_run):
    workdir, psnr, gan, _ = gan_run
    assert RunDir(workdir).has_psnr_generator()
    # The two ends differ (the GAN phase trained on) and share the architecture.
    diffs = [np.abs(a - b).max() for a, b in zip(psnr.get_weights(), gan.get_weights())]
    assert len(diffs) == len(gan.get_weights()) and max(diffs) > 0


def test_alpha_ends_reproduce_both_generators_everywhere(gan_run, tmp_path):
    workdir, psnr, gan, path = gan_run
    lr8 = np.random.default_rng(3).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    want = {0.0: _uint8(psnr, lr8), 1.0: _uint8(gan, lr8)}
    assert np.abs(want[0.0] - want[1.0]).max() > 1  # The test can tell the ends apart.
    meta = layout.read_metadata(path)
    assert meta["interpolation"]["default_alpha"] == 0.8
    assert set(signatures.describe_all(True)) == set(meta["signatures"])
    loaded = tf.saved_model.load(path)
    m = enhancer.Enhancer(path)
    assert m.interpolation and m.default_alpha == 0.8
    for a, expect in want.items():
        # Keras: the blended weights.
        assert np.abs(_uint8(interpolated_generator(psnr, gan, a), lr8) - expect).max() <= 1
        # The SavedModel's signature, as TF Serving runs it.
        out = loaded.signatures["enhance_alpha"](lr_image=tf.constant(lr8[None]), alpha=tf.constant([a]))
        assert np.abs(out["sr_image"].numpy()[0].astype(int) - expect).max() <= 1
        # sr_keras.load (tiles) and sr-enhance.
        assert np.abs(m.enhance(lr8, alpha=a).astype(int) - expect).max() <= 1
    # The plain signatures run at the default alpha.
    default = loaded.signatures["enhance"](lr_image=tf.constant(lr8[None]))["sr_image"].numpy()[0]
    assert np.abs(default.astype(int) - _uint8(interpolated_generator(psnr, gan, 0.8), lr8)).max() <= 1
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        m.enhance(lr8, alpha=1.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"alpha must be in \[0, 1\]"):
        loaded.signatures["enhance_alpha"](lr_image=tf.constant(lr8[None]), alpha=tf.constant([-0.1]))
    photo = tmp_path / "in.png"
    Image.fromarray(lr8).save(photo)
    proc = run_cli("enhance", f"--model={path}", f"--input={photo}", f"--output_dir={tmp_path / 'o'}", "--alpha=0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.abs(np.asarray(Image.open(tmp_path / "o" / "in_x4.png")).astype(int) - want[0.0]).max() <= 1


def test_alpha_through_rest(gan_run):
    from sr_keras.serving import registry as registry_lib
    from sr_keras.serving.client import predict
    from sr_keras.serving.runner import BackgroundServer

    workdir, psnr, gan, path = gan_run
    lr8 = np.random.default_rng(4).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    reg = registry_lib.ModelRegistry("srgan", os.path.dirname(path))
    reg.poll()
    with BackgroundServer(reg) as bg:
        answer = predict(bg.url, "srgan", {"signature_name": "enhance_alpha",
                                           "instances": [{"lr_image": lr8.tolist(), "alpha": 0.0},
                                                         {"lr_image": lr8.tolist(), "alpha": 1.0}]})
        out = np.array(answer["predictions"])  # One output: each prediction is its value (TF Serving).
        assert np.abs(out[0] - _uint8(psnr, lr8)).max() <= 1 and np.abs(out[1] - _uint8(gan, lr8)).max() <= 1
        png = predict(bg.url, "srgan", {"signature_name": "serving_default_alpha", "instances": [
            {"image_bytes": {"b64": base64.b64encode(png_bytes(lr8)).decode()}, "alpha": 0.0}]})
        img = np.asarray(Image.open(__import__("io").BytesIO(base64.b64decode(png["predictions"][0]["b64"]))))
        assert np.abs(img.astype(int) - _uint8(psnr, lr8)).max() <= 1
        from sr_keras.serving.client import ServingError

        with pytest.raises(ServingError, match="HTTP 400"):
            predict(bg.url, "srgan", {"signature_name": "enhance_alpha",
                                      "instances": [{"lr_image": lr8.tolist(), "alpha": 2.0}]})


def test_sr_evaluate_alpha_grid_and_plot(gan_run, tmp_path):
    _, _, _, path = gan_run
    out = tmp_path / "eval"
    proc = run_cli("evaluate", f"--model={path}", "--alpha=0,0.5,1", f"--out={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.load(open(out / "results.json"))
    rows = [k for k in results["methods"] if k != "bicubic"]
    label = f"srgan v1 ({loop.RANDOM_VGG_NOTE})"  # This run asked for random VGG features: labelled.
    assert rows == [f"{label} alpha=0", f"{label} alpha=0.5", f"{label} alpha=1"]
    assert [results["methods"][k]["alpha"] for k in rows] == [0.0, 0.5, 1.0]
    assert all({"colour_shift", "grid", "flags"} <= set(results["methods"][k]["mean"]) for k in rows)
    assert Image.open(out / "alpha.png").size[0] > 800
    assert "colour shift (levels)" in (out / "results.md").read_text()
