"""Small helpers shared by the absl binaries."""

import importlib
import os
import sys

from sr_keras.utils import quiet
from sr_keras.utils.quiet import STARTUP_NOISE, import_tensorflow_quietly  # noqa: F401 - used by the binaries.

_OWN_PROCESS = []  # Set by `run`: the binary owns its process (not called from a test or a notebook).


def quiet_tf_logs() -> None:
    """Hides TF's C++ start-up chatter and INFO logs (checkpoint sharding...) unless --verbosity asks for them,
    and, in a binary's own process, the harmless C++ error lines TensorFlow logs while it runs
    (`quiet.RUNTIME_NOISE`; set TF_CPP_MIN_LOG_LEVEL yourself to see everything)."""
    user_level = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import flags, logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        quiet.defer()  # TensorFlow is imported, quietly, when something first needs it (a bad flag may not).
        if _OWN_PROCESS and not user_level:
            quiet.filter_stderr_for_life()
            _OWN_PROCESS.clear()  # Once.


def fail(message: str, code: int = 2) -> None:
    """Exits with one clear line on stderr, no stack trace."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def beam_pipeline_options(spec: str, module: str = "sr_keras.utils.beam_options") -> tuple:
    """(`module`, its `pipeline_options(spec)`) for --beam_pipeline_options, or a one-line failure: apache-beam
    missing (naming the extra to install) or options Beam refuses. apache-beam is an optional extra, so `module`
    (which imports it) is imported only here."""
    try:
        beam_module = importlib.import_module(module)
    except ImportError as e:
        fail(f"--beam_pipeline_options needs apache-beam ({e}): pip install 'sr_keras[beam]'")
    try:
        return beam_module, beam_module.pipeline_options(spec)
    except ValueError as e:
        fail(str(e))


def _suggest_for_prefixes(fv, own: list) -> None:
    """Exits with absl's one-line error and a suggestion for an unknown flag that starts one of this command's own
    (`--in=` for `--input`), which absl's spelling suggestions miss when the word is short."""
    for arg in sys.argv[1:]:
        if arg == "--":
            return
        if not arg.startswith("--") or len(arg) < 4:
            continue
        name = arg[2:].split("=", 1)[0]
        if name in fv or (name.startswith("no") and name[2:] in fv):
            continue
        near = [f for f in own if f.startswith(name)]
        if near:
            print(f"FATAL Flags parsing error: Unknown command line flag '{name}'. Did you mean: "
                  f"{', '.join(near)} ?\nPass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
            sys.exit(1)


def run(main, fast_exit: bool = False) -> None:
    """`absl.app.run(main)` for a console-script entry point, with `--help` listing the command's own flags.

    absl's --help shows the key flags registered for `sys.argv[0]`; behind a console script that is the generated
    wrapper, which defines none, so the defining module's flags are registered for it first.

    fast_exit: once `main` has returned or exited (not on an uncaught exception), run the exit handlers (logging,
    the stderr relay), flush, and end the process without tearing down every module: after TensorFlow is imported
    that teardown takes 0.7 to 1 s. Only for binaries whose work is on disk when `main` returns (no background
    writers).
    """
    from absl import app, flags

    fv = flags.FLAGS
    own = fv.get_key_flags_for_module(sys.modules[main.__module__])
    for flag in own:
        fv.register_key_flag_for_module(sys.argv[0], flag)
    _suggest_for_prefixes(fv, sorted({f.name for f in own}))
    _OWN_PROCESS.append(True)
    try:
        app.run(main)
    except SystemExit as e:
        if not fast_exit or "tensorflow" not in sys.modules:  # A fast failure already exits fast.
            raise
        code = e.code
        if isinstance(code, str):  # sys.exit("message"): printed, as the interpreter would, and status 1.
            print(code, file=sys.stderr)
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
