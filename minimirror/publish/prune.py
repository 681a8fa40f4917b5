"""Bounding the cache: remove what no lock needs any more.

Every upstream change leaves a new ``Packages.xz`` blob (9 MB for Debian main) and its parsed form (55 MB) in
the cache, and every upgrade leaves the old pool files; nothing else ever removes them. :func:`prune` keeps what
the given locks name (their pool files, source package files and pinned indices, so that ``lock --offline``
and ``fetch`` still need nothing from the network) and removes the rest:

- blobs no lock names, and anything in ``blobs/`` that is not a blob (a temporary file of a killed write);
- parsed indices of other indices or of other cache formats;
- partial downloads (a prune holds the cache's lock, so none is in progress);
- parsed locks (``parsed-locks/``, :mod:`minimirror.lock.lockcache`) of lock files other than the ones in the
  given lock trees, byte for byte.

``releases/`` and ``keys/`` are small and kept. The plan (:func:`plan_prune`) is pure apart from listing the
folders; nothing is removed when a lock cannot be read, or when no lock is found at all (which would empty the
cache: most likely a wrong ``--locks``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from minimirror.errors import UsageError
from minimirror.filelock import cache_lock
from minimirror.lock.lockcache import lock_file_digests, stale_entries
from minimirror.lock.lockfile import Lock, read_locks
from minimirror.upstream.cache import Cache
from minimirror.upstream.indexcache import CACHE_FORMAT

__all__ = ["PruneConfig", "PruneReport", "needed_blobs", "plan_prune", "prune"]

_BLOB_NAME = re.compile(r"[0-9a-f]{64}")
_PARSED_NAME = re.compile(rf"([0-9a-f]{{64}})\.v{CACHE_FORMAT}\.packages")


@dataclass(frozen=True, slots=True)
class PruneConfig:
    cache_dir: Path
    locks_dirs: tuple[Path, ...]
    """Every lock tree whose files must stay: a cache shared by several projects is pruned with all of theirs."""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PruneReport:
    removed: tuple[Path, ...]
    """Sorted; with ``dry_run``, what would be removed."""
    bytes_freed: int
    blobs_kept: int


def needed_blobs(locks: Iterable[Lock]) -> frozenset[str]:
    """The sha256 of every file the locks name: pool files, source package files, pinned indices."""
    needed: set[str] = set()
    for lock in locks:
        needed.update(package.sha256 for package in lock.packages)
        needed.update(file.sha256 for source in lock.source_packages for file in source.files)
        needed.update(index.sha256 for pin in lock.upstream_pins() for index in pin.indices)
    return frozenset(needed)


def plan_prune(cache: Cache, needed: frozenset[str]) -> tuple[tuple[Path, ...], int]:
    """(the files to remove, sorted; how many blobs stay)."""
    remove: list[Path] = []
    kept = 0
    for path in _files(cache.root / "blobs"):
        if _BLOB_NAME.fullmatch(path.name) and path.name in needed and path.parent.name == path.name[:2]:
            kept += 1
        else:
            remove.append(path)
    for path in _files(cache.parsed_dir):
        match = _PARSED_NAME.fullmatch(path.name)
        if match is None or match.group(1) not in needed:
            remove.append(path)
    remove.extend(_files(cache.root / "partial"))
    return tuple(sorted(remove)), kept


def prune(config: PruneConfig) -> PruneReport:
    """Remove from the cache what no lock of ``config.locks_dirs`` needs (see the module's docstring)."""
    locks = _read_all(config.locks_dirs)
    cache = Cache(config.cache_dir)
    with cache_lock(config.cache_dir):
        remove, kept = plan_prune(cache, needed_blobs(locks))
        digests = {digest for locks_dir in config.locks_dirs for digest in lock_file_digests(locks_dir)}
        remove = tuple(sorted((*remove, *stale_entries(config.cache_dir, digests))))
        freed = 0
        for path in remove:
            try:
                freed += path.lstat().st_size
                if not config.dry_run:
                    path.unlink()
            except FileNotFoundError:
                continue
    return PruneReport(removed=remove, bytes_freed=freed, blobs_kept=kept)


def _read_all(locks_dirs: Sequence[Path]) -> tuple[Lock, ...]:
    locks: list[Lock] = []
    for locks_dir in locks_dirs:
        found = read_locks(locks_dir) if locks_dir.is_dir() else ()
        if not found:
            raise UsageError(
                f"no locks under {locks_dir}: pruning would empty the cache of what they need. "
                "Pass every lock tree that uses this cache with --locks (run `minimirror lock` first)."
            )
        locks.extend(found)
    return tuple(locks)


def _files(folder: Path) -> Iterable[Path]:
    """Every file below ``folder`` (none if it does not exist), symlinks included but not followed."""
    if not folder.is_dir():
        return ()
    return (path for path in folder.rglob("*") if path.is_symlink() or path.is_file())
