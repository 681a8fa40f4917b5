"""The lock stage: sources tree -> verified upstream indices -> resolution -> ``locks/<prefix>/<name>.lock``.

This is the one place that wires the stages together for ``minimirror lock``, ``lock --check``, ``search`` and
``why``; the CLI and the notebooks call these functions and nothing else. Each function takes a frozen config
and returns a frozen report; the network is behind the ``httpx.Client`` it is given (or makes).

Source packages (aptly's ``dependencyFollowSource``/``downloadSourcePackages``, either one): the source package
``(Source, source version)`` of every locked binary (for a binNMU ``Source: x (1.2-3)`` of binary ``1.2-3+b1``, the
version in parentheses) is looked up in the components' verified ``Sources`` indices and locked with its files
(:func:`lock_sources`, pure); one that is missing is a :class:`~minimirror.errors.ResolveError`.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import httpx

from minimirror.atomic import disk_errors
from minimirror.errors import ArchiveError, LockError, MinimirrorError, ResolveError
from minimirror.filelock import cache_lock
from minimirror.lock.lockfile import (
    CompanionPin,
    LeftOutPackage,
    Lock,
    LockedPackage,
    LockedSource,
    LockedSourceFile,
    SourcePin,
    lock_path,
    pool_path_problem,
    read_lock,
    read_lock_source,
    upstream_pin,
    write_lock,
)
from minimirror.lock.names import matching_names
from minimirror.lock.resolve import Following, Resolution, Resolved, ResolveOptions, Root, resolve
from minimirror.memory import collector_paused, release_freed_memory
from minimirror.package import DEFAULT_PIN_PRIORITY, Package
from minimirror.sources.groups import SourceGroup, group_inputs, group_of, source_groups
from minimirror.sources.query import Query, parse_query
from minimirror.sources.tree import MINIMIRROR_TOML, Source, Suite, load_sources, normalized_inputs
from minimirror.upstream.archive import FLAT_COMPONENT, IndexFile, Snapshot, Upstream, open_snapshot
from minimirror.upstream.cache import Cache
from minimirror.upstream.download import Downloader, make_client
from minimirror.upstream.index import IndexPart, PackageIndex
from minimirror.upstream.indexcache import load_index_part
from minimirror.upstream.phasing import phased_update_percentage
from minimirror.upstream.source_packages import SourceEntry, SourcesIndex, parse_sources

__all__ = [
    "LockConfig",
    "LockOutcome",
    "LockReport",
    "SearchHit",
    "StaleLock",
    "check_locks",
    "inputs_sha256",
    "load_sources_index",
    "lock",
    "lock_sources",
    "open_source",
    "search",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LockConfig:
    sources_dir: Path
    locks_dir: Path
    cache_dir: Path
    offline: bool = False
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    """Source ids (``prefix/name``) to work on; empty means every source."""
    environ: Mapping[str, str] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LockOutcome:
    source_id: str
    path: Path
    changed: bool
    packages: int
    total_size: int
    upstream_date: datetime
    left_out: tuple[LeftOutPackage, ...] = ()
    """What the source's selecting queries matched but cannot be installed (also in the lock)."""


@dataclass(frozen=True, slots=True)
class LockReport:
    outcomes: tuple[LockOutcome, ...]


@dataclass(frozen=True, slots=True)
class StaleLock:
    source_id: str
    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class SearchHit:
    source_id: str
    package: Package
    component: str


def inputs_sha256(source: Source) -> str:
    """The hash a lock records of its inputs: CRLF, comments, blank lines and line order do not change it."""
    return hashlib.sha256(normalized_inputs(source).encode("utf-8")).hexdigest()


def _inputs_sha256(group: SourceGroup | None, source: Source) -> str:
    """:func:`inputs_sha256`, or in a group the hash of every member's inputs (see ``group_inputs``)."""
    if group is None or not group.linked:
        return inputs_sha256(source)
    return hashlib.sha256(group_inputs(group, source).encode("utf-8")).hexdigest()


