"""Free photographs for training photo models, beyond scikit-image's samples: desktop wallpapers that Debian
redistributes under the GPL, LGPL, CC BY, CC BY-SA or CC0, fetched from pinned Debian packages and checked by
SHA-256.

    fetch_photos("tfrecords/free_photos")   # -> images/*.png (training), test/*.png (held out), CREDITS.md

Only real photographs are listed; the packages' illustrations and renders are left out. Wallpapers are JPEGs
saved at 0.3 to 2 bits per pixel, so their block artefacts and ringing would teach a model to reproduce them;
each photo is therefore reduced 2x or 4x (antialiased bicubic, `Photo.reduce`) before use, as is usual for SR
training sets. Photos marked `split="test"` are never trained on: they are a second held-out set (besides the
sample's chelsea, coffee and rocket) for `sr-evaluate --images=tfrecords/free_photos/test`.

A third held-out set, `split="test_libs"` (written to test_libs/), is unlike the training photos on purpose: the
sample photos that Python libraries ship in Debian (scikit-learn's china and flower, matplotlib's Grace Hopper,
PyWavelets' aerial photo and "ascent"), small camera JPEGs and two grayscale images, used as they are (not
reduced), like the photos a user would bring.

`split="train_real"` (written to train_real/) holds more training photos that only the distilled real-world recipe
uses (`release.real_model.DISTILL_RECIPE`): krank's underwater camera photos. The shipped models' recipes read
images/ alone, so their inputs stay as their cards say.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from typing import Callable, Optional

import numpy as np
from PIL import Image

from sr_keras.data import degradation
from sr_keras.image import imageio
from sr_keras.utils import safe_files
from sr_keras.utils.downloads import DownloadError, download_verified

DEBIAN_MIRROR = "https://deb.debian.org/debian"


@dataclasses.dataclass(frozen=True)
class Package:
    pool_path: str  # Under DEBIAN_MIRROR.
    sha256: str
    size: int
    copyright_note: str  # What debian/copyright says for the files used.

    @property
    def url(self) -> str:
        return f"{DEBIAN_MIRROR}/{self.pool_path}"


@dataclasses.dataclass(frozen=True)
class Photo:
    name: str  # Output file stem.
    package: str
    member: str  # Path inside the package's data archive.
    author: str
    license: str
    reduce: int = 2  # Shrink factor (see the module docstring).
    # train (written to images/) | train_real (the distilled recipe's extra photos) | test | test_libs (held out).
    # Every split but train is written to a folder so named.
    split: str = "train"


PACKAGES = {
    "plasma-workspace-wallpapers": Package(
        "pool/main/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb",
        "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", 94_047_772,
        "debian/copyright: GPL-2+ (KDE Visual Design Group); per-wallpaper licence from its metadata.json"),
    "lomiri-wallpapers-16.04": Package(
        "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb",
        "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab", 15_783_184,
        "debian/copyright: per file (CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0), Ubuntu free culture showcase 2018"),
    "mate-backgrounds": Package(
        "pool/main/m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04", 46_638_500,
        "debian/copyright: GPL-2+, copyright holders per file"),
    "krank": Package(
        "pool/main/k/krank/krank_0.7+dfsg2-4_all.deb",
        "9a3d16fe30cef98d18a4ed9049f879339d8840f8cc729136ce2e0c7dbee33042", 58_065_456,
        "debian/copyright: images by Slava Anishenko, public domain (the game's level backgrounds)"),
    "python3-sklearn": Package(
        "pool/main/s/scikit-learn/python3-sklearn_1.2.1+dfsg-1_all.deb",
        "ca0c6be401d14871c7e93cfdd8d1f561595dc65e6e2ad2501d568aee7f7efc58", 2_102_964,
        "sklearn/datasets/images/README.txt: CC-BY-2.0, Flickr photos"),
    "python-matplotlib-data": Package(
        "pool/main/m/matplotlib/python-matplotlib-data_3.6.3-1_all.deb",
        "e4150fcebd35ea11e0f66268da97ce62f98a4cf530c944f755f241da1a9158f9", 2_743_688,
        "debian/copyright: matplotlib licence (PSF-based); grace_hopper.jpg is a U.S. Navy photo (public domain)"),
    "python3-pywt": Package(
        "pool/main/p/pywavelets/python3-pywt_1.1.1-3+b2_amd64.deb",
        "12b1adb8edee838f23c30ba243e8ae4bfb18159e5951feb017067b16eb7cd09d", 967_852,
        "debian/copyright: Expat (PyWavelets); images stored as .npz arrays"),
}

_KDE = "./usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_MATE = "./usr/share/backgrounds/mate/nature/{}.jpg"
_LOMIRI = "./usr/share/backgrounds/{}.jpg"
_L16 = "lomiri-wallpapers-16.04"
_SKLEARN = "./usr/lib/python3/dist-packages/sklearn/datasets/images/{}"
_PYWT = "./usr/lib/python3/dist-packages/pywt/data/{}.npz"
_KRANK = "./usr/share/games/krank/levels/unera-backgrounds/{}.jpg"
# Underwater camera photos of 2000 x 1500 (reefs, fish, divers), reduced 2x. menu-scores1 is bonus-01 again.
_KRANK_NAMES = (["bonus-01"] + [f"level-{i:02d}" for i in range(1, 31)]
                + [f"menu-{n}" for n in ("credits", "levels", "play", "scores", "scores2", "scores3", "screen",
                                         "sounds")] + ["menu"])

PHOTOS = (
    Photo("kde_bythewater", "plasma-workspace-wallpapers", _KDE.format("BytheWater"), "Maciej Wiklo", "LGPL-3"),
    Photo("kde_coldripple", "plasma-workspace-wallpapers", _KDE.format("ColdRipple"), "Risto Saukonpää", "LGPL-3"),
    Photo("kde_colorfulcups", "plasma-workspace-wallpapers", _KDE.format("ColorfulCups"), "Dmitri Popov",
          "LGPL-3"),
    Photo("kde_darkesthour", "plasma-workspace-wallpapers", _KDE.format("DarkestHour"), "Risto Saukonpää",
          "LGPL-3"),
    Photo("kde_eveningglow", "plasma-workspace-wallpapers", _KDE.format("EveningGlow"), "Ian Hex", "LGPL-3"),
    Photo("kde_fallenleaf", "plasma-workspace-wallpapers", _KDE.format("FallenLeaf"), "Martin Klapetek", "LGPL-3"),
    Photo("kde_grey", "plasma-workspace-wallpapers", _KDE.format("Grey"), "Sigi Sagi", "LGPL-3"),
    Photo("kde_kite", "plasma-workspace-wallpapers", _KDE.format("Kite"), "Risto Saukonpää", "LGPL-3"),
    Photo("kde_onestandsout", "plasma-workspace-wallpapers", _KDE.format("OneStandsOut"), "Risto Saukonpää",
          "LGPL-3"),
    Photo("kde_path", "plasma-workspace-wallpapers", _KDE.format("Path"), "Risto Saukonpää", "LGPL-3"),
    Photo("kde_summer_1am", "plasma-workspace-wallpapers", _KDE.format("summer_1am"), "Risto Saukonpää",
          "LGPL-3"),
    Photo("mate_aqua", "mate-backgrounds", _MATE.format("Aqua"), "Charles Barbin", "GPL-2+"),
    Photo("mate_blinds", "mate-backgrounds", _MATE.format("Blinds"), "Lennart Poettering, Andrea Cimitan",
          "GPL-2+"),
    Photo("mate_dune", "mate-backgrounds", _MATE.format("Dune"), "Marco Cogoni, Hylke Bons", "GPL-2+"),
    Photo("mate_freshflower", "mate-backgrounds", _MATE.format("FreshFlower"), "Jens Ansorg", "GPL-2+"),
    Photo("mate_garden", "mate-backgrounds", _MATE.format("Garden"), "Charles Barbin", "GPL-2+"),
    Photo("mate_greenmeadow", "mate-backgrounds", _MATE.format("GreenMeadow"),
          "Timothy Schellhase, Lapo Calamandrei", "GPL-2+"),
    Photo("mate_ladybird", "mate-backgrounds", _MATE.format("LadyBird"), "Charles Barbin", "GPL-2+"),
    Photo("mate_raindrops", "mate-backgrounds", _MATE.format("RainDrops"), "blackcombwhistler07", "GPL-2+"),
    Photo("mate_storm", "mate-backgrounds", _MATE.format("Storm"), "Sergey Nazarov", "GPL-2+"),
    Photo("mate_twowings", "mate-backgrounds", _MATE.format("TwoWings"), "Charles Barbin, Hylke Bons", "GPL-2+"),
    Photo("mate_wood", "mate-backgrounds", _MATE.format("Wood"), "Jean-François Fortin Tam", "GPL-2+"),
    Photo("mate_yellowflower", "mate-backgrounds", _MATE.format("YellowFlower"), "Charles Barbin", "GPL-2+"),
    # Camera originals of 2.6 to 16 MP: reduced 4x (Picture_1A, 1.5 MP at high quality: 2x).
    Photo("ubuntu_aitzgorri", _L16, _LOMIRI.format("aitzgorri_by_Aitzol_Berasategi"), "Aitzol Berasategi",
          "CC-BY-4.0", reduce=4),
    Photo("ubuntu_analogpattern", _L16, _LOMIRI.format("analogpattern_by_Peter_Nerlich"), "Peter Nerlich",
          "CC-BY-SA-4.0", reduce=4),
    Photo("ubuntu_bridge", _L16, _LOMIRI.format("Bridge_by_Sander_Klootwijk"), "Sander Klootwijk", "CC-BY-SA-4.0",
          reduce=4),
    Photo("ubuntu_free", _L16, _LOMIRI.format("free_by_Peter_Nerlich"), "Peter Nerlich", "CC-BY-SA-4.0",
          reduce=4),
    Photo("ubuntu_life", _L16, _LOMIRI.format("life_by_Aitzol_Berasategi"), "Aitzol Berasategi", "CC-BY-4.0",
          reduce=4),
    Photo("ubuntu_picture_0b", _L16, _LOMIRI.format("Picture_0B_by_freespace"), "Trevor \"Freespace\"",
          "CC-BY-4.0", reduce=4),
    Photo("ubuntu_picture_1a", _L16, _LOMIRI.format("Picture_1A_by_freespace"), "Trevor \"Freespace\"",
          "CC-BY-4.0", reduce=2),
    Photo("ubuntu_seeding", _L16, _LOMIRI.format("seeding_by_Clements_Engelhardt"), "Clemens Engelhardt",
          "CC0-1.0", reduce=4),
    Photo("ubuntu_sunset", _L16, _LOMIRI.format("sunset_by_Aitzol_Berasategi"), "Aitzol Berasategi", "CC-BY-4.0",
          reduce=4),
    *(Photo("krank_" + n.replace("-", "_"), "krank", _KRANK.format(n), "Slava Anishenko", "public domain",
            split="train_real") for n in _KRANK_NAMES),
    # Held out (split="test"): never trained on.
    Photo("ubuntu_dragonfly", _L16, _LOMIRI.format("Dragonfly_by_Bolly"), "Bolly", "CC-BY-SA-4.0", reduce=4,
          split="test"),
    Photo("ubuntu_friends", _L16, _LOMIRI.format("friends_by_Aitzol_Berasategi"), "Aitzol Berasategi",
          "CC-BY-4.0", reduce=4, split="test"),
    Photo("ubuntu_greentock", _L16, _LOMIRI.format("greentock_by_Peter_Nerlich"), "Peter Nerlich", "CC-BY-SA-4.0",
          reduce=4, split="test"),
    Photo("ubuntu_picosdeeuropa", _L16, _LOMIRI.format("picosdeeuropa_by_Aitzol_Berasategi"), "Aitzol Berasategi",
          "CC-BY-4.0", reduce=4, split="test"),
    Photo("ubuntu_wine", _L16, _LOMIRI.format("Wine_by_Jakkub_Mede"), "Jakub Mede", "CC-BY-4.0", reduce=4,
          split="test"),
    # Held out (split="test_libs"), used as shipped (reduce=1): small camera JPEGs and grayscale images.
    Photo("sklearn_china", "python3-sklearn", _SKLEARN.format("china.jpg"), "danielbuechele (Flickr)", "CC-BY-2.0",
          reduce=1, split="test_libs"),
    Photo("sklearn_flower", "python3-sklearn", _SKLEARN.format("flower.jpg"), "vultilion (Flickr)", "CC-BY-2.0",
          reduce=1, split="test_libs"),
    Photo("matplotlib_grace_hopper", "python-matplotlib-data",
          "./usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg", "U.S. Navy", "public domain", reduce=1,
          split="test_libs"),
    Photo("pywt_aero", "python3-pywt", _PYWT.format("aero"), "PyWavelets sample data", "MIT (Expat)", reduce=1,
          split="test_libs"),
    Photo("pywt_ascent", "python3-pywt", _PYWT.format("ascent"), "PyWavelets / SciPy sample data", "MIT (Expat)",
          reduce=1, split="test_libs"),
)


class FetchError(RuntimeError):
    """A package could not be downloaded or verified. The message names the fix, in one line."""


def _download(pkg_name: str, pkg: Package, cache_dir: str, log: Callable[[str], None]) -> str:
    """The verified .deb in `cache_dir`, downloaded once (`sources.download_verified`)."""
    try:
        return download_verified(pkg.url, pkg.sha256, os.path.join(cache_dir, os.path.basename(pkg.pool_path)),
                                 size=pkg.size, log=log,
                                 fix=f"download it by hand (apt-get download {pkg_name}) into {cache_dir}, or, if "
                                     "the mirror serves a newer revision, update PACKAGES in sr_keras/data/photos.py "
                                     "and re-check the licences")
    except DownloadError as e:
        raise FetchError(str(e)) from None


def deb_members(deb_path: str, wanted: set) -> dict:
    """{member: bytes} for the `wanted` paths of a .deb's data archive (an `ar` archive holding data.tar.*)."""
    with open(deb_path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise FetchError(f"{deb_path} is not a Debian package (no ar header); delete it and fetch again")
        while header := f.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            data = f.read(size)
            f.read(size % 2)  # Members are 2-byte aligned.
            if name.startswith("data.tar"):
                found = {}
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                    for m in tar:
                        if m.name in wanted:
                            found[m.name] = tar.extractfile(m).read()
                missing = wanted - set(found)
                if missing:
                    raise FetchError(f"{deb_path} lacks {sorted(missing)[0]}; the pinned package changed")
                return found
    raise FetchError(f"{deb_path} has no data.tar member")


def reduce_photo(data: bytes, factor: int) -> np.ndarray:
    """Decodes a photo (an image file, or a .npz holding one uint8 image array, as PyWavelets stores them) and
    shrinks it `factor`x with antialiased bicubic (factor 1: as it is). Returns uint8, HxWx3 or HxW (gray .npz)."""

    if data[:4] == b"PK\x03\x04":  # A .npz is a zip archive.
        with np.load(io.BytesIO(data)) as z:
            pixels = z[z.files[0]]
        if pixels.dtype != np.uint8 or pixels.ndim != 2 and not (pixels.ndim == 3 and pixels.shape[-1] == 3):
            raise FetchError(f"unexpected image array {pixels.dtype} {pixels.shape} in a .npz")
    else:
        pixels = imageio.to_rgb8(imageio.decode_image(data))
    if factor == 1:
        return pixels
    rgb = np.repeat(pixels[..., None], 3, -1) if pixels.ndim == 2 else pixels
    return degradation.bicubic_downscale(degradation.crop_to_multiple(rgb, factor), factor)


def fetch_photos(out_dir: str, cache_dir: Optional[str] = None, log: Callable[[str], None] = print) -> list:
    """Writes every photo of PHOTOS, reduced, to `out_dir`/images/NAME.png (training) or `out_dir`/test/NAME.png
    (held out), and the credits to `out_dir`/CREDITS.md; photos already there are kept. Returns the paths."""

    cache_dir = cache_dir or os.path.join(out_dir, "debs")
    paths = {p.name: os.path.join(out_dir, "images" if p.split == "train" else p.split, p.name + ".png")
             for p in PHOTOS}
    for folder in {os.path.dirname(p) for p in paths.values()} | {cache_dir}:
        os.makedirs(folder, exist_ok=True)
    todo = [p for p in PHOTOS if not os.path.exists(paths[p.name])]
    for pkg_name in sorted({p.package for p in todo}):
        photos = [p for p in todo if p.package == pkg_name]
        deb = _download(pkg_name, PACKAGES[pkg_name], cache_dir, log)
        members = deb_members(deb, {p.member for p in photos})
        for p in photos:
            with safe_files.atomic_open(paths[p.name]) as f:  # A killed fetch leaves no half-written photo.
                Image.fromarray(reduce_photo(members[p.member], p.reduce)).save(f, format="PNG")
        log(f"{pkg_name}: {len(photos)} photos")
    safe_files.write_text(os.path.join(out_dir, "CREDITS.md"), credits_markdown())
    return [paths[p.name] for p in PHOTOS]


def credits_markdown() -> str:
    lines = ["# Photo credits", "", "Each photo is the package's file reduced by the given factor (antialiased "
             "bicubic). `test` and `test_libs` photos are held out from training.", "",
             "| photo | split | author | licence | Debian package | file | reduced |", "|---|---|---|---|---|---|---|"]
    for p in PHOTOS:
        lines.append(f"| {p.name} | {p.split} | {p.author} | {p.license} | {p.package} | `{p.member[2:]}` | "
                     f"{p.reduce}x |")
    lines += ["", "Packages (pinned by SHA-256):", ""]
    lines += [f"- {n}: {pkg.url} ({pkg.copyright_note})" for n, pkg in PACKAGES.items()]
    return "\n".join(lines) + "\n"
