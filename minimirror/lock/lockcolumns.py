"""The strict reader of a lock (schema 1, ``docs/lockfile.md``) straight into columns, for ``diff`` and ``why``.

:func:`~minimirror.lock.lockfile.loads_lock` makes a :class:`~minimirror.lock.lockfile.LockedPackage` of each
``[[package]]`` table; ``diff`` and ``why`` then look at a few columns and few packages
(:class:`~minimirror.lock.locktable.LockTable`). On a whole-suite lock (63,420 tables) making those values and
checking them one table at a time is most of the reading. :func:`loads_lock_table` reads the same text into
columns instead:

- every ``[[package]]`` table is matched, in the writer's own layout, by one ``re.findall`` over the run of
  package tables (in C: no Python code runs per table), and the matches must cover the run byte for byte (with
  a :class:`ReadMemo` of another lock, a table whose body that lock had is looked up instead);
- each check of the strict reader runs once per distinct value of a column (a set of names, of versions...),
  and each cross-table rule (order, uniqueness, suite and component, ``required-by`` naming locked packages,
  reachability) on whole columns.

It never decides alone what is refused: it gives a table only when every table is in the writer's layout and
passes every check the strict reader makes. Anything else (another layout, a value a check refuses, packages out
of order, a lock with ``[[source-package]]`` tables, any error the strict reader would report) makes it read the
text with :func:`~minimirror.lock.lockfile.loads_lock`, which accepts, refuses and reports exactly as it always
did. Tests check that both give the same lock, or the same error, on random, damaged and hand-edited locks.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import tomllib
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from minimirror.errors import LockError
from minimirror.lock.lockfile import (
    _ARCH,
    _ARRAY,
    _NAME,
    _NODE,
    _PATTERNS,
    _PLAIN_PATH,
    _STRING,
    _TAIL_TABLES,
    _TOKEN,
    Lock,
    LockedPackage,
    SourcePin,
    _Check,
    _check_schema,
    _Context,
    _filename,
    _package_order,
    _Place,
    _query,
    _reachable,
    _read_companions,
    _read_left_out,
    _read_source,
    _read_tail,
    _read_upstream,
    _relative_path,
    _sorted_unique,
    _text,
    _version,
    loads_lock,
)
from minimirror.lock.locktable import PACKAGE_COLUMNS, LockTable, PackageColumns
from minimirror.memory import collector_paused

__all__ = ["ReadMemo", "loads_lock_table"]

_ROW = re.compile(
    r"\[\[package\]\]\n("
    rf"name = {_STRING}version = {_STRING}architecture = {_STRING}component = {_STRING}"
    rf"(companion = {_STRING})?filename = {_STRING}size = (0|[1-9][0-9]*)\n"
    r'sha256 = "([0-9a-f]{64})"\n(?:phased-update-percentage = (0|[1-9][0-9]*)\n)?'
    rf"source = {_STRING}source-version = {_STRING}queries = (?:{_ARRAY})required-by = (?:{_ARRAY})"
    rf"(?:missing = (?:{_ARRAY}))?)(?:\n|\Z)"
)
"""The writer's [[package]] table (lockfile._PACKAGE_TABLE) with its body (the lines after the header) as group 1,
so that the matches can be shown to cover the text and a table can be known by its body, and the optional
companion line as a group of its own (findall gives "" for a group that took no part, which must not be read as
``companion = ""``)."""
_FIRST = "[[package]]\n"


class _Refused(Exception):
    """The column reader will not decide: the text goes to the strict reader."""


class ReadMemo:
    """What reading a lock into columns learned that reading the next one can reuse, when both come from one
    source (the two sides of a ``diff`` share all but a few ``[[package]]`` tables byte for byte): the groups of
    each table of the last lock read, by its body, all of which passed every check of one table, and each array
    text read, checked and normalized. A table of the next lock with the same body is neither matched nor checked
    again (the checks of one table are pure functions of its text); every table of every lock still goes through
    the checks across tables (order, uniqueness, suite and component, ``required-by``, reachability), which
    depend on the rest of its lock. Only a lock that passed every check is remembered, and only the last one, so the
    memo's size is one lock's."""

    __slots__ = ("arrays", "tables")

    def __init__(self) -> None:
        self.tables: dict[str, tuple[str, ...]] = {}
        self.arrays: dict[_Check, dict[str, tuple[str, ...]]] = {}


def loads_lock_table(text: str, *, path: Path | str, memo: ReadMemo | None = None) -> LockTable:
    """The lock in ``text`` as a :class:`~minimirror.lock.locktable.LockTable`, read strictly: equal to
    ``LockTable.of(loads_lock(text, path=path))``, and refused with the same error (``path:line:column``).
    ``memo``, given to the reading of several locks, saves matching and checking again what they share."""
    try:
        # 63,420 rows of strings and tuples, none in a cycle: the collector would only walk them, ~10%
        with collector_paused():
            return _read(text, str(path), memo if memo is not None else ReadMemo(), keep=memo is not None)
    except (_Refused, LockError, ValueError):  # ValueError: int() of a size too long to convert
        pass
    return LockTable.of(loads_lock(text, path=path))


def _read(text: str, path: str, memo: ReadMemo, *, keep: bool) -> LockTable:
    split = text.find(f"\n{_FIRST}")
    if split < 0:
        raise _Refused  # no packages, or a layout of its own: small, or the strict reader's to judge
    split += 1
    head_text = text[:split]
    if '"""' in head_text or "'''" in head_text or any(f"\n{table}\n" in head_text for table in _TAIL_TABLES):
        raise _Refused  # a multi-line string could hold the header the split was made at
    try:
        document: dict[str, Any] = tomllib.loads(head_text)
    except tomllib.TOMLDecodeError as exc:
        raise _Refused from exc
    if any(key in document for key in ("package", "left-out", "source-package")):
        raise _Refused
    ends = [found + 1 for table in _TAIL_TABLES[1:] if (found := text.find(f"\n{table}\n", split)) >= 0]
    end = min(ends, default=len(text))
    rows, fresh = _package_rows(text, split, end, memo.tables)
    if "[[package]]" in text[end:]:
        raise _Refused
    if not _read_tail(text[end:], document) or "source-package" in document:
        raise _Refused
    context = _Context(path, text)
    top = _Place(context, "", 0, "")
    _check_schema(document, top)
    if set(document) - {"schema", "source", "upstream", "companion", "left-out"}:
        raise _Refused
    source = _read_source(document, top)
    upstream = _read_upstream(document, source, top)
    companions = _read_companions(document, source, top)
    learned = ReadMemo()
    columns = _columns(rows, memo, learned)
    if fresh:  # the tables the memo did not hold (all of them, for the first lock read)
        _check_tables(columns if len(fresh) == len(rows) else _columns(fresh, memo, ReadMemo()))
    _check_order(columns)
    components = {companion.dist: companion.components for companion in companions}
    _check_consistency(columns, source, components, learned.arrays[_NODE].values())
    keys = set(zip(columns["name"], columns["version"], columns["architecture"], strict=True))
    left_out = _read_left_out(document, source, lambda: keys, top)
    head = Lock(source=source, upstream=upstream, companions=tuple(companions), left_out=tuple(left_out))
    if keep:
        memo.tables = {row[0]: row for row in rows}
        memo.arrays = learned.arrays
    return LockTable(head, PackageColumns.loaded(columns))