def upstream_of(source: Source, suite: Suite | None = None) -> Upstream:
    """The archive client's view of one suite of the source (default: its release suite)."""
    chosen = suite if suite is not None else source.suites[0]
    return Upstream(
        url=chosen.url,
        key_url=chosen.key_url,
        dist=chosen.dist,
        components=chosen.components,
        architectures=source.settings.architectures,
        verify=not source.settings.gpg_disable_verify,
        allow_expired=source.settings.allow_expired,
        sources=wants_sources(source),
    )


def wants_sources(source: Source) -> bool:
    """Whether the source mirrors source packages: aptly's ``dependencyFollowSource`` or
    ``downloadSourcePackages`` (minimirror gives both one meaning: the source of every locked binary)."""
    return source.settings.follow_source or source.settings.download_source_packages


def load_sources_index(snapshots: Sequence[Snapshot], cache: Cache) -> SourcesIndex:
    """The source packages of the snapshots' verified (cached) ``Sources`` indices: the release suite's first,
    then each companion's (its entries marked with the companion's dist)."""
    return SourcesIndex(
        replace(entry, companion=_companion(number, snapshot))
        for number, snapshot in enumerate(snapshots)
        for index in snapshot.source_indices
        for entry in _source_entries(snapshot, index, cache)
    )


def _companion(number: int, snapshot: Snapshot) -> str | None:
    """How the lock names the suite of ``snapshots[number]``: None for the release suite (the first), else its dist."""
    return snapshot.upstream.dist if number else None


def _source_entries(snapshot: Snapshot, index: IndexFile, cache: Cache) -> tuple[SourceEntry, ...]:
    name = f"{snapshot.upstream.dist_url}{index.path}"
    return parse_sources(cache.blob_path(index.sha256), name=name, component=index.component)


def open_source(
    source: Source, *, downloader: Downloader | None, cache: Cache
) -> tuple[tuple[Snapshot, ...], PackageIndex]:
    """Verify each suite of the source (the release suite first, then its companions) and load their indices
    as one (parsed once per index sha256, then cached), as apt reads several sources.list lines: a package
    is found in whichever suite has it, the newest version wins, the release suite's copy of a shared one."""
    snapshots, parts = _source_parts(source, downloader=downloader, cache=cache)
    return snapshots, PackageIndex(parts)


def _source_parts(
    source: Source, *, downloader: Downloader | None, cache: Cache, origin: str | None = None
) -> tuple[tuple[Snapshot, ...], list[IndexPart]]:
    """The verified snapshots of the source's suites and their indices, each part marked with its suite (and,
    in a group, its source and pin priority)."""
    snapshots = tuple(
        open_snapshot(upstream_of(source, suite), downloader=downloader, cache=cache) for suite in source.suites
    )
    parts = [
        replace(
            load_index_part(
                cache.blob_path(index.sha256),
                index.sha256,
                cache.parsed_dir,
                component=index.component,
                name=f"{snapshot.upstream.dist_url}{index.path}",
            ),
            companion=_companion(number, snapshot),
            origin=origin,
            priority=source.settings.pin_priority,
        )
        for number, snapshot in enumerate(snapshots)
        for index in snapshot.indices
    ]
    return snapshots, parts


@contextmanager
def _downloader(offline: bool) -> Iterator[Downloader | None]:
    if offline:
        yield None
        return
    with make_client() as client:
        yield Downloader(client)


def _selected_sources(config: LockConfig) -> tuple[Source, ...]:
    return _select(load_sources(config.sources_dir, environ=config.environ), config)


def _select(sources: tuple[Source, ...], config: LockConfig) -> tuple[Source, ...]:
    if not config.only:
        return sources
    known = {source.source_id for source in sources}
    unknown = sorted(set(config.only) - known)
    if unknown:
        raise LockError(f"no source {', '.join(unknown)} in {config.sources_dir} (it has: {', '.join(sorted(known))})")
    return tuple(source for source in sources if source.source_id in config.only)


