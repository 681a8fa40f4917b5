"""Writing a file so that readers see the old content or the new, never a mix: a temporary file in the same
folder, then a rename (POSIX ``rename(2)`` is atomic within a filesystem). An interrupted write leaves the
previous file whole and no temporary behind (unless the process is killed, when a ``.NAME.*.tmp`` may stay;
nothing reads those).

The same module holds what every stage does when the disk refuses a write (full, over quota, read-only, not
permitted): :func:`disk_errors` turns the ``OSError`` into one :class:`~minimirror.errors.DiskError` naming the
path and the space the step needs, after the step's own clean-up; :func:`require_space` refuses a step early
when its size is known before it writes (fetch and publish know it from the locks).
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from minimirror.errors import DiskError

__all__ = [
    "DISK_ERRNOS",
    "disk_errors",
    "free_space",
    "fsync_directory",
    "require_space",
    "sync_filesystem",
    "write_atomically",
]

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})
"""The errnos that mean "this filesystem will not take the write", whatever the step: a user's to fix."""


def write_atomically(
    path: Path, data: bytes | str | Iterable[bytes], *, mode: int = 0o644, durable: bool = False
) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8; chunks, read once, one after the other, so a
    large file need not be joined in memory first) atomically, creating its folder.

    ``mode``: the file's permission bits, set before the first byte is written (pass 0o600 for a secret: it is
    never readable by others, even briefly). Fixed rather than from the umask, which cannot be read without
    changing it for every thread. ``durable``: fsync the file and its folder before returning, for outputs a
    user relies on (locks, keys); caches that are checked when read skip it.
    """
    chunks = [data.encode("utf-8")] if isinstance(data, str) else [data] if isinstance(data, bytes) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.writelines(chunks)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot open a directory, which is then not an error."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_filesystem(path: Path) -> None:
    """Make every file and folder written so far on the filesystem of ``path`` durable, in one call.

    For a tree of thousands of new files and folders (a published repository) this replaces an ``fsync`` of
    each: every ``fsync`` of a folder waits for its own journal commit (≈3 ms on ext4), one ``syncfs(2)`` (Linux
    >= 2.6.39) waits for one. Python has no binding for it, hence ctypes; elsewhere ``sync(2)``, which does the
    same for every filesystem."""
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        failed = syncfs(fd) != 0
    finally:
        os.close(fd)
    if failed:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))


def free_space(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``path`` (or of its nearest existing
    parent: the folder a step writes may not exist yet)."""
    stats = os.statvfs(_existing(path))
    return stats.f_bavail * stats.f_frsize


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent."""
    current = Path(os.path.abspath(path))  # noqa: PTH100 - not resolve(): the folder may not exist yet
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def require_space(path: Path, needed: int) -> None:
    """Refuse, before anything is written, a step that needs ``needed`` bytes at ``path`` when fewer are free."""
    free = free_space(path)
    if needed > free:
        raise DiskError(path, errno.ENOSPC, needed=needed, free=free, early=True)


@contextmanager
def disk_errors(
    path: Path, *, needed: int | Callable[[], int] | None = None, cleanup: Callable[[], None] | None = None
) -> Iterator[None]:
    """Turn a write the filesystem refuses (:data:`DISK_ERRNOS`) inside the block into one :class:`DiskError`.

    The error names the file the kernel named (else ``path``, the folder the step writes), the space the step
    needs (``needed``, or a function computing it only when needed) and the space free. ``cleanup`` removes the
    step's partial files first, for a :class:`DiskError` raised further in too (the innermost guard names the
    file; each guard on the way out cleans up its own step). Every other error passes through untouched.
    """
    try:
        yield
    except DiskError:
        if cleanup is not None:
            cleanup()
        raise
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = Path(os.fsdecode(exc.filename)) if exc.filename is not None else path
        size = needed() if callable(needed) else needed
        free, inodes = _room(where)  # before the clean-up, which frees what the user must know was short
        if cleanup is not None:
            cleanup()
        raise DiskError(where, exc.errno, needed=size, free=free, no_inodes=inodes == 0) from exc


def _room(path: Path) -> tuple[int | None, int | None]:
    """Bytes and inodes free where ``path`` is (either ``None`` when that cannot be read)."""
    try:
        current = _existing(path)
        stats = os.statvfs(current)
    except OSError:
        return None, None
    return stats.f_bavail * stats.f_frsize, stats.f_favail if stats.f_files else None