def _package_rows(
    text: str, start: int, end: int, known: dict[str, tuple[str, ...]]
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The groups of each ``[[package]]`` table of ``text[start:end]``, which must be nothing but such tables in
    the writer's layout, and those of the tables whose body is not in ``known``. Without ``known`` tables, one
    ``findall`` whose matches must cover the span byte for byte; with them, the span is cut at each table header
    (no value holds a newline, so a header is a table's start) and only a body not in ``known`` is matched."""
    if not known:
        rows = _ROW.findall(text, start, end)
        # each match is its header, its body and a blank line; the last has none when the span ends with its body
        # (a body ends with one newline, never two): then the matches tile the span exactly when they add up to it
        covered = sum(len(row[0]) for row in rows) + (len(_FIRST) + 1) * len(rows)
        if covered != end - start + (0 if text.endswith("\n\n", start, end) else 1):
            raise _Refused  # a gap between the tables the expression took: not the writer's layout
        return rows, rows
    bodies = text[start - 1 : end].split(f"\n{_FIRST}")  # start - 1: the newline before the first header
    if bodies[0]:
        raise _Refused
    del bodies[0]  # each body ends with its last line's newline; the blank line after it went with the header
    if bodies[-1].endswith("\n\n"):
        bodies[-1] = bodies[-1][:-1]  # the last table's blank line, before [[left-out]]
    found_rows: list[tuple[str, ...] | None] = list(map(known.get, bodies))
    fresh = []
    if None in found_rows:
        for number, row in enumerate(found_rows):
            if row is None:
                found = _ROW.fullmatch(f"{_FIRST}{bodies[number]}")
                if found is None:
                    raise _Refused
                found_rows[number] = found.groups("")  # as findall gives them: "" for a group that took no part
                fresh.append(found_rows[number])
    return found_rows, fresh  # type: ignore[return-value]  # no None left


def _columns(rows: Sequence[tuple[str, ...]], memo: ReadMemo, learned: ReadMemo) -> dict[str, tuple[Any, ...]]:
    """The columns of the matched tables, typed as ``LockedPackage`` holds them; arrays checked and normalized
    once per distinct text."""
    if not rows:
        raise _Refused
    (
        _,
        name,
        version,
        arch,
        component,
        companion_line,
        companion,
        filename,
        size,
        sha256,
        phased,
        source,
        source_version,
        *arrays,
    ) = zip(*rows, strict=True)
    return {
        "name": name,
        "version": version,
        "architecture": arch,
        "component": component,
        "filename": filename,
        "size": tuple(map(int, size)),
        "sha256": sha256,
        "source": source,
        "source_version": source_version,
        "queries": _array_column(arrays[0], arrays[1], _query, memo, learned),
        "required_by": _array_column(arrays[2], arrays[3], _NODE, memo, learned),
        "companion": tuple(value if line else None for line, value in zip(companion_line, companion, strict=True)),
        "missing": _array_column(arrays[4], arrays[5], _text, memo, learned),
        "phased_update_percentage": tuple(int(value) if value else None for value in phased),
    }


def _array_column(
    one_line: Sequence[str], one_a_line: Sequence[str], check: _Check, memo: ReadMemo, learned: ReadMemo
) -> tuple[tuple[str, ...], ...]:
    """An array field of every table (its items on one line, or one a line: one of the two is ""), each distinct
    text read, checked item by item and sorted as ``LockedPackage`` sorts it, once."""
    texts = tuple(map(max, one_line, one_a_line))  # max: the one that is not ""
    distinct = set(texts)
    known = memo.arrays.get(check, {})
    arrays = {text: _items(text) for text in distinct if text not in known}
    _all_pass(set(itertools.chain.from_iterable(arrays.values())), check)
    normalized = {text: known[text] for text in distinct if text in known}
    normalized.update((text, _sorted_unique(tuple(items))) for text, items in arrays.items())
    learned.arrays[check] = normalized
    return tuple(map(normalized.__getitem__, texts))


def _items(text: str) -> list[str]:
    """The strings of an array as :data:`_ROW` took it: ``"a", "b"`` or ``    "a",\\n    "b",\\n`` (no item holds
    a quote, so splitting at the separators is exact)."""
    if not text:
        return []
    if text[0] == '"':
        return text[1:-1].split('", "')
    return text[5:-3].split('",\n    "')


def _lines(values: Collection[str]) -> str:
    """The values, each followed by a newline."""
    return "\n".join(values) + "\n" if values else ""


_PLAINLY: dict[_Check, str] = {
    # a Debian version as lockfile._version accepts it (its characters, and python-debian's rule that a ':' needs
    # an epoch), as one expression; a version it does not match is checked by _version itself
    _version: r"[0-9]+:[0-9A-Za-z.+~:-]+|[0-9A-Za-z][0-9A-Za-z.+~-]*",
}
"""Expressions that a value matches only if it passes the check (a value that does not match is checked)."""


@functools.cache
def _column_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?:(?:{pattern})\n)*")


def _all_pass(values: set[str], check: _Check) -> None:
    """Every value passes ``check``, else :class:`_Refused`. A check that is one regular expression (or has one in
    :data:`_PLAINLY`) runs once on the values joined by newlines (which no value holds, and no such expression
    matches), in C; only when that fails is each value checked."""
    pattern = _PATTERNS.get(check) or _PLAINLY.get(check)
    plainly = pattern is not None and _column_pattern(pattern).fullmatch(_lines(values)) is not None
    if not plainly and any(check(value) is not None for value in values):
        raise _Refused


def _check_tables(columns: dict[str, tuple[Any, ...]]) -> None:
    """What the strict reader checks in each table alone (``_checked_package``, ``_read_packages``), column by
    column (the array items: :func:`_array_column`)."""
    _all_pass(set(columns["name"]) | set(columns["source"]), _NAME)
    _all_pass(set(columns["version"]) | set(columns["source_version"]), _version)
    _all_pass(set(columns["architecture"]), _ARCH)
    _all_pass(set(columns["component"]) | (set(columns["companion"]) - {None}), _TOKEN)
    filenames = set(columns["filename"])
    if _column_pattern(_PLAIN_PATH.pattern).fullmatch(_lines(filenames)) is None:
        _all_pass({f for f in filenames if _PLAIN_PATH.fullmatch(f) is None}, _relative_path)
    if max((p for p in columns["phased_update_percentage"] if p is not None), default=0) > 100:
        raise _Refused
    if not all(map(_either_nonempty, columns["queries"], columns["required_by"])):
        raise _Refused  # a package no query and no package needs: the strict reader says so


def _either_nonempty(queries: tuple[str, ...], required_by: tuple[str, ...]) -> bool:
    return bool(queries or required_by)


def _check_order(columns: dict[str, tuple[Any, ...]]) -> None:
    """The tables are in ``Lock``'s order (as the writer wrote them) and no (name, version, architecture) is
    locked twice; else the strict reader sorts them, or names the duplicate."""
    names, archs = columns["name"], columns["architecture"]
    keys = list(zip(names, archs, strict=True))
    if all(map(operator.lt, keys, keys[1:])):
        return  # one version of each name and architecture (a whole suite), in order
    if keys != sorted(keys):
        raise _Refused
    if len(set(keys)) < len(keys):  # several versions of one name and architecture: in Lock's order?
        for number, (a, b) in enumerate(itertools.pairwise(keys)):
            if a == b and _package_order(_package(columns, number)) > _package_order(_package(columns, number + 1)):
                raise _Refused
    if len(set(zip(names, columns["version"], archs, strict=True))) != len(names):
        raise _Refused


def _package(columns: dict[str, tuple[Any, ...]], number: int) -> LockedPackage:
    return LockedPackage(*(columns[name][number] for name in PACKAGE_COLUMNS))


_IN_POOL = re.compile(f"pool/{_PLAIN_PATH.pattern}")
"""Paths that plainly pass :func:`~minimirror.lock.lockfile._filename` (others are checked by it)."""


def _check_consistency(
    columns: dict[str, tuple[Any, ...]],
    source: SourcePin,
    components: dict[str, tuple[str, ...]],
    parents: Iterable[tuple[str, ...]],
) -> None:
    """The cross-table rules of ``lockfile._check_consistency``, on whole columns (``parents``: the distinct
    ``required-by`` arrays): a lock that plainly passes them passes; any other is the strict reader's to report."""
    if source.group and source.id not in source.group:
        raise _Refused
    allowed: dict[str | None, tuple[str, ...]] = {None: source.components}
    allowed.update(components)
    pairs = set(zip(columns["companion"], columns["component"], strict=True))
    if any(component not in allowed.get(companion, ()) for companion, component in pairs):
        raise _Refused
    if not set(columns["architecture"]) <= {*source.architectures, "all"}:
        raise _Refused
    if not source.flat and _column_pattern(_IN_POOL.pattern).fullmatch(_lines(columns["filename"])) is None:
        _all_pass({f for f in columns["filename"] if not _IN_POOL.fullmatch(f)}, _filename)
    nodes = list(map("{}/{}".format, columns["name"], columns["architecture"]))
    known = set(nodes)
    if not known.issuperset(itertools.chain.from_iterable(parents)):
        raise _Refused
    if all(columns["queries"]):
        return  # every package is named by a query (a whole suite): every one is reached
    if len(_reachable(nodes, columns["queries"], columns["required_by"])) < len(known):
        raise _Refused
