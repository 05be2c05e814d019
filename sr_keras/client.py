"""A small client for any TF Serving REST endpoint (TF Serving itself or sr-serve).

  sr-client --server=http://localhost:8501 --model_name=srgan --input=photo.jpg --output=photo_x4.png

    from sr_keras.client import enhance_bytes
    png = enhance_bytes(open("photo.jpg", "rb").read(), "http://localhost:8501", "srgan")
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from typing import Optional

from absl import flags

from sr_keras import cli_utils


class ServingError(RuntimeError):
    """The server answered with an error (its status and message) or could not be reached."""


def predict(server: str, model_name: str, payload: dict, version: Optional[int] = None, timeout: float = 300) -> dict:
    """POSTs a predict request; returns the decoded JSON answer."""
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    req = urllib.request.Request(server.rstrip("/") + path, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", "")
        except ValueError:
            message = e.reason
        raise ServingError(f"HTTP {e.code}: {message}") from None
    except urllib.error.URLError as e:
        raise ServingError(f"cannot reach {server}: {e.reason}") from None


def enhance_bytes(image: bytes, server: str, model_name: str, version: Optional[int] = None) -> bytes:
    """Encoded image in, PNG bytes out, through the `serving_default` signature."""
    answer = predict(server, model_name, {"instances": [{"b64": base64.b64encode(image).decode("ascii")}]},
                     version)
    return base64.b64decode(answer["predictions"][0]["b64"])


def _define_flags() -> None:
    # Defined only when run as a program, so importing the client library defines no flags.
    flags.DEFINE_string("server", "http://localhost:8501", "REST endpoint root.")
    flags.DEFINE_string("model_name", "srgan", "Model name.")
    flags.DEFINE_integer("version", None, "Version (default: the latest the server serves).")
    flags.DEFINE_string("input", None, "Image file to enhance.")
    flags.DEFINE_string("output", None, "Where to write the PNG (default: <stem>_sr.png).")


def main(argv):
    del argv
    import os

    f = flags.FLAGS
    if not f.input:
        print("error: --input is required", file=sys.stderr)
        return 2
    try:
        with open(f.input, "rb") as fh:
            data = fh.read()
        png = enhance_bytes(data, f.server, f.model_name, f.version)
    except (ServingError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = f.output or os.path.splitext(os.path.basename(f.input))[0] + "_sr.png"
    with open(out, "wb") as fh:
        fh.write(png)
    print(out)
    return 0


def run():
    _define_flags()
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
