"""Reproducible image layers: a sorted, normalized tar of a directory tree, gzipped, hashed while it streams.

Implements the layer rules of the OCI image-spec (``layer.md``: a layer is a tar archive of a changeset,
``application/vnd.oci.image.layer.v1.tar+gzip`` when compressed; ``config.md``: ``rootfs.diff_ids`` are the
sha256 of the *uncompressed* tar) with the normalizations of reproducible-builds.org's archive guidance:

- entries sorted by path components, so every directory comes before what it holds;
- owner uid/gid 0 (or given), empty uname/gname, mtime ``SOURCE_DATE_EPOCH``;
- fixed modes: directories 0755, files 0644, or 0755 when any execute bit is set on the source;
- POSIX.1-2001 (pax) format: tarfile writes a pax header only when a field does not fit in ustar (a name
  longer than 100 bytes, a non-ASCII name), and that header is itself deterministic;
- hard links become regular files (each path gets its bytes), so the layer does not depend on inode order;
- symlinks are kept when they resolve inside the tree, refused otherwise; sockets, fifos, devices refused;
- gzip with no file name, mtime 0 and a fixed level.

Why ``tarfile`` and ``gzip`` from the standard library and not a library: the bytes of a layer decide the
image digest, so every byte must be under our control and stable across versions of our dependencies.
``tarfile`` lets us set each header field explicitly and streams (``mode="w|"``); ``gzip.GzipFile`` takes
``mtime=0`` and ``filename=""``; both write to any file object, so the compressed and uncompressed digests
are computed in the same pass, and memory stays flat whatever the tree's size. The one thing outside our
control is zlib's deflate output, which is stable for a given zlib and level (see docs/image.md).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from minimirror.errors import UsageError

__all__ = [
    "GZIP_LEVEL",
    "LayerDigest",
    "LayerEntry",
    "LayerError",
    "make_tarinfo",
    "scan_tree",
    "sorted_entries",
    "write_layer",
]

GZIP_LEVEL = 6
"""gzip's default level: the usual size/speed balance, and what ``gzip -n`` gives for comparison."""

_CHUNK = 1 << 20  # bytes copied at a time from a source file into the tar stream

EntryKind = Literal["dir", "file", "symlink"]


class LayerError(UsageError):
    """A tree that cannot become a reproducible layer: a symlink escaping it, a special file, a bad path."""


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """One path of a layer. A file's content is ``data`` (in memory) or ``source`` (read in chunks)."""

    path: str  # relative POSIX path inside the image, no leading "/" (e.g. "srv/dists/stable/Release")
    kind: EntryKind
    mode: int = 0o644
    data: bytes | None = None
    source: Path | None = None
    linkname: str = ""

    @staticmethod
    def directory(path: str) -> LayerEntry:
        return LayerEntry(_clean(path), "dir", 0o755)

    @staticmethod
    def file(path: str, data: bytes, *, executable: bool = False) -> LayerEntry:
        return LayerEntry(_clean(path), "file", 0o755 if executable else 0o644, data=data)

    @property
    def sort_key(self) -> tuple[str, ...]:
        return PurePosixPath(self.path).parts


@dataclass(frozen=True, slots=True)
class LayerDigest:
    """A written layer: the blob's digest and size, and the uncompressed tar's digest (``diff_id``) and size."""

    digest: str  # "sha256:<hex>" of the gzip blob
    size: int
    diff_id: str  # "sha256:<hex>" of the tar
    uncompressed_size: int


def _clean(path: str) -> str:
    """A relative, normalized POSIX path; refuses "..", absolute paths and empty names."""
    parts = PurePosixPath(path.strip("/")).parts
    if not parts or any(part in ("..", ".") for part in parts):
        raise LayerError(f"not a usable path inside an image: {path!r}")
    return "/".join(parts)


# --- planning: which entries, in which order --------------------------------------------------------------


def scan_tree(root: Path, prefix: str) -> list[LayerEntry]:
    """Every path below ``root`` as entries under ``prefix`` (which is included, with its parents), sorted.

    Only metadata is read here; file contents are read when the layer is written.
    """
    if not root.is_dir():
        raise LayerError(f"{root}: not a directory; give the directory the image should serve")
    real_root = Path(os.path.realpath(root))
    entries = [LayerEntry.directory(p) for p in _parents(_clean(prefix))]
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        entries.append(_entry(path, f"{_clean(prefix)}/{rel}", real_root))
    return sorted_entries(entries)