def lock(config: LockConfig, *, client: httpx.Client | None = None) -> LockReport:
    """Lock every selected source, a group of sources resolved together as one (selecting one source of a
    group locks the whole group: what one of them needs can change the others' locks); each lock is written
    atomically, and only when its bytes change."""
    everything = load_sources(config.sources_dir, environ=config.environ)
    selected = {source.source_id for source in _select(everything, config)}
    groups = [group for group in source_groups(everything) if selected & set(group.ids)]
    cache = Cache(config.cache_dir)
    outcomes: list[LockOutcome] = []
    guard = disk_errors(cache.root, cleanup=cache.drop_partials)  # a full cache: one message, no partial left
    with cache_lock(config.cache_dir), guard, _client_downloader(client, config.offline) as downloader:
        for group in groups:
            try:
                # one source's (or group's) index, check, walk and lock are millions of acyclic objects that live
                # until it is written: the cyclic collector would only re-read them (see minimirror.memory)
                with collector_paused():
                    if group.linked:
                        outcomes.extend(_lock_group(group, config, downloader, cache))
                    else:
                        outcomes.append(_lock_source(group.members[0], config, downloader, cache))
            except ResolveError as exc:
                raise _with_hint(exc, group, everything, downloader, cache) from exc
    return LockReport(tuple(outcomes))


@contextmanager
def _client_downloader(client: httpx.Client | None, offline: bool) -> Iterator[Downloader | None]:
    if client is not None and not offline:
        yield Downloader(client)
        return
    with _downloader(offline) as downloader:
        yield downloader


def _lock_source(source: Source, config: LockConfig, downloader: Downloader | None, cache: Cache) -> LockOutcome:
    path = lock_path(config.locks_dir, source.source_id)
    previous = _previous_lock(path) if not config.upgrade else None
    snapshots, index = open_source(source, downloader=downloader, cache=cache)
    try:
        resolution = resolve(index, _roots(source), _options(source, previous, config.upgrade_packages))
    except ResolveError as exc:
        raise exc.with_message(f"{source.source_id}: {exc.message}") from exc
    new = _build_lock(source, snapshots, index, resolution)
    del index, resolution  # a whole suite's packages: not kept while the lock is checked and written
    return _write(source, path, _with_source_packages(source, new, snapshots, cache))


def _lock_group(
    group: SourceGroup, config: LockConfig, downloader: Downloader | None, cache: Cache
) -> list[LockOutcome]:
    """Resolve every query of every source of the group against all of their indices at once, as apt does
    with all of the group's lines in one sources.list, then lock each package with the source it came from."""
    # The members' archives are read side by side: downloads, gpgv and the xz child wait outside the GIL, so a
    # third-party source's few small files cost nothing beside the distribution's big index.
    with ThreadPoolExecutor(max_workers=len(group.members), thread_name_prefix="open-source") as pool:
        futures = {
            member.source_id: pool.submit(
                _source_parts, member, downloader=downloader, cache=cache, origin=member.source_id
            )
            for member in group.members
        }
        opened = {source_id: future.result() for source_id, future in futures.items()}  # errors in member order
    index = PackageIndex([part for member in group.members for part in opened[member.source_id][1]])
    paths = {member.source_id: lock_path(config.locks_dir, member.source_id) for member in group.members}
    previous = [] if config.upgrade else [_previous_lock(path) for path in paths.values()]
    roots = [  # a query is named with its source, as a package's reasons must say whose query it was
        replace(root, text=f"{member.source_id}:{root.text}", source=member.source_id)
        for member in group.members
        for root in _roots(member)
    ]
    try:
        resolution = resolve(index, roots, _group_options(group, previous, config.upgrade_packages))
    except ResolveError as exc:
        raise exc.with_message(f"{group}: {exc.message}") from exc
    origins = {f"{r.package.name}/{r.package.architecture}": index.origin_of(r.package) for r in resolution.packages}
    outcomes = []
    for member in group.members:
        snapshots = opened[member.source_id][0]
        own = tuple(
            _qualified(r, member.source_id, origins)
            for r in resolution.packages
            if index.origin_of(r.package) == member.source_id
        )
        prefix = f"{member.source_id}:"
        left_out = tuple(  # listed in the lock of the source whose query matched it
            replace(item, queries=tuple(q.removeprefix(prefix) for q in item.queries if q.startswith(prefix)))
            for item in resolution.left_out
            if any(q.startswith(prefix) for q in item.queries)
        )
        new = _build_lock(member, snapshots, index, Resolution(own, left_out), group=group)
        outcomes.append(_write(member, paths[member.source_id], _with_source_packages(member, new, snapshots, cache)))
    return outcomes


