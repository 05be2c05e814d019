"""TensorFlow without its start-up noise, for the binaries and the Python API alike.

`import sr_keras` stays light; `sr_keras.load()` imports TensorFlow through `import_tensorflow_quietly`, so a
notebook sees the same quiet start as the command line (set TF_CPP_MIN_LOG_LEVEL yourself to see everything).
"""

import atexit
import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# TensorFlow's C++ start-up lines on a machine without a GPU: printed before its logging is set up, so
# TF_CPP_MIN_LOG_LEVEL does not hide them. They say nothing a user can act on.
STARTUP_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
    r"Created TensorFlow Lite XNNPACK delegate for CPU",  # LiteRT's interpreter, on every first run.
]))


# TensorFlow's C++ lines while it runs, logged at ERROR level but harmless: a graph rewrite that is skipped (the
# graph still runs, unoptimised in that spot), and oneDNN falling back to Eigen for uint8 on CPUs without VNNI.
RUNTIME_NOISE = re.compile("|".join([
    r"\] remapper failed: ",
    r"\] oneDNN supports DT_\w+ only on platforms with",
    r"\] (layout|arithmetic_optimizer|constant_folding|dependency_optimizer) failed: ",
]))

_LOG_LINE_START = re.compile(rb"[IWEF]\d{4} \d")  # absl's C++ format: severity, MMDD, then the time.


def _relay(pattern: str) -> None:
    """The relay that `filter_stderr_for_life` starts, as a process of its own (not a thread), so that what a crash
    writes last still gets out after the crash: standard input to standard output, every byte passed on as it
    comes, except a line that starts like a C++ log line (`E0000 00:00:...`), held until it is whole and dropped
    when `pattern` matches it. It ignores Ctrl-C and SIGTERM: it ends when its input does, after the binary has said
    what it saved."""
    import signal  # Only the relay process needs it.

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    noise, out = re.compile(pattern.encode()), sys.stdout.buffer
    line, mode = b"", None  # mode None: at a line's start, undecided; "pass" or "hold" for the rest of the line.
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        while data:
            end = data.find(b"\n") + 1 or len(data)
            piece, data = data[:end], data[end:]
            ended = piece.endswith(b"\n")
            if mode is None:
                line += piece
                if len(line) < 7 and not ended:
                    continue  # Too short to tell.
                mode = "hold" if _LOG_LINE_START.match(line) else "pass"
                piece, line = (b"", line) if mode == "hold" else (line, b"")
            elif mode == "hold":
                line, piece = line + piece, b""
            if mode == "hold" and ended:
                piece, line = (b"" if noise.search(line) else line), b""
            if piece:
                out.write(piece)
                out.flush()
            if ended:
                mode = None
    if line and not noise.search(line):
        out.write(line)
    out.flush()


def filter_stderr_for_life(noise: re.Pattern = RUNTIME_NOISE) -> bool:
    """From now on, file descriptor 2 goes through a relay process that drops C++ log lines matching `noise` and
    passes everything else on unchanged (Python's own errors, tracebacks, real TensorFlow errors). For binaries
    that run TensorFlow for minutes; False (nothing done) where a relay cannot start."""
    import subprocess  # Only the binaries that ask for the relay pay for it.

    sys.stderr.flush()
    try:
        relay = subprocess.Popen([sys.executable, "-S", os.path.abspath(__file__), noise.pattern],
                                 stdin=subprocess.PIPE, stdout=2, close_fds=True)
    except OSError:
        return False
    saved = os.dup(2)
    os.dup2(relay.stdin.fileno(), 2)
    relay.stdin.close()

    def finish():  # At exit: the relay's input closes, and what it still holds is written before the prompt.
        sys.stderr.flush()
        os.dup2(saved, 2)
        try:
            relay.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    atexit.register(finish)
    return True


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = STARTUP_NOISE):
    """Runs the block with file descriptor 2 captured (C++ libraries write there directly) and passes on every
    line that `noise` does not match: real errors still reach stderr, start-up chatter does not."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not noise.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


_SKIPPED = set()  # Top-level packages TensorFlow's import goes without in this process (`skip_at_import`).


def skip_at_import(*packages: str) -> None:
    """For a binary that never uses them: `packages` are refused while TensorFlow (and Keras) import, as if they
    were not installed; imported later, they load as usual. Keras imports matplotlib.pyplot at start-up, for its
    image-gallery helper alone (it takes None when matplotlib is missing): 0.7 s of every sr-enhance process."""
    _SKIPPED.update(packages)


class _Skip(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _SKIPPED:
            raise ModuleNotFoundError(f"{name} is not imported with TensorFlow in this process", name=name)
        return None


def import_tensorflow_quietly():
    """Imports TensorFlow and initialises its devices with the C++ start-up noise (`STARTUP_NOISE`) filtered out;
    every other line written meanwhile (a real error) still reaches stderr. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    skip = _Skip()
    sys.meta_path.insert(0, skip)
    try:
        with filtered_stderr():
            # Here, not at the top: this function is how TensorFlow gets imported, with stderr captured.
            import tensorflow as tf

            tf.config.list_physical_devices()  # Device discovery prints the CUDA lines; do it here.
    finally:
        sys.meta_path.remove(skip)
    return tf


class _QuietTensorFlow:
    """A meta-path finder that turns the first `import tensorflow`, wherever it happens, into
    `import_tensorflow_quietly()`: a binary that fails on a bad flag before it needs TensorFlow never imports it."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        defer(False)  # Once: the real import below must not come back here.
        module = import_tensorflow_quietly()
        return importlib.util.spec_from_loader(name, _Imported(module), is_package=True)


class _Imported(importlib.abc.Loader):
    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        pass  # Already executed by the real import.


_FINDER = _QuietTensorFlow()


def defer(on: bool = True) -> None:
    """Installs (or removes) the finder; a no-op once TensorFlow is imported."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    if on and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _FINDER)


def quiet_import() -> None:
    """For the API: TF_CPP_MIN_LOG_LEVEL=2 unless the user set it, then TensorFlow imported quietly (once)."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import_tensorflow_quietly()


if __name__ == "__main__":  # The relay process (`filter_stderr_for_life`).
    _relay(sys.argv[1])
