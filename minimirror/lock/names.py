"""Which package names a query can match, told from the names alone: ``search`` and a selecting query then read
only those packages from the index instead of all 63,000 of a suite (``Name (% nginx*)`` reads a dozen).

A package-style term (``nginx``) matches the package of that name and every package that provides it (Policy 7.5),
a reference (``nginx_1.22.1-9_amd64``) one name, ``Name``/``Package`` with a condition the names that meet it; ``,``
needs only one operand to narrow, ``|`` needs every operand to, and ``!`` or any other field narrows nothing. The
answer only narrows: the caller still matches each package of the names against the whole query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from minimirror.package import Package
from minimirror.sources.query import And, FieldTerm, Or, PackageTerm, Query, ReferenceTerm

__all__ = ["NameTest", "matching_names", "name_test"]

NameTest = Callable[[str], bool]
"""Whether a package of that name can match the query."""

_NAME_FIELDS = ("Name", "Package")


def name_test(query: Query, provided_by: Callable[[str], Iterable[str]]) -> NameTest | None:
    """A test on names that every package the query matches passes, or None when the query can match any name.
    ``provided_by(name)`` gives the names of the packages that provide ``name``."""
    if isinstance(query, PackageTerm):
        return frozenset({query.name, *provided_by(query.name)}).__contains__
    if isinstance(query, ReferenceTerm):
        return frozenset({query.name}).__contains__
    if isinstance(query, FieldTerm):
        term = query
        narrows = term.field in _NAME_FIELDS and term.condition is not None
        return (lambda name: term.matches(Package(name, "", ""))) if narrows else None  # it reads only the name
    if isinstance(query, And | Or):
        return _combined(query, [name_test(operand, provided_by) for operand in query.operands])
    return None


def _combined(query: And | Or, tests: list[NameTest | None]) -> NameTest | None:
    known = [test for test in tests if test is not None]
    if isinstance(query, And):
        return (lambda name: all(test(name) for test in known)) if known else None
    return (lambda name: any(test(name) for test in known)) if len(known) == len(tests) else None


def matching_names(query: Query, names: Sequence[str], provided_by: Callable[[str], Iterable[str]]) -> Sequence[str]:
    """The names among ``names`` (in their order) that packages the query matches may have."""
    test = name_test(query, provided_by)
    return names if test is None else [name for name in names if test(name)]
