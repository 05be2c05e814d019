"""TF Serving's REST API wire format, all of it, as pure functions: URLs, request JSON -> arrays, outputs ->
response JSON, version status, metadata and errors.

URLs:            /v1/models/<name>[/versions/<n>][:predict|/metadata]   (`parse_path`)
Row format:      {"signature_name": ..., "instances": [...]}  ->  {"predictions": [...]}
Columnar format: {"signature_name": ..., "inputs": ...}       ->  {"outputs": ...}
String inputs may be {"b64": "..."}; outputs whose name ends in `_bytes` come back as {"b64": "..."}.
Status:          {"model_version_status": [{"version", "state", "status": {"error_code", "error_message"}}]}
Errors:          {"error": "..."} with an HTTP status (`RestError`).

This module does not import TensorFlow: signatures are described by plain `Spec`s (`describe_signatures`), so a
request can be parsed in a separate, light process (a large JSON body holds the GIL for seconds while it parses).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Iterator, NamedTuple, Optional

import numpy as np


class RestError(Exception):
    """An error answered as {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


def error_body(message: str) -> dict:
    return {"error": message}


_PATH = re.compile(r"/v1/models(?:/(?P<name>[^/:]*)(?:/versions/(?P<version>[^/:]*))?(?P<rest>/metadata|:predict)?)?",
                   re.ASCII)
_VERSION = re.compile(r"[0-9]{1,18}", re.ASCII)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)  # What a URL can reach, unescaped.


def check_model_name(name: str) -> str:
    """Raises ValueError (naming --model_name) for a name that no URL of this API could reach."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise ValueError(f"--model_name={name!r}: use letters, digits, '_', '-' and '.', starting with a letter or "
                         "digit (it is part of every URL: /v1/models/<name>)")
    return name
PREDICT, METADATA, STATUS = ":predict", "/metadata", ""


def parse_path(path: str) -> tuple:
    """(model name, version or None, action: PREDICT | METADATA | STATUS) of a request path.

    Raises:
      RestError: 400 for a malformed /v1/ path (as TF Serving), 404 for any other path.
    """
    m = _PATH.fullmatch(path)
    if not m:
        if path.startswith("/v1/"):  # TF Serving answers 400 for a malformed request path.
            raise RestError(400, f"malformed request path {path!r}; expected /v1/models/<name>[/versions/<n>]"
                                 "[:predict|/metadata]")
        raise RestError(404, f"no such endpoint: {path}")
    name, version = m.group("name"), m.group("version")
    if not name:
        raise RestError(400, "missing model name in the URL (/v1/models/<name>)")
    if version is not None and not _VERSION.fullmatch(version):
        raise RestError(400, f"version must be a non-negative integer, got {version!r}")
    return name, (int(version) if version is not None else None), m.group("rest") or STATUS


def status_body(versions: list) -> dict:
    """The GetModelStatus answer for [(number, state, error message), ...], newest first."""
    return {"model_version_status": [
        {"version": str(number), "state": state,
         "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error}}
        for number, state, error in versions]}


# sr-serve's own addition, outside TF Serving's /v1/ API (whose /v1/models answers 400 there as here): the names
# of the models this server serves, so that a client can pick the one without being told.
MODELS_PATH = "/sr_keras/models"


def metadata_body(name: str, version: int, signatures: dict, model: Optional[dict] = None) -> dict:
    """The GetModelMetadata answer, from `describe_signatures(...)`; `model` (this server's own addition, which TF
    Serving clients ignore) says what the model is: its scale and the alpha its plain signatures run at."""
    body = {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": signature_defs(signatures)}}}
    if model is not None:
        body["metadata"]["sr_keras"] = model
    return body


class Spec(NamedTuple):
    """One signature input or output: dtype name ("string", "uint8", "float32", ...) and shape (None: any)."""

    dtype: str
    shape: tuple


_DTYPE_NAMES = {"string": "DT_STRING", "uint8": "DT_UINT8", "float32": "DT_FLOAT", "int32": "DT_INT32",
                "uint16": "DT_UINT16", "int64": "DT_INT64"}


def spec_of(tensor_spec) -> Spec:
    """The `Spec` of a tf.TensorSpec (or a tensor): its dtype's name and its shape."""
    return Spec(tensor_spec.dtype.name, tuple(tensor_spec.shape.as_list()))


