"""Progress suits where it goes: a bar on a terminal, a few plain lines in a log or a pipe."""

import io
import re

from conftest import run_cli

from sr_keras.utils import progress


def test_line_progress_prints_the_first_step_then_at_most_every_interval_and_the_end():
    out = io.StringIO()
    p = progress.LineProgress(100, "step", every_seconds=1e9, stream=out)
    for i in range(1, 101):
        p.update(i, values=[("loss", 1.0 / i)])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("1/100 steps (1%)") and "ETA" not in lines[0] and "loss 1" in lines[0]
    assert lines[1].startswith("100/100 steps (100%)") and "ETA" not in lines[1] and "loss 0.01" in lines[1]
    out = io.StringIO()
    p = progress.LineProgress(3, "image", every_seconds=0.0, stream=out)
    for _ in range(3):
        p.add(1)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "1/3 images (33%)", "2/3 images (67%)", "3/3 images (100%)"]


def test_the_eta_leaves_out_a_slow_first_step(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = progress.LineProgress(100, "step", every_seconds=0.0, stream=out)
    clock[0] = 100.0  # The first step traces the graph: 100 s.
    p.update(1)
    for i in range(2, 12):  # Then 1 s per step.
        clock[0] += 1.0
        p.update(i)
    lines = out.getvalue().splitlines()
    assert "ETA" not in lines[0]  # One step says nothing about the rate.
    assert lines[-1].startswith("11/100 steps") and "110 s" in lines[-1] and "ETA 89 s" in lines[-1], lines[-1]


def test_commands_log_plain_lines_when_output_is_not_a_terminal(tmp_path):
    proc = run_cli("build_tfrecords", "--source=sample", f"--out_dir={tmp_path / 'd'}", "--max_images=4",
                   "--workers=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\x1b[" not in proc.stdout and "\u2501" not in proc.stdout  # No bar redraws in a pipe.
    assert "4/4 images (100%)" in proc.stdout


def test_the_eta_follows_the_recent_rate_when_a_second_phase_is_slower(monkeypatch):
    """make demo's run: 100 pixel-phase steps at 0.1 s, then GAN steps at 1 s. Averaged since the start, the ETA at
    83% said 47 s for 100 s of work; the last minute's rate says what is left."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = progress.LineProgress(600, "step", every_seconds=0.0, stream=out)
    for i in range(1, 501):
        clock[0] += 0.1 if i <= 100 else 1.0
        p.update(i)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("500/600 steps") and "ETA 100 s" in last, last


def test_a_terminal_gets_one_line_redrawn_in_place_and_messages_between(monkeypatch, capsys):
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    bar = progress.bar(3, unit_name="image")
    assert isinstance(bar, progress.LineProgress) and bar.redraw
    bar.update(1)
    progress.message("skipped a.png: exists", bar)
    bar.update(2)  # Drawn again at once after a message, however soon.
    bar.update(3)
    out = capsys.readouterr().out
    assert re.fullmatch(r"\r\x1b\[K1/3 images \(33%\), 0 s\r\x1b\[Kskipped a.png: exists\n"
                        r"\r\x1b\[K2/3 images \(67%\), 0 s, ETA 0 s\r\x1b\[K3/3 images \(100%\), 0 s\n", out), out
    progress.message("plain", progress.LineProgress(3))  # A log gets the line alone.
    assert capsys.readouterr().out == "plain\n"


# --- TensorFlow's harmless C++ error lines, filtered out of a binary's stderr ----------------------------------

_NOISY = (b"E0000 00:00:1796237560.914894    9800 util.cc:131] oneDNN supports DT_UINT8 only on platforms with "
          b"AVX-512. Falling back to the default Eigen-based implementation if present.\n"
          b"E0000 00:00:1.5 71 meta_optimizer.cc:966] remapper failed: INVALID_ARGUMENT: Mutation::Apply error\n")
_KEPT = (b"E0000 00:00:1.5 71 op_kernel.cc:1] a real error\nTraceback (most recent call last):\n  File x\n"
         b"short\n\rab\r12%\r50%\n")


def _relay(chunks) -> bytes:
    import subprocess
    import sys

    from sr_keras.utils import quiet

    proc = subprocess.Popen([sys.executable, "-S", quiet.__file__, quiet.RUNTIME_NOISE.pattern],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for chunk in chunks:
        proc.stdin.write(chunk)
        proc.stdin.flush()
    proc.stdin.close()
    out = proc.stdout.read()
    assert proc.wait(30) == 0
    return out


def test_the_relay_drops_only_the_known_noise_and_passes_every_other_byte():
    noise = _NOISY.splitlines(keepends=True)
    kept = _KEPT.splitlines(keepends=True)
    data = noise[0] + kept[0] + noise[1] + b"".join(kept[1:]) + b"no newline at the end"
    whole = _relay([data])
    assert whole == _KEPT + b"no newline at the end"
    # Written one byte at a time (as a progress bar's partial lines come), the same bytes come out.
    assert _relay([data[i:i + 1] for i in range(len(data))]) == whole


def test_what_a_binary_writes_before_it_crashes_still_gets_out():
    """The relay is a process of its own: a C++ abort in the binary does not lose the lines just before it."""
    import subprocess
    import sys

    code = ("import os; from sr_keras import quiet\n"
            "assert quiet.filter_stderr_for_life()\n"
            f"os.write(2, {_NOISY!r})\n"
            "os.write(2, b'F0000 00:00:1.0 1 check.cc:1] Check failed: the last words\\n')\n"
            "os.abort()\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=env)
    assert proc.returncode < 0  # Killed by SIGABRT.
    assert proc.stderr == b"F0000 00:00:1.0 1 check.cc:1] Check failed: the last words\n", proc.stderr


def test_a_binary_in_its_own_process_filters_its_stderr_and_keeps_its_errors(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO
    proc = subprocess.run([sys.executable, "-m", "sr_keras.cli.enhance", f"--input={tmp_path / 'none'}",
                           f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --input=") and len(proc.stderr.splitlines()) == 1
