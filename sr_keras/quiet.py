"""TensorFlow without its start-up noise, for the binaries and the Python API alike.

`import sr_keras` stays light; `sr_keras.load()` imports TensorFlow through `import_tensorflow_quietly`, so a
notebook sees the same quiet start as the command line (set TF_CPP_MIN_LOG_LEVEL yourself to see everything).
"""

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


def import_tensorflow_quietly():
    """Imports TensorFlow and initialises its devices with the C++ start-up noise (`STARTUP_NOISE`) filtered out;
    every other line written meanwhile (a real error) still reaches stderr. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with filtered_stderr():
        # Here, not at the top: this function is how TensorFlow gets imported, with stderr captured.
        import tensorflow as tf

        tf.config.list_physical_devices()  # Device discovery prints the CUDA lines; do it here.
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