def describe_signatures(signatures) -> dict:
    """{signature: {"inputs": {name: Spec}, "outputs": {name: Spec}}} from loaded TF signatures."""
    return {name: {"inputs": {n: spec_of(s) for n, s in dict(fn.structured_input_signature[1]).items()},
                   "outputs": {n: spec_of(s) for n, s in sorted(fn.structured_outputs.items())}}
            for name, fn in signatures.items()}


def _decode_value(value, dtype: str):
    if dtype == "string":
        if isinstance(value, dict):
            if set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise RestError(400, 'a string input object must be {"b64": "<base64>"}')
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                raise RestError(400, "invalid base64 in a b64 input") from None
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:  # A lone surrogate such as "\ud800" is valid JSON but not text.
                raise RestError(400, "a string input is not valid Unicode (lone surrogate)") from None
        if isinstance(value, list):
            return [_decode_value(v, dtype) for v in value]
        raise RestError(400, f"expected a string or {{\"b64\": ...}}, got {type(value).__name__}")
    return value


def _to_array(name: str, value, spec: Spec) -> np.ndarray:
    """A request value as a numpy array of the signature's dtype and shape; RestError(400) when it cannot be."""
    try:
        if spec.dtype == "string":
            arr = np.array(value, dtype=object)
            if not all(isinstance(v, bytes) for v in arr.reshape(-1)):
                raise ValueError("expected strings")
        else:
            arr = np.array(value)
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise ValueError("not a rectangular numeric array")
            if arr.size and not np.isfinite(arr).all():
                raise ValueError("NaN or infinite values")
            dtype = np.dtype(spec.dtype)
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max
                                 or not np.all(np.equal(np.mod(arr, 1), 0))):
                    raise ValueError(f"values outside {spec.dtype}")
            elif arr.size and (arr.min() < 0 or arr.max() > 1):  # Float images are in [0, 1].
                raise ValueError(f"float values must be in [0, 1], got {arr.min():g}..{arr.max():g}")
            arr = arr.astype(dtype)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise RestError(400, f"input {name!r}: {e}") from None
    if len(spec.shape) != arr.ndim or any(d is not None and d != a for d, a in zip(spec.shape, arr.shape)):
        raise RestError(400, f"input {name!r} has shape {list(arr.shape)}, the signature expects "
                             f"{[d for d in spec.shape]}")
    return arr


def parse_predict(body: bytes, signatures: dict, max_instances: int = 0) -> tuple:
    """Returns (signature_name, {input name: numpy array}, row_format).

    Args:
      body: the request body.
      signatures: `describe_signatures(...)` of the served model.
      max_instances: the most instances a request may hold (0: no limit).

    Raises:
      RestError: 400 for a malformed request (bad JSON, nesting too deep, wrong shapes or values), 413 for more
        than `max_instances` instances.
    """
    try:
        return _parse_predict(body, signatures, max_instances)
    except RecursionError:  # Nested lists deep enough to pass json but not numpy or our own walk.
        raise RestError(400, "malformed request: nested too deeply") from None


