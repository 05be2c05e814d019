"""sr-client: enhance one image through any TF Serving REST endpoint (TF Serving itself or sr-serve).

  sr-client --input=photo.jpg                        # the one model a local sr-serve serves -> photo_sr.png
  sr-client --server=http://localhost:8501 --model_name=span_x4 --input=photo.jpg --output=photo_x4.png
"""

import os
import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.serving.client import ServingError, enhance_bytes, served_model
from sr_keras.utils.safe_files import write_bytes

_SERVER = flags.DEFINE_string("server", "http://localhost:8501", "REST endpoint root.")
_MODEL_NAME = flags.DEFINE_string("model_name", None, "Model name (default: the one model an sr-serve serves; "
                                  "TF Serving needs it named).")
_VERSION = flags.DEFINE_integer("version", None, "Version (default: the latest the server serves).")
_INPUT = flags.DEFINE_string("input", None, "Image file to enhance.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the PNG (default: <stem>_sr.png).")


def main(argv):
    del argv
    if not _INPUT.value:
        cli_utils.fail("--input is required")
    try:
        with open(_INPUT.value, "rb") as fh:
            data = fh.read()
        png = enhance_bytes(data, _SERVER.value, _MODEL_NAME.value or served_model(_SERVER.value), _VERSION.value)
    except (ServingError, OSError) as e:
        cli_utils.fail(str(e), code=1)
    out = _OUTPUT.value or os.path.splitext(os.path.basename(_INPUT.value))[0] + "_sr.png"
    write_bytes(out, png)
    print(out)
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
