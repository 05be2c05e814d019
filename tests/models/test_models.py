"""Generators, discriminators, custom layers and the VGG19 extractor: exact sizes, shapes and serialization."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import offline

from sr_keras import models
from sr_keras.models import vgg
from sr_keras.models.dcgan import build_dcgan_discriminator, build_dcgan_generator
from sr_keras.models.srgan import build_srgan_discriminator, build_srgan_generator
from sr_keras.train import config, losses

TINY = dict(filters=8, num_blocks=2)


def _srresnet_params(scale, f=64, b=16, up=256):
    """Hand count of SRResNet parameters (BatchNorm counts gamma, beta, moving mean and variance)."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    bn = 4 * f
    stem = conv(9, 3, f) + f
    block = 2 * (conv(3, f, f) + bn) + f
    trunk = conv(3, f, f) + bn
    upsample = (conv(3, f, up) + up // 4) * int(np.log2(scale))
    return stem + b * block + trunk + upsample + conv(9, f, 3)


def test_srgan_generator_has_exactly_the_paper_parameter_count():
    g = build_srgan_generator(scale=4)
    assert g.count_params() == 1_554_883 == _srresnet_params(4)
    assert build_srgan_generator(scale=2).count_params() == _srresnet_params(2)
    prelus = [lyr for lyr in g.layers if isinstance(lyr, keras.layers.PReLU)]
    assert all(lyr.alpha.shape == (1, 1, 64) for lyr in prelus)  # One slope per channel.
    assert len(prelus) == 1 + 16 + 2


def test_dcgan_generator_has_five_residual_blocks_and_transposed_convs():
    g = build_dcgan_generator(scale=4)
    adds = [lyr.name for lyr in g.layers if isinstance(lyr, keras.layers.Add)]
    assert adds == [f"block{i}_add" for i in range(5)]
    deconvs = [lyr for lyr in g.layers if isinstance(lyr, keras.layers.Conv2DTranspose)]
    assert [d.strides for d in deconvs] == [(2, 2), (2, 2)]
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    expected = conv(5, 3, 64) + 5 * 2 * (conv(3, 64, 64) + 256) + 2 * (conv(4, 64, 64) + 256) + conv(5, 64, 3)
    assert g.count_params() == expected == 513_219


@pytest.mark.parametrize("builder", [build_srgan_generator, build_dcgan_generator])
@pytest.mark.parametrize("scale", [2, 4])
def test_generators_are_fully_convolutional(builder, scale):
    g = builder(scale=scale, **TINY)
    assert g.input_shape == (None, None, None, 3)
    for h, w in [(7, 9), (16, 5)]:
        out = g(np.random.rand(2, h, w, 3).astype("float32"), training=False)
        assert out.shape == (2, h * scale, w * scale, 3) and out.dtype == tf.float32


def test_srgan_discriminator_follows_the_paper():
    d = build_srgan_discriminator(96)
    convs = [lyr for lyr in d.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.strides[0] for c in convs] == [1, 2] * 4
    dense = [lyr for lyr in d.layers if isinstance(lyr, keras.layers.Dense)]
    assert [x.units for x in dense] == [1024, 1]
    assert all(lyr.negative_slope == pytest.approx(0.2) for lyr in d.layers
               if isinstance(lyr, keras.layers.LeakyReLU))
    assert d(np.zeros((3, 96, 96, 3), "float32"), training=False).shape == (3, 1)


def test_dcgan_discriminator_has_no_pooling_and_no_hidden_dense():
    d = build_dcgan_discriminator(64)
    kinds = {type(lyr).__name__ for lyr in d.layers}
    assert not any("Pool" in k for k in kinds)
    assert [x.units for x in d.layers if isinstance(x, keras.layers.Dense)] == [1]
    assert all(c.strides == (2, 2) for c in d.layers if isinstance(c, keras.layers.Conv2D))
    assert d(np.zeros((2, 64, 64, 3), "float32"), training=False).shape == (2, 1)


@pytest.mark.parametrize("kind", ["srgan", "dcgan"])
def test_no_lambda_layers(kind):
    m = config.ModelConfig(kind=kind, **TINY)
    for model in (models.build_generator(m), models.build_discriminator(m, 32)):
        assert not any(isinstance(lyr, keras.layers.Lambda) for lyr in model.layers)


@pytest.mark.parametrize("kind,upsampler", [("srgan", "srresnet"), ("srgan", "espcn"), ("srgan", "nearest"),
                                            ("dcgan", "srresnet")])
@pytest.mark.parametrize("bicubic_skip", [False, True])
def test_config_round_trip_and_keras_save_load_give_equal_outputs(tmp_path, kind, upsampler, bicubic_skip):
    g = models.build_generator(config.ModelConfig(kind=kind, bicubic_skip=bicubic_skip, upsampler=upsampler,
                                                  **TINY))
    g.set_weights([w + np.random.default_rng(0).normal(0, 0.01, w.shape).astype(w.dtype) for w in g.get_weights()])
    x = np.random.default_rng(1).random((1, 6, 5, 3)).astype("float32")
    clone = keras.Model.from_config(g.get_config())
    clone.set_weights(g.get_weights())
    np.testing.assert_allclose(clone(x, training=False), g(x, training=False), atol=1e-6)
    path = str(tmp_path / "g.keras")
    g.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), g(x, training=False).numpy())


