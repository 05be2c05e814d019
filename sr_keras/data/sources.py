"""Where HR photos come from: tensorflow-datasets `celeb_a`, any folder of photos, or the bundled samples.

A source lists `SourceItem`s per output split (`train`, `val`, or `test`). Items carry either a file path
(decoded later, in a worker) or pixels already in memory (tfds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from typing import Iterator, Optional

import numpy as np

from sr_keras.utils.downloads import DownloadError, download_verified, sha256_file  # noqa: F401 - part of this API.
from sr_keras.utils.safe_files import walk_files

SPLITS = ("train", "val", "test")
TFDS_SPLITS = {"train": "train", "validation": "val", "test": "test"}

# Natural photographs shipped inside scikit-image (skimage/data). Documents, synthetic charts, logos and
# tiny test patterns are left out: they are not what a photo super-resolution model should learn from.
SAMPLE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
    "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "motorcycle_right.png", "retina.jpg", "rocket.jpg",
)
# Held back from training, fixed so results are comparable across runs. A fixed list (not a hash split)
# keeps near-duplicates (the two motorcycle stereo views) on the same side.
SAMPLE_VAL = ("chelsea.png", "coffee.png", "rocket.jpg")


class SourceError(RuntimeError):
    """The source cannot be read. The message says how to fix it, in one line."""


@dataclasses.dataclass(frozen=True)
class SourceItem:
    key: str
    path: Optional[str] = None
    pixels: Optional[np.ndarray] = None


@dataclasses.dataclass
class Source:
    """A resolved source: a dataset name and its items per output split."""

    name: str
    splits: dict  # split -> list[SourceItem] or a callable returning an iterator of SourceItem
    counts_hint: dict = dataclasses.field(default_factory=dict)  # split -> expected count (for progress)
    default_hr_size: int = 0

    def items(self, split: str) -> Iterator[SourceItem]:
        entry = self.splits[split]
        return iter(entry() if callable(entry) else entry)


def hash_split(key: str, val_fraction: float) -> str:
    """Deterministic train/val assignment from a hash of the file's relative path."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "val" if h < val_fraction else "train"


def sample_dir() -> str:
    try:
        # Here, not at the top: scikit-image (the sample photos) is a test and demo dependency, and slow to import.
        import skimage
    except ImportError:
        raise SourceError("the 'sample' source needs scikit-image: pip install scikit-image "
                          "(or run `make install`)") from None
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def sample_source() -> Source:
    """The photos bundled inside the installed scikit-image package; no network needed."""
    root = sample_dir()
    splits = {"train": [], "val": []}
    for name in SAMPLE_PHOTOS:
        path = os.path.join(root, name)
        if not os.path.exists(path):
            raise SourceError(f"scikit-image sample photo {path} is missing; reinstall scikit-image")
        splits["val" if name in SAMPLE_VAL else "train"].append(SourceItem(key=name, path=path))
    return Source(name="sample", splits=splits,
                  counts_hint={k: len(v) for k, v in splits.items()})


def dir_source(root: str, val_fraction: float) -> Source:
    """Every (non-hidden) file under `root`. Files that turn out not to be images are skipped later,
    with a reason, by the builder."""
    if not os.path.isdir(root):
        raise SourceError(f"--source=dir:{root}: no such folder")
    splits = {"train": [], "val": []}
    for path in walk_files(root):
        key = os.path.relpath(path, root).replace(os.sep, "/")
        splits[hash_split(key, val_fraction)].append(SourceItem(key=key, path=path))
    if not splits["train"] and not splits["val"]:
        raise SourceError(f"--source=dir:{root}: the folder holds no files")
    name = os.path.basename(os.path.normpath(root)) or "images"
    return Source(name=name, splits=splits, counts_hint={k: len(v) for k, v in splits.items()})


_CELEBA_HELP = (
    "CelebA is not available offline: prepare it once with tensorflow-datasets (tfds build celeb_a "
    "--data_dir=DIR, then pass --tfds_data_dir=DIR), or download img_align_celeba and use "
    "--source=dir:PATH/img_align_celeba --hr_size=128")


_DOWNLOAD_HOSTS = {"celeb_a": "drive.google.com"}


