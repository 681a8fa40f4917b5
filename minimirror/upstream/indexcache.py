"""The parsed form of a ``Packages`` index, cached by the index's sha256 so that a warm run does not parse
50 MB of text again, and read lazily so that it does not even load what it does not look at.

A resolution touches a few hundred of an index's 63,000 packages, so the file is laid out for lookups:

    header   magic, format version, the index's sha256, table length, records length, CRC-32 of the table
    table    marshal of (count, names, provided, offsets, crcs):
               names     package name -> entry number, or a tuple of them when the name occurs several times
               provided  name in some Provides field -> entry number(s) of the stanzas providing it
               offsets   array('Q') of count + 1 byte offsets into the records
               crcs      array('I') of the CRC-32 of each record
    records  marshal of each (name, version, architecture, line, raw stanza) record, one after the other

A warm load maps the file, checks the table's CRC and unmarshals only the table (name and Provides lookups
are then dict lookups); a record is unmarshalled, after its own CRC check, the first time it is asked for.
marshal (the fastest stdlib serializer of str/bytes/int tuples) is not safe against crafted input, hence the
CRCs before every load. A record that fails its check makes the whole index be parsed again from the
verified blob (and the cache rewritten): damage is repaired, never loaded.
"""

from __future__ import annotations

import hashlib
import itertools
import marshal
import mmap
import os
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import overload

from minimirror.atomic import write_atomically
from minimirror.errors import ArchiveError, IntegrityError
from minimirror.memory import droppable
from minimirror.package import Package
from minimirror.upstream._stanzas import Record
from minimirror.upstream.index import (
    IndexPart,
    IndexSource,
    Numbers,
    default_name,
    iter_records,
    materialize,
    name_table,
    provided_table,
)

__all__ = ["CACHE_FORMAT", "load_index_cached", "load_index_part"]

CACHE_FORMAT = 4
"""Bumped whenever the cache layout or what the parser extracts changes; other versions are rebuilt."""

_MAGIC = b"MMPKGIX\x00"
_HEADER = struct.Struct("<8sH32sQQI")


def load_index_cached(
    source: IndexSource, sha256: str, cache_dir: str | os.PathLike[str], *, name: str | None = None
) -> list[Package]:
    """All packages of an index whose sha256 is ``sha256`` (of the file as given, compressed or not).

    Warm: read from ``cache_dir/<sha256>.v<CACHE_FORMAT>.packages`` without parsing the text again.
    Cold (no cache, or a cache file that fails validation): hash ``source``, refuse it with
    :class:`IntegrityError` unless it matches, parse it, and write the cache atomically.
    """
    part = load_index_part(source, sha256, cache_dir, component="", name=name)
    return [materialize(entry, part.name) for entry in part.entries]


def load_index_part(
    source: IndexSource,
    sha256: str,
    cache_dir: str | os.PathLike[str],
    *,
    component: str,
    name: str | None = None,
) -> IndexPart:
    """One index as a :class:`~minimirror.upstream.index.PackageIndex` part, from the parsed-form cache when warm (see
    :func:`load_index_cached`). Warm, no record is read here: the index reads the ones it looks up."""
    index = name if name is not None else default_name(source)
    path = Path(cache_dir) / f"{sha256}.v{CACHE_FORMAT}.packages"

    def parse() -> IndexPart:
        records = _parse_verified(source, sha256, index)
        names, provided = name_table(records), provided_table(records)
        _write_cache(path, sha256, records, names, provided)
        return IndexPart(component, index, records, names, provided)

    def parse_again() -> tuple[Record, ...]:  # for a damaged record: the same records, freshly parsed
        return tuple(parse().entries)  # type: ignore[arg-type]  # parse() keeps records, not Packages

    cached = _read_cache(path, sha256, parse_again)
    if cached is None:
        return parse()
    lazy, names, provided = cached
    return IndexPart(component, index, lazy, names, provided)


def _parse_verified(source: IndexSource, sha256: str, index: str) -> tuple[Record, ...]:
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise ArchiveError(f"cannot read the index {index} ({exc.strerror}); run the command again online") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise IntegrityError(f"{index}: sha256 is {actual}, expected {sha256}; download the index again")
    return tuple(iter_records(data, name=index))


def _write_cache(
    path: Path,
    sha256: str,
    records: Sequence[Record],
    names: Mapping[str, Numbers],
    provided: Mapping[str, Numbers],
) -> None:
    dumped = [marshal.dumps(record) for record in records]
    offsets = array("Q", itertools.accumulate(map(len, dumped), initial=0))
    crcs = array("I", map(zlib.crc32, dumped))
    tables = (dict(names), dict(sorted(provided.items())), offsets.tobytes(), crcs.tobytes())
    table = marshal.dumps((len(records), *tables))
    header = _HEADER.pack(_MAGIC, CACHE_FORMAT, bytes.fromhex(sha256), len(table), offsets[-1], zlib.crc32(table))
    # Not durable: this is derived data, checked when read, and rebuilt when a crash tore it; syncing 50 MB
    # would cost a cold run a fifth of its time.
    write_atomically(path, [header, table, *dumped])
    for older in path.parent.glob(f"{sha256}.v*.packages"):  # what an earlier minimirror left for this index
        if older != path:
            older.unlink(missing_ok=True)


