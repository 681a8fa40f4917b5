"""A binary ``Packages`` index (Debian RepositoryFormat, "Packages Indices"), written one stanza at a time.

Each stanza is made from a package's lock entry and its ``.deb``'s control file (:func:`stanza`), in the order
:func:`sorted_packages` gives, and handed to an :class:`IndexWriter` as soon as it is made: the writer hashes it
(sha256, md5) and gzips it, and keeps nothing else. So a 20,000-package index costs its ``.gz`` in memory
(1.6 MB), not 20,000 control stanzas plus the 7.6 MB text plus its compressions. The uncompressed ``Packages``
is never held whole: the writer of the tree decompresses the ``.gz`` into it (:func:`gunzip_chunks`), and
``Packages.xz`` is made from the same stream (:func:`xz_of_gzip`).

The bytes are those of compressing the whole text at once: deflate (zlib) and LZMA (liblzma) emit a stream that
does not depend on how their input is cut into calls (no flush is asked in between); the publish tests compare
the streamed output with the one-shot one, and the trees a streamed and a one-shot publisher write are identical.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from debian.debian_support import version_compare

from minimirror.lock.lockfile import LockedPackage
from minimirror.upstream.debfile import ControlStanza
from minimirror.upstream.phasing import FIELD as PHASING_FIELD

__all__ = [
    "DebInfo",
    "IndexText",
    "IndexWriter",
    "field_line",
    "gunzip_chunks",
    "gzip_bytes",
    "sorted_packages",
    "stanza",
    "xz_bytes",
    "xz_of_gzip",
]

# dak's field order for Packages (what Debian's own indices show); unknown fields follow in control-file order,
# then Section and Priority, then the archive's fields (as dpkg-scanpackages appends them).
_FIELD_ORDER = (
    *("Package", "Source", "Version", "Installed-Size", "Maintainer", "Architecture", "Essential", "Protected"),
    *("Replaces", "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Enhances", "Conflicts"),
    *("Breaks", "Description", "Homepage", "Built-Using", "Static-Built-Using", "Multi-Arch"),
)
_LAST_FIELDS = ("Section", "Priority")
# Fields the archive, not the .deb, decides: never copied from a control file. Phased-Update-Percentage is one
# (Launchpad writes it into the index; the lock keeps the index's value and stanza writes that one back).
_ARCHIVE_FIELDS = frozenset(
    f.lower() for f in ("Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", PHASING_FIELD)
)
_RANK = {
    **{name.lower(): len(_FIELD_ORDER) + 1 + i for i, name in enumerate(_LAST_FIELDS)},
    **{name.lower(): i for i, name in enumerate(_FIELD_ORDER)},
}
"""A field's place in a stanza; a field in neither list goes between the two (``len(_FIELD_ORDER)``)."""
_BATCH = 1 << 18  # stanzas are gathered up to this many bytes before they are hashed and compressed
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DebInfo:
    """What a Packages stanza needs from one verified ``.deb``."""

    sha256: str
    md5: str
    size: int
    control: ControlStanza


@dataclass(frozen=True, slots=True)
class IndexText:
    """A finished index: the uncompressed text's digests and size, and its gzip and xz compressions."""

    sha256: str
    md5: str
    size: int
    gz: bytes
    xz: bytes


def sorted_packages(packages: Iterable[LockedPackage]) -> list[LockedPackage]:
    """By name, Debian version order, architecture (ties, such as ``1.0``/``1.00``, by sha256)."""

    def key(package: LockedPackage) -> tuple[str, _Version, str, str]:
        return (package.name, _Version(package.version), package.architecture, package.sha256)

    return sorted(packages, key=key)


