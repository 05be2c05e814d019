"""Each installed command's --help lists its own flags (and not absl's), as a console script is actually run."""

import configparser
import os
import subprocess
import sys

import pytest
from conftest import REPO

_CFG = configparser.ConfigParser()
_CFG.read(os.path.join(REPO, "setup.cfg"))
SCRIPTS = dict(line.split(" = ") for line in _CFG["options.entry_points"]["console_scripts"].strip().splitlines())


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_lists_the_commands_own_flags(script):
    exe = os.path.join(os.path.dirname(sys.executable), script)
    if not os.path.exists(exe):
        pytest.fail(f"{exe} is not installed; run `make install`")
    module = SCRIPTS[script].split(":")[0]
    own = subprocess.run([sys.executable, "-c", f"import {module} as m, absl.flags as f; "
                          f"print(' '.join(fl.name for fl in f.FLAGS.get_key_flags_for_module(m)))"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    names = own.stdout.split()
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1)  # absl exits 1 after --help.
    assert names and all(f"--{n}" in proc.stdout or f"--[no]{n}" in proc.stdout for n in names), proc.stdout
    assert "--verbosity" not in proc.stdout and "--helpfull" not in proc.stdout.replace("Try --helpfull", "")


def test_commands_print_no_tensorflow_startup_noise():
    """A command's stderr holds its own message only: TF's C++ start-up lines (printed before TF_CPP_MIN_LOG_LEVEL
    applies) are filtered, as a user runs it (no TF_CPP_MIN_LOG_LEVEL set)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "sr_keras.cli.evaluate", "--model=/nonexistent"], capture_output=True,
                          text=True, timeout=300, env=dict(env, PYTHONPATH=REPO), cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: /nonexistent holds no model (expected saved_model.pb, numbered version folders as written by "
        "sr-export, or a .keras, .onnx or .tflite file)"]


def test_the_noise_filter_keeps_real_errors():
    from sr_keras.cli.utils import STARTUP_NOISE

    noise = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1795710855.122162   17687 port.cc:153] oneDNN custom operations are on. You may see ...",
             "I0000 00:00:1795710855.122651   17687 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
             "GPU will not be used.",
             "E0000 00:00:1732000000.000000    1234 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error"]
    real = ["ImportError: libcudart.so.12: cannot open shared object file",
            "E0000 00:00:1795710855.1 1 op_kernel.cc:1800] OP_REQUIRES failed at save_restore_v2_ops.cc:"]
    assert all(STARTUP_NOISE.search(line) for line in noise)
    assert not any(STARTUP_NOISE.search(line) for line in real)


def test_the_python_api_is_quiet_on_import_and_load_and_says_what_it_loaded():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import sr_keras; m = sr_keras.load('sr_keras_x4'); print(repr(m))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(env, PYTHONPATH=REPO), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # No cuInit, CUDA-driver or oneDNN lines.
    assert ", x4, precision=float32, tile=512" in proc.stdout


@pytest.mark.parametrize("module,args,message", [
    ("enhance", ["--input=x.png", "--quality=0"], "--quality=0"),
    ("enhance", ["--input=x.png", "--tile=-5"], "--tile=-5"),
    ("evaluate", ["--metrics=foo"], "--metrics: unknown foo"),
    ("evaluate", ["--alpha=2"], "--alpha='2'"),
    ("train", ["--workdir=w", "--preset=celeba_x8", "--scale=4"], "x8 only"),
    ("serve", ["--port=99999"], "--port"),
])
def test_flag_errors_fail_fast_without_importing_tensorflow(module, args, message):
    code = (f"import runpy, sys; sys.argv = ['sr-{module}'] + {args!r}\n"
            "try:\n    runpy.run_module('sr_keras.cli." + module + "', run_name='__main__')\n"
            "except SystemExit as e:\n    print('exit', e.code, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO)
    assert proc.stdout.strip() == "exit 2 False", (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: ") and message in proc.stderr
