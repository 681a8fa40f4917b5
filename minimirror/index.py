"""Binary package indices: stream a ``Packages`` file into :class:`~minimirror.package.Package` values,
cache the parsed form by the index's sha256, and look packages up by name and by what they provide.

Formats: the Debian archive's binary index, ``dists/<dist>/<component>/binary-<arch>/Packages{,.gz,.xz}``
(https://wiki.debian.org/DebianRepository/Format), whose stanzas are deb822 (``man 5 deb822``; Debian
Policy §5.1). The hand-written hot loop lives in :mod:`minimirror._stanzas`; its docstring says why.

    iter_packages(source, name=...)            stream: decompress (xz, gzip or plain, by magic) and yield
    load_index_cached(source, sha256, cache)   the whole index, verified, from the parsed-form cache if warm
    PackageIndex.build([(component, packages)])  immutable lookup: by_name, providers, component_of

Every problem with an index's content raises :class:`~minimirror.errors.ArchiveError` (a stanza-level one
is an :class:`IndexFormatError` with ``index``, ``line`` and ``problem``); a sha256 that does not match
raises :class:`~minimirror.errors.IntegrityError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import lzma
import marshal
import os
import queue
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, BinaryIO

from debian.debian_support import version_compare

from minimirror._stanzas import (
    MAX_FIELD_BYTES,
    MAX_STANZA_BYTES,
    IndexFormatError,
    StanzaFields,
    iter_stanza_packages,
    iter_stanza_records,
)
from minimirror.atomic import write_atomically
from minimirror.errors import ArchiveError, IntegrityError
from minimirror.package import Package

__all__ = [
    "CACHE_FORMAT",
    "MAX_FIELD_BYTES",
    "MAX_STANZA_BYTES",
    "IndexFormatError",
    "IndexSource",
    "PackageIndex",
    "Provider",
    "StanzaFields",
    "field_of",
    "iter_decompressed",
    "iter_packages",
    "load_index_cached",
    "parse_provides",
]

IndexSource = str | os.PathLike[str] | bytes
"""A Packages index: a path to a file, or its bytes (compressed or not)."""

Provider = tuple[Package, str | None]
"""A package providing a name, and the version it provides (``None`` for an unversioned Provides)."""

CACHE_FORMAT = 3
"""Bumped whenever the cache layout or what the parser extracts changes; other versions are rebuilt."""

_BLOCK_BYTES = 16 << 20  # decompressed bytes handed to the parser at a time
_INPUT_BYTES = 1 << 20  # compressed bytes fed to the decompressor at a time
_READ_AHEAD = 3  # decompressed blocks the decompressing thread may run ahead (bounds memory)
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


# --- streaming -------------------------------------------------------------------------------------------


def iter_records(source: IndexSource, *, name: str | None = None) -> Iterator[_Record]:
    """Like :func:`iter_packages`, as the parser's records: what the cache and the index keep."""
    index = name if name is not None else _default_name(source)
    with _open(source) as stream:
        yield from iter_stanza_records(_decompressed_blocks(stream, index), index)


def iter_packages(source: IndexSource, *, name: str | None = None) -> Iterator[Package]:
    """The packages of one ``Packages`` index, in file order, decompressed and parsed as they are read.

    ``name`` (the index's URL or path) is what errors name; it defaults to the path. Memory stays bounded
    by what the caller keeps plus a few blocks of a few MiB. xz and gzip decompression run in a helper
    thread (both release the GIL), overlapping the parse.
    """
    index = name if name is not None else _default_name(source)
    with _open(source) as stream:
        yield from iter_stanza_packages(_decompressed_blocks(stream, index), index)


def iter_decompressed(source: IndexSource, *, name: str | None = None) -> Iterator[bytes]:
    """The decompressed bytes of an index (xz, gzip or plain, told by magic bytes), in blocks; a corrupt
    stream is an :class:`~minimirror.errors.ArchiveError` naming ``name``. Used for ``Sources`` indices."""
    index = name if name is not None else _default_name(source)
    with _open(source) as stream:
        yield from _decompressed_blocks(stream, index)


def _default_name(source: IndexSource) -> str:
    return "<bytes>" if isinstance(source, bytes) else os.fspath(source)


