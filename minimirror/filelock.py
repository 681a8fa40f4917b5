"""One minimirror run at a time per cache or output folder: an ``flock(2)`` lock that waits, then says who holds it.

Implements the concurrency rule of ``DESIGN.md`` ("Every stage reads only what the previous stage wrote, so a stage
can be re-run"): two runs that write the same cache (``lock``, ``fetch``) or the same published tree (``publish``)
must not interleave. Each takes an exclusive ``flock`` on a small file (``<cache>/.minimirror.lock``, or
``<parent of OUT>/.minimirror-publish.lock``) and writes its pid into it for whoever waits.

- The kernel releases an ``flock`` when its holder dies, ``kill -9`` included, so a crashed run never leaves a
  stale lock behind and nothing has to guess whether a pid is still alive.
- A second run polls (every ``poll`` seconds), logs once that it waits and for whom, and gives up after
  ``timeout`` seconds (default 300, or ``$MINIMIRROR_LOCK_TIMEOUT``) with :class:`FolderBusy`, which names the
  folder, the holder's pid and what to do.
- The lock is per open file description: the same process taking it twice (two threads, or a nested call) waits
  on itself, so the orchestration functions take it once, at their top.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from minimirror.atomic import DISK_ERRNOS, disk_errors
from minimirror.errors import MinimirrorError, UsageError

__all__ = [
    "CACHE_LOCK_NAME",
    "DEFAULT_TIMEOUT",
    "PUBLISH_LOCK_NAME",
    "TIMEOUT_ENV",
    "FolderBusy",
    "LockWait",
    "cache_lock",
    "folder_lock",
    "holder_pid",
    "publish_lock",
    "wait_from_env",
]

log = logging.getLogger(__name__)

CACHE_LOCK_NAME = ".minimirror.lock"
PUBLISH_LOCK_NAME = ".minimirror-publish.lock"
TIMEOUT_ENV = "MINIMIRROR_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
_POLL = 0.1


class FolderBusy(MinimirrorError):
    """Another minimirror run held a folder's lock for longer than this run was willing to wait."""

    def __init__(self, folder: Path, purpose: str, pid: int | None, waited: float) -> None:
        self.folder = folder
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "another process (pid unknown)"
        super().__init__(
            f"{folder}: {holder} is still using this {purpose} after {waited:.0f} s of waiting. "
            f"Wait for it to finish (or stop it), then run again; ${TIMEOUT_ENV} sets how long to wait."
        )


@dataclass(frozen=True, slots=True)
class LockWait:
    """How long to wait for a busy folder and how often to look again (seconds)."""

    timeout: float = DEFAULT_TIMEOUT
    poll: float = _POLL


def wait_from_env(environ: Mapping[str, str] | None = None) -> LockWait:
    """The wait policy, ``$MINIMIRROR_LOCK_TIMEOUT`` seconds when set (``0``: do not wait at all)."""
    value = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not value:
        return LockWait()
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not timeout >= 0:  # also refuses nan
        raise UsageError(f"${TIMEOUT_ENV}={value!r}: expected a number of seconds (0 or more)")
    return LockWait(timeout=timeout)


def holder_pid(lock_file: Path) -> int | None:
    """The pid written in a lock file by its holder, or ``None`` (no file, empty, or not a pid)."""
    try:
        text = lock_file.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def folder_lock(
    lock_file: Path,
    *,
    folder: Path,
    purpose: str,
    wait: LockWait | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if needed) for the ``with`` block.

    ``folder`` and ``purpose`` ("cache", "published tree") are only for messages. Raises :class:`FolderBusy`
    when the lock is still held after ``wait.timeout`` seconds."""
    policy = wait or wait_from_env()
    with disk_errors(lock_file):  # a full or read-only folder is said as such, as for any other write
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = _open(lock_file, folder)
    try:
        _acquire(fd, lock_file, folder, purpose, policy=policy, clock=clock, sleep=sleep)
        _write_pid(fd)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # the pid of a finished run would mislead the next reader
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def cache_lock(cache_dir: Path, *, wait: LockWait | None = None) -> contextlib.AbstractContextManager[None]:
    """The lock of a cache folder (taken by ``lock``, ``search``, ``fetch`` and ``publish``, which write it)."""
    return folder_lock(cache_dir / CACHE_LOCK_NAME, folder=cache_dir, purpose="cache", wait=wait)


def publish_lock(out_dir: Path, *, wait: LockWait | None = None) -> contextlib.AbstractContextManager[None]:
    """The lock of a published tree: a file beside ``OUT`` (OUT itself is swapped out by the publisher)."""
    out = Path(os.path.abspath(out_dir))  # noqa: PTH100 - not resolve(): OUT may be a symlink
    return folder_lock(out.parent / PUBLISH_LOCK_NAME, folder=out, purpose="published tree", wait=wait)


def image_lock(image: Path, *, wait: LockWait | None = None) -> contextlib.AbstractContextManager[None]:
    """The lock of an image output (an OCI layout or a tar): a file beside it, as the output is swapped."""
    out = Path(os.path.abspath(image))  # noqa: PTH100 - not resolve(): the output may be a symlink
    return folder_lock(out.parent / f".{out.name}.minimirror-lock", folder=out, purpose="image", wait=wait)


def _open(lock_file: Path, folder: Path) -> int:
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise
        raise UsageError(f"{folder}: cannot create the lock file {lock_file}: {exc.strerror}") from exc


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _acquire(
    fd: int,
    lock_file: Path,
    folder: Path,
    purpose: str,
    *,
    policy: LockWait,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """Take the lock, polling until ``policy.timeout``; every loop is bounded by that deadline."""
    if _try(fd):
        return
    start = clock()
    pid = holder_pid(lock_file)
    log.warning(
        "%s: waiting for %s, which is using this %s (up to %.0f s)",
        folder,
        f"pid {pid}" if pid is not None else "another minimirror run",
        purpose,
        policy.timeout,
    )
    while clock() - start < policy.timeout:
        sleep(min(policy.poll, max(policy.timeout - (clock() - start), 0.0)))
        if _try(fd):
            log.info("%s: got the lock after %.1f s", folder, clock() - start)
            return
    raise FolderBusy(folder, purpose, holder_pid(lock_file), clock() - start)


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
