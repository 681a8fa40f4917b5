"""The control stanza and chosen payload files of a binary package, read straight out of the ``.deb`` (deb(5),
deb-control(5)).

A ``.deb`` is an ``ar`` archive whose members are ``debian-binary`` (``2.0``), ``control.tar[.gz|.xz|.bz2|.zst]``
and ``data.tar.*``; the control tarball holds ``./control``, one deb822 stanza (Debian Policy §5.3). This module
reads only the ``ar`` headers and the control member (never the payload), checks it, and returns the fields in
file order with their raw multi-line values, which is what a ``Packages`` index repeats (as
``dpkg-scanpackages`` does). zstd members (Ubuntu's default since 21.10) are read with the ``zstandard`` package,
since Python 3.11 has no zstd module.

:func:`read_data_files` streams the ``data.tar.*`` member (gzip, xz, bzip2, zstd through the ``zstandard``
package, or uncompressed) and returns only the files asked for (the changelog audit reads
``usr/share/doc/<package>/changelog.Debian.gz`` this way); nothing is extracted to disk and the payload is never
held in memory whole.

Everything wrong with a package is an :class:`~minimirror.errors.IntegrityError` naming the file.
"""

from __future__ import annotations

import bz2
import io
import lzma
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import zstandard

from minimirror.errors import IntegrityError

__all__ = ["ControlStanza", "DataMember", "parse_control", "read_control", "read_data_files", "read_data_members"]

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_MAX_CONTROL = 4 << 20  # a control tarball larger than this is not a package we should trust
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_CONTROL_TAR = 64 << 20  # nor one that unpacks to more (md5sums of 100,000 files take 5 MB)
_FIELD = re.compile(r"([!-9;-~][!-9;-~]*):[ \t]*(.*)\Z")  # field names: printable ASCII but ':' (deb822)
_MAX_DATA_FILE = 64 << 20  # a wanted payload file (a changelog) larger than this is refused, not read


@dataclass(frozen=True, slots=True)
class ControlStanza:
    """A control file's fields in file order; each value as written (continuation lines kept)."""

    fields: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The value of ``name`` (case-insensitive), or ``None``."""
        folded = name.lower()
        for key, value in self.fields:  # a loop, not next() of a generator: publish asks 60,000 times at 20,000
            if key.lower() == folded:
                return value
        return None

    @property
    def identity(self) -> tuple[str, str, str]:
        """``(Package, Version, Architecture)``; empty strings for missing fields."""
        return (self.get("Package") or "", self.get("Version") or "", self.get("Architecture") or "")


def read_control(path: Path | str, *, name: str | None = None, head: bytes | None = None) -> ControlStanza:
    """Read and parse ``./control`` of the ``.deb`` at ``path`` (``name`` is used in errors).

    ``head``: the file's first bytes when the caller has read them already (publish hashes every file): a
    control member that lies within them is not read from the file again."""
    label = name or str(path)
    try:
        member, data = _control_member(io.BytesIO(head), label) if head is not None else ("", b"")
    except _Truncated:
        member = ""
    if not member:
        try:
            with open(path, "rb") as deb:  # noqa: PTH123 - a str from publish (no Path per .deb)
                member, data = _control_member(deb, label)
        except OSError as exc:
            raise IntegrityError(f"{label}: cannot read the package: {exc.strerror or exc}") from exc
    text = _control_text(member, data, label)
    return parse_control(text, name=label)


def parse_control(text: bytes, *, name: str) -> ControlStanza:
    """Parse one deb822 stanza (the control file): UTF-8, no duplicate fields, Package/Version/Architecture."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"{name}: the control file is not UTF-8 (byte {exc.start})") from exc
    fields = tuple(_fields(decoded.replace("\r\n", "\n"), name))
    folded = {key.lower(): value for key, value in fields}
    if len(folded) != len(fields):
        seen: set[str] = set()
        for key, _ in fields:
            if key.lower() in seen:
                raise IntegrityError(f"{name}: the control file has the field {key!r} twice")
            seen.add(key.lower())
    for required in ("Package", "Version", "Architecture"):
        value = folded.get(required.lower())
        if not value or any(ch.isspace() for ch in value):
            raise IntegrityError(f"{name}: the control file has no valid {required} field")
    return ControlStanza(fields)


def _fields(text: str, name: str) -> Iterator[tuple[str, str]]:
    key: str | None = None
    value: list[str] = []
    for number, line in enumerate(text.rstrip("\n").split("\n"), start=1):
        if line.startswith((" ", "\t")):
            if key is None:
                raise IntegrityError(f"{name}: control line {number}: a continuation line opens the stanza")
            value.append(line)
            continue
        if not line.strip():
            raise IntegrityError(f"{name}: control line {number}: a blank line inside the control stanza")
        match = _FIELD.match(line)
        if match is None:
            raise IntegrityError(f"{name}: control line {number}: not a 'Field: value' line: {line[:60]!r}")
        if key is not None:
            yield key, "\n".join(value)
        key, value = match.group(1), [match.group(2).rstrip()]
    if key is not None:
        yield key, "\n".join(value)


