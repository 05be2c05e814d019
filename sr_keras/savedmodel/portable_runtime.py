"""Running ONNX (`onnxruntime`) and LiteRT (`ai-edge-litert`) super-resolution files, as exported by
`sr-export --format=onnx|litert` or brought by the user, behind the same tiling and limits as SavedModels.

The convention: one float32 image input in [0, 1] with dynamic height and width, and one output `scale` times its
size, in NHWC (sr_keras's exports) or NCHW (most PyTorch-born ONNX files: spandrel, chaiNNer), told apart by where
the 3 channels are. Scale and receptive field are measured from the file when no metadata says them. Nothing here
imports TensorFlow: a phone-class runtime is all an exported file needs.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from typing import Optional

import numpy as np

from sr_keras.savedmodel.layout import PORTABLE_FILES as FILES
from sr_keras.savedmodel.layout import PORTABLE_SUFFIXES as SUFFIXES
from sr_keras.utils.quiet import filtered_stderr

# The runtime that runs each format, and the extra that installs it.
RUNTIMES = {"onnx": ("onnxruntime", "onnx"), "litert": ("ai-edge-litert", "litert")}


class PortableModelError(RuntimeError):
    """A file that cannot be run as a super-resolution model; one line naming the reason or the fix."""


def format_of(path: str) -> Optional[str]:
    """'onnx' or 'litert' for such a file (by suffix) or a version folder holding one, else None."""
    if os.path.isdir(path):
        return next((fmt for fmt, name in FILES.items() if os.path.isfile(os.path.join(path, name))), None)
    return SUFFIXES.get(os.path.splitext(path)[1].lower())


def model_file(path: str) -> str:
    """The model file of a file path or a version folder."""
    fmt = format_of(path)
    return os.path.join(path, FILES[fmt]) if os.path.isdir(path) else path


def _missing(fmt: str) -> PortableModelError:
    package, extra = RUNTIMES[fmt]
    return PortableModelError(f"running a {FILES[fmt].split('.')[-1]} model needs {package}: "
                              f"pip install 'sr_keras[{extra}]'")


def _layout(shape, what: str) -> str:
    """'NHWC' or 'NCHW' from an input or output shape (dims may be None, -1 or names)."""
    if len(shape) != 4:
        raise PortableModelError(f"{what} has shape {list(shape)}; expected an image batch [N, H, W, 3] or [N, 3, H, W]")
    if shape[-1] == 3:
        return "NHWC"
    if shape[1] == 3:
        return "NCHW"
    raise PortableModelError(f"{what} has shape {list(shape)}; expected 3 channels, first or last")


class _Runner:
    """float32 [N, h, w, 3] in [0, 1] (numpy, or anything np.asarray takes) -> float32 [N, sh, sw, 3] in [0, 1]."""

    layout = "NHWC"

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        y = self._run(np.ascontiguousarray(x))
        if y.ndim != 4:
            raise PortableModelError(f"the model returned shape {list(y.shape)}, not an image batch")
        if self.layout == "NCHW":
            y = y.transpose(0, 2, 3, 1)
        return np.clip(y.astype(np.float32, copy=False), 0.0, 1.0)


MAX_ONNX_WEIGHT_BYTES = 1 << 30  # A super-resolution model's weights: megabytes (RRDBNet: 67 MB). More is refused.


def check_onnx_size(path: str, limit: int = MAX_ONNX_WEIGHT_BYTES) -> None:
    """Refuses an ONNX model whose weights, in the file and in the external-data files beside it, exceed `limit`,
    or whose external data lies outside its folder, before anything is read into memory: onnxruntime would read
    them all (a 389-byte file naming a 3 GB data file passed 6 GB of memory)."""
    size = os.path.getsize(path)
    if size > limit:
        raise PortableModelError(f"{size / 1e9:.1f} GB is more than an ONNX super-resolution model takes "
                                 f"(at most {limit / 1e9:.1f} GB)")
    try:
        import onnx  # tf2onnx's dependency, in the same extra as onnxruntime.
    except ImportError:
        return
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - a malformed protobuf: onnxruntime says so when it loads it.
        return
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        where = os.path.realpath(os.path.join(folder, info.get("location", "")))
        if os.path.dirname(where) != folder and not where.startswith(folder + os.sep):
            raise PortableModelError(f"{tensor.name}'s data is outside the model's folder "
                                     f"({info.get('location')!r})")
        try:
            length = int(info["length"]) if "length" in info else os.path.getsize(where) - int(info.get("offset", 0))
        except (OSError, ValueError):
            raise PortableModelError(f"{tensor.name}'s external data {info.get('location')!r} is missing "
                                     "or unreadable") from None
        size += max(length, 0)
        if size > limit:
            raise PortableModelError(f"its weights (with the external data beside it) take more than "
                                     f"{limit / 1e9:.1f} GB, more than a super-resolution model needs")


class OnnxRunner(_Runner):
    def __init__(self, path: str, threads: int = 0):
        try:
            # Here, not at the top: an optional extra, imported when an ONNX model is loaded.
            import onnxruntime as ort
        except ImportError:
            raise _missing("onnx") from None
        check_onnx_size(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid files.
            raise PortableModelError(f"{path}: onnxruntime cannot load it ({str(e).strip().splitlines()[0][:200]})"
                                     ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise PortableModelError(f"{path}: expected one float32 image input, found "
                                     f"{[(i.name, i.type) for i in inputs]}")
        self.input, self.output = inputs[0].name, outputs[0].name
        self.layout = _layout(inputs[0].shape, f"{path}: the input")
        self.runtime = f"onnxruntime {ort.__version__}"

    def _run(self, x):
        try:
            return np.asarray(self.session.run([self.output], {self.input: x})[0])
        except Exception as e:  # onnxruntime's own exception types (a fixed input size, a failed kernel).
            raise PortableModelError(f"onnxruntime cannot run an input of {list(x.shape)} "
                                     f"({str(e).strip().splitlines()[0][:200]})") from None


class LiteRTRunner(_Runner):
    """One interpreter, resized to each new input shape (the file's height and width are dynamic); calls are
    serialised, since an interpreter holds its tensors."""

    def __init__(self, path: str, threads: Optional[int] = None):
        try:
            # Here, not at the top: an optional extra, imported when a LiteRT model is loaded.
            from ai_edge_litert import interpreter as litert
        except ImportError:
            raise _missing("litert") from None
        try:
            with filtered_stderr():
                self.interpreter = litert.Interpreter(model_path=path, num_threads=threads)
        except (ValueError, RuntimeError) as e:
            raise PortableModelError(f"{path}: LiteRT cannot load it ({str(e).strip().splitlines()[0][:200]})"
                                     ) from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or inputs[0]["dtype"] != np.float32:
            raise PortableModelError(f"{path}: expected one float32 image input, found "
                                     f"{[(d['name'], d['dtype'].__name__) for d in inputs]}")
        self._in, self._out = inputs[0]["index"], outputs[0]["index"]
        signature = list(inputs[0].get("shape_signature", inputs[0]["shape"]))
        self.layout = _layout(signature, f"{path}: the input")
        self._shape = None
        self._lock = threading.Lock()
        self.runtime = f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}"

    def _run(self, x):
        with self._lock:
            if self._shape != x.shape:
                try:
                    with filtered_stderr():
                        self.interpreter.resize_tensor_input(self._in, list(x.shape), strict=False)
                        self.interpreter.allocate_tensors()
                except (ValueError, RuntimeError) as e:
                    raise PortableModelError(f"LiteRT cannot run an input of {list(x.shape)} "
                                             f"({str(e).strip().splitlines()[0][:200]})") from None
                self._shape = x.shape
            self.interpreter.set_tensor(self._in, x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._out).copy()


def runner(path: str, threads: Optional[int] = None) -> _Runner:
    """The runner of an ONNX or LiteRT file (or a version folder holding one).

    Raises:
      PortableModelError: the runtime is not installed, or the file is not a usable model.
    """
    fmt = format_of(path)
    if fmt is None:
        raise PortableModelError(f"{path}: not an ONNX (.onnx) or LiteRT (.tflite) model")
    file = model_file(path)
    if not os.path.isfile(file):
        raise PortableModelError(f"{file}: no such file")
    return OnnxRunner(file, threads or 0) if fmt == "onnx" else LiteRTRunner(file, threads)
