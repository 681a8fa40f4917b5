"""Dependency resolution: the set of packages apt would install for the queries onto an empty system.

The goal is apt's answer (``apt-get install --no-install-recommends`` with an empty dpkg status), so the
walk follows apt's own marking order (``pkgDepCache::MarkInstall`` in apt-pkg/depcache.cc):

* every package the queries select is marked first, then each one's dependencies are installed depth-first,
  in the order of its ``Pre-Depends`` then ``Depends`` fields;
* an or-group ``a | b`` that an already marked package satisfies needs nothing more; otherwise its first
  alternative that has an installable candidate is taken;
* within one alternative the candidates are ordered as apt's ``CompareProviders`` does: the real package
  first, then providers that are Essential, then ``Important: yes``, then by Priority (required first), then
  the provider whose name apt's cache met later (the higher cache ID: a name is met in other stanzas' relations
  too, not only in its own stanza; see :mod:`minimirror.upstream.mentions`);
* versioned Provides satisfy versioned relations; an unversioned Provides never does (policy 7.5);
* ``Architecture: all`` packages count as native; ``:any`` and ``:native`` qualifiers are honoured; each
  architecture of the source is resolved as the native one in its own pass, and the passes are merged.

Where minimirror differs from apt on purpose: one version per (name, architecture), the newest that meets every
constraint met so far (apt would only try its single candidate); a version kept from the previous lock is
preferred while it still satisfies everything (conservative locking); and an unsatisfiable dependency is an
error that prints the chain from the query line, never a silent drop.

A query that selects by a pattern or a field (``Name (% *)``, ``Priority (optional)``; see
:func:`~minimirror.sources.query.names_packages`) is held to another standard than one that names packages: the
packages it matches that no system can install (:mod:`minimirror.lock.installable`, dose-distcheck's answer) are
left out and listed with the reason (:attr:`Resolution.left_out`), while a named package that cannot be installed
stays an error. Once that set is known, an or-group takes its first alternative that can be installed.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from minimirror.errors import ResolveError
from minimirror.lock.installable import uninstallable
from minimirror.lock.names import matching_names
from minimirror.lock.relations import (
    Alternative,
    Group,
    architectures_for,
    forget_cached,
    parse_relations,
    satisfies,
)
from minimirror.memory import release_freed_memory
from minimirror.package import Package
from minimirror.sources.query import (
    Query,
    compare_versions,
    exact_version,
    names_hint,
    names_packages,
    selects_all_versions,
)

__all__ = ["Following", "LeftOut", "Resolution", "ResolveOptions", "Resolved", "Root", "resolve"]

_MAX_RESTARTS = 200
# apt's pkgCache::State::VerPriority; a package without Priority stays 0 in apt's cache, so it sorts first.
_PRIORITY = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}


class Index(Protocol):
    """What the resolver needs of a package index (see :class:`minimirror.upstream.index.PackageIndex`)."""

    def by_name(self, name: str) -> Sequence[Package]: ...

    def providers(self, name: str) -> Sequence[tuple[Package, str | None]]: ...

    def position(self, package: Package) -> int: ...

    def origin_of(self, package: Package) -> str | None: ...

    def origins_of(self, package: Package) -> tuple[str | None, ...]: ...

    def first_mention(self, name: str, architecture: str) -> tuple[int, ...]: ...

    def names(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Root:
    """One query line: its canonical text (what the lock records) and where it was written (for errors)."""

    text: str
    query: Query
    origin: str = ""
    source: str | None = None
    """In a group of sources resolved together, the source whose packages the query selects among (a query
    selects in its own source, as in the seed); None for a source resolved alone."""


@dataclass(frozen=True, slots=True)
class Following:
    """Which relations of a package are followed (aptly's ``dependencyFollow*``), and what an unsatisfiable
    one does: stop with an error, or (``skip_missing``, aptly's way) leave it out and record it."""

    recommends: bool = False
    suggests: bool = False
    all_variants: bool = False
    skip_missing: bool = False


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    architectures: tuple[str, ...]
    recommends: bool = False
    suggests: bool = False
    all_variants: bool = False
    prefer: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """Versions to keep per (name, architecture) while they still satisfy everything: the previous lock."""
    skip_missing: bool = False
    by_origin: Mapping[str, Following] = field(default_factory=dict)
    """In a group, each source's own settings for the packages that come from it (the fields above are the
    default for a package of no listed source)."""
    root_architectures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """In a group, the architectures each source's queries are resolved for (its own ``architectures``)."""

    def following(self, origin: str | None) -> Following:
        found = self.by_origin.get(origin) if origin is not None else None
        return found or Following(self.recommends, self.suggests, self.all_variants, self.skip_missing)


@dataclass(frozen=True, slots=True)
class Resolved:
    package: Package
    queries: tuple[str, ...]
    required_by: tuple[str, ...]
    missing: tuple[str, ...] = ()
    """Dependencies left out because nothing satisfies them (``missing-dependencies = "skip"``)."""


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A package a pattern or field query matched that cannot be installed, so it is not locked."""

    package: Package
    queries: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Resolution:
    packages: tuple[Resolved, ...]
    left_out: tuple[LeftOut, ...] = ()
    """What the selecting queries matched but no system can install (see :mod:`minimirror.lock.installable`)."""


def resolve(index: Index, roots: Sequence[Root], options: ResolveOptions) -> Resolution:
    """Resolve ``roots`` against ``index`` for every architecture in ``options``; deterministic."""
    queries: dict[Package, AbstractSet[str]] = {}
    required_by: dict[Package, AbstractSet[str]] = {}
    missing: dict[Package, AbstractSet[str]] = {}
    left_out: dict[Package, tuple[set[str], str]] = {}
    # Queries that only name packages need the installability check only when a walk fails without it (an
    # or-group whose first alternative cannot be installed): most locks then never pay for it.
    selecting = any(not names_packages(root.query) for root in roots)
    for architecture in options.architectures:
        forced: dict[tuple[str, str], str] = {}
        picks, broken = _broken(index, roots, architecture, options) if selecting else ({}, None)
        for _ in range(_MAX_RESTARTS):
            walk = _Walk(index, architecture, options, forced, broken=broken or {}, picks=picks if not forced else {})
            try:
                walk.run(roots)
                break
            except _Restart as restart:
                forced[restart.key] = restart.version
            except ResolveError as exc:
                if broken is None:
                    picks, broken = _broken(index, roots, architecture, options)
                    continue
                # the installability check misses a conflict only a choice shows: leave that root out and retry
                found = walk.lenient_pick(exc.chain)
                if found is None:
                    raise
                broken[found] = exc.message
        else:
            raise ResolveError(f"no stable set of versions for {architecture} after {_MAX_RESTARTS} tries")
        _merge(queries, walk.queries)
        _merge(required_by, walk.required_by)
        _merge(missing, walk.missing)
        for package, (texts, reason) in walk.left_out.items():
            left_out.setdefault(package, (set(), reason))[0].update(texts)
        del walk  # its marks and constraints, a whole suite's worth: not kept beside the Resolution
    forget_cached()  # a whole suite's parsed relations: not kept while the lock is written
    ordered = sorted(set(queries) | set(required_by), key=_sort_key)
    for package in ordered:  # an ``all`` package that installs on another of the architectures is locked there
        left_out.pop(package, None)
    return Resolution(
        tuple(
            Resolved(
                package,
                tuple(sorted(queries.get(package, ()))),
                tuple(sorted(required_by.get(package, ()))),
                tuple(sorted(missing.get(package, ()))),
            )
            for package in ordered
        ),
        tuple(
            LeftOut(package, tuple(sorted(texts)), reason)
            for package, (texts, reason) in sorted(left_out.items(), key=lambda item: _sort_key(item[0]))
        ),
    )


def _merge(into: dict[Package, AbstractSet[str]], found: Mapping[Package, AbstractSet[str]]) -> None:
    """Add one pass's texts per package; a package's set is taken as it is (not copied) when it is new, as with a
    single architecture every one is."""
    for package, texts in found.items():
        known = into.get(package)
        into[package] = texts if known is None else known | texts


def _broken(
    index: Index, roots: Sequence[Root], architecture: str, options: ResolveOptions
) -> tuple[dict[Root, list[Package]], dict[Package, str]]:
    """What each root selects (before any restart), and the packages that selects (and what they may pull in)
    that cannot be installed, with the reason."""
    walk = _Walk(index, architecture, options, {}, broken={}, picks={})
    picks = {root: walk._select(root) for root in roots if walk.wants(root)}
    broken = uninstallable(
        index,
        [package for selected in picks.values() for package in selected],
        architecture,
        skips_missing=lambda p: options.following(index.origin_of(p)).skip_missing,
    )
    release_freed_memory()  # the check's graph is gone: its pages back before the walk builds its own
    return picks, broken


_VERSION_KEY = functools.cmp_to_key(compare_versions)


def _sort_key(package: Package) -> tuple[str, str, Any]:
    return (package.name, package.architecture, _VERSION_KEY(package.version))


class _Restart(Exception):
    """A version chosen earlier cannot meet a later constraint, but another version meets them all."""

    def __init__(self, key: tuple[str, str], version: str) -> None:
        super().__init__(f"{key}: {version}")
        self.key = key
        self.version = version


class _Walk:
    """One resolution pass for one native architecture, marking packages as apt's MarkInstall would."""

    def __init__(
        self,
        index: Index,
        architecture: str,
        options: ResolveOptions,
        forced: Mapping[tuple[str, str], str],
        *,
        broken: Mapping[Package, str],
        picks: Mapping[Root, list[Package]],
    ) -> None:
        self.index = index
        self.broken = broken
        self.picks = picks
        """What each root selects, when already known (a pass before any restart selects the same)."""
        self.left_out: dict[Package, tuple[set[str], str]] = {}
        self.lenient: list[tuple[str, list[Package]]] = []
        """What each selecting query picked (its text, the packages): :meth:`lenient_pick` looks there."""
        self.native = architecture
        self.options = options
        self.forced = forced
        self.marked: dict[tuple[str, str], Package] = {}
        self.extra: set[Package] = set()
        self.provided: dict[str, list[tuple[Package, str | None]]] = defaultdict(list)
        self.constraints: dict[tuple[str, str], list[tuple[Alternative, Package]]] = defaultdict(list)
        self.queries: dict[Package, frozenset[str]] = {}
        """The query texts that selected each package: equal sets are one object (a selection of a whole suite
        gives 63,000 packages the same one)."""
        self._texts: dict[frozenset[str], frozenset[str]] = {}
        self.required_by: dict[Package, set[str]] = defaultdict(set)
        self.missing: dict[Package, set[str]] = defaultdict(set)
        self.expanded: set[Package] = set()

    # --- roots ---------------------------------------------------------------------------------------------

    def wants(self, root: Root) -> bool:
        """Whether the root's source is mirrored for this pass's architecture."""
        return root.source is None or self.native in self.options.root_architectures.get(root.source, (self.native,))

    def run(self, roots: Sequence[Root]) -> None:
        selected: list[tuple[Package, Root]] = []
        named: list[tuple[Package, Root]] = []
        for root in roots:
            if not self.wants(root):
                continue  # that source is not mirrored for this architecture
            picks = self.picks[root] if root in self.picks else self._select(root)
            if not picks:
                raise ResolveError(
                    f"{root.origin + ': ' if root.origin else ''}the query {root.text!r} matches no package "
                    f"for {self.native}{self._epoch_hint(root)}",
                    [f"query: {root.text}"],
                )
            if names_packages(root.query):
                named.extend((package, root) for package in picks)
            else:  # a selection: what cannot be installed is listed, not locked
                for package in picks:
                    if package in self.broken:
                        self.left_out.setdefault(package, (set(), self.broken[package]))[0].add(root.text)
                picks = [package for package in picks if package not in self.broken]
                self.lenient.append((root.text, picks))
            selected.extend((package, root) for package in picks)
        for package, root in selected:
            self._add_query(package, root.text)
            self._mark(package)
        first_root: dict[Package, Root] = {}
        for package, root in selected:
            first_root.setdefault(package, root)
        for package in sorted(first_root, key=self.index.position):
            self._install_dependencies(package, [f"query: {first_root[package].text}", str(package)])
        for package, root in named:  # the walk follows Depends only; a conflict it cannot see is still an error
            if package in self.broken:
                raise ResolveError(
                    f"{root.origin + ': ' if root.origin else ''}{package} cannot be installed: {self.broken[package]}",
                    [f"query: {root.text}", str(package)],
                )

    def lenient_pick(self, chain: Sequence[str]) -> Package | None:
        """The package a selecting query picked whose dependencies an error's ``chain`` starts from, if any."""
        if len(chain) < 2:
            return None
        for text, picks in self.lenient:
            if chain[0] == f"query: {text}":
                found = next((package for package in picks if str(package) == chain[1]), None)
                if found is not None:
                    return found
        return None

    def _add_query(self, package: Package, text: str) -> None:
        texts = self.queries.get(package, frozenset()) | {text}
        self.queries[package] = self._texts.setdefault(texts, texts)

    def _select(self, root: Root) -> list[Package]:
        matching = [p for p in self._root_candidates(root) if root.query.matches(p)]
        if selects_all_versions(root.query):
            return sorted(matching, key=self.index.position)
        newest: dict[tuple[str, str], Package] = {}
        for package in matching:  # by_name order is newest first, so the first seen per key wins
            key = (package.name, package.architecture)
            preferred = self._preferred_version(key)
            if key not in newest or (preferred is not None and package.version == preferred):
                newest[key] = package
        hint = names_hint(root.query)
        real = [p for p in newest.values() if hint is None or p.name in hint]
        if real or hint is None:
            return sorted(real, key=self.index.position)
        providers = self._order_providers([(p, None) for p in newest.values()], target=None)
        return providers[:1]

    def _root_candidates(self, root: Root) -> Iterable[Package]:
        hint = names_hint(root.query)
        names = sorted(hint) if hint is not None else None
        pool: Iterable[Package]
        if names is None:  # a pattern or a field: only the names it can match are read (all, for ``Name (% *)``)
            pool = (
                package
                for name in matching_names(root.query, self.index.names(), self._provider_names)
                for package in self.index.by_name(name)
            )
        else:
            pool = [p for name in names for p in self.index.by_name(name)]
            pool += [p for name in names for p, _ in self.index.providers(name)]
        return (
            p
            for p in pool
            if p.architecture in (self.native, "all")
            and (root.source is None or root.source in self.index.origins_of(p))
        )

    def _provider_names(self, name: str) -> list[str]:
        return [package.name for package, _ in self.index.providers(name)]

    def _epoch_hint(self, root: Root) -> str:
        """``(= 20.10.9~3-0~ubuntu-bionic)`` that would match ``5:20.10.9~3-0~ubuntu-bionic``: say so."""
        wanted = exact_version(root.query)
        if wanted is None or ":" in wanted[1]:
            return ""
        name, version = wanted
        epochs = sorted({p.version for p in self.index.by_name(name) if p.version.partition(":")[2] == version})
        if not epochs:
            return ""
        return f"; {name} has {', '.join(epochs)}: the version needs its epoch, e.g. {name} (= {epochs[0]})"

    # --- marking ---------------------------------------------------------------------------------------------

    def _mark(self, package: Package) -> None:
        key = (package.name, package.architecture)
        current = self.marked.get(key)
        if current is not None and current != package:
            self.extra.add(package)  # a field query asked for several versions
            return
        self.marked[key] = package
        provides = package.field("Provides")
        if provides:
            for group in parse_relations(provides):
                for alternative in group:
                    self.provided[alternative.name].append((package, alternative.version))

    def _install_dependencies(self, package: Package, chain: list[str]) -> None:
        if package in self.expanded:
            return
        self.expanded.add(package)
        following = self.options.following(self.index.origin_of(package))
        node = f"{package.name}/{package.architecture}"  # one string for all its edges: a suite has 300,000
        for group, critical in self._relations(package, following):
            for alternative in group:
                self.constraints[self._key_for(alternative)].append((alternative, package))
            satisfier = self._satisfier(group)
            if satisfier is not None and not following.all_variants:
                self.required_by[satisfier].add(node)
                continue
            chosen = self._choose(group, every=following.all_variants)
            if not chosen:
                if satisfier is not None:
                    continue
                if critical and following.skip_missing:
                    self.missing[package].add(" | ".join(str(a) for a in group))
                elif critical:
                    self._fail(group, chain)
                continue
            for candidate in chosen:
                self.required_by[candidate].add(node)
                if candidate in self.expanded or (self._is_marked(candidate) and candidate in self.expanded):
                    continue
                self._mark(candidate)
                self._install_dependencies(candidate, [*chain, str(candidate)])

    def _relations(self, package: Package, following: Following) -> Iterable[tuple[Group, bool]]:
        fields = [("Pre-Depends", True), ("Depends", True)]
        if following.recommends:
            fields.append(("Recommends", False))
        if following.suggests:
            fields.append(("Suggests", False))
        for name, critical in fields:
            text = package.field(name)
            if text:
                for group in parse_relations(text):
                    yield group, critical

    def _is_marked(self, package: Package) -> bool:
        return self.marked.get((package.name, package.architecture)) == package or package in self.extra

    # --- satisfaction ------------------------------------------------------------------------------------------

    def _arches(self, alternative: Alternative) -> tuple[str, ...]:
        return architectures_for(alternative, self.native)

    def _key_for(self, alternative: Alternative) -> tuple[str, str]:
        return (alternative.name, self._arches(alternative)[0])

    def _satisfier(self, group: Group) -> Package | None:
        for alternative in group:
            arches = self._arches(alternative)
            for arch in arches:
                marked = self.marked.get((alternative.name, arch))
                if marked is not None and satisfies(marked.version, alternative.op, alternative.version):
                    return marked
            for provider, provided_version in self.provided.get(alternative.name, ()):
                if provider.architecture in arches and satisfies(provided_version, alternative.op, alternative.version):
                    return provider
        return None

    def _choose(self, group: Group, *, every: bool) -> list[Package]:
        chosen: list[Package] = []
        for alternative in group:
            candidates = self._candidates(alternative)
            if not candidates:
                continue
            if every:
                chosen.append(candidates[0])
                continue
            usable = [c for c in candidates if c not in self.broken]
            if usable:  # the first alternative that can be installed, where apt's problem resolver ends
                return usable[:1]
            chosen = chosen or candidates[:1]  # nothing installable: the first, whose walk names the problem
        return chosen

    def _candidates(self, alternative: Alternative) -> list[Package]:
        arches = self._arches(alternative)
        real = self._real_candidate(alternative, arches)
        providers: list[tuple[Package, str | None]] = []
        seen: set[tuple[str, str]] = set()
        for provider, provided_version in self.index.providers(alternative.name):
            key = (provider.name, provider.architecture)
            if provider.architecture not in arches or key in seen or provider.name == alternative.name:
                continue
            if not satisfies(provided_version, alternative.op, alternative.version):
                continue
            if not self._acceptable_version(provider):
                continue
            seen.add(key)
            providers.append((provider, provided_version))
        ordered = self._order_providers(providers, target=alternative.name)
        return ([real] if real is not None else []) + ordered

    def _acceptable_version(self, package: Package) -> bool:
        """Whether ``package`` is the version this walk would use for its (name, arch)."""
        key = (package.name, package.architecture)
        marked = self.marked.get(key)
        if marked is not None:
            return marked == package
        versions = [p for p in self.index.by_name(package.name) if p.architecture == package.architecture]
        wanted = self.forced.get(key) or self._preferred_version(key)
        if wanted is not None and any(p.version == wanted for p in versions):
            return package.version == wanted
        return bool(versions) and versions[0] == package

    def _real_candidate(self, alternative: Alternative, arches: tuple[str, ...]) -> Package | None:
        for arch in arches:
            key = (alternative.name, arch)
            versions = [p for p in self.index.by_name(alternative.name) if p.architecture == arch]
            if not versions:
                continue
            marked = self.marked.get(key)
            if marked is not None:
                if satisfies(marked.version, alternative.op, alternative.version):
                    return marked
                self._maybe_restart(key, versions, alternative)
                return None
            forced = self.forced.get(key)
            ordered = self._preference_order(key, versions, forced)
            for package in ordered:
                if satisfies(package.version, alternative.op, alternative.version):
                    return package
        return None

    def _preference_order(self, key: tuple[str, str], versions: list[Package], forced: str | None) -> list[Package]:
        wanted = forced or self._preferred_version(key)
        if wanted is None:
            return versions
        return sorted(versions, key=lambda p: p.version != wanted)  # stable: newest-first otherwise

    def _preferred_version(self, key: tuple[str, str]) -> str | None:
        return self.forced.get(key) or self.options.prefer.get(key)

    def _maybe_restart(self, key: tuple[str, str], versions: list[Package], alternative: Alternative) -> None:
        """A marked version misses this constraint: restart with the newest version that meets all of them."""
        constraints = [c for c, _ in self.constraints[key]] + [alternative]
        for package in versions:
            if all(satisfies(package.version, c.op, c.version) for c in constraints):
                if self.forced.get(key) != package.version:
                    raise _Restart(key, package.version)
                return

    def _order_providers(self, providers: Sequence[tuple[Package, str | None]], target: str | None) -> list[Package]:
        def rank(package: Package) -> tuple[bool, bool, int]:
            essential = (package.field("Essential") or "").strip().lower() == "yes"
            important = (package.field("Important") or "").strip().lower() == "yes"
            return (not essential, not important, _PRIORITY.get((package.field("Priority") or "").strip().lower(), 0))

        def compare(one: tuple[Package, str | None], other: tuple[Package, str | None]) -> int:
            if ranks[one[0]] != ranks[other[0]]:
                return -1 if ranks[one[0]] < ranks[other[0]] else 1
            # apt's last rule: the higher cache ID. Looked up only for a tie, as finding it costs a byte search.
            first, second = (self.index.first_mention(item[0].name, self.native) for item in (one, other))
            return (first < second) - (first > second)

        ranks = {package: rank(package) for package, _ in providers}
        return [package for package, _ in sorted(providers, key=functools.cmp_to_key(compare))]

    def _fail(self, group: Group, chain: list[str]) -> None:
        wanted = " | ".join(str(a) for a in group)
        details = []
        missing = []
        for alternative in group:
            key = self._key_for(alternative)
            marked = self.marked.get(key)
            if marked is not None:
                others = [f"{c} (from {origin})" for c, origin in self.constraints[key] if c != alternative]
                details.append(
                    f"{marked} is already chosen" + (f"; also required: {', '.join(others)}" if others else "")
                )
            elif not self.index.by_name(alternative.name) and not self.index.providers(alternative.name):
                details.append(f"no package {alternative.name} in the index")
                missing.append(alternative.name)
            else:
                details.append(f"no version of {alternative.name} for {self.native} satisfies {alternative}")
        raise ResolveError(
            f"cannot satisfy {wanted}: {'; '.join(details)}",
            [*chain, f"needs {wanted}"],
            missing=missing,
        )