_Cached = tuple["CachedRecords", dict[str, Numbers], dict[str, Numbers]]


def _read_cache(path: Path, sha256: str, parse_again: Callable[[], tuple[Record, ...]]) -> _Cached | None:
    """The lazily read records, name table and Provides table of a valid cache file for ``sha256``; ``None``
    when absent, stale or damaged."""
    view = _map(path)
    if view is None or len(view) < _HEADER.size:
        return None
    magic, version, digest, table_length, records_length, crc = _HEADER.unpack_from(view)
    valid = (magic, version, digest.hex()) == (_MAGIC, CACHE_FORMAT, sha256.lower()) and (
        _HEADER.size + table_length + records_length == len(view)
    )
    table = view[_HEADER.size : _HEADER.size + table_length]
    if not valid or zlib.crc32(table) != crc:
        return None
    tables = _load_table(table, records_length)
    if tables is None:
        return None
    names, provided, offsets, crcs = tables
    return CachedRecords(view[_HEADER.size + table_length :], offsets, crcs, parse_again), names, provided


def _map(path: Path) -> memoryview | None:
    """The file's bytes, mapped rather than read: the pages of records nobody asks for are never touched. The
    file is only ever replaced by a rename, never rewritten in place, so the mapping cannot shrink under us."""
    try:
        with path.open("rb") as handle:  # its pages can be dropped between a lock's steps: see minimirror.memory
            return memoryview(droppable(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)))
    except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
        return None


_Tables = tuple[dict[str, Numbers], dict[str, Numbers], "array[int]", "array[int]"]


def _load_table(table: memoryview, records_length: int) -> _Tables | None:
    """The table as written, or None. Its CRC already vouches for the bytes, so one entry of each dict stands
    for the rest; the offsets are checked as each record is read."""
    try:
        count, names, provided, offset_bytes, crc_bytes = marshal.loads(table)
    except (EOFError, ValueError, TypeError):  # TypeError: not a 5-tuple
        return None
    offsets, crcs = array("Q"), array("I")
    shaped = (
        type(count) is int and _is_table(names) and _is_table(provided) and type(offset_bytes) is bytes
        and type(crc_bytes) is bytes and len(offset_bytes) == offsets.itemsize * (count + 1)
        and len(crc_bytes) == crcs.itemsize * count
    )  # fmt: skip
    if not shaped:
        return None
    offsets.frombytes(offset_bytes)
    crcs.frombytes(crc_bytes)
    if offsets[0] != 0 or offsets[-1] != records_length:
        return None
    return names, provided, offsets, crcs


def _is_table(table: object) -> bool:
    if not isinstance(table, dict):
        return False
    sample = next(iter(table.items()), None)
    return sample is None or (type(sample[0]) is str and type(sample[1]) in (int, tuple))


class CachedRecords(Sequence[Record]):
    """The records of a cache file, each unmarshalled (after its CRC check) when first asked for.

    If a record is damaged, the index is parsed again from its verified source and every record is answered
    from that parse from then on.
    """

    __slots__ = ("_crcs", "_offsets", "_parse_again", "_parsed", "_records")

    def __init__(
        self, records: memoryview, offsets: array[int], crcs: array[int], parse_again: Callable[[], tuple[Record, ...]]
    ) -> None:
        self._records = records
        self._offsets = offsets
        self._crcs = crcs
        self._parse_again = parse_again
        self._parsed: tuple[Record, ...] | None = None

    def __len__(self) -> int:
        return len(self._crcs)

    @overload
    def __getitem__(self, number: int) -> Record: ...

    @overload
    def __getitem__(self, number: slice) -> Sequence[Record]: ...

    def __getitem__(self, number: int | slice) -> Record | Sequence[Record]:
        if isinstance(number, slice):
            return [self[i] for i in range(*number.indices(len(self)))]
        if self._parsed is not None:
            return self._parsed[number]
        if number < 0:
            number += len(self)
        if not 0 <= number < len(self):
            raise IndexError(number)
        record = self._load(number)
        if record is None:
            self._parsed = self._parse_again()
            return self._parsed[number]
        return record

    def __iter__(self) -> Iterator[Record]:
        return (self[number] for number in range(len(self)))

    def raw_text(self) -> tuple[memoryview, Sequence[int]] | None:
        """The marshalled records and their offsets, for a byte search (:mod:`minimirror.upstream.mentions`):
        marshal keeps each raw stanza verbatim. None once a damaged record made the index be parsed again."""
        return None if self._parsed is not None else (self._records, self._offsets)

    def _load(self, number: int) -> Record | None:
        start, end = self._offsets[number], self._offsets[number + 1]
        if not start <= end <= len(self._records):
            return None
        data = self._records[start:end]
        if zlib.crc32(data) != self._crcs[number]:
            return None
        try:
            record = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        shaped = (
            type(record) is tuple and len(record) == 5 and type(record[0]) is str and type(record[1]) is str
            and type(record[2]) is str and type(record[3]) is int and type(record[4]) is bytes
        )  # fmt: skip
        return record if shaped else None