def _member(deb: BinaryIO, prefix: str, name: str, *, within: int) -> tuple[str, int]:
    """Position ``deb`` at the start of its first ``ar`` member named ``prefix*`` among the first ``within``
    members, and return the member's name and size (deb(5))."""
    if deb.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise IntegrityError(f"{name}: not a Debian package (no ar archive header)")
    for _ in range(within):
        header = deb.read(_AR_HEADER)
        if len(header) < _AR_HEADER or header[58:60] != b"`\n":
            break
        member = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        size = _ar_size(header, name)
        if member.startswith(prefix):
            return member, size
        deb.seek(size + (size & 1), io.SEEK_CUR)
    if isinstance(deb, io.BytesIO):
        raise _Truncated
    raise IntegrityError(f"{name}: not a Debian package (no {prefix} member)")


def _control_member(deb: BinaryIO, name: str) -> tuple[str, bytes]:
    """Find ``control.tar*`` among the first members of the ``ar`` archive and return its name and bytes."""
    member, size = _member(deb, "control.tar", name, within=3)  # debian-binary, then control.tar*: nothing else
    if size > _MAX_CONTROL:
        raise IntegrityError(f"{name}: the control member is implausibly large ({size} bytes)")
    data = deb.read(size)
    if len(data) < size and isinstance(deb, io.BytesIO):
        raise _Truncated
    return member, data


class _Truncated(Exception):
    """The first bytes of a file, given as ``head``, end before its control member: read the file instead."""


def _ar_size(header: bytes, name: str) -> int:
    try:
        return int(header[48:58].decode("ascii").strip())
    except ValueError as exc:
        raise IntegrityError(f"{name}: corrupt ar member header") from exc


def _control_text(member: str, data: bytes, name: str) -> bytes:
    try:
        # Decompressed whole (the member is small: _MAX_CONTROL) by the C codecs, then read as a plain tar:
        # tarfile's "r:*" would first try the bytes as an uncompressed tar, then stream them through GzipFile's
        # Python reads, which cost more than the rest of reading a small package.
        tar = _control_tar(member, data)
        found = _plain_ustar_control(tar)
        if found is not None:
            return found
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for entry in archive:
                if entry.isfile() and entry.name in ("./control", "control"):
                    handle = archive.extractfile(entry)
                    if handle is not None:
                        return handle.read()
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
        raise IntegrityError(f"{name}: corrupt {member}: {exc}") from exc
    raise IntegrityError(f"{name}: {member} holds no ./control file")


def _plain_ustar_control(tar: bytes) -> bytes | None:
    """``./control`` from a tar made only of plain ustar headers (what dpkg-deb writes), or ``None`` to let
    tarfile read it. Written by hand for speed: tarfile makes a full TarInfo (twenty fields, in Python) of
    every header, which was two thirds of reading a small package's control file. Only the name, size and type
    of each header are read, after its checksum is checked (POSIX.1-1988 ustar); a long-name, pax or GNU header,
    a size in base-256 or a bad checksum hands the tar to tarfile, which knows them all."""
    offset = 0
    while offset + _BLOCK <= len(tar):
        header = tar[offset : offset + _BLOCK]
        if header == _ZERO_BLOCK:
            return None
        kind = header[156:157]
        if kind not in (b"0", b"\0", b"5") or not _checksum_ok(header) or header[124] & 0x80:
            return None
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        if kind != b"5" and header[:100].rstrip(b"\0") in (b"./control", b"control"):
            return tar[offset + _BLOCK : offset + _BLOCK + size]
        offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
    return None


def _checksum_ok(header: bytes) -> bool:
    """The header's checksum: the sum of its bytes, the checksum field counted as spaces (unsigned)."""
    try:
        recorded = int(header[148:156].rstrip(b"\0 ") or b"-1", 8)
    except ValueError:
        return False
    return recorded == sum(header[:148]) + 8 * 32 + sum(header[156:])


def _control_tar(member: str, data: bytes) -> bytes:
    """The tar inside ``control.tar{,.gz,.xz,.zst}`` (deb(5)); bounded, so a compression bomb cannot fill memory."""
    if member == "control.tar":
        return data
    if member == "control.tar.gz":
        tar, rest = b"", data
        while rest and len(tar) < _MAX_CONTROL_TAR:  # gzip allows members one after the other
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            tar += inflater.decompress(rest, _MAX_CONTROL_TAR - len(tar))
            rest = inflater.unused_data if inflater.eof else b""
    elif member == "control.tar.xz":
        decoder = lzma.LZMADecompressor()
        tar = decoder.decompress(data, _MAX_CONTROL_TAR)
    elif member == "control.tar.zst":  # Ubuntu's default since 21.10
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            tar = reader.read(_MAX_CONTROL_TAR)
    else:
        raise tarfile.TarError(f"unknown compression of {member}")
    if len(tar) >= _MAX_CONTROL_TAR:
        raise tarfile.TarError(f"it unpacks to more than {_MAX_CONTROL_TAR} bytes")
    return tar


