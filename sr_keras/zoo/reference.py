"""Running a zoo model's original ncnn files with the `ncnn` package (CPU, float32): the reference the converted
Keras models are checked against (tests/test_zoo.py) and timed against (benchmarks/bench_zoo.py)."""

from __future__ import annotations

import os

import numpy as np

from sr_keras import zoo
from sr_keras.zoo import cache as zoo_cache

INPUT, OUTPUT = "data", "output"  # The blob names in both packages' .param files.


class NcnnModel:
    """An ncnn network from a zoo entry's original files, computing in float32 on the CPU."""

    def __init__(self, name: str, threads: int = 0, files: tuple = ()):
        """`files`: (param path, bin path, scale) of a network of a zoo architecture instead of a zoo name's."""
        try:
            # Here, not at the top: ncnn is a test dependency, not the package's.
            import ncnn
        except ImportError:
            raise ImportError("running the original ncnn models needs the ncnn package: pip install ncnn") from None

        if files:
            param_path, bin_path, self.scale = files
        else:
            entry = zoo.MODELS[name]
            paths = zoo_cache.provenance(entry)["files"]
            param_path, bin_path, self.scale = paths[entry.param]["path"], paths[entry.bin]["path"], entry.scale
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = False
        # Full float32, as the Keras model computes: ncnn's CPU defaults store and compute in fp16/bf16 where the
        # CPU has them, which alone moves outputs by more than one uint8 level.
        for flag in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed", "use_bf16_storage",
                     "use_int8_inference"):
            if hasattr(opt, flag):
                setattr(opt, flag, False)
        opt.num_threads = threads or os.cpu_count() or 1
        if self.net.load_param(param_path) or self.net.load_model(bin_path):
            raise RuntimeError(f"ncnn could not load {name}")
        self._ncnn = ncnn

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """float32 [H, W, 3] in [0, 1] -> float32 [H*s, W*s, 3] (unclipped), as the Keras generator maps it."""
        chw = np.ascontiguousarray(image.transpose(2, 0, 1), np.float32)  # Kept alive: the Mat shares its memory.
        ex = self.net.create_extractor()
        ex.input(INPUT, self._ncnn.Mat(chw))
        ret, out = ex.extract(OUTPUT)
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret})")
        result = np.array(out).transpose(1, 2, 0).copy()
        del ex, chw
        return result