def _qualified(resolved: Resolved, source_id: str, origins: Mapping[str, str | None]) -> Resolved:
    """A package's reasons as its own source's lock writes them: its own queries and packages plain, another
    source's as ``<source id>:<query>`` and ``<source id>:<name>/<arch>``."""
    own = f"{source_id}:"
    queries = tuple(query.removeprefix(own) for query in resolved.queries)
    parents = tuple(
        parent if origins.get(parent, source_id) == source_id else f"{origins[parent]}:{parent}"
        for parent in resolved.required_by
    )
    return replace(resolved, queries=queries, required_by=parents)


def _with_source_packages(source: Source, new: Lock, snapshots: Sequence[Snapshot], cache: Cache) -> Lock:
    if not snapshots[0].source_indices:
        return new
    try:
        where = " and ".join(s.upstream.dist_url for s in snapshots)
        sources = lock_sources(new.packages, load_sources_index(snapshots, cache), where=where)
    except ResolveError as exc:
        raise exc.with_message(f"{source.source_id}: {exc.message}") from exc
    return replace(new, source_packages=sources)


def _write(source: Source, path: Path, new: Lock) -> LockOutcome:
    release_freed_memory()  # the index and the walk are gone: their pages back before the text is made
    changed = write_lock(path, new)
    log.info("%s: %d packages, %s", source.source_id, len(new.packages), "written" if changed else "unchanged")
    return LockOutcome(
        source_id=source.source_id,
        path=path,
        changed=changed,
        packages=len(new.packages),
        total_size=sum(p.size for p in new.packages),
        upstream_date=max(pin.date for pin in new.upstream_pins()),
        left_out=new.left_out,
    )


def _with_hint(
    exc: ResolveError, group: SourceGroup, everything: Sequence[Source], downloader: Downloader | None, cache: Cache
) -> ResolveError:
    """The error, with the sources of the tree that have what is missing and the ``resolve-with`` line that
    would bring them in (aptly would silently drop the dependency; a mirror that cannot install is worse)."""
    if not exc.missing:
        return exc
    having: dict[str, list[str]] = {}
    for other in everything:
        if other.source_id in group.ids:
            continue
        try:
            _, index = open_source(other, downloader=downloader, cache=cache)
        except MinimirrorError as problem:  # only a hint: a source that cannot be read now is left out of it
            log.debug("not looking in %s for the hint: %s", other.source_id, problem)
            continue
        for name in exc.missing:
            if index.by_name(name) or index.providers(name):
                having.setdefault(name, []).append(other.source_id)
    if not having:
        return exc
    member = _member_of_chain(exc, group)
    wanted = sorted({*member.settings.resolve_with, *(i for ids in having.values() for i in ids)})
    listed = "; ".join(f"{', '.join(ids)} {'have' if len(ids) > 1 else 'has'} {name}" for name, ids in having.items())
    line = "resolve-with = [" + ", ".join(f'"{i}"' for i in wanted) + "]"
    hint = (
        f"{exc.message}\nhint: {listed}. If the machines that use {member.source_id} also use "
        f"{'them' if len(wanted) > 1 else 'it'}, resolve them together: put\n    {line}\n"
        f"in {member.directory / MINIMIRROR_TOML}"
    )
    return exc.with_message(hint)


def _member_of_chain(exc: ResolveError, group: SourceGroup) -> Source:
    """The source whose query line the error's chain starts from (the group's first if that is unclear)."""
    first = exc.chain[0].removeprefix("query: ") if exc.chain else ""
    for member in group.members:
        if first.startswith(f"{member.source_id}:") or any(line.canonical == first for line in member.queries):
            return member
    return group.members[0]


def _previous_lock(path: Path) -> Lock | None:
    if not path.is_file():
        return None
    try:
        return read_lock(path)
    except LockError as exc:
        log.warning("ignoring the unreadable previous lock (%s); resolving afresh", exc)
        return None


def _roots(source: Source) -> list[Root]:
    seen: dict[str, Root] = {}
    for line in source.queries:
        seen.setdefault(line.canonical, Root(line.canonical, line.query, origin=f"{line.path}:{line.line}"))
    return [seen[text] for text in sorted(seen)]


