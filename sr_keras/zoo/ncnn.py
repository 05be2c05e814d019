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


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_param(path: str) -> list:
    """The layers of a .param file, in graph order."""
    with open(path) as f:
        lines = [line.split() for line in f if line.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise NcnnFormatError(f"{path}: not an ncnn .param file (first line is not {MAGIC})")
    count = int(lines[1][0])
    layers = []
    for fields in lines[2:2 + count]:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        blobs = fields[4:4 + n_in + n_out]
        params = {}
        for item in fields[4 + n_in + n_out:]:
            key, _, value = item.partition("=")
            key = int(key)
            if key <= -23300:  # An array: its length, then the values.
                values = [_value(v) for v in value.split(",")]
                params[-key - 23300] = values[1:1 + values[0]]
            else:
                params[key] = _value(value)
        layers.append(Layer(kind, name, blobs[:n_in], blobs[n_in:], params))
    if len(layers) != count:
        raise NcnnFormatError(f"{path}: {count} layers declared, {len(layers)} found")
    return layers


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
    with open(bin_path, "rb") as f:
        reader = _Reader(f.read(), bin_path)
    for layer in layers:
        p = layer.params
        if layer.type == "Convolution":
            out, kw = p[0], p[1]
            kh, size = p.get(11, kw), p[6]
            w = reader.tagged(size)
            layer.weights["weight"] = w.reshape(out, size // (out * kh * kw), kh, kw)
            if p.get(5, 0):
                layer.weights["bias"] = reader.raw(out)
        elif layer.type == "MemoryData":
            shape = [d for d in (p.get(2, 0), p.get(1, 0), p.get(0, 0)) if d]
            layer.weights["data"] = reader.raw(int(np.prod(shape))).reshape(shape)
        elif layer.type == "PReLU":  # One slope per channel (or one for all), raw float32.
            layer.weights["slope"] = reader.raw(int(p.get(0, 1)))
        elif layer.type in ("Deconvolution", "InnerProduct", "BatchNorm", "Scale", "ConvolutionDepthWise"):
            raise NcnnFormatError(f"{param_path}: layer {layer.name} of type {layer.type} is not supported")
    if reader.pos != len(reader.data):
        raise NcnnFormatError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left over after the last layer")
    return layers
