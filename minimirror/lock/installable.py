"""Which packages cannot be installed at all: the answer ``dose-distcheck`` gives, for the packages a pattern
or field query selects (``Name (% *)`` takes every package of a suite, and every real suite has some that no
system can install: ``console-setup-freebsd`` needs the kFreeBSD-only ``vidcontrol``).

A package is installable when each of its ``Pre-Depends``/``Depends`` groups has an alternative with an
installable candidate (any version, real or provided, of an allowed architecture; Debian Policy §7.1, §7.5).
Cycles are fine (apt installs both ends), so the installable set is the *greatest* fixpoint: start from every
package reachable from the selection, drop each one with a group nothing satisfies, and drop what needed only
dropped packages, until nothing changes (a work list over reverse dependencies: linear in the relations).

Conflicts and Breaks make the general question NP-complete (dose-distcheck runs a SAT solver). Here they are
checked where no choice is left: the packages a package *must* install (the groups with exactly one installable
candidate, followed transitively) must not conflict with each other. A conflict that shows only through a choice
between alternatives is not found; on Debian 12 main (amd64) the result equals dose-distcheck's, package for
package (``tests/lock/test_installable.py``). dose-distcheck itself is an OCaml program a mirror host may lack,
and takes ~45 s on that index; this takes a second or two, so it is written here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from minimirror.lock.relations import Alternative, Group, architectures_for, parse_relations, satisfies
from minimirror.package import Package

__all__ = ["uninstallable"]


class _Index(Protocol):
    def by_name(self, name: str) -> Sequence[Package]: ...

    def providers(self, name: str) -> Sequence[tuple[Package, str | None]]: ...


def uninstallable(
    index: _Index,
    selected: Iterable[Package],
    native: str,
    *,
    skips_missing: Callable[[Package], bool] = lambda package: False,
) -> dict[Package, str]:
    """The packages among ``selected`` and their possible dependencies that cannot be installed on ``native``,
    each with the reason (one line). ``skips_missing(p)`` says that ``p``'s source leaves out dependencies nothing
    satisfies (``missing-dependencies = "skip"``), so such a group does not make ``p`` uninstallable."""
    graph = _Graph(index, native)
    graph.close(selected)
    broken: dict[int, str] = {}
    fresh = graph.missing(skips_missing)
    while fresh:
        broken.update(fresh)
        graph.propagate(broken, dict(fresh))
        fresh = graph.forced_conflicts(broken)
    return {graph.packages[number]: reason for number, reason in sorted(broken.items())}


class _Graph:
    """The packages reachable from the selection through any alternative, with their groups' candidates.

    Packages are numbered as they are met and handled by number: hashing a Package (a dataclass of three strings)
    millions of times was most of the cost on a whole suite. A group's candidates are found once per distinct
    group (``libc6 (>= 2.34)`` recurs thousands of times) and the pair is shared by every package that has it;
    a reverse edge is one int (``user << _GROUP_BITS | position``), not a tuple: on a whole suite they are
    hundreds of thousands."""

    def __init__(self, index: _Index, native: str) -> None:
        self.index = index
        self.native = native
        self.packages: list[Package] = []
        self.numbers: dict[Package, int] = {}
        self.groups: list[tuple[tuple[Group, tuple[int, ...]], ...]] = []
        self.users: dict[int, list[int]] = defaultdict(list)
        self._by_group: dict[Group, tuple[Group, tuple[int, ...]]] = {}
        self._candidates: dict[Alternative, tuple[int, ...]] = {}
        self._pairs: list[tuple[int, int, str]] | None = None

    def number(self, package: Package) -> int:
        found = self.numbers.get(package)
        if found is None:
            found = self.numbers[package] = len(self.packages)
            self.packages.append(package)
        return found

    def close(self, selected: Iterable[Package]) -> None:
        todo = [self.number(p) for p in selected]
        while todo:
            number = todo.pop()
            if number < len(self.groups) and self.groups[number] is not _PENDING:
                continue
            while len(self.groups) <= number:
                self.groups.append(_PENDING)
            package = self.packages[number]
            groups = tuple(group for field in ("Pre-Depends", "Depends") for group in self._field(package.field(field)))
            self.groups[number] = groups
            for position, (_, found) in enumerate(groups):
                for candidate in found:
                    self.users[candidate].append(number << _GROUP_BITS | position)
                    if candidate >= len(self.groups) or self.groups[candidate] is _PENDING:
                        todo.append(candidate)
        while len(self.groups) < len(self.packages):  # met only as candidates of nothing: none left
            self.groups.append(_PENDING)

    def _field(self, text: str | None) -> tuple[tuple[Group, tuple[int, ...]], ...]:
        return tuple(map(self._pair, parse_relations(text))) if text else ()

    def _pair(self, group: Group) -> tuple[Group, tuple[int, ...]]:
        found = self._by_group.get(group)
        if found is None:
            candidates = tuple(dict.fromkeys(c for alternative in group for c in self.candidates(alternative)))
            found = self._by_group[group] = (group, candidates)
        return found

    def candidates(self, alternative: Alternative) -> tuple[int, ...]:
        """Every version, real or provided, that satisfies ``alternative`` for this architecture."""
        found = self._candidates.get(alternative)
        if found is None:
            arches = architectures_for(alternative, self.native)
            real = [
                p
                for p in self.index.by_name(alternative.name)
                if p.architecture in arches and satisfies(p.version, alternative.op, alternative.version)
            ]
            provided = [
                p
                for p, version in self.index.providers(alternative.name)
                if p.architecture in arches and satisfies(version, alternative.op, alternative.version)
            ]
            found = self._candidates[alternative] = tuple(dict.fromkeys(map(self.number, real + provided)))
        return found

    def missing(self, skips_missing: Callable[[Package], bool]) -> dict[int, str]:
        broken: dict[int, str] = {}
        for number, groups in enumerate(self.groups):
            for group, found in groups:
                if not found and not skips_missing(self.packages[number]):
                    broken[number] = f"needs {_text(group)}, which no package of {self.native} or all satisfies"
                    break
        return broken

    def propagate(self, broken: dict[int, str], causes: dict[int, str]) -> None:
        """Drop every package one of whose groups has no installable candidate left once the packages of ``causes``
        (already in ``broken``; each with its first reason) are gone: the fixpoint, over reverse dependencies. A
        dropped package's reason names the dependency it lost and the first cause, not the whole chain."""
        left: dict[int, int] = {}
        todo = list(causes)
        while todo:
            gone = todo.pop()
            for edge in self.users.get(gone, ()):
                user, position = edge >> _GROUP_BITS, edge & _GROUP_MASK
                if user in broken:
                    continue
                group, found = self.groups[user][position]
                count = left.get(edge)
                if count is None:
                    count = sum(c not in broken for c in found) + 1  # this one was counted out already
                left[edge] = count = count - 1
                if count == 0:
                    causes[user] = causes[gone]
                    broken[user] = f"needs {_text(group)}: {self.packages[gone]} cannot be installed ({causes[gone]})"
                    todo.append(user)

    def forced_conflicts(self, broken: dict[int, str]) -> dict[int, str]:
        """Installable-looking packages whose unavoidable dependencies conflict with each other (or with them)."""
        needed_by: dict[int, list[int]] = defaultdict(list)  # reverse edges of "must install"
        for number, groups in enumerate(self.groups):
            if number in broken:
                continue
            for _, found in groups:
                if len(found) == 1:  # most groups: one candidate, so no list to build
                    if found[0] not in broken:
                        needed_by[found[0]].append(number)
                    continue
                usable = [c for c in found if c not in broken]
                if len(usable) == 1:
                    needed_by[usable[0]].append(number)
        ancestors: dict[int, set[int]] = {}
        conflicting: dict[int, str] = {}
        for one, other, relation in self._conflict_pairs(broken):
            for number in sorted(_ancestors(one, needed_by, ancestors) & _ancestors(other, needed_by, ancestors)):
                if number not in conflicting:
                    first, second = self.packages[one], self.packages[other]
                    conflicting[number] = f"must install {first} and {second}, but {first} conflicts with {relation}"
        return conflicting

    def _conflict_pairs(self, broken: dict[int, str]) -> list[tuple[int, int, str]]:
        """Every (package, package it conflicts with or breaks, relation) among the packages not broken."""
        if self._pairs is None:  # read once; a later round only drops the pairs of newly broken packages
            self._pairs = self._all_conflict_pairs()
        return [
            (one, other, relation) for one, other, relation in self._pairs if one not in broken and other not in broken
        ]

    def _all_conflict_pairs(self) -> list[tuple[int, int, str]]:
        pairs = []
        order = sorted(range(len(self.packages)), key=lambda n: self.packages[n].key)  # stable first reasons
        for number in order:
            if self.groups[number] is _PENDING:
                continue
            package = self.packages[number]
            for field in ("Conflicts", "Breaks"):
                text = package.field(field)
                for group in parse_relations(text) if text else ():
                    for alternative in group:
                        for other in self.candidates(alternative):
                            if (
                                other < len(self.groups)
                                and self.groups[other] is not _PENDING
                                and self.packages[other].name != package.name
                            ):
                                pairs.append((number, other, str(alternative)))
        return pairs


# A group's position among its package's Pre-Depends and Depends groups: far below 2**32 (a field is at most a
# few MiB); the packages' numbers go above it. Such an int takes no more memory than one below 2**60.
_GROUP_BITS = 32
_GROUP_MASK = (1 << _GROUP_BITS) - 1

_PENDING: tuple[tuple[Group, tuple[int, ...]], ...] = ((((),), ()),)  # type: ignore[assignment]
"""The groups of a package not read yet (an identity marker, never a real value)."""


def _ancestors(number: int, needed_by: dict[int, list[int]], memo: dict[int, set[int]]) -> set[int]:
    """``number`` and every package that must install it."""
    found = memo.get(number)
    if found is None:
        found = {number}
        todo = [number]
        while todo:
            for parent in needed_by.get(todo.pop(), ()):
                if parent not in found:
                    found.add(parent)
                    todo.append(parent)
        memo[number] = found
    return found


def _critical(package: Package) -> Iterable[Group]:
    for field in ("Pre-Depends", "Depends"):
        text = package.field(field)
        if text:
            yield from parse_relations(text)


def _text(group: Group) -> str:
    return " | ".join(str(alternative) for alternative in group)