def _preferred(previous: Sequence[Lock | None], upgrade_packages: Sequence[str]) -> dict[tuple[str, str], str]:
    """The versions the previous locks hold, to keep while they still satisfy everything (conservative)."""
    prefer: dict[tuple[str, str], str] = {}
    upgrading = set(upgrade_packages)
    for lock in previous:
        for package in lock.packages if lock is not None else ():
            if package.name not in upgrading and package.source not in upgrading:
                prefer.setdefault((package.name, package.architecture), package.version)
    return prefer


def _following(source: Source) -> Following:
    settings = source.settings
    return Following(
        recommends=settings.follow_recommends,
        suggests=settings.follow_suggests,
        all_variants=settings.follow_all_variants,
        skip_missing=settings.missing_dependencies == "skip",
    )


def _options(source: Source, previous: Lock | None, upgrade_packages: Sequence[str]) -> ResolveOptions:
    following = _following(source)
    return ResolveOptions(
        architectures=source.settings.architectures,
        recommends=following.recommends,
        suggests=following.suggests,
        all_variants=following.all_variants,
        prefer=_preferred([previous], upgrade_packages),
        skip_missing=following.skip_missing,
    )


def _group_options(
    group: SourceGroup, previous: Sequence[Lock | None], upgrade_packages: Sequence[str]
) -> ResolveOptions:
    """Every architecture of the group; each source's own dependencyFollow* and missing-dependencies for the
    packages that come from it, and its own architectures for its queries."""
    architectures = tuple(dict.fromkeys(a for member in group.members for a in member.settings.architectures))
    return ResolveOptions(
        architectures=architectures,
        prefer=_preferred(previous, upgrade_packages),
        by_origin={member.source_id: _following(member) for member in group.members},
        root_architectures={member.source_id: member.settings.architectures for member in group.members},
    )


def _build_lock(
    source: Source,
    snapshots: Sequence[Snapshot],
    index: PackageIndex,
    resolution: Resolution,
    *,
    group: SourceGroup | None = None,
) -> Lock:
    snapshot, *companions = snapshots
    linked = group is not None and group.linked
    priority = source.settings.pin_priority
    pin = SourcePin(
        id=source.source_id,
        url=snapshot.upstream.base,
        key_url=source.key_url,
        dist=source.dist,
        components=source.components or (FLAT_COMPONENT,),  # a flat repository's one, unnamed component
        architectures=source.settings.architectures,
        inputs_sha256=_inputs_sha256(group, source),
        queries=tuple(line.canonical for line in source.queries),
        group=group.ids if group is not None and linked else (),
        pin_priority=None if priority == DEFAULT_PIN_PRIORITY else priority,
    )
    packages = tuple(_locked(resolved, index, where=snapshot.upstream.dist_url) for resolved in resolution.packages)
    companion_pins = tuple(
        CompanionPin(c.upstream.base, suite.key_url, suite.dist, suite.components, upstream_pin(c))
        for c, suite in zip(companions, source.companions, strict=True)
    )
    left_out = tuple(
        LeftOutPackage(item.package.name, item.package.version, item.package.architecture, item.queries, item.reason)
        for item in resolution.left_out
    )
    return Lock(
        source=pin, upstream=upstream_pin(snapshot), packages=packages, companions=companion_pins, left_out=left_out
    )


def _locked(resolved: Resolved, index: PackageIndex, *, where: str) -> LockedPackage:
    package = resolved.package

    def need(name: str) -> str:
        value = package.field(name)
        if not value:
            raise ArchiveError(f"{package}: the index gives no {name}; a package without it cannot be locked")
        return value.strip()

    component = index.component_of(package)
    flat = component == FLAT_COMPONENT
    filename = need("Filename").removeprefix("./") if flat else need("Filename")
    problem = pool_path_problem(filename, flat=flat)
    if problem is not None:
        raise ArchiveError(
            f"{where}: {package} in {component}/binary-{package.architecture} has a Filename that could leave the "
            f"archive's pool: {problem}. The signed index is broken or hostile; nothing was written. "
            "Report it to the archive's maintainers, or leave the package out of packages.txt."
        )
    size = need("Size")
    if not size.isdigit():
        raise ArchiveError(f"{package}: Size {size!r} is not a number")
    return LockedPackage(
        name=package.name,
        version=package.version,
        architecture=sys.intern(package.architecture),  # values many packages share: one object each
        component=component,
        filename=filename,
        size=int(size),
        sha256=need("SHA256").lower(),
        source=sys.intern(package.source_name),
        source_version=sys.intern(package.source_version),
        queries=resolved.queries,
        required_by=resolved.required_by,
        companion=index.companion_of(package),
        phased_update_percentage=phased_update_percentage(package, where=where),
        missing=resolved.missing,
    )


