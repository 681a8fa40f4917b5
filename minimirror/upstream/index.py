"""Binary package indices: stream a ``Packages`` file into :class:`~minimirror.package.Package` values, and
look packages up by name and by what they provide (the parsed form is cached by :mod:`minimirror.upstream.indexcache`).

Formats: the Debian archive's binary index, ``dists/<dist>/<component>/binary-<arch>/Packages{,.gz,.xz}``
(https://wiki.debian.org/DebianRepository/Format), whose stanzas are deb822 (``man 5 deb822``; Debian
Policy §5.1). The hand-written hot loop lives in :mod:`minimirror.upstream._stanzas`; its docstring says why.

    iter_packages(source, name=...)            stream: decompress (xz, gzip or plain, by magic) and yield
    PackageIndex([IndexPart(...)])             immutable lookup: by_name, providers, component_of, first_mention
    PackageIndex.build([(component, packages)])  the same from packages in memory

Every problem with an index's content raises :class:`~minimirror.errors.ArchiveError` (a stanza-level one
is an :class:`IndexFormatError` with ``index``, ``line`` and ``problem``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import lzma
import os
import queue
import shutil
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, BinaryIO

from debian.debian_support import version_compare

from minimirror.errors import ArchiveError
from minimirror.package import DEFAULT_PIN_PRIORITY, Package
from minimirror.upstream._stanzas import (
    MAX_FIELD_BYTES,
    MAX_STANZA_BYTES,
    IndexFormatError,
    Record,
    StanzaFields,
    iter_stanza_packages,
    iter_stanza_records,
)
from minimirror.upstream.mentions import FirstMention, mention_in, stanzas_naming

__all__ = [
    "MAX_FIELD_BYTES",
    "MAX_STANZA_BYTES",
    "FirstMention",
    "IndexFormatError",
    "IndexPart",
    "IndexSource",
    "Numbers",
    "PackageIndex",
    "Provider",
    "StanzaFields",
    "default_name",
    "field_of",
    "iter_decompressed",
    "iter_packages",
    "iter_records",
    "materialize",
    "name_table",
    "parse_provides",
    "provided_table",
]

IndexSource = str | os.PathLike[str] | bytes
"""A Packages index: a path to a file, or its bytes (compressed or not)."""

Provider = tuple[Package, str | None]
"""A package providing a name, and the version it provides (``None`` for an unversioned Provides)."""

_BLOCK_BYTES = 16 << 20  # decompressed bytes handed to the parser at a time
_INPUT_BYTES = 1 << 20  # compressed bytes fed to the decompressor at a time
_READ_AHEAD = 3  # decompressed blocks the decompressing thread may run ahead (bounds memory)
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


# --- streaming -------------------------------------------------------------------------------------------


def iter_records(source: IndexSource, *, name: str | None = None) -> Iterator[Record]:
    """Like :func:`iter_packages`, as the parser's records: what the cache and the index keep."""
    index = name if name is not None else default_name(source)
    with _open(source) as stream:
        yield from iter_stanza_records(_decompressed_blocks(stream, index), index)


def iter_packages(source: IndexSource, *, name: str | None = None) -> Iterator[Package]:
    """The packages of one ``Packages`` index, in file order, decompressed and parsed as they are read.

    ``name`` (the index's URL or path) is what errors name; it defaults to the path. Memory stays bounded
    by what the caller keeps plus a few blocks of a few MiB. xz and gzip decompression run in a helper
    thread (both release the GIL), overlapping the parse.
    """
    index = name if name is not None else default_name(source)
    with _open(source) as stream:
        yield from iter_stanza_packages(_decompressed_blocks(stream, index), index)


def iter_decompressed(source: IndexSource, *, name: str | None = None) -> Iterator[bytes]:
    """The decompressed bytes of an index (xz, gzip or plain, told by magic bytes), in blocks; a corrupt
    stream is an :class:`~minimirror.errors.ArchiveError` naming ``name``. Used for ``Sources`` indices."""
    index = name if name is not None else default_name(source)
    with _open(source) as stream:
        yield from _decompressed_blocks(stream, index)


def default_name(source: IndexSource) -> str:
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


