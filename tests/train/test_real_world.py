"""The real-world recipe: second-order degradations, the U-Net discriminator with spectral normalisation, the
perceptual loss with VGG16 offline, --lr_images pairing."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import offline
from PIL import Image

from sr_keras.data import real_degradation as rd
from sr_keras.evaluate import protocol
from sr_keras.models import lossnets
from sr_keras.models.unet import build_unet_discriminator
from sr_keras.train import config, loop, losses
from sr_keras.train.step import AdversarialTrainer


@pytest.fixture(scope="module")
def drawn():
    """Parameters of 400 seeded degradations of a small crop."""
    hr = tf.random.stateless_uniform([48, 48, 3], [1, 2])
    fn = tf.function(lambda s: rd.degrade_with_params(hr, s)[1])
    rows = [fn(tf.constant([3, i], tf.int64)) for i in range(400)]
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_degradation_parameters_follow_the_configured_distributions(drawn):
    first, second = rd.REAL_ESRGAN.first, rd.REAL_ESRGAN.second
    for n, order in ((1, first), (2, second)):
        sigma = drawn[f"blur{n}_sigma_x"]
        assert order.blur_sigma[0] <= sigma.min() and sigma.max() <= order.blur_sigma[1]
        assert np.mean(sigma) == pytest.approx(np.mean(order.blur_sigma), abs=0.15)  # Uniform.
        noise = drawn[f"noise{n}_sigma"]
        assert order.noise_range[0] <= noise.min() and noise.max() <= order.noise_range[1]
        assert np.mean(noise) == pytest.approx(np.mean(order.noise_range), rel=0.1)
        jpeg = drawn[f"jpeg{n}"]
        assert jpeg.min() >= order.jpeg_range[0] and jpeg.max() <= order.jpeg_range[1]
        assert np.mean(jpeg) == pytest.approx(np.mean(order.jpeg_range), abs=3)
        assert np.mean(drawn[f"noise{n}_gaussian"]) == pytest.approx(order.gaussian_noise_prob, abs=0.08)
        assert np.mean(drawn[f"noise{n}_gray"]) == pytest.approx(order.gray_noise_prob, abs=0.08)
        kind = drawn[f"blur{n}"]
        assert np.mean(kind != -2) == pytest.approx(order.blur_prob, abs=0.06)  # -2: no blur this time.
        assert np.mean(kind[kind != -2] == -1) == pytest.approx(order.sinc_prob, abs=0.05)  # -1: a sinc kernel.
        sizes = drawn[f"blur{n}_size"]
        assert set(sizes) <= set(rd.KERNEL_RANGE) and sizes.min() == 7 and sizes.max() == 21
    assert np.mean(drawn["final_sinc"]) == pytest.approx(rd.REAL_ESRGAN.final_sinc_prob, abs=0.06)


def test_kernels_have_the_drawn_width_and_noise_the_drawn_level():
    k = rd.gaussian_family_kernel(0, 1.5, 1.5, 0.0, 1.0, 21).numpy()
    r = np.arange(-10, 11)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    assert (k.sum(0) * r ** 2).sum() == pytest.approx(1.5 ** 2, rel=0.02)  # Its variance is sigma squared.
    aniso = rd.gaussian_family_kernel(0, 2.0, 1.0, 0.0, 1.0, 21).numpy()
    assert (aniso.sum(0) * r ** 2).sum() == pytest.approx(4.0, rel=0.05)
    assert (aniso.sum(1) * r ** 2).sum() == pytest.approx(1.0, rel=0.05)
    small = rd.gaussian_family_kernel(0, 3.0, 3.0, 0.0, 1.0, 7).numpy()
    assert small[:7].sum() == 0 and small[:, 14:].sum() == 0  # A 7 x 7 kernel padded to 21 x 21.
    sinc = rd.sinc_kernel(np.pi / 3, 21).numpy()
    assert sinc.sum() == pytest.approx(1.0, abs=1e-5) and sinc.min() < 0  # Ringing lobes.
    order = dataclasses.replace(rd.REAL_ESRGAN.first, gaussian_noise_prob=1.0, gray_noise_prob=0.0,
                                noise_range=(10.0, 10.0))
    noisy, params = rd.add_noise(rd._Draws(tf.constant([0, 0], tf.int64)), tf.fill([128, 128, 3], 0.5), order)
    assert float(tf.math.reduce_std(noisy)) * 255 == pytest.approx(10.0, rel=0.05)


def test_jpeg_round_trip_keeps_the_colours(sample_photo):
    x = tf.constant(sample_photo[:256, :256], tf.float32) / 255.0
    for q in (30, 90):
        shift = (tf.reduce_mean(rd.jpeg_round_trip(x, tf.constant(q)), [0, 1]) - tf.reduce_mean(x, [0, 1])) * 255
        assert float(tf.reduce_max(tf.abs(shift))) < 0.7, shift.numpy()  # TF's fast IDCT: 1.2 levels.


def test_unet_discriminator_judges_every_pixel_under_spectral_normalisation():
    d = build_unet_discriminator(filters=8)
    out = d(tf.zeros([2, 32, 48, 3]))
    assert out.shape == (2, 32, 48, 1)
    sn = [layer for layer in d.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert len(sn) == 8  # Every convolution but the first and the last (conv1 ... conv8).
    x = tf.random.stateless_uniform([1, 16, 16, 3], [0, 1])
    for _ in range(80):  # Power iterations converge on the largest singular value (from above, once normalised).
        d(x, training=True)
    for layer in sn:  # The kernel each convolution uses has spectral norm 1 (its raw kernel does not).
        raw = layer.layer.kernel.numpy()
        used = np.asarray(layer.normalized_weights()[1]).reshape(-1, raw.shape[-1])
        assert np.linalg.svd(used, compute_uv=False)[0] == pytest.approx(1.0, abs=0.03), layer.name


def test_a_few_real_world_gan_steps_lower_the_loss_on_a_fixed_batch(sample_photo):
    lossnets.ensure("vgg16")
    hr = tf.constant(sample_photo[None, 100:164, 100:164], tf.float32) / 255.0
    lr = rd.degrade(hr[0], tf.constant([0, 0], tf.int64))[None]
    cfg = config.get_preset("tiny")
    model = dataclasses.replace(cfg.model, kind="span", filters=8, num_blocks=1, discriminator="unet_sn")
    from sr_keras import models

    g, d = models.build_generator(model), models.build_discriminator(model, 64)
    trainer = AdversarialTrainer(g, d, losses.make_content_loss("percep", "vgg16"), losses.l1_loss,
                                 keras.optimizers.Adam(2e-3), keras.optimizers.Adam(2e-3), pixel_weight=1.0,
                                 adv_weight=0.1)
    batch = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    it = iter(tf.distribute.get_strategy().experimental_distribute_dataset(batch))
    logs = [trainer.train_step(it, phase=2) for _ in range(12)]
    content = [float(x["g/content"]) for x in logs]
    assert np.mean(content[-3:]) < 0.9 * np.mean(content[:3]), content
    assert all(np.isfinite(float(x["d/real"])) for x in logs)


def test_the_phase_mean_loss_sees_colour_shifts_and_checkerboards_but_not_texture():
    rng = np.random.default_rng(0)
    hr = tf.constant(rng.uniform(0.2, 0.8, (2, 64, 64, 3)), tf.float32)
    period = 4
    checker = np.zeros((64, 64, 3), np.float32)
    checker[0::period, 0::period] = 0.04  # One phase of 16 brighter by 0.04: the phase means' mean |.| is 0.04/16...
    loss = lambda sr: losses.phase_mean_loss(hr, sr, period).numpy()
    np.testing.assert_allclose(loss(hr), 0.0, atol=1e-7)
    np.testing.assert_allclose(loss(hr + 0.01), 0.01, rtol=1e-4)  # A colour shift: every phase moves by it.
    np.testing.assert_allclose(loss(hr + checker), 0.04 / period ** 2, rtol=1e-4)
    texture = rng.normal(0, 0.05, (2, 64, 64, 3)).astype(np.float32)  # Zero-mean detail: 256 pixels per phase.
    assert (loss(hr + texture) < 0.1 * losses.l1_loss(hr, hr + texture).numpy()).all()
    # Odd sizes are cropped to whole periods; the loss is per example.
    assert losses.phase_mean_loss(hr[:, :61, :62], hr[:, :61, :62] + 0.01, period).shape == (2,)


def test_a_pixel_loss_run_needs_no_loss_network(sample_data, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # No VGG19 weights, and none downloadable.
    offline(monkeypatch)
    cfg = dataclasses.replace(config.get_preset("tiny"), data=sample_data, content_loss="percep",
                              vgg_weights="imagenet", vgg_fallback="error", pretrain_steps=2, gan_steps=0,
                              pretrain_loss="l1")
    result = loop.train_and_evaluate(cfg, str(tmp_path / "run"), verbose=False)
    assert result["step"] == 2


def test_offline_the_vgg16_content_path_is_picked_and_labelled(tmp_path, monkeypatch, capsys):
    lossnets.ensure("vgg16")  # Converted once (online), as a user's first run does.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # No VGG19 weights.
    offline(monkeypatch)
    cfg = dataclasses.replace(config.get_preset("tiny"), content_loss="percep", vgg_weights="imagenet")
    resolved = loop.resolve_content_loss(cfg)
    assert resolved.vgg_weights == "vgg16" and resolved.content_loss == "percep"
    assert resolved.content_note == "VGG16 content: VGG19 weights unavailable"
    assert "VGG16 content: VGG19 weights unavailable" in capsys.readouterr().out
    vgg54 = loop.resolve_content_loss(dataclasses.replace(cfg, content_loss="vgg54"))
    assert vgg54.vgg_weights == "vgg16" and vgg54.content_note == resolved.content_note
    loss = losses.make_content_loss("vgg54", "vgg16")  # VGG16 conv5_3 stands in for VGG19's conv5_4.
    assert loss.extractor.output.shape[-1] == 512


def _write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def test_lr_images_are_paired_by_stem_and_a_missing_partner_is_named(tmp_path, sample_photo):
    hr, lr = tmp_path / "hr", tmp_path / "lr"
    for i, name in enumerate(("a", "b")):
        crop = sample_photo[i * 64:i * 64 + 130, :130]  # 130: HR a little larger than 4 x 32, as datasets come.
        _write(str(hr / f"{name}.png"), crop)
        _write(str(lr / f"{name}.jpg" if name == "b" else lr / f"{name}.png"), crop[::4, ::4][:32, :32])
    images, skipped = protocol.load_images(str(hr), 4, lr_images=str(lr))
    assert [i.name for i in images] == ["a.png", "b.png"] and not skipped
    assert images[0].hr.shape == (128, 128, 3) and images[0].lr.shape == (32, 32, 3)
    assert np.array_equal(images[0].lr, np.asarray(Image.open(lr / "a.png")))  # The given LR, not a downscale.
    _write(str(hr / "c.png"), sample_photo[:128, :128])
    with pytest.raises(ValueError, match=r"c\.png has no LR partner c\.\* in --lr_images"):
        protocol.load_images(str(hr), 4, lr_images=str(lr))
    os.remove(hr / "c.png")
    _write(str(lr / "d.png"), sample_photo[:32, :32])
    with pytest.raises(ValueError, match=r"d\.png has no HR partner"):
        protocol.load_images(str(hr), 4, lr_images=str(lr))
    os.remove(lr / "d.png")
    _write(str(lr / "a.png"), sample_photo[:20, :32])
    with pytest.raises(ValueError, match=r"a\.png: the LR image is 32x20, so the HR image should be 128x80"):
        protocol.load_images(str(hr), 4, lr_images=str(lr))


def test_the_real_world_recipe_runs_end_to_end_on_the_tiny_preset(sample_data, tmp_path):
    from sr_keras.train.run_dir import RunDir

    cfg = dataclasses.replace(config.get_preset("tiny"), data=sample_data, degradation="realesrgan",
                              content_loss="percep", pixel_weight=1.0, adv_weight=0.1, clip_norm=5.0,
                              eval_lpips=True,
                              model=dataclasses.replace(config.get_preset("tiny").model, discriminator="unet_sn"))
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(cfg, workdir, verbose=False)
    run = RunDir(workdir)
    saved = run.read_config()
    assert (saved.degradation, saved.model.discriminator, saved.content_loss) == ("realesrgan", "unet_sn", "percep")
    rows = run.read_metrics()
    gan = [r for r in rows if r.get("phase") == 2 and "d/acc" in r]
    assert gan and all(np.isfinite(r["g/adv"]) for r in gan)
    assert any("val/lpips" in r and 0 < r["val/lpips"] < 1.5 for r in rows)  # Training validation logs LPIPS.


def test_the_shipped_real_world_model_and_its_card():
    import sr_keras
    from sr_keras import zoo
    from sr_keras.savedmodel import layout
    from sr_keras.zoo import cache as zoo_cache

    assert zoo.match_name("SR_Keras_Real_X4") == zoo.REAL and zoo.REAL in zoo.NAMES
    assert zoo_cache.status(zoo.REAL) == "ready"
    card = layout.read_card(zoo.model_dir(zoo.REAL))
    assert card["model"] == zoo.REAL and card["scale"] == 4
    inputs = card["inputs"]
    assert inputs["photos"] and all(row["license"] for row in inputs["photos"])
    init = inputs["initial_weights"]
    assert init["model"] == "span_x4" and "Apache-2.0" in init["license"] and "hongyuanyu/SPAN" in init["license"]
    assert len(init["files_sha256"]) == 2
    assert "Real-ESRGAN" in inputs["degradations"]["source"] and inputs["degradations"]["license"]
    loss = inputs["loss_network"]
    assert loss.get("sources") or loss.get("license")
    assert "make real-model" in card["provenance"]["recipe"] and "real_x4_gan" in card["recipe"]
    means = card["real_world_set"]["means"]
    assert all({"lpips", "niqe", "psnr_y"} <= set(m) for m in means.values())
    model = sr_keras.load("sr_keras_real_x4")
    assert model.interpolation and model.default_alpha == card["default_alpha"]
    assert os.path.exists(os.path.join(zoo.model_dir(zoo.REAL), "MODEL_CARD.md"))
