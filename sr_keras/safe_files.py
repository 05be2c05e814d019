"""Writing files and folders so that nothing is lost, half-written or redirected.

Every writer in sr_keras (enhanced images, TFRecord shards, manifests, exports, photos) goes through here:

* a temporary is created *exclusively* in the target folder (`tempfile.mkstemp` / `mkdtemp`: O_EXCL with an
  unpredictable name), so a symlink planted under a guessable name is never followed;
* it is renamed into place only when complete, so readers see the old file or the new one, never a mix;
* on any failure (a full disk included) the temporary is removed and the error goes up;
* `overwrite=False` never replaces an existing file, even one created between the check and the rename
  (`os.link` refuses an existing name atomically).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import shutil
import tempfile
from typing import BinaryIO, Iterator, Union

TEMP_PREFIX = ".sr_keras-tmp-"  # Every temporary starts with this, so leftovers of a killed run are recognisable.


class OutputExistsError(FileExistsError):
    """The target exists and overwriting was not asked for."""


@contextlib.contextmanager
def atomic_open(path: Union[str, os.PathLike], overwrite: bool = True) -> Iterator[BinaryIO]:
    """A binary file object whose contents appear at `path` only when the `with` block succeeds.

    Raises:
      OutputExistsError: `overwrite` is False and `path` exists (checked again at the moment of the rename).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path} already exists")
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would have.
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # Fails if the name exists, even if it appeared a moment ago.
            except FileExistsError:
                raise OutputExistsError(f"{path} already exists") from None
            except OSError:  # A filesystem without hard links: check, then rename (a narrow race remains).
                if os.path.lexists(path):
                    raise OutputExistsError(f"{path} already exists") from None
                os.rename(tmp, path)
                return
            os.remove(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_bytes(path: Union[str, os.PathLike], data: bytes, overwrite: bool = True) -> None:
    """Writes `data` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path, overwrite=overwrite) as f:
        f.write(data)


def write_text(path: Union[str, os.PathLike], text: str, overwrite: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def make_temp_dir(parent: str, label: str = "") -> str:
    """A new, exclusively created, hidden folder inside `parent` (created if needed)."""
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{label}", dir=parent)


def remove_stale_temps(folder: str) -> None:
    """Deletes temporaries left in `folder` by a killed run (never anything else)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(TEMP_PREFIX):
            p = os.path.join(folder, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(p)


_RENAME_EXCHANGE = 2  # linux/fs.h


@functools.lru_cache(maxsize=1)
def _renameat2():
    """libc's renameat2, or None (looked up once: find_library may run a subprocess)."""
    libc_name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None


def exchange(a: str, b: str) -> bool:
    """Atomically swaps two paths (Linux renameat2 RENAME_EXCHANGE). Returns False where unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot; the caller falls back.
        return False
    raise OSError(err, os.strerror(err), a)


def replace_dir(staging: str, target: str) -> None:
    """Puts the complete folder `staging` at `target`; the previous `target`, if any, is deleted afterwards.

    With renameat2 the swap is one atomic step: a kill at any moment leaves either the old or the new folder at
    `target`. Elsewhere the old folder is first moved aside under a temporary name (a kill in between leaves it
    there, recoverable, never deleted).
    """
    if not os.path.exists(target):
        os.rename(staging, target)
        return
    if exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # Now holds the previous contents.
        return
    aside = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}old-", dir=os.path.dirname(os.path.abspath(target)))
    os.rmdir(aside)
    os.rename(target, aside)
    os.rename(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def _read_umask() -> int:
    mask = os.umask(0o022)  # Read once at import (os.umask is process-wide and not thread-safe to probe later).
    os.umask(mask)
    return mask


_UMASK = _read_umask()