_Entry = Package | Record
"""A package, or the record it is made from on demand: (name, version, architecture, line, raw stanza)."""
_Key = tuple[str, str, str]

Numbers = int | tuple[int, ...]
"""Entry numbers in file order: a bare int for the common single one (a third of the cost to load)."""


@dataclass(frozen=True, slots=True)
class IndexPart:
    """One index's entries in file order, with its lookup tables when they were kept (the parsed cache)."""

    component: str
    name: str
    entries: Sequence[_Entry]
    names: Mapping[str, Numbers] | None = None
    """Package name -> its entry numbers; None to compute it from the entries."""
    provided: Mapping[str, Numbers] | None = None
    """Name in a Provides field -> the entry numbers that provide it; None to compute it from the entries."""
    companion: str | None = None
    """The companion suite (dist) the index belongs to; None for the release suite."""
    origin: str | None = None
    """The source (``prefix/name``) the index belongs to, when several sources are resolved together."""
    priority: int = DEFAULT_PIN_PRIORITY
    """apt's Pin-Priority of every package of this index (apt_preferences(5)): the highest wins over a newer
    version; a negative one is never a candidate."""


class PackageIndex:
    """An immutable set of packages from one or more indices, with the component each came from.

    Lazy: construction reads nothing but each part's name table (kept in the parsed cache); a :class:`Package`
    is made the first time its name is looked up (or a name it provides), so a resolution that touches a few
    hundred names never reads the rest. The same (name, version, architecture) in several places (an ``all``
    package in each ``binary-<arch>``) is kept once, from the first place, and must be the same file there:
    checked when its name is first looked up, an :class:`~minimirror.errors.ArchiveError` naming both places
    if not. Iteration is in (name, newest version first, architecture) order; :meth:`by_name` and
    :meth:`providers` answer in that order too.

    Parts of several sources resolved together (a group) carry apt's pin priority: the same package in two of
    them is kept from the part of higher priority (different files are then allowed, as apt allows them: the
    pinned one is the candidate; at equal priority they are an error), versions are ordered by priority first,
    then newest first, and a package of negative priority is never answered (apt never installs it).
    """

    __slots__ = ("_first", "_mentions", "_origins", "_parts", "_provided", "_providers", "_sorted")

    def __init__(self, parts: Sequence[IndexPart]) -> None:
        self._parts = tuple(
            part if part.names is not None else replace(part, names=name_table(part.entries)) for part in parts
        )
        # key -> part number << 32 | entry number of the first time the key is met, filled as names are looked
        # up: ordered like the indices, so it doubles as the package's position.
        self._first: dict[_Key, int] = {}
        self._origins: dict[_Key, tuple[str | None, ...]] = {}
        self._mentions: dict[tuple[str, str], FirstMention] = {}
        self._sorted: dict[str, tuple[Package, ...]] = {}
        self._provided: list[Mapping[str, Numbers] | None] = [part.provided for part in self._parts]
        self._providers: dict[str, tuple[Provider, ...]] = {}

    @classmethod
    def build(cls, parts: Iterable[tuple[str, Iterable[Package]]]) -> PackageIndex:
        """From ``(component, packages)`` pairs, e.g. one per ``<component>/binary-<arch>/Packages``."""
        return cls([IndexPart(component, "", tuple(packages)) for component, packages in parts])

    def _codes(self, numbers_of: Callable[[int], Numbers | None]) -> list[int]:
        """``part number << 32 | entry number`` of the entries ``numbers_of(part number)`` gives, in index order."""
        codes: list[int] = []
        for part_number in range(len(self._parts)):
            numbers = numbers_of(part_number)
            if numbers is not None:
                base = part_number << 32
                if type(numbers) is int:
                    codes.append(base | numbers)
                else:
                    codes.extend(base | number for number in numbers)  # type: ignore[union-attr]
        return codes

    def _named(self, name: str) -> list[int]:
        return self._codes(lambda number: self._parts[number].names.get(name))  # type: ignore[union-attr]

    def _entry(self, code: int) -> tuple[_Entry, IndexPart]:
        part = self._parts[code >> 32]
        return part.entries[code & 0xFFFFFFFF], part

    def by_name(self, name: str) -> tuple[Package, ...]:
        """Every package called ``name``: highest pin priority first, then newest version first."""
        found = self._sorted.get(name)
        if found is None:
            kept: dict[_Key, int] = {}
            read: dict[int, tuple[_Entry, IndexPart]] = {}  # each record is unmarshalled once
            for code in self._named(name):
                entry, part = read[code] = self._entry(code)
                key = _entry_key(entry)
                if part.origin not in self._origins.setdefault(key, (part.origin,)):
                    self._origins[key] += (part.origin,)
                first = self._first.setdefault(key, code)
                if first == code:
                    kept[key] = code
                elif self._outranks(code, kept[key]):
                    kept[key] = self._first[key] = code  # apt's candidate: the copy of higher pin priority
                elif not self._outranks(kept[key], code):
                    self._check_same(kept[key], code)
            packages = [
                materialize(read[code][0], read[code][1].name) for code in kept.values() if self._priority(code) >= 0
            ]
            found = tuple(packages) if len(packages) < 2 else tuple(sorted(packages, key=self._order_key))
            self._sorted[name] = found
        return found

    def _priority(self, code: int) -> int:
        return self._parts[code >> 32].priority

    def _outranks(self, code: int, other: int) -> bool:
        return self._priority(code) > self._priority(other)

    def _order_key(self, package: Package) -> tuple[int, Any]:
        return (-self._priority(self._first[package.key]), _ORDER_KEY(package))

    def providers(self, name: str) -> tuple[Provider, ...]:
        """Every package whose Provides names ``name``, with the provided version (None if unversioned),
        in the order of :meth:`by_name` of the providing packages' names."""
        found = self._providers.get(name)
        if found is None:
            found = self._providers[name] = self._find_providers(name)
        return found

    def _find_providers(self, name: str) -> tuple[Provider, ...]:
        providing: dict[_Key, None] = {}
        for code in self._codes(lambda number: self._provided_table(number).get(name)):
            entry, _ = self._entry(code)
            providing[_entry_key(entry)] = None
        found: list[Provider] = []
        for key in providing:
            package = self.get(*key)  # the kept copy of a stanza that is in several places
            if package is not None:
                found.extend((package, version) for provided, version in _provides(package) if provided == name)
        order = {p.key: (p.name, n) for p, _ in found for n, q in enumerate(self.by_name(p.name)) if q.key == p.key}
        return tuple(sorted(dict.fromkeys(found), key=lambda item: order[item[0].key]))

    def _provided_table(self, part_number: int) -> Mapping[str, Numbers]:
        table = self._provided[part_number]
        if table is None:
            table = self._provided[part_number] = provided_table(self._parts[part_number].entries)
        return table

    def component_of(self, package: Package) -> str:
        """The component (``main``, ...) the package was read from; KeyError if it is not in the index."""
        return self._parts[self._code(package) >> 32].component

    def companion_of(self, package: Package) -> str | None:
        """The companion suite the package was read from (None: the release suite); KeyError if it is not in
        the index. A package in several suites (the same file) counts as the first's, the release suite's."""
        return self._parts[self._code(package) >> 32].companion

    def origin_of(self, package: Package) -> str | None:
        """The source the package was read from (None for an index of one source); KeyError if not here."""
        return self._parts[self._code(package) >> 32].origin

    def origins_of(self, package: Package) -> tuple[str | None, ...]:
        """Every source that has the package (the kept copy's first): a query of any of them selects it."""
        self._code(package)
        return self._origins[package.key]

    def priority_of(self, package: Package) -> int:
        """The pin priority of the copy of the package that is kept; KeyError if it is not in the index."""
        return self._parts[self._code(package) >> 32].priority

    def position(self, package: Package) -> int:
        """Where the package's own stanza first appears in the indices, in the order they were given (how the
        resolver orders the packages a query selects). apt's cache IDs also count the names met in other
        stanzas' relations: see :meth:`first_mention`."""
        return self._code(package)

    def first_mention(self, name: str, architecture: str) -> FirstMention:
        """Where apt, reading these indices in order, first meets ``name`` for ``architecture`` (the native one
        of a resolution): its cache IDs, on which apt's last tie-break between providers rests, follow this
        order. Searched for on first use and remembered; see :mod:`minimirror.upstream.mentions`."""
        found = self._mentions.get((name, architecture))
        if found is None:
            found = self._mentions[(name, architecture)] = self._find_first_mention(name, architecture)
        return found

    def _find_first_mention(self, name: str, architecture: str) -> FirstMention:
        own = next((c for c in self._named(name) if _entry_key(self._entry(c)[0])[2] in (architecture, "all")), None)
        last_part = len(self._parts) - 1 if own is None else own >> 32
        for part_number, part in enumerate(self._parts[: last_part + 1]):
            end = own & 0xFFFFFFFF if part_number == last_part and own is not None else len(part.entries)
            for number in stanzas_naming(part.entries, name, end):
                code = part_number << 32 | number
                package = materialize(part.entries[number], part.name)
                found = None if self._read_before(code, package.key) else mention_in(package, name, architecture)
                if found is not None:
                    return FirstMention(part_number, number, *found)
        if own is None:  # not in these indices for that architecture: after everything that is
            return FirstMention(len(self._parts), 0, 0, 0)
        return FirstMention(own >> 32, own & 0xFFFFFFFF, 0, 0)

    def _read_before(self, code: int, key: _Key) -> bool:
        """Whether the stanza at ``code`` repeats a (name, version, architecture) read before it: apt merges it
        into that version without reading its relations again."""
        return any(earlier < code and _entry_key(self._entry(earlier)[0]) == key for earlier in self._named(key[0]))

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
        return sum(len(self.by_name(name)) for name in self.names())

    def __contains__(self, package: object) -> bool:
        return isinstance(package, Package) and any(p.key == package.key for p in self.by_name(package.name))

    def __repr__(self) -> str:
        return f"PackageIndex({len(self._parts)} indices)"

    def _check_same(self, first: int, second: int) -> None:
        (one, one_part), (two, two_part) = self._entry(first), self._entry(second)
        _check_same(
            materialize(one, one_part.name), one_part.component, materialize(two, two_part.name), two_part.component
        )


