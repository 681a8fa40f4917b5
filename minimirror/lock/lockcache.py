"""Parsed locks, cached by the sha256 of the lock file's bytes, for the tools that read whole locks to review them.

Reading a whole-suite lock strictly (30 MB, 63,420 packages; :func:`~minimirror.lock.lockfile.loads_lock`) takes
about 1.5 s; ``minimirror why`` and ``minimirror diff`` read the same locks again and again during a review.
:func:`read_lock_table` keeps what the strict reader returned in ``<cache>/parsed-locks/`` and, the next time
the same bytes are read, gives it back without parsing them: the lock's hash, one file read, a checksum and the
unmarshalling of the columns that are used (:class:`~minimirror.lock.locktable.LockTable`).

Why the cache cannot let a bad lock through:

- The key is the content: every read hashes the lock's bytes (sha256, ~20 ms for 30 MB) and looks only for
  ``<sha256>.v<FORMAT>.lock-parsed``; paths, mtimes and sizes are never trusted. A changed lock, by one byte, is a
  miss, and is read strictly.
- An entry is written only from the value the strict reader returned for exactly those bytes, after it
  returned (a lock it refuses raises before anything is written), atomically (a temporary file and a rename), so
  an interrupted or concurrent write leaves either no entry or a whole one; two writers write the same bytes.
- An entry names the code that made it (the sha256 of the strict reader's and this module's source): an entry
  made by another minimirror, whose reader may have let through what this one refuses, is not used.
- A reader checks, before using an entry: the magic and format version, the reader's code, that the lock hash
  inside is the one it computed, the sizes of the parts against the file's length, and the sha256 of everything
  after the fixed header; then it rebuilds the tables other than [[package]] through the values' own
  constructors, and checks the shape of each package column it unmarshals (as many values as packages; strings
  where the reader gives strings, non-negative integers, tuples of strings). A truncated, corrupted, foreign or
  older entry, or one that fails any check, is ignored (and replaced): the lock is read strictly, with every
  error the strict reader reports. A column that fails its shape check later, when it is first used, makes the
  lock be read strictly then.
- The checksum detects damage, not forgery: like the parsed-index cache (:mod:`minimirror.upstream.indexcache`),
  this trusts the cache directory as much as the user's own files (``$XDG_CACHE_HOME/minimirror`` is theirs); a
  keyed MAC would need a key stored beside the cache, no better protected. marshal is used, as there, because it
  is the fastest standard serializer of strings, integers and tuples and, unlike pickle, runs no code; it is not
  meant for crafted input, hence the checksum before any of it is unmarshalled.
- Nothing that writes or fetches (``fetch``, ``publish``, ``image``, ``lock``) reads locks through this cache: they
  read strictly every time. It serves ``why`` and ``diff``, which only show what a lock says.

The cache never fails a command: an unwritable or full cache directory only means the next read is strict again.
``minimirror cache prune`` removes the entries of locks that are no longer in the lock trees it is given; deleting
``<cache>/parsed-locks`` is always safe.

Layout of an entry::

    header   magic, format version, sha256 of the reader's code, sha256 of the lock's bytes, sha256 of the rest
    sizes    package count, then the byte length of the head and of each column
    head     marshal of the lock's tables other than [[package]], as plain tuples
    columns  marshal of each column of the packages (LockedPackage's fields in order)
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import marshal
import struct
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from minimirror.atomic import write_atomically
from minimirror.lock.lockcolumns import ReadMemo, loads_lock_table
from minimirror.lock.lockfile import (
    CompanionPin,
    IndexPin,
    LeftOutPackage,
    Lock,
    LockedSource,
    LockedSourceFile,
    SourcePin,
    UpstreamPin,
    _check_place,
    _decode,
    _lock_files,
    _lock_files_of,
    _read_bytes,
)
from minimirror.lock.locktable import PACKAGE_COLUMNS, LockTable, PackageColumns

__all__ = [
    "FORMAT",
    "cache_path",
    "load_lock_table",
    "lock_file_digests",
    "parsed_locks_dir",
    "read_lock_table",
    "read_lock_tables",
    "stale_entries",
]

logger = logging.getLogger(__name__)

FORMAT = 1
"""Bumped whenever the layout changes; entries of other formats are ignored and replaced."""


def _reader_digest() -> bytes:
    """The sha256 of the code that reads and checks a lock (the strict readers, the values, this module): an entry
    says which reader made it, and one made by any other (a minimirror whose reader refuses more, say) is not
    used, so a change to a check applies to every lock at once, with no version to remember to bump."""
    from minimirror.lock import lockcolumns, lockfile, locktable

    code = hashlib.sha256()
    for module in (lockfile.__file__, lockcolumns.__file__, locktable.__file__, __file__):
        try:
            code.update(Path(module).read_bytes())
        except OSError:  # no source beside the bytecode: the format version alone says which reader
            code.update(str(module).encode())
    return code.digest()


_READER = _reader_digest()

_MAGIC = b"MMLOCKP\x00"
_HEADER = struct.Struct("<8sH32s32s32s")
_SIZES = struct.Struct(f"<{2 + len(PACKAGE_COLUMNS)}Q")

# the shape each column's values must have: what the strict reader gives a LockedPackage
_KINDS: dict[str, str] = {
    "size": "int",
    "phased_update_percentage": "int?",
    "companion": "str?",
    "queries": "strs",
    "required_by": "strs",
    "missing": "strs",
}


def parsed_locks_dir(cache_dir: Path) -> Path:
    return cache_dir / "parsed-locks"


def cache_path(cache_dir: Path, sha256: str) -> Path:
    """Where the parsed form of the lock whose bytes hash to ``sha256`` (hex) is kept."""
    return parsed_locks_dir(cache_dir) / f"{sha256}.v{FORMAT}.lock-parsed"


def read_lock_table(path: Path | str, cache_dir: Path | None, *, memo: ReadMemo | None = None) -> LockTable:
    """The lock at ``path``, from the cache when it holds these exact bytes, else read strictly (and cached).
    ``cache_dir`` None reads strictly and caches nothing. Errors are the strict reader's. ``memo``: see
    :class:`~minimirror.lock.lockcolumns.ReadMemo` (for reading several locks of one source)."""
    return load_lock_table(_read_bytes(Path(path)), path=path, cache_dir=cache_dir, memo=memo)


def read_lock_tables(
    locks_dir: Path | str, cache_dir: Path | None, *, memo: ReadMemo | None = None
) -> tuple[LockTable, ...]:
    """As :func:`~minimirror.lock.lockfile.read_locks` (every ``<prefix>/<name>.lock``, sorted by source id, each
    at its source id's place), each lock through the cache."""
    tables = []
    for path in _lock_files_of(locks_dir):
        data = _read_bytes(path)
        table = load_lock_table(data, path=path, cache_dir=cache_dir, memo=memo)
        if table.source.id != f"{path.parent.name}/{path.stem}":
            _check_place(table.source, path, _decode(data, path))
        tables.append(table)
    return tuple(sorted(tables, key=lambda table: table.source.id))


def load_lock_table(
    data: bytes, *, path: Path | str, cache_dir: Path | None, memo: ReadMemo | None = None
) -> LockTable:
    """The lock whose file holds ``data`` (``path`` names it in errors): see :func:`read_lock_table`."""
    digest = hashlib.sha256(data).digest()
    entry = cache_path(cache_dir, digest.hex()) if cache_dir is not None else None
    if entry is not None:
        table = _load(entry, digest, lambda: _strict(data, path))
        if table is not None:
            return table
    table = _strict(data, path, memo)
    if entry is not None:
        _store(entry, digest, table)
    return table


def _strict(data: bytes, path: Path | str, memo: ReadMemo | None = None) -> LockTable:
    return loads_lock_table(_decode(data, path), path=path, memo=memo)


# --- writing --------------------------------------------------------------------------------------------


_REPEATED = frozenset({"version", "architecture", "component", "source", "source_version"})
"""The columns whose equal strings are worth writing once (names, paths and hashes are unique; the readers give
equal arrays as one object already, which marshal writes once by itself)."""


def _store(entry: Path, digest: bytes, table: LockTable) -> None:
    parts = [marshal.dumps(_plain_head(table.head), 4)]
    for name in PACKAGE_COLUMNS:
        values = table.columns[name]
        if name in _REPEATED:
            shared: dict[Any, Any] = {}  # equal values as one object, which marshal then writes once
            values = tuple(map(shared.setdefault, values, values))
        parts.append(marshal.dumps(values, 4))
    sizes = _SIZES.pack(len(table.columns), *map(len, parts))
    checksum = hashlib.sha256(sizes)
    for part in parts:
        checksum.update(part)
    header = _HEADER.pack(_MAGIC, FORMAT, _READER, digest, checksum.digest())
    try:
        write_atomically(entry, [header, sizes, *parts])
    except OSError as exc:  # a cache that cannot be written only costs the next read its speed
        logger.debug("%s: not cached: %s", entry, exc)


def _fields(value: Any) -> tuple[Any, ...]:
    return tuple(getattr(value, name) for name in value.__dataclass_fields__)


def _plain_upstream(pin: UpstreamPin) -> tuple[Any, ...]:
    valid_until = pin.valid_until.isoformat() if pin.valid_until is not None else None
    named = (pin.release, pin.release_sha256, pin.date.isoformat(), valid_until, pin.origin, pin.label)
    return (*named, pin.suite, pin.codename, pin.version, pin.signed_by, tuple(_fields(i) for i in pin.indices))


def _plain_head(lock: Lock) -> tuple[Any, ...]:
    companions = tuple((*_fields(c)[:4], _plain_upstream(c.upstream)) for c in lock.companions)
    sources = tuple(
        (s.name, s.version, s.component, s.directory, tuple(_fields(f) for f in s.files), s.binaries, s.companion)
        for s in lock.source_packages
    )
    left_out = tuple(_fields(p) for p in lock.left_out)
    return (_fields(lock.source), _plain_upstream(lock.upstream), companions, left_out, sources)


# --- reading --------------------------------------------------------------------------------------------


def _load(entry: Path, digest: bytes, strict: Callable[[], LockTable]) -> LockTable | None:
    """The table kept in ``entry``, or None when there is none or it fails a check (see the module docstring)."""
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    try:
        return _decode_entry(memoryview(data), digest, strict)
    except (ValueError, TypeError, EOFError, struct.error, IndexError, AttributeError, KeyError) as exc:
        logger.debug("%s: ignored: %s", entry, exc)
        return None


def _decode_entry(data: memoryview, digest: bytes, strict: Callable[[], LockTable]) -> LockTable | None:
    if len(data) < _HEADER.size + _SIZES.size:
        return None
    magic, version, reader, lock_digest, checksum = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != FORMAT or reader != _READER or lock_digest != digest:
        return None
    body = data[_HEADER.size :]
    if hashlib.sha256(body).digest() != checksum:
        return None
    count, *lengths = _SIZES.unpack_from(body)
    offsets = [_SIZES.size]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    if offsets[-1] != len(body):
        return None
    head = _head(marshal.loads(body[offsets[0] : offsets[1]]))
    spans = {name: (offsets[n + 1], offsets[n + 2]) for n, name in enumerate(PACKAGE_COLUMNS)}
    fallback: list[LockTable] = []

    def column(name: str) -> tuple[Any, ...]:
        start, end = spans[name]
        values = marshal.loads(body[start:end])
        if _well_formed(values, _KINDS.get(name, "str"), count):
            return tuple(values)
        logger.debug("parsed lock %s: column %s is damaged; reading the lock strictly", digest.hex(), name)
        if not fallback:
            fallback.append(strict())
        return fallback[0].columns[name]

    return LockTable(head, PackageColumns(count, column))


def _well_formed(values: object, kind: str, count: int) -> bool:
    """Whether a column holds ``count`` values of its kind (type sets, so the check runs at C speed)."""
    if type(values) is not tuple or len(values) != count:
        return False
    types = set(map(type, values))
    if kind in ("str", "str?"):
        return types <= ({str, type(None)} if kind == "str?" else {str})
    if kind in ("int", "int?"):
        numbers = [v for v in values if v is not None]
        return types <= ({int, type(None)} if kind == "int?" else {int}) and (not numbers or min(numbers) >= 0)
    return types <= {tuple} and set(map(type, itertools.chain.from_iterable(values))) <= {str}


def _upstream(plain: Sequence[Any]) -> UpstreamPin:
    release, sha256, date, valid_until, origin, label, suite, codename, version, signed_by, indices = plain
    until = datetime.fromisoformat(valid_until) if valid_until is not None else None
    moment = datetime.fromisoformat(date)
    return UpstreamPin(
        release,
        sha256,
        moment,
        until,
        origin,
        label,
        suite,
        codename,
        version,
        signed_by,
        tuple(IndexPin(*index) for index in indices),
    )


def _head(plain: Sequence[Any]) -> Lock:
    source, upstream, companions, left_out, sources = plain
    return Lock(
        source=SourcePin(*source),
        upstream=_upstream(upstream),
        companions=tuple(_companion(*c) for c in companions),
        left_out=tuple(LeftOutPackage(*p) for p in left_out),
        source_packages=tuple(_source_package(s) for s in sources),
    )


def _companion(url: str, key_url: str, dist: str, components: tuple[str, ...], upstream: Any) -> CompanionPin:
    return CompanionPin(url, key_url, dist, components, _upstream(upstream))


def _source_package(plain: Sequence[Any]) -> LockedSource:
    name, version, component, directory, files, binaries, companion = plain
    return LockedSource(
        name, version, component, directory, tuple(LockedSourceFile(*f) for f in files), binaries, companion
    )


def lock_file_digests(locks_dir: Path) -> set[str]:
    """The sha256 (hex) of each lock file below ``locks_dir``, found as :func:`read_lock_tables` finds them."""
    root = Path(locks_dir)
    return {hashlib.sha256(_read_bytes(path)).hexdigest() for path in _lock_files(root)} if root.is_dir() else set()


def stale_entries(cache_dir: Path, keep: Collection[str]) -> list[Path]:
    """The files of ``parsed-locks/`` other than the entries of the locks whose bytes hash to ``keep`` (hex),
    sorted: what ``cache prune`` removes."""
    wanted = {cache_path(cache_dir, sha256).name for sha256 in keep}
    try:
        found = sorted(parsed_locks_dir(cache_dir).iterdir())
    except OSError:
        return []
    return [path for path in found if path.name not in wanted]
