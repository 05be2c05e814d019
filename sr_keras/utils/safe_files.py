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
import socket
import stat
import tempfile
import time
from typing import BinaryIO, Iterator, Optional, Union

TEMP_PREFIX = ".sr_keras-tmp-"  # Every temporary starts with this, so leftovers of a killed run are recognisable.
# A temporary's name says who made it: `.sr_keras-tmp-<pid>@<host>@<label><random>`. A cleaner removes it only when
# that process is gone (on this host), so a peer's live temporary is never deleted. Names without an owner (older
# versions) count as left over once they are this old.
_OWNERLESS_STALE_SECONDS = 24 * 3600


class UnsafePathError(OSError):
    """A path that would leave the folder it must stay in (a planted link, or a file where a folder should be)."""


def _host() -> str:
    """This machine's name as it appears in temporaries' names (no `@` or path separator)."""
    return socket.gethostname().replace("@", "_").replace(os.sep, "_")[:64]


def _owner_prefix() -> str:
    return f"{TEMP_PREFIX}{os.getpid()}@{_host()}@"


def _owner_alive(name: str) -> Optional[bool]:
    """True/False for a temporary of a live/dead process of this host; None when unknown (ownerless or other host)."""
    parts = name[len(TEMP_PREFIX):].split("@", 2)
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    if parts[1] != _host():
        return None  # Another machine's (a shared folder): its process cannot be asked.
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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
    fd, tmp = tempfile.mkstemp(prefix=_owner_prefix(), dir=folder)
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


@contextlib.contextmanager
def locked(lock_path: str) -> Iterator[None]:
    """Holds an exclusive advisory lock on `lock_path` (created if needed): other processes wait."""
    try:
        # Here, not at the top: POSIX only: Windows has no fcntl.
        import fcntl  # noqa: PLC0415
    except ImportError:  # Windows: no advisory locks; atomic publishing still keeps what is written whole.
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # Releases the lock.


def make_temp_dir(parent: str, label: str = "") -> str:
    """A new, exclusively created, hidden folder inside `parent` (created if needed)."""
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{_owner_prefix()}{label}", dir=parent)


def remove_stale_temps(folder: str) -> list:
    """Deletes temporaries left in `folder` by killed runs (never anything else, never a live process's); returns
    the names removed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        p = os.path.join(folder, name)
        alive = _owner_alive(name)
        if alive is None:
            with contextlib.suppress(OSError):
                alive = time.time() - os.lstat(p).st_mtime < _OWNERLESS_STALE_SECONDS
        if alive is not False:
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(p)
        removed.append(name)
    return removed


def make_dirs_inside(root: str, rel: str) -> str:
    """Creates `root/rel` folder by folder and returns it, refusing to pass through a link or a non-folder inside
    `root` (a link planted at `root/sub` must not send outputs elsewhere). `root` itself may be a link.

    Raises:
      UnsafePathError: a component is a link, not a folder, or `..`.
    """
    path = root
    for part in os.path.normpath(rel).split(os.sep) if rel not in ("", ".") else []:
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePathError(f"{rel} leaves {root}")
        path = os.path.join(path, part)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            what = "a link" if stat.S_ISLNK(st.st_mode) else "not a folder"
            raise UnsafePathError(f"{path} is {what}; outputs are never written through it (they stay in {root})")
    return path


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


def walk_files(root: str) -> list:
    """Every non-hidden file under `root`, sorted, hidden folders skipped; each real file and folder once.

    Linked folders are followed, but a folder already visited (`ln -s . loop`, two links to one place) is not
    entered again, and a file reached through several links is listed once. Special files (pipes, devices,
    sockets) are listed, so that the reader refuses each with its reason (`imageio.read_file`), never hangs on it.
    """
    files, seen_dirs, seen_files = [], set(), set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            here = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (here.st_dev, here.st_ino) in seen_dirs:  # Reached again through a link: a loop or a duplicate.
            dirnames[:] = []
            continue
        seen_dirs.add((here.st_dev, here.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith("."):  # .DS_Store, editor swap files and the like are not inputs.
                continue
            path = os.path.join(dirpath, f)
            try:
                st = os.stat(path)
            except OSError:  # A dangling link: listed, so the reader reports it.
                files.append(path)
                continue
            if (st.st_dev, st.st_ino) not in seen_files:
                seen_files.add((st.st_dev, st.st_ino))
                files.append(path)
    return files