def _open(source: IndexSource) -> BinaryIO:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return Path(source).open("rb")


def _decompressed_blocks(stream: BinaryIO, index: str) -> Iterator[bytes]:
    """Blocks of decompressed bytes; the format is told by the magic bytes, not by the file name."""
    head = stream.read(len(_XZ_MAGIC))
    stream.seek(0)
    if head.startswith(_XZ_MAGIC):
        xz = shutil.which("xz")
        if xz is not None:
            yield from _xz_process_blocks(xz, stream, index)
        else:
            yield from _read_ahead(_xz_blocks(stream), index, "xz")
    elif head.startswith(_GZIP_MAGIC):
        yield from _read_ahead(_gzip_blocks(stream), index, "gzip")
    else:
        yield from iter(functools.partial(stream.read, _BLOCK_BYTES), b"")


def _xz_process_blocks(xz: str, stream: BinaryIO, index: str) -> Iterator[bytes]:
    """Decompress with the ``xz`` program (xz-utils, on every Debian system) in a child process.

    Why not the lzma module alone: in a thread it holds the GIL while it fills each output buffer, so it barely
    overlaps the parser; a child process decodes on the other core, and a cold load costs about the larger of
    the two instead of their sum. The child reads the compressed bytes from a feeding thread (pipe writes release
    the GIL) and is always reaped; a non-zero exit is a corrupt index, named.
    """
    child = subprocess.Popen(
        [xz, "--decompress", "--stdout", "--quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    feeder = threading.Thread(target=_feed, args=(stream, child.stdin), daemon=True)
    feeder.start()
    try:
        yield from _read_ahead(_pipe_blocks(child.stdout), index, "xz")
        feeder.join()
        error = child.stderr.read().decode(errors="replace").strip()
        if child.wait() != 0:
            raise ArchiveError(
                f"{index}: corrupt or truncated xz data ({error or 'xz failed'}); download the index again"
            )
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        feeder.join(timeout=5)
        for pipe in (child.stdout, child.stderr):
            pipe.close()


_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, Linux; Python 3.11's fcntl module does not name it


def _pipe_blocks(pipe: IO[bytes]) -> Iterator[bytes]:
    """What the child has written so far, a big pipe at a time: few GIL round trips for the reading thread."""
    fd = pipe.fileno()
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    while block := os.read(fd, _PIPE_BYTES):
        yield block


def _feed(stream: BinaryIO, sink: IO[bytes]) -> None:
    try:
        for piece in iter(functools.partial(stream.read, _INPUT_BYTES), b""):
            sink.write(piece)
    except (BrokenPipeError, ValueError):
        pass  # the consumer stopped early (an error in the index, or a killed child): nothing more to feed
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


# The decompressors are driven directly, with big input and output pieces, rather than through LZMAFile or
# GzipFile: those feed 8 KiB at a time, and a thread that gives up the GIL for each small piece waits up to
# the 5 ms switch interval to get it back, which serialises it behind the parser. Both formats may hold
# several concatenated streams (members); ``max_length`` bounds each output piece.


def _xz_blocks(stream: BinaryIO) -> Iterator[bytes]:
    decompressor = lzma.LZMADecompressor()
    while True:
        data = b""
        if decompressor.eof:
            data = decompressor.unused_data or stream.read(_INPUT_BYTES)
            if not data:
                return
            decompressor = lzma.LZMADecompressor()
        elif decompressor.needs_input:
            data = stream.read(_INPUT_BYTES)
            if not data:
                raise EOFError("the xz stream ends before its end marker")
        if out := decompressor.decompress(data, _BLOCK_BYTES):
            yield out


def _gzip_blocks(stream: BinaryIO) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=31)
    while True:
        data = decompressor.unconsumed_tail
        if decompressor.eof:
            data = decompressor.unused_data or stream.read(_INPUT_BYTES)
            if not data:
                return
            decompressor = zlib.decompressobj(wbits=31)
        elif not data:
            data = stream.read(_INPUT_BYTES)
            if not data:
                raise EOFError("the gzip stream ends before its end marker")
        if out := decompressor.decompress(data, _BLOCK_BYTES):
            yield out


def _read_ahead(source: Iterator[bytes], index: str, kind: str) -> Iterator[bytes]:
    """Decompress in a daemon thread into a small bounded queue; stop it when the consumer stops."""
    blocks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()
    worker = threading.Thread(target=_decompress_into, args=(source, blocks, stop), daemon=True)
    worker.start()
    try:
        while (item := blocks.get()) != b"":
            if isinstance(item, _DECOMPRESSION_ERRORS):
                raise ArchiveError(
                    f"{index}: corrupt or truncated {kind} data ({item}); download the index again"
                ) from item
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            _drain(blocks)
            worker.join(0.05)


def _decompress_into(
    source: Iterator[bytes], blocks: queue.Queue[bytes | BaseException], stop: threading.Event
) -> None:
    """The decompressing thread: puts blocks, then b"" at the end, or the exception that stopped it."""
    item: bytes | BaseException = b""
    try:
        for block in source:
            if not _put(blocks, block, stop):
                return
    except BaseException as exc:  # handed to the consumer, which converts or re-raises it
        item = exc
    _put(blocks, item, stop)


def _put(blocks: queue.Queue[bytes | BaseException], item: bytes | BaseException, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            blocks.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _drain(blocks: queue.Queue[bytes | BaseException]) -> None:
    try:
        while True:
            blocks.get_nowait()
    except queue.Empty:
        return


# --- the parsed-form cache -------------------------------------------------------------------------------

# Header: magic, format version, sha256 of the index (raw 32 bytes), payload length, CRC-32 of the payload.
# The payload is marshal (the fastest stdlib serializer for tuples of str/bytes/int) of a tuple of
# (name, version, architecture, line, raw stanza) records. marshal is not safe against crafted input, so
# the CRC is checked before it is loaded: a truncated or damaged file is rebuilt, never loaded.
_MAGIC = b"MMPKGIX\x00"
_HEADER = struct.Struct("<8sH32sQI")
_Record = tuple[str, str, str, int, bytes]


def load_index_cached(
    source: IndexSource, sha256: str, cache_dir: str | os.PathLike[str], *, name: str | None = None
) -> list[Package]:
    """All packages of an index whose sha256 is ``sha256`` (of the file as given, compressed or not).

    Warm: read from ``cache_dir/<sha256>.v<CACHE_FORMAT>.packages`` without parsing the text again.
    Cold (no cache, or a cache file that fails validation): hash ``source``, refuse it with
    :class:`IntegrityError` unless it matches, parse it, and write the cache atomically.
    """
    part = load_index_part(source, sha256, cache_dir, component="", name=name)
    return [_materialize(entry, part.name) for entry in part.entries]


def load_index_part(
    source: IndexSource,
    sha256: str,
    cache_dir: str | os.PathLike[str],
    *,
    component: str,
    name: str | None = None,
) -> IndexPart:
    """One index as a :class:`PackageIndex` part, from the parsed-form cache when warm (see
    :func:`load_index_cached`). Warm, no :class:`Package` is made here: the index makes them on demand."""
    index = name if name is not None else _default_name(source)
    path = Path(cache_dir) / f"{sha256}.v{CACHE_FORMAT}.packages"
    cached = _read_cache(path, sha256)
    if cached is not None:
        return IndexPart(component, index, *cached)
    records = _parse_verified(source, sha256, index)
    provides = provides_table(records)
    names = name_table(records)
    _write_cache(path, sha256, records, provides, names)
    return IndexPart(component, index, records, provides, names)


def _parse_verified(source: IndexSource, sha256: str, index: str) -> tuple[_Record, ...]:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise IntegrityError(f"{index}: sha256 is {actual}, expected {sha256}; download the index again")
    return tuple(iter_records(data, name=index))


def _write_cache(
    path: Path,
    sha256: str,
    records: tuple[_Record, ...],
    provides: Mapping[int, Sequence[tuple[str, str | None]]],
    names: Mapping[str, Sequence[int]],
) -> None:
    payload = marshal.dumps((records, dict(sorted(provides.items())), dict(names)))
    header = _HEADER.pack(_MAGIC, CACHE_FORMAT, bytes.fromhex(sha256), len(payload), zlib.crc32(payload))
    # Not durable: this is derived data, and a file torn by a crash fails its CRC and is rebuilt; syncing 50 MB
    # would cost a cold run a fifth of its time.
    write_atomically(path, header + payload)


_Cached = tuple[Sequence[_Record], dict[int, tuple[tuple[str, str | None], ...]], dict[str, list[int]]]


def _read_cache(path: Path, sha256: str) -> _Cached | None:
    """The records, Provides table and name table of a valid cache file for ``sha256``; ``None`` when absent,
    stale or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, version, digest, length, crc = _HEADER.unpack_from(data)
    payload = memoryview(data)[_HEADER.size :]
    if (magic, version, digest.hex(), length) != (_MAGIC, CACHE_FORMAT, sha256.lower(), len(payload)):
        return None
    if zlib.crc32(payload) != crc:
        return None
    try:
        loaded = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return loaded if _well_formed(loaded) else None


def _well_formed(loaded: object) -> bool:
    """The shape we write. The CRC already vouches that the bytes are the ones we wrote, so one record and
    one Provides entry stand for the rest; checking all 63,000 would cost a fifth of a warm load."""
    if not (isinstance(loaded, tuple) and len(loaded) == 3):
        return False
    records, provides, names = loaded
    if not (isinstance(records, tuple) and isinstance(provides, dict) and isinstance(names, dict)):
        return False
    a_name = next(iter(names.items()), None)
    if a_name is not None and not (type(a_name[0]) is str and type(a_name[1]) is list):
        return False
    sample = records[:1]
    shaped = all(
        type(r) is tuple and len(r) == 5 and type(r[0]) is str and type(r[1]) is str and type(r[2]) is str
        and type(r[3]) is int and type(r[4]) is bytes
        for r in sample
    )  # fmt: skip
    first = next(iter(provides.items()), None)
    return shaped and (
        first is None or (type(first[0]) is int and 0 <= first[0] < len(records) and type(first[1]) is tuple)
    )


# --- lookup ----------------------------------------------------------------------------------------------


def field_of(package: Package, name: str) -> str | None:
    """A field in any letter case, cheaply: from the raw stanza when ``package`` came from this module."""
    fields = package.fields
    if isinstance(fields, StanzaFields):
        return fields.lookup(name)
    return package.field(name)


def parse_provides(value: str) -> list[tuple[str, str | None]]:
    """``Provides: a, b (= 1.0)`` as ``[("a", None), ("b", "1.0")]``; only ``=`` is allowed by Policy §7.5."""
    provided: list[tuple[str, str | None]] = []
    for item in value.replace("\n", " ").split(","):
        text = item.strip()
        if not text:
            continue
        name, _, rest = text.partition("(")
        version = rest.rstrip(") ").removeprefix("=").strip() if rest else None
        provided.append((name.strip().split(":", 1)[0], version or None))
    return provided


def _version_order(left: Package, right: Package) -> int:
    """Newest version first (Debian order), then architecture, then the version text: a total order."""
    try:
        by_version = version_compare(right.version, left.version)
    except ValueError as exc:
        where = ", ".join(_place(p, "") for p in (left, right))
        raise ArchiveError(f"invalid version in {left} or {right} ({where}): {exc}") from exc
    if by_version:
        return int(by_version)
    return (left.architecture > right.architecture) - (left.architecture < right.architecture) or (
        left.version > right.version
    ) - (left.version < right.version)


_ORDER_KEY = functools.cmp_to_key(_version_order)


_Entry = Package | tuple[str, str, str, int, bytes]
"""A package, or the cached record it is made from on demand: (name, version, architecture, line, raw)."""
_Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class IndexPart:
    """One index's entries in file order, and the Provides values of those that have one."""

    component: str
    name: str
    entries: Sequence[_Entry]
    provides: Mapping[int, Sequence[tuple[str, str | None]]] | None = None
    """Entry number -> what it provides (name, version or None); None to read it from the entries."""
    names: Mapping[str, Sequence[int]] | None = None
    """Package name -> its entry numbers, in file order; None to read it from the entries."""


class PackageIndex:
    """An immutable set of packages from one or more indices, with the component each came from.

    Lazy: construction reads each part's name table (kept in the parsed cache, so a warm run does not walk the
    63,000 entries) and checks only the packages that appear more than once; a :class:`Package` is made the
    first time its name is looked up, so a resolution that touches a few hundred names never builds the rest.
    Iteration is in (name, newest version first, architecture) order; :meth:`by_name` and :meth:`providers`
    answer in that order too.
    """

    __slots__ = ("_first", "_parts", "_provided", "_sorted")

    def __init__(self, parts: Sequence[IndexPart]) -> None:
        self._parts = tuple(
            part if part.names is not None else replace(part, names=name_table(part.entries)) for part in parts
        )
        # key -> part number << 32 | entry number of the first time the key is met, filled as names are looked
        # up: ordered like the indices, so it doubles as the package's position (apt's cache ID order).
        self._first: dict[_Key, int] = {}
        self._sorted: dict[str, tuple[Package, ...]] = {}
        self._provided: dict[str, list[tuple[_Key, str | None]]] | None = None
        self._check_repeated_names()

    def _codes(self, name: str) -> list[int]:
        codes: list[int] = []
        for part_number, part in enumerate(self._parts):
            numbers = part.names.get(name) if part.names is not None else None
            if numbers:
                base = part_number << 32
                codes.extend(base | number for number in numbers)
        return codes

    def _entry(self, code: int) -> tuple[_Entry, IndexPart]:
        part = self._parts[code >> 32]
        return part.entries[code & 0xFFFFFFFF], part

    def _check_repeated_names(self) -> None:
        """The same (name, version, arch) twice must be the same file: checked eagerly, but only for names
        that occur more than once (several versions, or an ``all`` package in each ``binary-<arch>``)."""
        counts: dict[str, int] = {}
        for part in self._parts:
            assert part.names is not None
            for name, numbers in part.names.items():
                counts[name] = counts.get(name, 0) + len(numbers)
        for name in sorted(name for name, count in counts.items() if count > 1):
            seen: dict[_Key, int] = {}
            for code in self._codes(name):
                entry, _ = self._entry(code)
                first = seen.setdefault(_entry_key(entry), code)
                if first != code:
                    self._check_same(first, code)

    @classmethod
    def build(cls, parts: Iterable[tuple[str, Iterable[Package]]]) -> PackageIndex:
        """From ``(component, packages)`` pairs, e.g. one per ``<component>/binary-<arch>/Packages``.

        The same (name, version, architecture) met twice (an ``all`` package in each ``binary-<arch>``)
        is kept once, with the first component; met twice with different SHA256 it is an ArchiveError
        naming both places.
        """
        return cls([IndexPart(component, "", tuple(packages)) for component, packages in parts])

    def by_name(self, name: str) -> tuple[Package, ...]:
        """Every package called ``name``, newest version first."""
        found = self._sorted.get(name)
        if found is None:
            packages = []
            for code in self._codes(name):
                entry, part = self._entry(code)
                if self._first.setdefault(_entry_key(entry), code) == code:
                    packages.append(_materialize(entry, part.name))
            found = tuple(packages) if len(packages) < 2 else tuple(sorted(packages, key=_ORDER_KEY))
            self._sorted[name] = found
        return found

    def providers(self, name: str) -> tuple[Provider, ...]:
        """Every package whose Provides names ``name``, with the provided version (None if unversioned),
        in the order of :meth:`by_name` of the providing packages' names."""
        provided = self._provided_table().get(name, ())
        found: list[Provider] = []
        for key, version in provided:
            package = self.get(*key)
            if package is not None:
                found.append((package, version))
        order = {p.key: (p.name, n) for p, _ in found for n, q in enumerate(self.by_name(p.name)) if q.key == p.key}
        return tuple(sorted(dict.fromkeys(found), key=lambda item: order[item[0].key]))

    def _provided_table(self) -> dict[str, list[tuple[_Key, str | None]]]:
        """Provided name -> (key, version), once, from each part's Provides table; the same key again in a
        later part is the same stanza (checked at construction) and is skipped."""
        if self._provided is None:
            table: dict[str, list[tuple[_Key, str | None]]] = {}
            seen: set[_Key] = set()
            for part in self._parts:
                provides = part.provides if part.provides is not None else provides_table(part.entries)
                for number, items in provides.items():
                    key = _entry_key(part.entries[number])
                    if key in seen:
                        continue
                    seen.add(key)
                    for provided, version in items:
                        table.setdefault(provided, []).append((key, version))
            self._provided = table
        return self._provided

    def component_of(self, package: Package) -> str:
        """The component (``main``, ...) the package was read from; KeyError if it is not in the index."""
        return self._parts[self._code(package) >> 32].component

    def position(self, package: Package) -> int:
        """Where the package first appeared in the indices, in the order they were given: apt's cache assigns
        IDs in that order, and the resolver breaks ties between providers the way apt's IDs do."""
        return self._code(package)

    def _code(self, package: Package) -> int:
        code = self._first.get(package.key)
        if code is None:
            self.by_name(package.name)
            code = self._first[package.key]  # KeyError: not in this index
        return code

    def get(self, name: str, version: str, architecture: str) -> Package | None:
        return next((p for p in self.by_name(name) if p.key == (name, version, architecture)), None)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted({name for part in self._parts if part.names is not None for name in part.names}))

    def __iter__(self) -> Iterator[Package]:
        for name in self.names():
            yield from self.by_name(name)

    def __len__(self) -> int:
        return len({_entry_key(entry) for part in self._parts for entry in part.entries})

    def __contains__(self, package: object) -> bool:
        return isinstance(package, Package) and any(p.key == package.key for p in self.by_name(package.name))

    def __repr__(self) -> str:
        return f"PackageIndex({len(self._parts)} indices)"

    def _check_same(self, first: int, second: int) -> None:
        (one, one_part), (two, two_part) = self._entry(first), self._entry(second)
        _check_same(
            _materialize(one, one_part.name), one_part.component, _materialize(two, two_part.name), two_part.component
        )


def name_table(entries: Sequence[_Entry]) -> dict[str, list[int]]:
    """Package name -> entry numbers in file order: what a part's lookups go through."""
    table: dict[str, list[int]] = {}
    for number, entry in enumerate(entries):
        table.setdefault(entry[0] if type(entry) is tuple else entry.name, []).append(number)  # type: ignore[union-attr]
    return table


def _entry_key(entry: _Entry) -> _Key:
    if isinstance(entry, Package):
        return entry.key
    return (entry[0], entry[1], entry[2])


def _materialize(entry: _Entry, index: str) -> Package:
    if isinstance(entry, Package):
        return entry
    name, version, arch, line, raw = entry
    return Package(name, version, arch, StanzaFields(raw, index, line))


def provides_table(entries: Sequence[_Entry]) -> dict[int, tuple[tuple[str, str | None], ...]]:
    """Entry number -> what it provides, for the entries with a Provides field (a quick byte search first)."""
    table: dict[int, tuple[tuple[str, str | None], ...]] = {}
    for number, entry in enumerate(entries):
        raw = entry.fields.raw if isinstance(entry, Package) and isinstance(entry.fields, StanzaFields) else None
        if isinstance(entry, Package) and raw is None:
            value = entry.field("Provides")
        # A cheap prefilter, case-insensitive as deb822 field names are; a "provides:" inside another field's
        # text only costs a lookup that finds nothing. (A regex with re.I|re.M per stanza was four times slower.)
        elif b"provides:" in (raw if raw is not None else entry[4]).lower():  # type: ignore[index]
            value = _materialize(entry, "").field("Provides")
        else:
            continue
        if value:
            table[number] = tuple(parse_provides(value))
    return table


def _check_same(first: Package, first_component: str, second: Package, second_component: str) -> None:
    sums = field_of(first, "SHA256"), field_of(second, "SHA256")
    if sums[0] != sums[1]:
        raise ArchiveError(
            f"{second} appears twice with different SHA256: {sums[0]} in {_place(first, first_component)} "
            f"and {sums[1]} in {_place(second, second_component)}; the archive is inconsistent"
        )


def _place(package: Package, component: str) -> str:
    fields = package.fields
    if isinstance(fields, StanzaFields):
        return f"{fields.index}:{fields.line} ({component})"
    return component