def _parents(path: str) -> list[str]:
    parts = PurePosixPath(path).parts
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _walk(root: Path) -> Iterator[Path]:
    """Every path below ``root`` (symlinked directories are not followed); order does not matter here."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=_unreadable, followlinks=False):
        base = Path(dirpath)
        for name in (*dirnames, *filenames):
            yield base / name


def _unreadable(exc: OSError) -> None:
    raise LayerError(f"{exc.filename}: cannot be read ({exc.strerror}); fix its permissions") from exc


def _entry(path: Path, name: str, real_root: Path) -> LayerEntry:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return LayerEntry(name, "symlink", 0o777, linkname=_inside_link(path, real_root))
    if stat.S_ISDIR(info.st_mode):
        return LayerEntry(name, "dir", 0o755)
    if stat.S_ISREG(info.st_mode):
        mode = 0o755 if info.st_mode & 0o111 else 0o644
        return LayerEntry(name, "file", mode, source=path)
    raise LayerError(f"{path}: not a regular file, directory or symlink; remove it from the tree")


def _inside_link(path: Path, real_root: Path) -> str:
    """The symlink's target when it resolves inside the tree (following every link of the chain)."""
    target = str(path.readlink())
    resolved = Path(os.path.realpath(path))
    if target.startswith("/") or not resolved.is_relative_to(real_root):
        raise LayerError(
            f"{path}: symlink to {target!r} points outside the tree {real_root}; "
            "replace it with a copy or a relative link that stays inside"
        )
    return target


def sorted_entries(entries: Iterable[LayerEntry]) -> list[LayerEntry]:
    """Sorted by path components (parents first); two entries with the same path are refused."""
    ordered = sorted(entries, key=lambda e: e.sort_key)
    for before, after in itertools.pairwise(ordered):
        if before.path == after.path:
            raise LayerError(f"two entries for {before.path!r} in one layer")
    return ordered


# --- writing: one pass, hashing both streams --------------------------------------------------------------


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``target`` (if any)."""

    def __init__(self, target: IO[bytes] | gzip.GzipFile | None) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def make_tarinfo(
    name: str, kind: EntryKind, mode: int, size: int, *, epoch: int, uid: int = 0, gid: int = 0
) -> tarfile.TarInfo:
    """A tar header with every field fixed: owner, names, time and mode come from the arguments only."""
    info = tarfile.TarInfo(name)
    info.type = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}[kind]
    info.mode = mode
    info.size = size
    info.mtime = epoch
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    return info


def _add(archive: tarfile.TarFile, entry: LayerEntry, epoch: int, uid: int, gid: int) -> None:
    def header(size: int) -> tarfile.TarInfo:
        return make_tarinfo(entry.path, entry.kind, entry.mode, size, epoch=epoch, uid=uid, gid=gid)

    if entry.kind == "file" and entry.source is not None:
        _add_file(archive, entry.source, header)
    elif entry.kind == "file":
        data = entry.data or b""
        archive.addfile(header(len(data)), _BytesReader(data))
    else:
        info = header(0)
        info.linkname = entry.linkname
        archive.addfile(info)


def _add_file(archive: tarfile.TarFile, source: Path, header: Callable[[int], tarfile.TarInfo]) -> None:
    """Copy ``source`` in chunks; the size is taken from the open file, so a file replaced meanwhile is
    read whole, and one that shrinks while it is read is reported instead of padding the layer."""
    with source.open("rb") as handle:
        try:
            archive.addfile(header(os.fstat(handle.fileno()).st_size), handle)
        except OSError as exc:
            raise LayerError(
                f"{source}: changed while the layer was written ({exc}); build again from a quiet tree"
            ) from exc


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(self._pos + size, len(self._view))
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk


def write_layer(
    entries: Sequence[LayerEntry], out: Path, *, epoch: int, uid: int = 0, gid: int = 0, level: int = GZIP_LEVEL
) -> LayerDigest:
    """Write ``entries`` (sorted here) as a gzipped tar to ``out``; return its digests and sizes.

    One pass: tar -> sha256 (diff_id) -> gzip -> sha256 (digest) -> file. Memory does not grow with the
    tree: file contents are copied in chunks of ``_CHUNK`` bytes.
    """
    ordered = sorted_entries(entries)
    with out.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=compressed, mtime=0) as zipped:
            plain = _HashingWriter(zipped)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_CHUNK) as archive:  # type: ignore[call-overload]
                archive.copybufsize = _CHUNK
                for entry in ordered:
                    _add(archive, entry, epoch, uid, gid)
    return LayerDigest(compressed.digest, compressed.size, plain.digest, plain.size)