def _parse_predict(body: bytes, signatures: dict, max_instances: int) -> tuple:
    try:
        request = json.loads(body)
    except RecursionError:
        raise RestError(400, "malformed JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RestError(400, f"malformed JSON: {e}") from None
    if not isinstance(request, dict):
        raise RestError(400, "the request body must be a JSON object")
    if ("instances" in request) == ("inputs" in request):
        raise RestError(400, 'exactly one of "instances" (row format) or "inputs" (columnar format) is required')
    sig_name = request.get("signature_name", "serving_default")
    if not isinstance(sig_name, str) or sig_name not in signatures:
        raise RestError(400, f"unknown signature_name {sig_name!r}; this model has {sorted(signatures)}")
    specs = signatures[sig_name]["inputs"]
    row = "instances" in request
    if row:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise RestError(400, '"instances" must be a non-empty list')
        if max_instances and len(instances) > max_instances:
            raise RestError(413, f"{len(instances)} instances in one request; this server takes at most "
                                 f"{max_instances} (--max_instances)")
        columns = {name: [] for name in specs}
        for inst in instances:
            if isinstance(inst, dict) and set(inst) <= set(specs) and set(inst) and not (
                    len(specs) == 1 and set(inst) == {"b64"}):
                if set(inst) != set(specs):
                    raise RestError(400, f"each instance needs the inputs {sorted(specs)}")
                for name in specs:
                    columns[name].append(_decode_value(inst[name], specs[name].dtype))
            elif len(specs) == 1:
                (name,) = specs
                columns[name].append(_decode_value(inst, specs[name].dtype))
            else:
                raise RestError(400, f"each instance must be an object with the inputs {sorted(specs)}")
    else:
        inputs = request["inputs"]
        if isinstance(inputs, dict) and set(inputs) == set(specs):
            columns = {n: _decode_value(v, specs[n].dtype) for n, v in inputs.items()}
        elif len(specs) == 1 and not (isinstance(inputs, dict) and set(inputs) != {"b64"}):
            (name,) = specs
            columns = {name: _decode_value(inputs, specs[name].dtype)}
        else:
            raise RestError(400, f'"inputs" must be an object with the inputs {sorted(specs)}')
    arrays = {n: _to_array(n, v, specs[n]) for n, v in columns.items()}
    count = len(next(iter(arrays.values()))) if arrays and next(iter(arrays.values())).ndim else 0
    if max_instances and count > max_instances:
        raise RestError(413, f"{count} instances in one request; this server takes at most {max_instances} "
                             "(--max_instances)")
    return sig_name, arrays, row


def _encode_output(name: str, value):
    if name.endswith("_bytes"):
        if isinstance(value, (bytes, np.bytes_)):
            return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
        return [_encode_output(name, v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _json_value(name: str, value) -> Iterator[bytes]:
    """JSON of one output value, in pieces: a large array is written row by row, never as one Python list."""
    if isinstance(value, np.ndarray) and value.dtype != object and value.ndim > 1 and value.size > 65536:
        yield b"["
        for i, sub in enumerate(value):
            if i:
                yield b","
            yield from _json_value(name, sub)
        yield b"]"
    else:
        yield json.dumps(_encode_output(name, value), allow_nan=False).encode()


def encode_outputs(outputs: dict, row: bool, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Signature outputs -> the JSON response {"predictions": [...]} (row) or {"outputs": ...} (columnar), as
    chunks of about `chunk_bytes`, so a large answer never exists as Python lists nor as one string.

    Raises:
      RestError(500): a float16 output (TF Serving cannot write it either) or NaN/infinite values (before any
        chunk is produced).
    """
    arrays = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}
    for k, v in arrays.items():
        if getattr(v, "dtype", None) == np.float16:
            raise RestError(500, f"output {k!r} is float16, which cannot be written to JSON")
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
            raise RestError(500, f"the model produced NaN or infinite values in {k!r}")
    return _chunked(_response_pieces(arrays, row), chunk_bytes)


def _response_pieces(arrays: dict, row: bool) -> Iterator[bytes]:
    single = len(arrays) == 1

    def item(values: dict) -> Iterator[bytes]:
        if single:
            (k, v), = values.items()
            yield from _json_value(k, v)
            return
        yield b"{"
        for i, (k, v) in enumerate(values.items()):
            yield (b"," if i else b"") + json.dumps(k).encode() + b":"
            yield from _json_value(k, v)
        yield b"}"
    if not row:
        yield b'{"outputs":'
        yield from item(arrays)
        yield b"}"
        return
    yield b'{"predictions":['
    for i in range(len(next(iter(arrays.values())))):
        if i:
            yield b","
        yield from item({k: v[i] for k, v in arrays.items()})
    yield b"]}"


def _chunked(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    buf = bytearray()
    for p in pieces:
        buf += p
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def _tensor_info(spec: Spec, name: str) -> dict:
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape]
    return {"dtype": _DTYPE_NAMES.get(spec.dtype, spec.dtype), "tensor_shape": {"dim": dims,
            "unknown_rank": False}, "name": name}


def signature_defs(signatures: dict) -> dict:
    """TF Serving's metadata `signature_def` map, from `describe_signatures(...)`."""
    out = {}
    for sig_name, sig in signatures.items():
        inputs = {n: _tensor_info(s, f"{sig_name}_{n}:0") for n, s in sig["inputs"].items()}
        outputs = {n: _tensor_info(s, f"StatefulPartitionedCall:{i}")
                   for i, (n, s) in enumerate(sig["outputs"].items())}
        out[sig_name] = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict",
                         "defaults": {}}
    return out
