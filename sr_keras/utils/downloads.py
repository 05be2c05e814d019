"""Hashing and verified downloads: what the zoo, the loss networks and the photo fetcher pin by SHA-256."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from typing import Callable

from sr_keras.utils import safe_files


def file_digest(path: str, algorithm: str = "sha256"):
    """The `hashlib` digest object of a file's bytes, read in 1 MB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digest(path).hexdigest()


class DownloadError(RuntimeError):
    """A pinned file could not be downloaded or verified. One line naming the fix."""


def download_verified(url: str, sha256: str, path: str, size: int = 0, fix: str = "",
                      log: Callable[[str], None] = print) -> str:
    """`path`, downloaded from `url` unless already there with the pinned SHA-256. The download lands under an
    exclusive temporary name and is renamed only once its hash matches, so `path` is whole or absent.

    Raises:
      DownloadError: no network, a hash mismatch (the file changed upstream) or an unwritable folder; `fix` is
        appended to the message.
    """
    if os.path.isfile(path) and sha256_file(path) == sha256:
        return path
    log(f"Downloading {url}" + (f" ({size / 1e6:.1f} MB)" if size else ""))
    fix = f"; {fix}" if fix else ""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with safe_files.atomic_open(path) as f:
            digest = hashlib.sha256()
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    while chunk := r.read(1 << 20):
                        digest.update(chunk)
                        f.write(chunk)
            except OSError as e:  # URLError, HTTPError, timeouts and resets are all OSErrors.
                raise DownloadError(f"cannot download {url} ({e}); check the network{fix}") from None
            if digest.hexdigest() != sha256:
                raise DownloadError(f"{url}: SHA-256 {digest.hexdigest()} is not the pinned {sha256}{fix}")
    except OSError as e:
        raise DownloadError(f"cannot write {path} ({e.strerror or e}){fix}") from None
    return path
