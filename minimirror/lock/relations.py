"""Package relationship fields (``Depends``, ``Pre-Depends``, ``Recommends``…; Debian Policy §7.1, §7.5).

python-debian parses the field text; this module turns its dicts into small typed values and answers the one
question both the resolver and ``verify`` ask: does a version (or a Provides) satisfy a relation?
"""

from __future__ import annotations

import functools
import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from debian.deb822 import PkgRelation
from debian.debian_support import Version

from minimirror.sources.query import debian_version

__all__ = ["Alternative", "Group", "architectures_for", "forget_cached", "parse_relations", "satisfies"]

# Policy 7.1: "<" and ">" are deprecated spellings of "<=" and ">=".
_LEGACY = {"<": "<=", ">": ">="}


@dataclass(frozen=True, slots=True)
class Alternative:
    """One alternative of an or-group: ``name[:archqual] (op version)``."""

    name: str
    op: str | None = None
    version: str | None = None
    archqual: str | None = None

    def __str__(self) -> str:
        qualifier = f":{self.archqual}" if self.archqual else ""
        return f"{self.name}{qualifier} ({self.op} {self.version})" if self.op else f"{self.name}{qualifier}"


Group = tuple[Alternative, ...]


# python-debian's own separators (``PkgRelation.parse_relations`` splits the field with these before it parses
# each alternative): splitting here first lets the parse of one or-group be cached, since a suite's 610,000 groups
# are 100,000 distinct texts (``libc6 (>= 2.34)``) while its 56,000 relation fields rarely recur.
_COMMA = re.compile(r"\s*,\s*")
_PIPE = re.compile(r"\s*\|\s*")


def parse_relations(text: str) -> tuple[Group, ...]:
    """The or-groups of a relationship field, as python-debian parses them. Groups of equal text are the same
    object (a whole suite's relations then take a fraction of the memory)."""
    return tuple(map(_group, _COMMA.split(text.strip())))


@functools.lru_cache(maxsize=1 << 17)
def _group(text: str) -> Group:
    return tuple(map(_alternative, _PIPE.split(text)))


# The shape nearly every alternative of a binary index has, ``name[:archqual] [(op version)]``: python-debian's own
# pattern (``PkgRelation.__dep_RE``, on the stripped text) without its architecture list and build restrictions,
# which only source packages' Build-Depends carry. Matching it here costs a regex match where python-debian's call
# (its splits, dicts and helpers) cost 0.6 s over a suite's 100,000 distinct alternatives; any other text still
# goes to python-debian, so what is parsed, and how, does not change (tests/lock/test_relations.py).
_PLAIN = re.compile(
    r"([a-zA-Z0-9][a-zA-Z0-9.+\-]*)(?::([a-zA-Z0-9][a-zA-Z0-9-]*))?"
    r"(?:\s*\(\s*([>=<]+)\s*([0-9a-zA-Z:\-+~.]+)\s*\))?"
)


def _alternative(text: str) -> Alternative:
    """One alternative (no ``,`` or ``|`` in ``text``), parsed as python-debian parses it; names and versions
    interned."""
    plain = _PLAIN.fullmatch(text.strip())
    if plain is not None:
        name, archqual, op, version = plain.groups()
        return Alternative(
            sys.intern(name),
            None if op is None else _LEGACY.get(op, op),
            None if version is None else sys.intern(version),
            None if archqual is None else sys.intern(archqual),
        )
    ((item,),) = PkgRelation.parse_relations(text)
    constraint = item.get("version")
    op, version = (_LEGACY.get(constraint[0], constraint[0]), constraint[1]) if constraint else (None, None)
    archqual = item.get("archqual")
    return Alternative(
        sys.intern(item["name"]),
        op,
        None if version is None else sys.intern(version),
        None if archqual is None else sys.intern(archqual),
    )


@functools.lru_cache(maxsize=1 << 16)  # pure; a suite asks ``2.36-9+deb12u10 >= 2.34`` thousands of times
def satisfies(version: str | None, op: str | None, wanted: str | None) -> bool:
    """Whether ``version`` meets ``(op wanted)``; no constraint is always met, and a missing version (an
    unversioned Provides) never meets a versioned one (Policy 7.5). An invalid version meets nothing."""
    if op is None or wanted is None:
        return True
    relation = _RELATIONS.get(op)
    if version is None or relation is None:
        return False
    try:
        return relation(debian_version(version), debian_version(wanted))
    except ValueError:
        return False


# One comparison of python-debian's versions each, where -1/0/1 (compare_versions) costs it two for "not less":
# the installability check of a whole suite compares 21,000 pairs, in pure Python.
_RELATIONS: dict[str, Callable[[Version, Version], bool]] = {
    "<<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">=": operator.ge,
    ">>": operator.gt,
}


def forget_cached() -> None:
    """Drop the parsed groups and the answers of :func:`satisfies`: after a whole suite's resolution they hold
    ≈40 MiB that nothing needs any more, and pin memory the lock's writing would otherwise reuse."""
    _group.cache_clear()
    satisfies.cache_clear()


def architectures_for(alternative: Alternative, native: str) -> tuple[str, ...]:
    """The architectures whose packages may satisfy ``alternative`` for a package of ``native``:
    native and ``all`` unless the relation names an architecture (``:any``/``:native`` stay native here)."""
    if alternative.archqual in (None, "any", "native"):
        return (native, "all")
    return (alternative.archqual,)