def test_bicubic_skip_starts_exactly_at_bicubic():
    g = build_srgan_generator(scale=4, bicubic_skip=True, **TINY)
    x = np.random.default_rng(0).random((1, 6, 7, 3)).astype("float32")
    expected = tf.image.resize(x, (24, 28), "bicubic")
    np.testing.assert_allclose(g(x, training=False), expected, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_tail_keeps_every_conv_at_lr_and_starts_at_bicubic(scale):
    g = build_srgan_generator(scale=scale, bicubic_skip=True, batch_norm_layers=False, upsampler="espcn", **TINY)
    f, b = TINY["filters"], TINY["num_blocks"]
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    # stem + PReLU, blocks (2 convs + PReLU), trunk conv, one conv to 3*scale^2; no BN, no HR-resolution conv.
    assert g.count_params() == (conv(9, 3, f) + f + b * (2 * conv(3, f, f) + f) + conv(3, f, f)
                                + conv(3, f, 3 * scale * scale))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in g.layers)
    x = np.random.default_rng(0).random((1, 5, 7, 3)).astype("float32")
    expected = tf.image.resize(x, (5 * scale, 7 * scale), "bicubic")
    np.testing.assert_allclose(g(x, training=False), expected, atol=1e-6)


def test_unknown_upsampler_and_odd_srresnet_scale_are_refused():
    with pytest.raises(ValueError, match="upsampler"):
        build_srgan_generator(upsampler="bilinear", **TINY)
    with pytest.raises(ValueError, match="powers of two"):
        build_srgan_generator(scale=3, **TINY)
    with pytest.raises(ValueError, match="powers of two"):
        build_srgan_generator(scale=3, upsampler="nearest", **TINY)


def test_bicubic_base_stays_float32_under_bfloat16():
    """In bf16 the base would be rounded to ~1/256: the model could not start exactly at bicubic."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        g = build_srgan_generator(scale=4, bicubic_skip=True, upsampler="espcn", **TINY)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(1).random((1, 6, 7, 3)).astype("float32")
    out = g(x, training=False)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out, tf.image.resize(x, (24, 28), "bicubic"), atol=1e-6)


def test_pixel_shuffle_matches_depth_to_space_and_serializes():
    from sr_keras.models.layers import PixelShuffle

    layer = PixelShuffle(2)
    x = np.arange(2 * 3 * 3 * 8, dtype="float32").reshape(2, 3, 3, 8)
    np.testing.assert_array_equal(layer(x), tf.nn.depth_to_space(x, 2))
    assert PixelShuffle.from_config(layer.get_config()).factor == 2


# --- VGG19 --------------------------------------------------------------------------------------------------

def test_vgg_extractor_layers_and_caffe_preprocessing():
    e54 = vgg.build_vgg_extractor("vgg54", "none")
    e22 = vgg.build_vgg_extractor("vgg22", "none")
    assert e54.layers[-1].name == "block5_conv4" and e22.layers[-1].name == "block2_conv2"
    assert e54.output_shape == (None, None, None, 512) and e22.output_shape == (None, None, None, 128)
    assert not e54.trainable_weights
    x = np.random.default_rng(0).random((1, 4, 4, 3)).astype("float32")
    pre = vgg.VGGPreprocess()(x).numpy()
    expected = x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], "float32")
    np.testing.assert_allclose(pre, expected, atol=1e-3)


def test_vgg_weights_from_a_path(tmp_path):
    base = keras.applications.VGG19(include_top=False, weights=None)
    path = str(tmp_path / "vgg19.weights.h5")
    base.save_weights(path)
    e = vgg.build_vgg_extractor("vgg22", path)
    for name in ("block1_conv1", "block2_conv2"):
        np.testing.assert_array_equal(e.get_layer(name).kernel.numpy(), base.get_layer(name).kernel.numpy())
    with pytest.raises(vgg.VGGWeightsError, match="no such file"):
        vgg.build_vgg_extractor("vgg54", str(tmp_path / "missing.h5"))


def test_vgg_imagenet_offline_fails_with_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    offline(monkeypatch)  # A real failed download, whether or not this machine has a network.
    with pytest.raises(vgg.VGGWeightsError) as e:
        vgg.build_vgg_extractor("vgg54", "imagenet")
    msg = str(e.value)
    assert "\n" not in msg and vgg.WEIGHTS_FILE in msg and "--vgg_weights=PATH" in msg


def test_content_loss_is_zero_for_identical_images_and_per_example():
    loss = losses.VGGContentLoss(vgg.build_vgg_extractor("vgg22", "none"))
    hr = np.random.default_rng(0).random((3, 16, 16, 3)).astype("float32")
    assert loss(hr, hr).shape == (3,)
    np.testing.assert_allclose(loss(hr, hr), 0.0, atol=1e-9)
    sr = hr.copy()
    sr[1] = 1.0 - sr[1]
    v = loss(hr, sr).numpy()
    assert v[0] == 0 and v[2] == 0 and v[1] > 0
    assert losses.l1_loss(hr, sr).shape == (3,)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_nearest_tail_upsamples_without_a_shuffle(scale):
    g = build_srgan_generator(scale=scale, upsampler="nearest", **TINY)
    assert not [lyr for lyr in g.layers if "shuffle" in lyr.name]
    assert len([lyr for lyr in g.layers if lyr.name.endswith("_nearest")]) == int(np.log2(scale))
    assert g(np.zeros((1, 5, 6, 3), "float32")).shape == (1, 5 * scale, 6 * scale, 3)