def can_download(host: str, timeout: float = 3.0) -> bool:
    """Whether `host` answers on 443 (DNS plus TCP) within `timeout` seconds."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def tfds_source(name: str, tfds_splits: list, data_dir: Optional[str], max_images: int = 0) -> Source:
    """A tensorflow-datasets dataset (e.g. `celeb_a`); splits map train->train, validation->val, test->test."""
    # Here, not at the top: tensorflow-datasets takes seconds to import; only the tfds source needs it.
    import tensorflow_datasets as tfds

    for s in tfds_splits:
        if s not in TFDS_SPLITS:
            raise SourceError(f"--split={s}: choose from {', '.join(TFDS_SPLITS)}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            # tfds would retry an unreachable host for minutes; a quick probe fails in seconds instead.
            if not can_download(_DOWNLOAD_HOSTS.get(name, "storage.googleapis.com")):
                raise ConnectionError("not prepared in data_dir and no network to download it")
            builder.download_and_prepare()
    except Exception as e:  # Download failures come as many exception types; one line is what users need.
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if name == "celeb_a":
            raise SourceError(f"{_CELEBA_HELP} ({type(e).__name__}: {reason})") from None
        raise SourceError(f"tfds dataset {name!r} is not available ({reason}); prepare it with "
                          f"`tfds build {name} --data_dir=DIR` and pass --tfds_data_dir=DIR") from None

    def make_iter(tfds_split: str):
        def it():
            split_arg = tfds_split if not max_images else f"{tfds_split}[:{max_images}]"
            ds = builder.as_dataset(split=split_arg, shuffle_files=False)
            for i, ex in enumerate(tfds.as_numpy(ds)):
                key = ex.get("image/filename", f"{tfds_split}/{i:07d}")
                key = key.decode() if isinstance(key, bytes) else str(key)
                yield SourceItem(key=f"{name}/{tfds_split}/{key}", pixels=ex["image"])
        return it

    splits, counts = {}, {}
    for s in tfds_splits:
        splits[TFDS_SPLITS[s]] = make_iter(s)
        try:
            n = builder.info.splits[s].num_examples
            counts[TFDS_SPLITS[s]] = min(n, max_images) if max_images else n
        except Exception:
            pass
    return Source(name=name, splits=splits, counts_hint=counts, default_hr_size=128)


def combined_source(sources: list) -> Source:
    """Several sources as one: each split is the union of theirs, keys prefixed by the source's name."""
    splits, counts = {}, {}
    for split in SPLITS:
        parts = [s for s in sources if split in s.splits]
        if not parts:
            continue

        def items(parts=parts, split=split):
            for s in parts:
                for item in s.items(split):
                    yield dataclasses.replace(item, key=f"{s.name}/{item.key}")
        splits[split] = items
        if all(split in s.counts_hint for s in parts):
            counts[split] = sum(s.counts_hint[split] for s in parts)
    defaults = {s.default_hr_size for s in sources}
    return Source(name="+".join(s.name for s in sources), splits=splits, counts_hint=counts,
                  default_hr_size=defaults.pop() if len(defaults) == 1 else 0)


def resolve_source(spec: str, tfds_splits: list, val_fraction: float, tfds_data_dir: Optional[str] = None,
                   max_images: int = 0) -> Source:
    """Parses `--source`: `sample`, `dir:PATH`, `tfds:NAME`, or several of them joined by commas (their splits
    are merged; e.g. `sample,dir:more_photos` with --val_fraction=0 adds photos to the sample's training split)."""
    if "," in spec:
        return combined_source([resolve_source(s, tfds_splits, val_fraction, tfds_data_dir, max_images)
                                for s in spec.split(",") if s])
    if spec == "sample":
        return sample_source()
    if spec.startswith("dir:"):
        return dir_source(os.path.expanduser(spec[4:]), val_fraction)
    if spec.startswith("tfds:"):
        return tfds_source(spec[5:], tfds_splits, tfds_data_dir, max_images)
    raise SourceError(f"--source={spec}: expected sample, dir:PATH or tfds:NAME (e.g. tfds:celeb_a), "
                      "or several joined by commas")
