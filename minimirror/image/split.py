"""Splitting the repository tree into layers that survive updates: pool buckets plus one metadata layer.

A registry and a node keep a layer whose digest they already have, so an image update moves only the layers
whose bytes changed. One layer for all of ``/srv`` changes with every lock change; here the pool files (every
file below a ``pool`` directory: ``.deb``, ``.udeb``, ``.dsc``, source tarballs) are spread over at most
:data:`POOL_BUCKETS` layers, and everything else (``dists/`` with Release, Packages, by-hash, the signing key,
the SBOM, the readiness file) goes into one metadata layer, last, which changes at every update anyway.

A pool file's bucket is a hash of its directory (``<prefix>/pool/<component>/<x>/<source>``), so

- it depends on nothing else in the tree: adding, removing or upgrading a package touches only the bucket of
  its source package's directory (an upgrade stays in the same directory), and every other bucket keeps its
  exact bytes and digest;
- it is the same on any machine and any day (sha256 of the path, not Python's salted ``hash``);
- the buckets are balanced by the law of large numbers: with N source directories each bucket holds about
  N/32 of them (the spread of sizes is measured in ``benchmarks/bench_split.py`` on the project's Debian lock).

Why not cut the sorted pool into size-balanced chunks: every boundary then depends on every file before it, so
one package added early in the alphabet shifts every later layer, and an update ships the whole mirror again.
Empty buckets are left out, so a small mirror has fewer layers; the count never passes ``POOL_BUCKETS + 2``
(server and metadata), far below overlayfs' 128 lower directories and registries' manifest limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from minimirror.image.layers import LayerEntry, sorted_entries

__all__ = ["POOL_BUCKETS", "RepositoryLayers", "bucket_of", "split_repository"]

POOL_BUCKETS = 32


@dataclass(frozen=True, slots=True)
class RepositoryLayers:
    """The repository's layers in image order: the non-empty pool buckets by number, then the metadata."""

    pool: tuple[tuple[LayerEntry, ...], ...]
    metadata: tuple[LayerEntry, ...]

    @property
    def layers(self) -> tuple[tuple[LayerEntry, ...], ...]:
        return (*self.pool, self.metadata)


def bucket_of(directory: str, buckets: int = POOL_BUCKETS) -> int:
    """The pool bucket of a directory path (``srv/fixture/pool/main/w/web``): stable, uniform, machine-free."""
    return int.from_bytes(hashlib.sha256(directory.encode()).digest()[:8], "big") % buckets


def _pool_directory(entry: LayerEntry) -> str | None:
    """The directory that decides the bucket, for a file or link below a ``pool`` directory; else None."""
    if entry.kind == "dir":
        return None
    parent = PurePosixPath(entry.path).parent
    return str(parent) if "pool" in parent.parts else None


def _with_parents(entries: Iterable[LayerEntry]) -> tuple[LayerEntry, ...]:
    """``entries`` and every directory above them, so each layer unpacks on its own."""
    chosen = list(entries)
    parents = {str(p) for entry in chosen for p in PurePosixPath(entry.path).parents if str(p) != "."}
    return tuple(sorted_entries([*chosen, *(LayerEntry.directory(p) for p in sorted(parents))]))


def split_repository(entries: Sequence[LayerEntry], buckets: int = POOL_BUCKETS) -> RepositoryLayers:
    """Distribute ``entries`` (a scanned tree, with the SBOM and readiness file) into pool buckets and metadata."""
    pool: dict[int, list[LayerEntry]] = {}
    metadata: list[LayerEntry] = []
    for entry in entries:
        directory = _pool_directory(entry)
        if directory is None:
            metadata.append(entry)
        else:
            pool.setdefault(bucket_of(directory, buckets), []).append(entry)
    pool_layers = tuple(_with_parents(pool[number]) for number in sorted(pool))
    return RepositoryLayers(pool_layers, _with_parents(_metadata_entries(entries, metadata)))


def _metadata_entries(entries: Sequence[LayerEntry], outside_pool: Sequence[LayerEntry]) -> list[LayerEntry]:
    """The files outside the pool, and the empty directories (which no file's parents would bring back)."""
    holding = {str(p) for entry in entries for p in PurePosixPath(entry.path).parents}
    return [e for e in outside_pool if e.kind != "dir" or e.path not in holding]