def name_table(entries: Sequence[_Entry]) -> dict[str, Numbers]:
    """Package name -> entry numbers in file order: what a part's lookups go through."""
    table: dict[str, list[int]] = {}
    for number, entry in enumerate(entries):
        table.setdefault(entry[0] if type(entry) is tuple else entry.name, []).append(number)  # type: ignore[union-attr]
    return _compact(table)


def provided_table(entries: Sequence[_Entry]) -> dict[str, Numbers]:
    """Name in a Provides field -> the entries providing it (a quick byte search finds the stanzas to parse)."""
    table: dict[str, list[int]] = {}
    for number, entry in enumerate(entries):
        if isinstance(entry, Package):
            raw = entry.fields.raw if isinstance(entry.fields, StanzaFields) else None
        else:
            raw = entry[4]
        # A cheap prefilter, case-insensitive as deb822 field names are; a "provides:" inside another field's
        # text only costs a lookup that finds nothing. (A regex with re.I|re.M per stanza was four times slower.)
        if raw is None or b"provides:" in raw.lower():
            for provided in dict.fromkeys(name for name, _ in _provides(materialize(entry, ""))):
                table.setdefault(provided, []).append(number)
    return _compact(table)


def _compact(table: dict[str, list[int]]) -> dict[str, Numbers]:
    return {name: numbers[0] if len(numbers) == 1 else tuple(numbers) for name, numbers in table.items()}


def _provides(package: Package) -> list[tuple[str, str | None]]:
    value = field_of(package, "Provides")
    return parse_provides(value) if value else []


def _entry_key(entry: _Entry) -> _Key:
    if isinstance(entry, Package):
        return entry.key
    return (entry[0], entry[1], entry[2])


def materialize(entry: _Entry, index: str) -> Package:
    """The :class:`Package` of an entry; ``index`` names the file its errors point to."""
    if isinstance(entry, Package):
        return entry
    name, version, arch, line, raw = entry
    return Package(name, version, arch, StanzaFields(raw, index, line))


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