class _Version:
    """A sort key in Debian version order."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Version) -> bool:
        return version_compare(self.text, other.text) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Version) and version_compare(self.text, other.text) == 0

    def __hash__(self) -> int:  # pragma: no cover - sort keys are never hashed
        return hash(self.text)


def stanza(package: LockedPackage, deb: DebInfo) -> bytes:
    """One Packages stanza: the control fields in Debian's order, then the archive's fields (the locked
    Phased-Update-Percentage, Filename, Size, MD5sum, SHA256)."""
    fields = [(k, v) for k, v in deb.control.fields if k.lower() not in _ARCHIVE_FIELDS]

    def order(item: tuple[int, tuple[str, str]]) -> tuple[int, int]:
        position, (name, _) = item
        return (_RANK.get(name.lower(), len(_FIELD_ORDER)), position)

    ordered = [pair for _, pair in sorted(enumerate(fields), key=order)]
    if package.phased_update_percentage is not None:  # kept so that apt on each node phases the update itself
        ordered.append((PHASING_FIELD, str(package.phased_update_percentage)))
    ordered += [("Filename", package.filename), ("Size", str(deb.size)), ("MD5sum", deb.md5), ("SHA256", deb.sha256)]
    return "".join(field_line(name, value) for name, value in ordered).encode("utf-8")


def field_line(name: str, value: str) -> str:
    """``Name: value`` and its continuation lines, as deb822 writes a field."""
    first, _, rest = value.partition("\n")
    head = f"{name}: {first}" if first else f"{name}:"
    return f"{head}\n{rest}\n" if rest else f"{head}\n"


class IndexWriter:
    """Takes the stanzas of one index in order; :meth:`finish` gives its digests and compressions.

    The text is the stanzas separated by one empty line (each stanza ends with its newline)."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0
        self._gz = io.BytesIO()
        self._gzip = _gzip_writer(self._gz)
        self._pending: list[bytes] = []
        self._pending_size = 0

    def add(self, text: bytes) -> None:
        if self._size or self._pending:
            self._pending.append(b"\n")
        self._pending.append(text)
        self._pending_size += len(text) + 1
        if self._pending_size >= _BATCH:
            self._flush()

    def finish(self) -> IndexText:
        self._flush()
        self._gzip.close()
        gz = self._gz.getvalue()
        return IndexText(self._sha256.hexdigest(), self._md5.hexdigest(), self._size, gz, xz_of_gzip(gz))

    def _flush(self) -> None:
        # One hash update and one compressor call per batch, not per stanza (20,000 of each at 20,000 packages).
        batch = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._sha256.update(batch)
        self._md5.update(batch)
        self._gzip.write(batch)
        self._size += len(batch)


def _gzip_writer(buffer: io.BytesIO) -> gzip.GzipFile:
    """gzip without a file name and with mtime 0 (RFC 1952), level 9: the same bytes on every machine."""
    return gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9)


def gzip_bytes(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with _gzip_writer(buffer) as handle:
        handle.write(data)
    return buffer.getvalue()


def _xz_compressor() -> lzma.LZMACompressor:
    # Preset 1, not xz's default 6: on 8 MB of Debian's own Packages text, 0.5 s instead of 3.6 s for a file 23 %
    # larger (1.88 MB, not 1.53), and a whole suite's index is 50 MB of text. A client fetches it once per
    # `apt-get update`, from a mirror on its own network (benchmarks/README.md, bench_publish.py).
    return lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=1)


def xz_bytes(data: bytes) -> bytes:
    compressor = _xz_compressor()
    return compressor.compress(data) + compressor.flush()


def xz_of_gzip(gz: bytes) -> bytes:
    """The xz compression of the text ``gz`` holds, made chunk by chunk (never the whole text in memory)."""
    compressor = _xz_compressor()
    parts = [compressor.compress(chunk) for chunk in gunzip_chunks(gz)]
    parts.append(compressor.flush())
    return b"".join(parts)


def gunzip_chunks(gz: bytes) -> Iterator[bytes]:
    """The text a gzip member of ours holds, at most about a MiB at a time."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending = gz
    while pending:
        chunk = inflater.decompress(pending, _CHUNK)
        pending = inflater.unconsumed_tail
        if chunk:
            yield chunk
    if tail := inflater.flush():
        yield tail
