"""apt's cache order of package names: which of two names apt met first while it built its cache.

apt ends a tie between two providers of a virtual package (``pkgDepCache::CompareProviders`` in
apt-pkg/depcache.cc, after Essential, ``Important: yes`` and Priority) with ``A->ID > B->ID``: the package with
the *higher* cache ID wins. ``pkgCacheGenerator`` hands a package ID out when it first meets a (name,
architecture) while reading the index files in ``sources.list`` order (components, then architectures), the
dpkg status last. Within each stanza (``debListParser::NewVersion``) it meets:

1. the stanza's own ``Package`` name;
2. the names in its relationship fields, in this fixed order whatever the order of the text: ``Pre-Depends``,
   ``Depends``, ``Conflicts``, ``Breaks``, ``Recommends``, ``Suggests``, ``Replaces``, ``Enhances``, each
   left to right, ``|`` alternatives included;
3. the names in ``Provides``.

A relation creates the package of the stanza's architecture (``all`` stanzas count as the native one); ``foo:ARCH``
creates ``foo`` for ARCH; ``foo:any`` creates a pseudo package ``foo:any``, not ``foo``. A stanza whose (name,
version, architecture) apt has already read (from an earlier file, or earlier in the same one) is merged into
that version, and its relations are not read again.

So a name's ID follows its :class:`FirstMention`. Finding it by parsing every relation of 63,000 stanzas would
cost a lock about a second, so it is found lazily, for the names a tie compares: a byte search for the name
over the raw stanzas (:func:`stanzas_naming`, one search over the parsed cache's records when the part has them),
then an exact look at each stanza it finds (:func:`mention_in`), going on when the hit was not a mention.

Approximations kept: apt merges a repeated version only when its relationship fields hash the same, which is
assumed here (the same version with other relations in two files of one archive is an inconsistency minimirror
refuses elsewhere); a ``Multi-Arch: foreign`` package's implicit Provides for the other architectures, and
apt's order of a multi-architecture source's ``binary-<arch>`` files, are not modelled (the parts' order is used).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from debian.deb822 import PkgRelation

from minimirror.package import Package
from minimirror.upstream._stanzas import Record, StanzaFields

__all__ = ["RELATION_FIELDS", "FirstMention", "RawText", "mention_in", "stanzas_naming"]

RELATION_FIELDS = ("Pre-Depends", "Depends", "Conflicts", "Breaks", "Recommends", "Suggests", "Replaces", "Enhances")
"""The relationship fields in the order apt's cache reads them (``debListParser::NewVersion``)."""

_FIELDS = (*RELATION_FIELDS, "Provides")
# Bytes that can touch a package name inside a longer word, or a path/file name (``pool/main/n/name/name_1.0``):
# a hit next to one of them is not a relation on that name, so the exact look is skipped.
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-_/")


class FirstMention(NamedTuple):
    """Where apt's cache first meets a name: ordered as the IDs it hands out (lower first)."""

    part: int
    """The index file, in the order apt reads them."""
    stanza: int
    """The first stanza of that file that names it."""
    field: int
    """0: the stanza's own ``Package`` line; then 1 + the place in :data:`RELATION_FIELDS`; Provides last."""
    position: int
    """The name's place among the names of that field, left to right."""


@runtime_checkable
class RawText(Protocol):
    """Entries that keep every stanza's raw text in one buffer, in file order (the parsed cache's records):
    one byte search over it costs a fraction of a search stanza by stanza."""

    def raw_text(self) -> tuple[memoryview, Sequence[int]] | None:
        """The buffer and the ``len + 1`` offsets of the entries in it; None when it cannot be trusted."""


def stanzas_naming(entries: Sequence[Package | Record], name: str, end: int) -> Iterator[int]:
    """The numbers, below ``end`` and in file order, of the entries whose text holds ``name`` as a whole
    word: a prefilter (a hit may be in a description); :func:`mention_in` decides."""
    needle = name.encode()
    text = entries.raw_text() if isinstance(entries, RawText) else None
    if text is None:
        for number in range(min(end, len(entries))):
            raw = _raw(entries[number])
            if needle in raw and _whole_word(raw, needle):
                yield number
        return
    buffer, offsets = text
    search = re.compile(re.escape(needle)).search  # a pure literal: re's fast search, unlike any look-around
    stop = offsets[min(end, len(entries))]
    start = 0
    while (hit := search(buffer, start, stop)) is not None:
        if not _boundaries(buffer, hit.start(), hit.end()):
            start = hit.start() + 1
            continue
        number = bisect.bisect_right(offsets, hit.start()) - 1
        yield number
        start = offsets[number + 1]  # the exact look covers the whole stanza: go on with the next one


def mention_in(package: Package, name: str, architecture: str) -> tuple[int, int] | None:
    """``(field, position)`` of the first place the stanza of ``package`` makes apt meet ``name`` for
    ``architecture`` (see :class:`FirstMention`), or None when it does not."""
    native = package.architecture in (architecture, "all")
    if native and package.name == name:
        return (0, 0)
    for rank, field in enumerate(_FIELDS, 1):
        value = package.field(field)
        if not value or name not in value:
            continue
        named = (item for group in PkgRelation.parse_relations(value) for item in group)
        for position, item in enumerate(named):
            if item["name"] == name and _creates(item["archqual"], native=native, architecture=architecture):
                return (rank, position)
    return None


def _creates(qualifier: str | None, *, native: bool, architecture: str) -> bool:
    """Whether a relation with this architecture qualifier creates the package of ``architecture``."""
    if qualifier is None or qualifier == "native":
        return native
    return qualifier == architecture  # "any" makes the pseudo package name:any


def _raw(entry: Package | Record) -> bytes:
    if type(entry) is tuple:
        return entry[4]
    assert isinstance(entry, Package)
    if isinstance(entry.fields, StanzaFields):
        return entry.fields.raw
    lines = [f"{key}: {value}" for key, value in entry.fields.items()]
    return "\n".join([f"Package: {entry.name}", *lines]).encode()


def _whole_word(raw: bytes, needle: bytes) -> bool:
    at = raw.find(needle)
    while at >= 0:
        if _boundaries(raw, at, at + len(needle)):
            return True
        at = raw.find(needle, at + 1)
    return False


def _boundaries(text: bytes | memoryview, begin: int, end: int) -> bool:
    return (begin == 0 or text[begin - 1] not in _WORD) and (end == len(text) or text[end] not in _WORD)
