"""Free photographs for training photo models, beyond scikit-image's samples: desktop wallpapers that Debian
redistributes under the GPL/LGPL/CC BY-SA, fetched from pinned Debian packages and checked by SHA-256.

    fetch_photos("tfrecords/free_photos")   # -> images/*.png, CREDITS.md (author and licence of each photo)

Only real photographs are listed; the packages' illustrations and renders are left out. Wallpapers are JPEGs
saved at about 0.3 bits per pixel, so their block artefacts and ringing would teach a model to reproduce them;
each photo is therefore reduced 2x (antialiased bicubic) before use, as is usual for SR training sets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
import urllib.request
from typing import Callable, Optional

import numpy as np

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


PACKAGES = {
    "plasma-workspace-wallpapers": Package(
        "pool/main/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb",
        "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", 94_047_772,
        "debian/copyright: GPL-2+ (KDE Visual Design Group); per-wallpaper licence from its metadata.json"),
    "mate-backgrounds": Package(
        "pool/main/m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04", 46_638_500,
        "debian/copyright: GPL-2+, copyright holders per file"),
}

_KDE = "./usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_MATE = "./usr/share/backgrounds/mate/nature/{}.jpg"

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
)

REDUCE = 2  # Each photo is reduced by this factor (see the module docstring).


class FetchError(RuntimeError):
    """A package could not be downloaded or verified. The message names the fix, in one line."""


def _download(pkg_name: str, pkg: Package, cache_dir: str, log: Callable[[str], None]) -> str:
    """The verified .deb in `cache_dir`, downloaded once (to a temporary name, renamed when verified)."""
    path = os.path.join(cache_dir, os.path.basename(pkg.pool_path))
    if os.path.exists(path) and _sha256(path) == pkg.sha256:
        return path
    tmp = path + ".part"
    log(f"Downloading {pkg.url} ({pkg.size / 1e6:.0f} MB)")
    try:
        with urllib.request.urlopen(pkg.url, timeout=60) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:
        raise FetchError(f"cannot download {pkg.url} ({e}); check the network, or download it by hand "
                         f"(apt-get download {pkg_name}) into {cache_dir}") from None
    digest = _sha256(tmp)
    if digest != pkg.sha256:
        os.remove(tmp)
        raise FetchError(f"{pkg.url}: SHA-256 {digest} is not the pinned {pkg.sha256}; the mirror may serve a "
                         "newer revision. Update PACKAGES in sr_keras/data/photos.py and re-check the licences")
    os.replace(tmp, path)
    return path


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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


def reduce_photo(data: bytes, factor: int = REDUCE) -> np.ndarray:
    """Decodes a photo and shrinks it `factor`x with antialiased bicubic, as uint8 RGB."""
    from sr_keras import imageio
    from sr_keras.data import degradation

    rgb = imageio.to_rgb8(imageio.decode_image(data))
    return degradation.bicubic_downscale(degradation.crop_to_multiple(rgb, factor), factor)


def fetch_photos(out_dir: str, cache_dir: Optional[str] = None, log: Callable[[str], None] = print) -> list:
    """Writes every photo of PHOTOS to `out_dir`/images/NAME.png (reduced, see REDUCE) and the credits to
    `out_dir`/CREDITS.md; photos already there are kept. Returns the image paths."""
    from PIL import Image

    images_dir = os.path.join(out_dir, "images")
    cache_dir = cache_dir or os.path.join(out_dir, "debs")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(cache_dir, exist_ok=True)
    paths = {p.name: os.path.join(images_dir, p.name + ".png") for p in PHOTOS}
    todo = [p for p in PHOTOS if not os.path.exists(paths[p.name])]
    for pkg_name in sorted({p.package for p in todo}):
        photos = [p for p in todo if p.package == pkg_name]
        deb = _download(pkg_name, PACKAGES[pkg_name], cache_dir, log)
        members = deb_members(deb, {p.member for p in photos})
        for p in photos:
            tmp = paths[p.name] + ".tmp.png"
            Image.fromarray(reduce_photo(members[p.member])).save(tmp)
            os.replace(tmp, paths[p.name])  # A killed fetch leaves no half-written photo behind.
        log(f"{pkg_name}: {len(photos)} photos")
    with open(os.path.join(out_dir, "CREDITS.md"), "w", encoding="utf-8") as f:
        f.write(credits_markdown())
    return [paths[p.name] for p in PHOTOS]


def credits_markdown() -> str:
    lines = ["# Photo credits", "", f"Each photo is reduced {REDUCE}x from the package's file.", "",
             "| photo | author | licence | Debian package | file |", "|---|---|---|---|---|"]
    for p in PHOTOS:
        lines.append(f"| {p.name} | {p.author} | {p.license} | {p.package} | `{p.member[2:]}` |")
    lines += ["", "Packages (pinned by SHA-256):", ""]
    lines += [f"- {n}: {pkg.url} ({pkg.copyright_note})" for n, pkg in PACKAGES.items()]
    return "\n".join(lines) + "\n"
