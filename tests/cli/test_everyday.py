"""Everyday use of the binaries: bare arguments, a mistyped name answered before TensorFlow loads, Ctrl-C that
stops in one line with status 130 and no partial file, the note on --outscale, and sr-client without a name."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli, write_photo


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)


def test_photos_given_as_bare_arguments_are_enhanced(exported, tmp_path):
    _, _, model = exported
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    write_photo(a, 16, 16)
    write_photo(b, 16, 20, seed=1)
    out = tmp_path / "out"
    proc = run_cli("enhance", f"--model={model}", f"--output_dir={out}", a, b)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["a_x4.png", "b_x4.png"]
    proc = run_cli("enhance", f"--output_dir={out}")
    assert proc.returncode == 2 and "sr-enhance photo.jpg" in proc.stderr


def test_a_mistyped_model_name_fails_before_tensorflow_is_imported(tmp_path):
    photo = str(tmp_path / "p.png")
    write_photo(photo, 16, 16)
    code = ("import sys; from sr_keras.cli import enhance; sys.argv = ['sr-enhance', '--model=span_x5', "
            f"{photo!r}]\ntry:\n    enhance.run()\nexcept SystemExit as e:\n    print('status', e.code)\n"
            "print('tensorflow imported' if 'tensorflow' in sys.modules else 'tensorflow not imported')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert "status 2" in proc.stdout and "tensorflow not imported" in proc.stdout, (proc.stdout, proc.stderr)
    assert "did you mean span_x4" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("binary,typed,meant", [("enhance", "--in=photo.png", "input"),
                                                ("evaluate", "--mod=span_x4", "model"),
                                                ("enhance", "--outpt=x", "output_dir")])
def test_a_short_or_misspelt_flag_gets_a_suggestion(binary, typed, meant):
    """absl suggests near spellings (--outpt); a flag cut short (--in= for --input) gets one too."""
    proc = run_cli(binary, typed, fresh_process=True)  # As typed in a shell: the real argument parsing.
    assert proc.returncode == 1 and f"Did you mean: {meant}" in proc.stderr, proc.stderr


def test_outscale_beyond_the_models_scale_says_which_part_is_a_resize(exported, tmp_path):
    _, _, model = exported
    photo = str(tmp_path / "p.png")
    write_photo(photo, 16, 16)
    proc = run_cli("enhance", f"--model={model}", f"--output_dir={tmp_path}/o", "--outscale=8", photo)
    assert proc.returncode == 0, proc.stderr
    assert "the model upscales x4; the rest of --outscale=8 (x2) is a Lanczos resize" in proc.stderr
    proc = run_cli("enhance", f"--model={model}", f"--output_dir={tmp_path}/o2", "--outscale=2", photo)
    assert "Lanczos resize" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_stops_in_one_line_with_status_130_and_no_partial_file(exported, tmp_path):
    """SIGINT while a folder is being enhanced: one line saying how far it got, status 130, only whole outputs;
    the same command then finishes the rest."""
    _, _, model = exported
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        write_photo(str(photos / f"p{i}.png"), 400, 400, seed=i)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sr_keras.cli.enhance", f"--model={model}", f"--output_dir={out}", "--tile=32",
            "--precision=float32", str(photos)]
    # Ctrl-C as in a terminal: SIGINT at its default. A suite started in the background of a non-interactive shell
    # (`make test &`, nohup) ignores SIGINT, and its children inherit that: they would rightly run to the end.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and not (out.exists() and any(n.endswith(".png") for n in os.listdir(out))):
        time.sleep(0.2)
    seen = sorted(os.listdir(out)) if out.exists() else []
    assert proc.poll() is None, ("finished before the signal", proc.returncode, seen)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stderr, stdout[-2000:], seen, sorted(os.listdir(out)))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) <= 2, stderr
    assert "run the same command again to continue" in lines[-1] and "stopped after" in lines[-1]
    written = sorted(os.listdir(out))
    assert written and all(n.endswith("_x4.png") for n in written)  # No temporary or half-written file.
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
    assert done.returncode == 0 and len(os.listdir(out)) == 8


def test_sr_client_uses_the_one_model_the_server_serves(exported, tmp_path):
    from sr_keras.serving import registry as registry_lib
    from sr_keras.serving.runner import BackgroundServer

    _, root, _ = exported
    reg = registry_lib.ModelRegistry("tiny", os.path.join(root, "tiny"))
    reg.poll()
    photo = str(tmp_path / "p.png")
    write_photo(photo, 12, 12)
    with BackgroundServer([reg], poll_seconds=0.2) as bg:
        proc = run_cli("client", f"--server={bg.url}", f"--input={photo}", f"--output={tmp_path}/o.png")
        assert proc.returncode == 0, proc.stderr
        assert open(tmp_path / "o.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    proc = run_cli("client", "--server=http://127.0.0.1:9", f"--input={photo}")
    assert proc.returncode == 1 and "cannot reach" in proc.stderr
