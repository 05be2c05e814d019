"""Shared fixtures. Splits the CPU into 2 logical devices before TF starts, so MirroredStrategy can be
tested without GPUs (this must run before any TF op, hence at import time)."""

import os
import shutil
import socket
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The default precision ("auto") is bfloat16 on CPUs with native bfloat16 and float32 elsewhere. The suite's
# equality checks (to ncnn, across tiles, exports and servers) compare float32 runs, so it runs as on a CPU without
# it; the tests of the bfloat16 default force the detection the other way (hardware.NATIVE_BF16_ENV=1).
os.environ["SR_KERAS_NATIVE_BF16"] = "0"
# Zoo models are converted into a cache of this session's own (sr_keras.zoo.cache_dir), so the first-use conversion
# is exercised on every run and the user's ~/.cache is never touched.
import atexit  # noqa: E402
import tempfile  # noqa: E402

# With pytest-xdist, the workers share the controller's cache (conversions of one model wait on its lock), and only
# the controller removes it.
if not (os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("SR_KERAS_CACHE", "").startswith(
        os.path.join(tempfile.gettempdir(), "srk_test_cache_"))):
    os.environ["SR_KERAS_CACHE"] = tempfile.mkdtemp(prefix="srk_test_cache_")
    atexit.register(shutil.rmtree, os.environ["SR_KERAS_CACHE"], True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(module: str, *args: str, timeout: float = 600, check: bool = False,
            fresh_process: bool = False) -> subprocess.CompletedProcess:
    """Runs the binary `sr_keras.cli.<module>` with `args`, as a user would, and returns its exit code and output.

    In this process by default: the binary's own flags are defined afresh and parsed from `args`, and its `main`
    runs with stdout and stderr captured (binaries share flag names such as --model, so the others' are forgotten
    first). `fresh_process=True` runs `python -m sr_keras.cli.<module>` instead; tests/test_cli_help.py does that
    for every binary, so each is also run for real in its own process.
    """
    if fresh_process:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
        proc = subprocess.run([sys.executable, "-m", f"sr_keras.cli.{module}", *args], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=REPO)
    else:
        proc = _run_in_process(module, list(args))
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _run_in_process(module: str, args: list) -> subprocess.CompletedProcess:
    import contextlib
    import importlib
    import io

    from absl import flags

    fv = flags.FLAGS
    for name, defined in list(fv.flags_by_module_dict().items()):
        if name.startswith("sr_keras.cli.") and name != "sr_keras.cli.utils":
            for flag in list(defined):  # Deleting edits this list.
                if flag.name in fv:
                    delattr(fv, flag.name)
    name = f"sr_keras.cli.{module}"
    sys.modules.pop(name, None)
    binary = importlib.import_module(name)  # Defines its flags again, with their defaults.
    fv.unparse_flags()
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = binary.main(fv([f"sr-{module.replace('_', '-')}", *args])) or 0
            except flags.Error as e:  # As absl's app.run reports a bad flag.
                print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
                code = 1
            except SystemExit as e:
                if e.code is not None and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(cwd)
        fv.unparse_flags()
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """The bundled sample photos built once as x4 TFRecords (2 training shards)."""
    from sr_keras.data import builder

    out = str(tmp_path_factory.mktemp("sample_x4"))
    builder.build_tfrecords(builder.BuildConfig(source="sample", out_dir=out, num_shards=2, verbose=False))
    return out


@pytest.fixture(scope="session")
def tiny_run(sample_data, tmp_path_factory):
    """A finished 3-step (2 pretrain + 1 GAN) tiny SRGAN run on the sample data; returns its workdir."""
    import dataclasses

    from sr_keras.train import config, loop

    workdir = str(tmp_path_factory.mktemp("tiny_run"))
    cfg = dataclasses.replace(config.get_preset("tiny", "srgan"), data=sample_data, pretrain_steps=2, gan_steps=1)
    loop.train_and_evaluate(cfg, workdir, verbose=False)
    return workdir


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def write_photo(path: str, h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """Writes a smooth, photo-like RGB image (any format Pillow knows by extension) and returns its pixels."""
    from PIL import Image

    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(xx / (5 + c) + yy / (7 + 2 * c) + r.uniform(0, 6)) for c in range(3)], -1)
    img = np.clip(img + r.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def tiny_generator(seed: int = 0, kind: str = "srgan", scale: int = 4):
    """A tiny generator (8 filters, 2 blocks, bicubic skip) with non-trivial weights, so outputs depend on the
    input and differ between seeds (versions)."""
    import keras

    from sr_keras import models
    from sr_keras.train import config

    keras.utils.set_random_seed(seed)
    g = models.build_generator(config.ModelConfig(kind=kind, scale=scale, filters=8, num_blocks=2,
                                                  upsample_filters=32, bicubic_skip=True))
    r = np.random.default_rng(seed)
    g.set_weights([w + r.normal(0, 0.02, w.shape).astype(w.dtype) for w in g.get_weights()])
    return g


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny x4 generator exported as version 1 of model `tiny`: (generator, export root, version folder)."""
    from sr_keras.savedmodel import writer

    root = tmp_path_factory.mktemp("export")
    g = tiny_generator()
    path = writer.export(g, {"model": "srgan", "scale": 4}, str(root), "tiny")
    return g, str(root), path


def export_with_architecture(tmp_path):
    """A tiny espcn generator exported as sr-export does from a run: with its architecture recorded."""
    import dataclasses

    from sr_keras import models
    from sr_keras.savedmodel import writer
    from sr_keras.train import config

    arch = config.ModelConfig(filters=8, num_blocks=2, bicubic_skip=True, batch_norm=False, upsampler="espcn")
    g = models.build_generator(arch)
    r = np.random.default_rng(5)
    g.set_weights([w + r.normal(0, 0.02, w.shape).astype(w.dtype) for w in g.get_weights()])
    meta = {"model": "srgan", "scale": 4, "architecture": dataclasses.asdict(arch)}
    return g, writer.export(g, meta, str(tmp_path), "m")


def offline(monkeypatch) -> None:
    """Makes every download of this process fail for real: HTTP(S) goes through a proxy on a closed local port
    (urllib, which Keras' `get_file` uses, honours these variables), so no test depends on the machine's network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # Free now, and nothing listens there.
    import urllib.request

    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{closed}")
    for var in ("no_proxy", "NO_PROXY"):  # This process's own local servers are never proxied.
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    # urlopen builds its global opener, proxies included, on first use: one built now is dropped after the test.
    monkeypatch.setattr(urllib.request, "_opener", None)


def mutate(data: bytes, edits) -> bytes:
    """`data` with hypothesis-drawn edits applied: (position, byte, cut) each sets a byte, or cuts the rest off."""
    out = bytearray(data)
    for pos, value, cut in edits:
        if cut:
            del out[pos % len(out):]
            if not out:
                break
        else:
            out[pos % len(out)] = value
    return bytes(out)


def png_bytes(arr) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["mutate", "offline", "run_cli", "write_photo", "tiny_generator", "export_with_architecture", "png_bytes", "REPO", "shutil"]


@pytest.fixture(scope="session")
def sample_photo():
    """scikit-image's coffee photo (400 x 600), uint8 RGB."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.coffee())