def lock_sources(packages: Sequence[LockedPackage], index: SourcesIndex, *, where: str) -> tuple[LockedSource, ...]:
    """The source package of every locked binary, found in ``index`` by (Source, source version), with the
    binaries that need it. Pure. A missing one is a :class:`ResolveError` naming the binary and the source."""
    needed: dict[tuple[str, str], list[LockedPackage]] = {}
    for package in packages:
        needed.setdefault((package.source, package.source_version), []).append(package)
    locked = []
    for (name, version), binaries in sorted(needed.items()):
        entry = index.find(name, version, component=binaries[0].component, companion=binaries[0].companion)
        if entry is None:
            binary = binaries[0]
            raise ResolveError(
                f"{binary.name} {binary.version} ({binary.architecture}) is built from the source package "
                f"{name} {version}, which is not in the Sources indices of {where}. The archive is missing it "
                "(or is mid-sync: try again later); or turn off dependencyFollowSource/downloadSourcePackages.",
                (f"{binary.name}/{binary.architecture}", f"source {name} {version}"),
            )
        files = tuple(LockedSourceFile(f.name, f.size, f.sha256) for f in entry.files)
        nodes = tuple(p.node for p in binaries)
        locked.append(
            LockedSource(entry.name, entry.version, entry.component, entry.directory, files, nodes, entry.companion)
        )
    return tuple(locked)


def check_locks(config: LockConfig) -> tuple[StaleLock, ...]:
    """Every lock that is missing or whose inputs changed since it was written (in a group: the inputs of any
    of its sources); no network needed."""
    stale = []
    everything = load_sources(config.sources_dir, environ=config.environ)
    groups = source_groups(everything)
    sources = _select(everything, config)
    for source in sources:
        path = lock_path(config.locks_dir, source.source_id)
        if not path.is_file():
            stale.append(StaleLock(source.source_id, path, "no lock; run `minimirror lock`"))
            continue
        try:
            recorded = read_lock_source(path).inputs_sha256
        except MinimirrorError as exc:
            stale.append(StaleLock(source.source_id, path, f"unreadable: {exc}"))
            continue
        group = group_of(groups, source.source_id)
        if recorded != _inputs_sha256(group, source):
            what = f"of a source in its group ({group}) " if group.linked else ""
            stale.append(StaleLock(source.source_id, path, f"packages.txt, source.txt or settings {what}changed since"))
    if not config.only:
        wanted = {lock_path(config.locks_dir, s.source_id) for s in sources}
        for orphan in sorted(config.locks_dir.glob("*/*.lock")) if config.locks_dir.is_dir() else ():
            if orphan not in wanted:
                stale.append(StaleLock(orphan.parent.name + "/" + orphan.stem, orphan, "no such source any more"))
    return tuple(stale)


def search(config: LockConfig, query_text: str) -> tuple[SearchHit, ...]:
    """Packages of the selected sources that match a query, sorted by (name, version, architecture)."""
    query = parse_query(query_text)
    cache = Cache(config.cache_dir)
    hits: list[SearchHit] = []
    # It writes the cache (indices, their parsed form) like lock does, so it holds the cache's lock too.
    with cache_lock(config.cache_dir), _downloader(config.offline) as downloader:
        for source in _selected_sources(config):
            _, index = open_source(source, downloader=downloader, cache=cache)
            hits.extend(
                SearchHit(source.source_id, package, index.component_of(package))
                for package in _search_pool(index, query)
                if query.matches(package)
            )
    return tuple(hits)


def _search_pool(index: PackageIndex, query: Query) -> Iterator[Package]:
    """The packages of the names the query can match (:mod:`minimirror.lock.names`), in the index's order: only
    those are read from the parsed cache."""
    for name in matching_names(query, index.names(), lambda wanted: [p.name for p, _ in index.providers(wanted)]):
        yield from index.by_name(name)
