"""Reading ncnn models: the `.param` graph (text) and the `.bin` weights, as documented in ncnn's wiki
("param and model file structure", "operation param weight table"). Only what the zoo's networks use.

    .param   7767517            magic
             <layers> <blobs>
             <type> <name> <n_in> <n_out> <in blobs...> <out blobs...> <k>=<v> ...   one line per layer
    .bin     every weighted layer's data in graph order. A weight array (ModelBin type 0) starts with a 4-byte tag:
             0 = float32, 0x01306B47 = float16 (padded to 4 bytes); a bias or MemoryData (type 1) is raw float32.

Parameters with a negative key (-233xx) are arrays: "-23310=2,1.0,2.0" is key 10 holding [1.0, 2.0].
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

MAGIC = 7767517
TAG_FLOAT32 = 0
TAG_FLOAT16 = 0x01306B47


class NcnnFormatError(ValueError):
    """The file is not an ncnn model this reader understands; the message says where."""


@dataclasses.dataclass
class Layer:
    type: str
    name: str
    inputs: list
    outputs: list
    params: dict  # int key -> int | float | list
    weights: dict = dataclasses.field(default_factory=dict)  # "weight", "bias", "data" -> np.ndarray


MAX_PARAM_BYTES = 4 << 20  # A .param of the zoo's architectures is kilobytes; a larger one is refused unread.
MAX_LAYERS = 100_000
MAX_WEIGHTS = 1 << 30  # float32 values in one model (4 GB): beyond what any file here needs.


def _int(text: str, what: str) -> int:
    """A strict integer (no 48.0, 1e999, nan): what ncnn itself reads with %d."""
    if not text.lstrip("-").isdigit():
        raise NcnnFormatError(f"{what}: {text[:20]!r} is not an integer")
    return int(text)


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        value = float(text)  # ValueError for words: reported with the line.
        if not np.isfinite(value):
            raise NcnnFormatError(f"{text[:20]!r} is not a finite number") from None
        return value


def _parse_line(fields: list, where: str) -> Layer:
    if len(fields) < 4:
        raise NcnnFormatError(f"{where}: a layer line needs a type, a name and two counts")
    kind, name = fields[0], fields[1]
    n_in, n_out = _int(fields[2], f"{where}: input count"), _int(fields[3], f"{where}: output count")
    if not (0 <= n_in <= 64 and 0 <= n_out <= 64) or len(fields) < 4 + n_in + n_out:
        raise NcnnFormatError(f"{where}: {n_in} inputs and {n_out} outputs declared, "
                              f"{max(len(fields) - 4, 0)} blob names given")
    blobs = fields[4:4 + n_in + n_out]
    params = {}
    for item in fields[4 + n_in + n_out:]:
        key_text, sep, value = item.partition("=")
        if not sep:
            raise NcnnFormatError(f"{where}: {item[:30]!r} is not key=value")
        key = _int(key_text, f"{where}: parameter key")
        if key <= -23300:  # An array: its length, then the values.
            values = [_value(v) for v in value.split(",")]
            if not values or not isinstance(values[0], int) or not 0 <= values[0] == len(values) - 1:
                raise NcnnFormatError(f"{where}: array parameter {-key - 23300} declares {values[:1]} values, "
                                      f"holds {len(values) - 1}")
            params[-key - 23300] = values[1:]
        else:
            params[key] = _value(value)
    return Layer(kind, name, blobs[:n_in], blobs[n_in:], params)


def read_param(path: str) -> list:
    """The layers of a .param file, in graph order.

    Raises:
      NcnnFormatError: anything that is not a well-formed ncnn graph (too big, not UTF-8, a short or malformed line,
        a count that does not match); the message names the file and the line.
    """
    size = os.path.getsize(path)
    if size > MAX_PARAM_BYTES:
        raise NcnnFormatError(f"{path}: {size / 1e6:.0f} MB is not an ncnn .param (those are kilobytes)")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split() for line in f if line.strip()]
    except UnicodeDecodeError:
        raise NcnnFormatError(f"{path}: not an ncnn .param file (not text)") from None
    if not lines or lines[0] != [str(MAGIC)]:
        raise NcnnFormatError(f"{path}: not an ncnn .param file (first line is not {MAGIC})")
    if len(lines) < 2 or not lines[1]:
        raise NcnnFormatError(f"{path}: no layer count after the magic line")
    count = _int(lines[1][0], f"{path}: layer count")
    if not 0 < count <= MAX_LAYERS:
        raise NcnnFormatError(f"{path}: {count} layers declared")
    layers = []
    for i, fields in enumerate(lines[2:2 + count]):
        where = f"{path}, line {i + 3}"
        try:
            layers.append(_parse_line(fields, where))
        except (ValueError, OverflowError) as e:  # NcnnFormatError is a ValueError too.
            raise NcnnFormatError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    if len(layers) != count:
        raise NcnnFormatError(f"{path}: {count} layers declared, {len(layers)} found")
    return layers


def _positive(value, what: str, limit: int = MAX_WEIGHTS) -> int:
    if not isinstance(value, int) or not 0 < value <= limit:
        raise NcnnFormatError(f"{what}: {value!r} (a whole number from 1 to {limit:,} is needed)")
    return value


def _conv_shape(layer: Layer, path: str) -> tuple:
    """(outputs, kernel w, kernel h, weight count) of a Convolution, each checked: whole, positive, consistent."""
    p, what = layer.params, f"{path}: {layer.name}"
    out = _positive(p.get(0), f"{what} outputs (0=)")
    kw = _positive(p.get(1), f"{what} kernel (1=)", 64)
    kh = _positive(p.get(11, kw), f"{what} kernel height (11=)", 64)
    size = _positive(p.get(6), f"{what} weight count (6=)")
    if size % (out * kh * kw):
        raise NcnnFormatError(f"{what}: {size} weights are not {out} x {kh} x {kw} x inputs")
    return out, kw, kh, size


def _memory_shape(layer: Layer) -> list:
    p = layer.params
    return [d for d in (p.get(2, 0), p.get(1, 0), p.get(0, 0)) if d]


def _memory_size(layer: Layer, path: str) -> int:
    shape = _memory_shape(layer)
    for d in shape:
        _positive(d, f"{path}: {layer.name} size")
    return _positive(int(np.prod(shape, dtype=np.int64)) if shape else 0, f"{path}: {layer.name} size")


def _expected_bytes(layers: list, path: str) -> int:
    """What the .bin must hold for these layers (float32 weights, tags aside), from the .param alone: checked before
    the .bin is read, so a huge file is refused without reading it."""
    total = 0
    for layer in layers:
        if layer.type == "Convolution":
            out, _, _, size = _conv_shape(layer, path)
            total += 4 * (size + (out if layer.params.get(5, 0) else 0))
        elif layer.type == "MemoryData":
            total += 4 * _memory_size(layer, path)
        elif layer.type == "PReLU":
            total += 4 * _positive(layer.params.get(0, 1), f"{path}: {layer.name} slopes")
    return total


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NcnnFormatError(f"{self.path}: ends at byte {len(self.data)}, {n} more bytes expected at {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def raw(self, count: int) -> np.ndarray:  # ModelBin type 1.
        return np.frombuffer(self.take(4 * count), "<f4").copy()

    def tagged(self, count: int) -> np.ndarray:  # ModelBin type 0.
        tag = int.from_bytes(self.take(4), "little")
        if tag == TAG_FLOAT32:
            return self.raw(count)
        if tag == TAG_FLOAT16:
            values = np.frombuffer(self.take(2 * count), "<f2").astype(np.float32)
            self.take((-2 * count) % 4)  # Padding to 4 bytes.
            return values
        raise NcnnFormatError(f"{self.path}: weight tag {tag:#x} at byte {self.pos - 4} (quantized weights are not "
                              "supported)")


def read_model(param_path: str, bin_path: str) -> list:
    """The layers of a model with their weights: Convolution gets "weight" [out, in, kh, kw] (and "bias"),
    MemoryData gets "data"."""
    layers = read_param(param_path)
    expected = _expected_bytes(layers, param_path)
    actual = os.path.getsize(bin_path)
    if actual > expected + 4 * len(layers) or actual > 4 * MAX_WEIGHTS:  # Tags and padding aside.
        raise NcnnFormatError(f"{bin_path}: {actual:,} bytes, but {param_path} needs about {expected:,}")
    with open(bin_path, "rb") as f:
        reader = _Reader(f.read(), bin_path)
    for layer in layers:
        p = layer.params
        if layer.type == "Convolution":
            out, kw, kh, size = _conv_shape(layer, param_path)
            w = reader.tagged(size)
            layer.weights["weight"] = w.reshape(out, size // (out * kh * kw), kh, kw)
            if p.get(5, 0):
                layer.weights["bias"] = reader.raw(out)
        elif layer.type == "MemoryData":
            layer.weights["data"] = reader.raw(_memory_size(layer, param_path)).reshape(_memory_shape(layer))
        elif layer.type == "PReLU":  # One slope per channel (or one for all), raw float32.
            layer.weights["slope"] = reader.raw(_positive(p.get(0, 1), f"{param_path}: {layer.name} slopes"))
        elif layer.type in ("Deconvolution", "InnerProduct", "BatchNorm", "Scale", "ConvolutionDepthWise"):
            raise NcnnFormatError(f"{param_path}: layer {layer.name} of type {layer.type} is not supported")
    if reader.pos != len(reader.data):
        raise NcnnFormatError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left over after the last layer")
    return layers
