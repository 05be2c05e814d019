"""Small helpers shared by the absl binaries."""

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
]))


def import_tensorflow_quietly():
    """Imports TensorFlow and initialises its devices with the C++ start-up noise (`STARTUP_NOISE`) filtered out;
    every other line written meanwhile (a real error) still reaches stderr. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # Device discovery prints the CUDA lines; do it here.
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not STARTUP_NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tf


def quiet_tf_logs() -> None:
    """Hides TF's C++ start-up chatter and INFO logs (checkpoint sharding...) unless --verbosity asks for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import flags, logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        import_tensorflow_quietly()


def fail(message: str, code: int = 2) -> None:
    """Exits with one clear line on stderr, no stack trace."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def run(main) -> None:
    """`absl.app.run(main)` for a console-script entry point, with `--help` listing the command's own flags.

    absl's --help shows the key flags registered for `sys.argv[0]`; behind a console script that is the generated
    wrapper, which defines none, so the defining module's flags are registered for it first.
    """
    from absl import app, flags

    fv = flags.FLAGS
    for flag in fv.get_key_flags_for_module(sys.modules[main.__module__]):
        fv.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)
