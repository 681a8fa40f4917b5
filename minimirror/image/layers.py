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
- compressed with fixed settings, or not at all (``Compression``): an uncompressed tar
  (``application/vnd.oci.image.layer.v1.tar``, digest = diff_id), gzip with no file name, mtime 0 and a fixed
  level (``+gzip``), or zstd at a fixed level without checksum or content size (``+zstd``, RFC 8878).

Why ``tarfile`` and ``gzip`` from the standard library and not a library: the bytes of a layer decide the
image digest, so every byte must be under our control and stable across versions of our dependencies.
``tarfile`` lets us set each header field explicitly and streams (``mode="w|"``); ``gzip.GzipFile`` takes
``mtime=0`` and ``filename=""``; both write to any file object, so the compressed and uncompressed digests
are computed in the same pass, and memory stays flat whatever the tree's size. The one thing outside our
control is the compressor's output, stable for a given zlib (or libzstd, which the ``zstandard`` wheel bundles)
and level; uncompressed layers have no such dependency (see docs/image.md).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from minimirror.errors import UsageError

__all__ = [
    "COMPRESSIONS",
    "GZIP_LEVEL",
    "MEDIA_TYPES",
    "ZSTD_LEVEL",
    "Compression",
    "LayerDigest",
    "LayerEntry",
    "LayerError",
    "make_tarinfo",
    "open_layer",
    "scan_tree",
    "sorted_entries",
    "write_layer",
]

Compression = Literal["none", "gzip", "zstd"]
COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip", "zstd")

GZIP_LEVEL = 1
"""gzip's fastest level: a mirror is mostly .deb files, already compressed, which level 6 shrinks by a few per
cent at several times the cost (docs/image.md has the figures)."""
ZSTD_LEVEL = 3
"""zstd's default level: faster than gzip -1 and smaller, on compressed and uncompressed content alike."""

MEDIA_TYPES: dict[Compression, str] = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}

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

    digest: str  # "sha256:<hex>" of the blob
    size: int
    diff_id: str  # "sha256:<hex>" of the tar
    uncompressed_size: int
    compression: Compression = "gzip"

    @property
    def media_type(self) -> str:
        """The OCI layer media type; a blob whose digest is its diff_id is an uncompressed tar."""
        return MEDIA_TYPES["none" if self.digest == self.diff_id else self.compression]


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

    def tell(self) -> int:
        return self.size

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
    entries: Sequence[LayerEntry], out: Path, *, epoch: int, uid: int = 0, gid: int = 0, compression: Compression
) -> LayerDigest:
    """Write ``entries`` (sorted here) as a tar, compressed as ``compression``, to ``out``; its digests and sizes.

    One pass: tar -> sha256 (diff_id) -> compressor -> sha256 (digest) -> file. Memory does not grow with the
    tree: file contents are copied in chunks of ``_CHUNK`` bytes.
    """
    ordered = sorted_entries(entries)
    with out.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with _compressor(compression, compressed) as stream:
            plain = compressed if stream is None else _HashingWriter(stream)  # a plain tar is hashed once
            # mode "w", not the stream mode "w|": the stream buffers by concatenating bytes (three copies of every
            # chunk); "w" writes each header and chunk straight through, and only needs tell() from the writer.
            # Both write the same bytes (TarFile.close pads the archive the same way).
            with tarfile.TarFile(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[arg-type]
                archive.copybufsize = _CHUNK  # type: ignore[attr-defined]
                for entry in ordered:
                    _add(archive, entry, epoch, uid, gid)
    if compression == "none":
        return LayerDigest(plain.digest, plain.size, plain.digest, plain.size, "none")
    return LayerDigest(compressed.digest, compressed.size, plain.digest, plain.size, compression)


@contextlib.contextmanager
def _compressor(compression: Compression, target: _HashingWriter) -> Iterator[IO[bytes] | None]:
    """A writable stream compressing into ``target`` with fixed settings (None: no compression)."""
    if compression == "none":
        yield None
    elif compression == "gzip":
        with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=target, mtime=0) as zipped:
            yield zipped  # type: ignore[misc]
    else:
        zstd = _zstandard()
        params = zstd.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False, write_content_size=False, threads=0)
        with params.stream_writer(target, closefd=False) as writer:
            yield writer


def _zstandard() -> Any:
    """The ``zstandard`` module (a dependency: Python 3.11 has no zstd of its own), imported when first used."""
    import zstandard

    return zstandard


def open_layer(path: Path, compression: Compression) -> IO[bytes]:
    """The uncompressed tar stream of the layer blob at ``path``."""
    if compression == "none":
        return path.open("rb")
    if compression == "gzip":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    reader: IO[bytes] = _zstandard().ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
    return reader
