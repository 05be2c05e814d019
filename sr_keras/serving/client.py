"""A small client for any TF Serving REST endpoint (TF Serving itself or sr-serve).

    from sr_keras.serving.client import enhance_bytes
    png = enhance_bytes(open("photo.jpg", "rb").read(), "http://localhost:8501", "srgan")
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Optional


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


def served_model(server: str, timeout: float = 30) -> str:
    """The one model `server` serves (sr-serve lists its models at /sr_keras/models; TF Serving does not).

    Raises:
      ServingError: the server serves several (named), lists none, or cannot be reached.
    """
    try:
        with urllib.request.urlopen(server.rstrip("/") + "/sr_keras/models", timeout=timeout) as resp:
            models = json.loads(resp.read()).get("models") or []
    except urllib.error.HTTPError as e:
        raise ServingError(f"{server} does not list its models (HTTP {e.code}; TF Serving does not): pass "
                           "--model_name") from None
    except (urllib.error.URLError, ValueError, AttributeError) as e:
        raise ServingError(f"cannot reach {server}: {getattr(e, 'reason', e)}") from None
    if len(models) != 1:
        raise ServingError(f"{server} serves {', '.join(map(str, models)) or 'no model'}: pass --model_name=NAME")
    return str(models[0])


def enhance_bytes(image: bytes, server: str, model_name: str, version: Optional[int] = None) -> bytes:
    """Encoded image in, PNG bytes out, through the `serving_default` signature."""
    answer = predict(server, model_name, {"instances": [{"b64": base64.b64encode(image).decode("ascii")}]},
                     version)
    return base64.b64decode(answer["predictions"][0]["b64"])
