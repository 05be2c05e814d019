"""sr-serve: serves exported models over TF Serving's REST API (see sr_keras/serving/server.py).

  sr-serve --model_base_path=export/srgan --model_name=srgan --port=8501
"""

import os
import sys

from absl import app, flags

from sr_keras.cli_utils import fail, quiet_tf_logs

_BASE = flags.DEFINE_string("model_base_path", None, "Folder of numbered SavedModel versions (export/<name>); "
                            "default: the model that ships with the package, served as `default`.")
_NAME = flags.DEFINE_string("model_name", None, "Model name in URLs (default: the folder's name).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0 for all).")
_PORT = flags.DEFINE_integer("port", 8501, "REST port (TF Serving's default is 8501).")
_MAX_MB = flags.DEFINE_float("max_request_mb", 32.0, "Largest request body accepted (413 above).")
_CONCURRENCY = flags.DEFINE_integer("max_concurrent", 2, "Inferences run at once (the rest wait).")
_QUEUE = flags.DEFINE_integer("max_queue", 64, "Requests allowed to wait; beyond that answer 503.")
_POLL = flags.DEFINE_float("poll_seconds", 2.0, "How often to look for new version folders.")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras import inference
    from sr_keras.serving import server

    base = _BASE.value
    name = _NAME.value
    if not base:
        base = inference._default_model_path()
        name = name or "default"
        if not os.path.isdir(base):
            fail("no default model ships with this install; pass --model_base_path=export/<model_name>")
    name = name or os.path.basename(os.path.normpath(base))
    try:
        server.serve(base, name, _HOST.value, _PORT.value, _MAX_MB.value, _CONCURRENCY.value, _QUEUE.value,
                     _POLL.value)
    except (ValueError, OSError) as e:
        fail(str(e))
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    sys.exit(run())
