"""sr-serve: serves exported models over TF Serving's REST API (see sr_keras/serving/server.py).

  sr-serve --model_base_path=export/srgan --model_name=srgan --port=8501
  sr-serve --model=span_x4                         # a zoo model by name (sr-models lists them)

A SavedModel is code: whoever can write into --model_base_path can run code as this server's user. Serve only
models you trust, from a folder only you can write to (sr-serve warns at start-up when others can).
"""

import os
import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs
from sr_keras.serving import limits as serving_limits
from sr_keras.serving.limits import Limits

_DEFAULTS = Limits()

_BASE = flags.DEFINE_string("model_base_path", None, "Folder of numbered SavedModel versions (export/<name>); "
                            "default: the best model this install has, served as `default`.")
_MODEL = flags.DEFINE_list("model", [], "Models by name (span_x4, realesrgan_x4plus, sr_keras_x4, ...: see "
                           "sr-models), each served under its name, e.g. span_x4,sr_keras_x4, or your own ncnn "
                           ".param file (its .bin beside it; served under the file's stem); instead of "
                           "--model_base_path.")
_NAME = flags.DEFINE_string("model_name", None, "Model name in URLs (default: the folder's name).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0 for all).")
_PORT = flags.DEFINE_integer("port", 8501, "REST port (TF Serving's default is 8501).")
_MAX_MB = flags.DEFINE_float("max_request_mb", _DEFAULTS.max_request_bytes / 2**20, "Largest request body accepted (413 above).")
_MAX_INSTANCES = flags.DEFINE_integer("max_instances", _DEFAULTS.max_instances, "Most instances in one request (413 above).")
_MAX_PIXELS = flags.DEFINE_string(
    "max_input_pixels", "", "Most input pixels per request, all instances together, read from the image headers "
    "before decoding (413 above). A number for every model (0: no limit), or NAME=N for one (span_x4=4000000,"
    "realesrgan_x4plus=300000). Default: each model's own, from its cost measured at load: "
    f"{serving_limits.DEFAULT_MAX_INPUT_PIXELS / 1e6:g} MP, or fewer for a model too slow to do that within its "
    "deadline.")
_BODY_TIMEOUT = flags.DEFINE_float("body_timeout_seconds", _DEFAULTS.body_timeout_seconds, "A request body must arrive within this (408).")
_IDLE = flags.DEFINE_float("idle_timeout_seconds", _DEFAULTS.idle_timeout_seconds, "Close connections that send no complete headers (or stay "
                           "idle) this long.")
_TIMEOUT = flags.DEFINE_string(
    "request_timeout_seconds", "", "Work on one request stops after this (413). A number for every model, or "
    "NAME=S for one. Default: each model's own, from its cost measured at load: "
    f"{serving_limits.DEFAULT_REQUEST_TIMEOUT_SECONDS:g} s, or what its pixel limit needs (at most "
    f"{serving_limits.MAX_DERIVED_TIMEOUT_SECONDS:g} s when both are derived).")
_PARSE_MB = flags.DEFINE_integer("max_parse_mb", _DEFAULTS.max_parse_mb, "Memory cap of the process that parses request JSON (413 "
                                 "when a body needs more).")
_CONCURRENCY = flags.DEFINE_integer("max_concurrent", _DEFAULTS.max_concurrent, "Inferences each model runs at once (the rest wait; every model has its own, so a "
                                   "cheap model never waits behind an expensive one).")
_QUEUE = flags.DEFINE_integer("max_queue", _DEFAULTS.max_queue, "Requests allowed to wait per model; beyond that answer 503.")
_POLL = flags.DEFINE_float("poll_seconds", 2.0, "How often to look for new version folders.")


def _limits() -> Limits:
    """The limits from the flags; ValueError naming the flag for one that would break the server."""
    pixels, model_pixels = serving_limits.parse_per_model(_MAX_PIXELS.value, "max_input_pixels", serving_limits.count)
    timeout, model_timeouts = serving_limits.parse_per_model(_TIMEOUT.value, "request_timeout_seconds", float)
    return Limits(max_request_bytes=int(_MAX_MB.value * 1024 * 1024),
                  max_instances=_MAX_INSTANCES.value, max_input_pixels=pixels, model_pixels=model_pixels,
                  body_timeout_seconds=_BODY_TIMEOUT.value, request_timeout_seconds=timeout,
                  model_timeouts=model_timeouts,
                  idle_timeout_seconds=_IDLE.value, max_concurrent=_CONCURRENCY.value, max_queue=_QUEUE.value,
                  max_parse_mb=_PARSE_MB.value)


def main(argv):
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while the models load: one line and 130, as once serving.
        fail("stopped before serving", code=130)


def _main(argv):
    del argv
    from sr_keras.serving import rest

    base = _BASE.value
    try:  # Every careless flag is refused here, before any model is loaded or converted.
        limits = _limits()
        serving_limits.check_port(_PORT.value)
        serving_limits.check_poll_seconds(_POLL.value)
        if _NAME.value is not None:
            rest.check_model_name(_NAME.value)
    except ValueError as e:
        fail(str(e))
    if base and _MODEL.value:
        fail("pass --model (names) or --model_base_path (a folder), not both")
    from sr_keras import zoo  # The registry of names: no TensorFlow.
    from sr_keras.infer import resolve
    from sr_keras.savedmodel import layout

    if base:
        name = _NAME.value or os.path.basename(os.path.normpath(base))
        try:
            rest.check_model_name(name)
        except ValueError as e:
            fail(f"{e}; the folder's name cannot be used, pass --model_name")
        refs = [(name, None)]
    else:
        names = _MODEL.value or [None]
        if _NAME.value and len(names) > 1:
            fail("--model_name renames one model; with several --model names each is served under its own")
        refs = []
        for asked in names:
            try:
                ref = resolve.classify(asked)
            except layout.ModelNotFoundError as e:
                fail(str(e))
            if ref.kind == "path":
                fail(f"--model={asked}: not a model name{zoo.did_you_mean(asked)} ({', '.join(zoo.NAMES)}) or an "
                     "ncnn .param; serve a folder with --model_base_path")
            refs.append((_NAME.value or ref.label, ref))
    try:
        limits.check_names([served for served, _ in refs])  # Before anything slow.
    except ValueError as e:
        fail(str(e))
    quiet_tf_logs()
    try:
        models = [(served, resolve.model_base(ref) if ref else base) for served, ref in refs]
    except (layout.ModelNotFoundError, layout.SavedModelError) as e:
        fail(str(e))
    from sr_keras.serving import runner

    try:
        return runner.serve(models, _HOST.value, _PORT.value, limits, _POLL.value)
    except (ValueError, OSError) as e:
        fail(str(e))


def run():
    cli_utils.run(main, fast_exit=True)  # Stopped: nothing is left to write, so no slow module teardown.


if __name__ == "__main__":
    sys.exit(run())