# --- the data member ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataMember:
    """A regular file (``data``, ``mode``) or a symbolic link (``linkname``, as written) of a package's payload."""

    path: str  # without the leading "./"
    mode: int
    data: bytes | None = None
    linkname: str | None = None


def read_data_members(path: Path, select: Callable[[str], bool], *, name: str | None = None) -> list[DataMember]:
    """Every regular file and symlink of the ``.deb`` at ``path`` whose path (no leading ``./``) ``select`` accepts,
    in archive order; the data member is streamed, only the selected files are held in memory."""
    label = name or str(path)
    try:
        with path.open("rb") as deb:
            member, size = _member(deb, "data.tar", label, within=8)
            stream = _data_stream(_Bounded(deb, size), member, label)
            return _select(stream, select, f"{label}: {member}")
    except OSError as exc:
        raise IntegrityError(f"{label}: cannot read the package: {exc.strerror or exc}") from exc


def _select(stream: _Stream, select: Callable[[str], bool], name: str) -> list[DataMember]:
    found: list[DataMember] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for entry in tar:
                path = entry.name.removeprefix("./")
                if not select(path) or not (entry.isfile() or entry.issym()):
                    continue
                if entry.issym():
                    found.append(DataMember(path, entry.mode, linkname=entry.linkname))
                    continue
                if entry.size > _MAX_DATA_FILE:
                    raise IntegrityError(f"{name}: {path} is implausibly large ({entry.size} bytes)")
                handle = tar.extractfile(entry)
                found.append(DataMember(path, entry.mode, data=handle.read() if handle is not None else b""))
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError, ValueError) as exc:
        raise IntegrityError(f"{name} is damaged: {exc}") from exc
    return found


def read_data_files(path: Path, wanted: frozenset[str], *, name: str | None = None) -> dict[str, bytes]:
    """The files of ``wanted`` (paths without a leading ``./``, e.g. ``usr/share/doc/hello/changelog.gz``) found
    in the data member of the ``.deb`` at ``path``, by path; absent ones are left out (a symlink is not a file).

    The member is decompressed as a stream. Reading stops once every wanted file was seen, or once files were
    found and the tar has left their folder: dpkg-deb (since 1.18) writes members sorted, so a folder's files are
    contiguous and nothing wanted can follow."""
    label = name or str(path)
    try:
        with path.open("rb") as deb:
            member, size = _member(deb, "data.tar", label, within=8)  # dpkg tolerates a few '_'-prefixed extras
            stream = _data_stream(_Bounded(deb, size), member, label)
            return _pick(stream, wanted, f"{label}: {member}")
    except OSError as exc:
        raise IntegrityError(f"{label}: cannot read the package: {exc.strerror or exc}") from exc


class _Bounded(io.RawIOBase):
    """The next ``size`` bytes of ``raw`` as a stream of their own: one ar member, read without copying it."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # typeshed: Buffer
        count = min(len(buffer), self._left)
        if count <= 0:
            return 0
        data = self._raw.read(count)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


_Stream: TypeAlias = "io.BufferedReader[Any] | lzma.LZMAFile | bz2.BZ2File"


def _data_stream(raw: io.RawIOBase, member: str, name: str) -> _Stream:
    """A stream of the tar inside ``member``, chosen by its name as dpkg-deb chooses (deb(5))."""
    source = io.BufferedReader(raw, buffer_size=1 << 16)
    suffix = member.removeprefix("data.tar")
    if suffix == ".gz":
        return io.BufferedReader(_Inflated(source), buffer_size=1 << 16)
    if suffix == ".xz":
        return lzma.LZMAFile(source)
    if suffix == ".bz2":
        return bz2.BZ2File(source)
    if suffix == ".zst":
        reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        return io.BufferedReader(reader)
    if suffix == "":
        return source
    raise IntegrityError(f"{name}: unknown data member compression {member!r}")


class _Inflated(io.RawIOBase):
    """gzip without ``gzip.GzipFile``'s seek to the end for the trailer: tarfile's stream mode reads once."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            if self._inflate.eof:
                return 0
            chunk = self._inflate.unconsumed_tail or self._source.read(1 << 16)
            if not chunk:
                raise EOFError("the gzip stream ends early")
            self._pending = self._inflate.decompress(chunk, len(buffer))
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _pick(stream: _Stream, wanted: frozenset[str], name: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    folders = {path.rpartition("/")[0] for path in wanted}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for entry in tar:
                path = entry.name.removeprefix("./")
                if found and path.rpartition("/")[0] not in folders:
                    break  # sorted members: the wanted files' folder is behind us
                if path in wanted and entry.isfile():
                    if entry.size > _MAX_DATA_FILE:
                        raise IntegrityError(f"{name}: {path} is implausibly large ({entry.size} bytes)")
                    handle = tar.extractfile(entry)
                    found[path] = handle.read() if handle is not None else b""
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError, ValueError) as exc:
        raise IntegrityError(f"{name} is damaged: {exc}") from exc
    return found
