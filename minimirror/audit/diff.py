"""What changed between two sets of locks, classified for a reviewer: pure, no I/O.

Implements the review step of the pipeline (``locks/ --diff/audit--> tables, PR comment``) over the values of
lockfile schema 1 (``docs/lockfile.md``, "What a diff shows"); the kinds and formats are documented in
``docs/audit.md``. Versions are ordered as Debian orders them (Debian Policy 5.6.12, via python-debian).

Two kinds of change come out of :func:`diff_locks`:

- :class:`TrustChange`: the chain of trust of a source, shown first because it decides whether anything below
  it can be believed: a source added or removed, its URL, key URL, dist, components or architectures changed,
  the fingerprints that signed the upstream Release (``signed-by``), the Release's origin, label, suite,
  codename, version, date, the inputs hash and the query lines; the sources it resolves with (``group``) and
  its ``pin-priority``; and a package that moved from one source's lock to another's (``origin of
  name/arch``: it now comes from another archive, signed by another key).
- :class:`PackageChange`: one per (source id, package name, architecture, version) that differs. ``rebuilt``
  (the same version with another sha256 or size) is what a compromised or silently rebuilt upstream looks
  like, and is flagged, as is ``downgraded``.

Pairing rule: the versions of one (source, name, architecture) are compared as sets. A version in both sides
is ``rebuilt`` (other sha256 or size), ``moved`` (other component or pool filename) or unchanged (omitted).
When each side locks exactly one version and they differ, that is one ``upgraded`` or ``downgraded`` change;
when either side locks several (field queries keep several versions), each version that left is ``removed``
and each that arrived is ``added``: with ``{24.0.9, 24.0.10} -> {24.0.10, 24.0.11}`` calling 24.0.9 -> 24.0.11
an upgrade would hide that 24.0.10 stayed, and any other pairing would be a guess.

Source packages (``[[source-package]]``, opt-in per source) are compared by (source id, name, version):
:class:`SourcePackageChange` says ``added``, ``removed`` or ``rebuilt`` (same version, other files or hashes:
flagged, like a rebuilt binary). They are in the model (``LockDiff.source_packages``, ``source_counts``); the
table, markdown and JSON renderings (``minimirror.audit.render``) do not show them yet.

:attr:`LockDiff.changelogs` is ``None`` from :func:`diff_locks`; :func:`minimirror.audit.explain.explain` fills it
with one :class:`~minimirror.audit.changelog.SourceChangelog` per source package (the entries and CVEs of its
change), and every rendering then shows them; without it every output is exactly what it was.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from debian.debian_support import version_compare

from minimirror.audit.changelog import URGENCIES, SourceChangelog
from minimirror.lock.lockfile import CompanionPin, Lock, LockedPackage, LockedSource, SourcePin, UpstreamPin
from minimirror.lock.locktable import LockTable, as_table

__all__ = [
    "CHANGELOG_COLUMNS",
    "DATAFRAME_COLUMNS",
    "KINDS",
    "Kind",
    "LockDiff",
    "PackageChange",
    "SourceKind",
    "SourcePackageChange",
    "TrustChange",
    "added_chains",
    "diff_locks",
]

Kind = Literal["rebuilt", "downgraded", "added", "removed", "upgraded", "moved"]
KINDS: tuple[Kind, ...] = get_args(Kind)
"""Every kind of package change, in the order a reviewer should read them (flagged kinds first)."""

SourceKind = Literal["rebuilt", "added", "removed"]
"""How a source package changed, in reading order (flagged first)."""
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)

FLAGGED_KINDS: frozenset[Kind] = frozenset({"rebuilt", "downgraded"})

DATAFRAME_COLUMNS = (
    "source",
    "package",
    "architecture",
    "kind",
    "old_version",
    "new_version",
    "old_size",
    "new_size",
    "size_delta",
    "source_package",
    "reason",
    "flagged",
)
CHANGELOG_COLUMNS = ("cves", "urgency", "security_suite", "changelog_status", "changelog")
"""The columns :meth:`LockDiff.to_dataframe` adds when the diff's changelogs were read."""


def _short(values: tuple[str, ...]) -> str:
    """Values for a person: a sha256 shortened to 12 digits (the JSON output keeps it whole)."""
    shown = [f"{value[:12]}…" if re.fullmatch(r"[0-9a-f]{64}", value) else value for value in values]
    return " ".join(shown) or "(none)"


@dataclass(frozen=True, slots=True)
class TrustChange:
    """One field of a source's chain of trust that differs (``field`` as the lockfile names it).

    ``old`` and ``new`` are the values as text; one item for a scalar, the sorted items for an array field
    (``signed-by``, ``components``...), empty for a source that is absent on that side. ``field`` is
    ``"source"`` when the whole source was added or removed."""

    source: str
    field: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    flagged: bool
    is_set: bool = False

    @property
    def added(self) -> tuple[str, ...]:
        """Items of an array field that are new (the whole new value for a scalar)."""
        return tuple(item for item in self.new if item not in self.old)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(item for item in self.old if item not in self.new)

    @property
    def description(self) -> str:
        """``old -> new`` for a scalar, ``+added -removed`` for an array field."""
        if self.field == "source":
            return "source added" if self.new else "source REMOVED"
        if self.is_set:
            return " ".join([*(f"+{item}" for item in self.added), *(f"-{item}" for item in self.removed)])
        return f"{_short(self.old)} -> {_short(self.new)}"


@dataclass(frozen=True, slots=True)
class PackageChange:
    """One package version that differs between the sides; ``old`` or ``new`` is ``None`` when absent."""

    source: str
    name: str
    architecture: str
    kind: Kind
    old: LockedPackage | None
    new: LockedPackage | None

    @property
    def flagged(self) -> bool:
        return self.kind in FLAGGED_KINDS

    @property
    def old_version(self) -> str:
        return self.old.version if self.old else ""

    @property
    def new_version(self) -> str:
        return self.new.version if self.new else ""

    @property
    def old_size(self) -> int:
        return self.old.size if self.old else 0

    @property
    def new_size(self) -> int:
        return self.new.size if self.new else 0

    @property
    def size_delta(self) -> int:
        return self.new_size - self.old_size

    @property
    def source_package(self) -> str:
        present = self.new or self.old
        assert present is not None
        return present.source

    @property
    def reason(self) -> str:
        """Why the package is (or was) locked: its query lines, else the packages that depend on it."""
        present = self.new or self.old
        assert present is not None
        if present.queries:
            return "; ".join(f"query: {query}" for query in present.queries)
        return "required by " + ", ".join(present.required_by) if present.required_by else ""

    @property
    def detail(self) -> str:
        """What exactly differs, for the kinds where the versions alone do not say it."""
        if self.old is None or self.new is None:
            return ""
        fields = ("sha256", "size", "component", "filename")
        return ", ".join(f for f in fields if getattr(self.old, f) != getattr(self.new, f))

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """Source, source package, name, architecture; versions of one name keep :func:`diff_locks`'s order
        (the sort is stable): same-version changes by version text, then the others in Debian order."""
        return (self.source, self.source_package, self.name, self.architecture)

    def row(self) -> dict[str, Any]:
        """The change as one row of :meth:`LockDiff.to_dataframe` (keys: :data:`DATAFRAME_COLUMNS`)."""
        return {
            "source": self.source,
            "package": self.name,
            "architecture": self.architecture,
            "kind": self.kind,
            "old_version": self.old_version or None,
            "new_version": self.new_version or None,
            "old_size": self.old_size if self.old else None,
            "new_size": self.new_size if self.new else None,
            "size_delta": self.size_delta,
            "source_package": self.source_package,
            "reason": self.reason,
            "flagged": self.flagged,
        }


@dataclass(frozen=True, slots=True)
class SourcePackageChange:
    """One source package (name, version) of one source that was added, removed or rebuilt (other files)."""

    source: str
    name: str
    version: str
    kind: SourceKind
    size_delta: int

    @property
    def flagged(self) -> bool:
        return self.kind == "rebuilt"


@dataclass(frozen=True, slots=True)
class LockDiff:
    """Every difference between two sets of locks, sorted: trust changes by (source, field), package changes
    by (source, source package, name, architecture, version)."""

    trust: tuple[TrustChange, ...]
    packages: tuple[PackageChange, ...]
    old_sources: tuple[str, ...] = ()
    new_sources: tuple[str, ...] = ()
    new_source_packages: tuple[tuple[str, str], ...] = ()
    """(source id, source package) of packages added from a source package the old side did not have."""
    source_packages: tuple[SourcePackageChange, ...] = ()
    """Changes to the locked source packages (opt-in per source), by (source, name, version)."""
    changelogs: tuple[SourceChangelog, ...] | None = None
    """One changelog per (source, source package) with an explained change, sorted; ``None`` when not read."""

    @property
    def is_empty(self) -> bool:
        return not self.trust and not self.packages and not self.source_packages

    def source_counts(self) -> dict[SourceKind, int]:
        """How many source package changes of each kind, every kind present."""
        return {kind: sum(1 for c in self.source_packages if c.kind == kind) for kind in SOURCE_KINDS}

    @property
    def size_delta(self) -> int:
        """Bytes the mirror grows by (negative when it shrinks)."""
        return sum(change.size_delta for change in self.packages)

    def counts(self) -> dict[Kind, int]:
        """How many package changes of each kind, every kind present, in :data:`KINDS` order."""
        return {kind: sum(1 for change in self.packages if change.kind == kind) for kind in KINDS}

    def of_kind(self, kind: Kind) -> tuple[PackageChange, ...]:
        return tuple(change for change in self.packages if change.kind == kind)

    def flagged(self) -> tuple[PackageChange, ...]:
        """The package changes a reviewer must look at: rebuilt (same version, new hash), then downgraded."""
        return tuple(change for kind in KINDS if kind in FLAGGED_KINDS for change in self.of_kind(kind))

    def flagged_trust(self) -> tuple[TrustChange, ...]:
        return tuple(change for change in self.trust if change.flagged)

    def by_source_package(self) -> dict[tuple[str, str], tuple[PackageChange, ...]]:
        """The package changes grouped by (source id, source package), sorted."""
        groups: dict[tuple[str, str], list[PackageChange]] = {}
        for change in self.packages:
            groups.setdefault((change.source, change.source_package), []).append(change)
        return {key: tuple(groups[key]) for key in sorted(groups)}

    def changelog_index(self) -> dict[tuple[str, str], SourceChangelog]:
        """The changelogs by (source id, source package); empty when they were not read."""
        return {changelog.key: changelog for changelog in self.changelogs or ()}

    def changelog_of(self, change: PackageChange) -> SourceChangelog | None:
        """The changelog that explains ``change`` (``None`` for a removed or moved package, or when not read)."""
        if change.new is None or change.kind == "moved":
            return None
        return self.changelog_index().get((change.source, change.source_package))

    def security_fixes(self) -> tuple[SourceChangelog, ...]:
        """The changelogs that name a CVE or come from a security suite, most urgent first, then by name."""
        fixes = [c for c in self.changelogs or () if c.is_security]
        return tuple(sorted(fixes, key=lambda c: (-_urgency_rank(c.urgency), -len(c.cves), c.key)))

    def to_dataframe(self) -> Any:
        """A ``pandas.DataFrame``, one row per package change, columns :data:`DATAFRAME_COLUMNS` (then
        :data:`CHANGELOG_COLUMNS` when the changelogs were read).

        Absent versions and sizes are ``None`` (pandas shows them as missing); ``size_delta`` counts an absent
        side as 0 bytes. pandas is imported here, so the rest of minimirror does not need it."""
        pandas: Any = importlib.import_module("pandas")
        rows, columns = [change.row() for change in self.packages], list(DATAFRAME_COLUMNS)
        if self.changelogs is not None:
            index = self.changelog_index()
            rows = [{**row, **_changelog_row(c, index)} for row, c in zip(rows, self.packages, strict=True)]
            columns += CHANGELOG_COLUMNS
        frame = pandas.DataFrame(rows, columns=columns)
        for column in ("old_size", "new_size", "size_delta"):
            frame[column] = frame[column].astype("Int64")
        return frame.astype({"flagged": bool})


def _urgency_rank(urgency: str) -> int:
    return URGENCIES.index(urgency) if urgency in URGENCIES else -1


def _changelog_row(change: PackageChange, index: Mapping[tuple[str, str], SourceChangelog]) -> dict[str, Any]:
    """The :data:`CHANGELOG_COLUMNS` of one change: ``cves`` a list (``None`` when unknown or unreadable),
    ``changelog`` the entries as text, newest first."""
    found = index.get((change.source, change.source_package)) if change.new and change.kind != "moved" else None
    if found is None:
        return dict.fromkeys(CHANGELOG_COLUMNS)
    read = found.status == "read"
    text = "\n\n".join(f"{entry.header}\n{entry.text}" for entry in found.entries)
    return {
        "cves": list(found.cves) if read else None,
        "urgency": found.urgency or None,
        "security_suite": found.security_suite or None,
        "changelog_status": found.status,
        "changelog": text if read else found.note,
    }


# --- the chain of trust ---------------------------------------------------------------------------------

_TrustTable = Sequence[tuple[str, str, bool, bool]]
# (lockfile key, attribute, flagged, is an array). Flagged: a change a reviewer must confirm out of band.
_SOURCE_TRUST: _TrustTable = (
    ("url", "url", True, False),
    ("key-url", "key_url", True, False),
    ("dist", "dist", True, False),
    ("components", "components", False, True),
    ("architectures", "architectures", False, True),
    ("inputs-sha256", "inputs_sha256", False, False),
    ("queries", "queries", False, True),
    ("group", "group", True, True),
    ("pin-priority", "pin_priority", True, False),
)
_UPSTREAM_TRUST: _TrustTable = (
    ("signed-by", "signed_by", True, True),
    ("origin", "origin", True, False),
    ("label", "label", True, False),
    ("codename", "codename", True, False),
    ("suite", "suite", False, False),
    ("version", "version", False, False),
    ("date", "date", False, False),
    ("valid-until", "valid_until", False, False),
    ("release", "release", False, False),
)


def _as_text(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple):
        return tuple(str(item) for item in value)
    if isinstance(value, datetime):
        return (value.strftime("%Y-%m-%dT%H:%M:%SZ"),)
    return (str(value),)


_COMPANION_TRUST: _TrustTable = (
    ("url", "url", True, False),
    ("key-url", "key_url", True, False),
    ("components", "components", False, True),
)


def _field_changes(
    source: str,
    old: SourcePin | UpstreamPin | CompanionPin,
    new: SourcePin | UpstreamPin | CompanionPin,
    table: Sequence[tuple[str, str, bool, bool]],
    *,
    prefix: str = "",
) -> list[TrustChange]:
    changes = []
    for key, attr, flagged, is_set in table:
        before, after = _as_text(getattr(old, attr)), _as_text(getattr(new, attr))
        if before != after:
            changes.append(TrustChange(source, prefix + key, before, after, flagged, is_set))
    return changes


def _trust_changes(source: str, old: Lock | None, new: Lock | None) -> list[TrustChange]:
    if old is None or new is None:
        present = new or old
        assert present is not None
        side = (present.source.url,)
        return [TrustChange(source, "source", () if new else side, side if new else (), flagged=True)]
    return [
        *_field_changes(source, old.source, new.source, _SOURCE_TRUST),
        *_field_changes(source, old.upstream, new.upstream, _UPSTREAM_TRUST),
        *_companion_changes(source, old, new),
    ]


def _companion_changes(source: str, old: Lock, new: Lock) -> list[TrustChange]:
    """A companion suite added or removed (flagged: another archive now feeds the mirror), or its own chain of
    trust changed; fields are named ``companion <dist> <field>``."""
    before = {companion.dist: companion for companion in old.companions}
    after = {companion.dist: companion for companion in new.companions}
    changes: list[TrustChange] = []
    for dist in sorted(before.keys() | after.keys()):
        one, two = before.get(dist), after.get(dist)
        field = f"companion {dist}"
        if one is None or two is None:
            old_side, new_side = (one.url,) if one else (), (two.url,) if two else ()
            changes.append(TrustChange(source, field, old_side, new_side, flagged=True))
            continue
        changes += _field_changes(source, one, two, _COMPANION_TRUST, prefix=f"{field} ")
        changes += _field_changes(source, one.upstream, two.upstream, _UPSTREAM_TRUST, prefix=f"{field} ")
    return changes


# --- the packages ---------------------------------------------------------------------------------------

_Group = Mapping[str, LockedPackage]  # version -> package, for one (source, name, architecture)
_COMPARED = ("name", "architecture", "version", "sha256", "size", "component", "filename", "companion")
"""The fields that decide whether a package changed (:func:`_classify`): the others (``queries``, ``required-by``,
``source``...) are shown for a change but never make one."""


def _changed_groups(
    old: LockTable | None, new: LockTable | None
) -> tuple[dict[tuple[str, str], dict[str, LockedPackage]], dict[tuple[str, str], dict[str, LockedPackage]]]:
    """The (name, architecture) groups of each side in which some package differs, version -> package.

    Whole-suite locks share all but a few of their 63,420 packages, so each side's packages are compared first
    as tuples of the fields in :data:`_COMPARED` (a group with the same tuples on both sides has no change, by
    the pairing rule), and only the packages of the groups that differ are made into values."""
    old_keys, new_keys = _compared(old), _compared(new)
    changed = {(key[0], key[1]) for key in set(old_keys).symmetric_difference(new_keys)}
    return _groups(old, old_keys, changed), _groups(new, new_keys, changed)


def _compared(table: LockTable | None) -> list[tuple[Any, ...]]:
    return list(zip(*(table.columns[name] for name in _COMPARED), strict=True)) if table else []


def _groups(
    table: LockTable | None, keys: Sequence[tuple[Any, ...]], changed: Container[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, LockedPackage]]:
    """The packages of ``table`` (in lock order) whose (name, architecture) is in ``changed``, grouped."""
    groups: dict[tuple[str, str], dict[str, LockedPackage]] = {}
    for number, key in enumerate(keys):
        if (key[0], key[1]) in changed:
            assert table is not None
            package = table.columns.package(number)
            groups.setdefault((package.name, package.architecture), {})[package.version] = package
    return groups


def _same_version(old: LockedPackage, new: LockedPackage) -> Kind | None:
    if old.sha256 != new.sha256 or old.size != new.size:
        return "rebuilt"
    if old.component != new.component or old.filename != new.filename or old.companion != new.companion:
        return "moved"
    return None


def _compare_versions(a: LockedPackage, b: LockedPackage) -> int:
    return int(version_compare(a.version, b.version))


def _by_version(packages: Iterable[LockedPackage]) -> list[LockedPackage]:
    return sorted(packages, key=functools.cmp_to_key(_compare_versions))


def _classify(source: str, name: str, arch: str, old: _Group, new: _Group) -> list[PackageChange]:
    """The changes of one (source, name, architecture); see the module docstring for the pairing rule."""
    changes = []
    for version in sorted(old.keys() & new.keys()):
        kind = _same_version(old[version], new[version])
        if kind:
            changes.append(PackageChange(source, name, arch, kind, old[version], new[version]))
    left = _by_version(old[v] for v in old.keys() - new.keys())
    arrived = _by_version(new[v] for v in new.keys() - old.keys())
    if len(old) == 1 and len(new) == 1 and left and arrived:
        kind = "upgraded" if version_compare(arrived[0].version, left[0].version) > 0 else "downgraded"
        return [*changes, PackageChange(source, name, arch, kind, left[0], arrived[0])]
    changes += [PackageChange(source, name, arch, "removed", package, None) for package in left]
    changes += [PackageChange(source, name, arch, "added", None, package) for package in arrived]
    return changes


def _package_changes(source: str, old: LockTable | None, new: LockTable | None) -> list[PackageChange]:
    old_groups, new_groups = _changed_groups(old, new)
    changes = []
    for name, arch in sorted(old_groups.keys() | new_groups.keys()):
        changes += _classify(source, name, arch, old_groups.get((name, arch), {}), new_groups.get((name, arch), {}))
    return changes


def _new_source_packages(source: str, old: LockTable | None, changes: Iterable[PackageChange]) -> set[tuple[str, str]]:
    added = [c for c in changes if c.kind == "added"]
    known = set(old.columns["source"]) if old and added else set()
    return {(source, c.source_package) for c in added if c.source_package not in known}


def _index(locks: Sequence[Lock | LockTable], side: str) -> dict[str, LockTable]:
    by_id: dict[str, LockTable] = {}
    for lock in locks:
        if lock.source.id in by_id:
            raise ValueError(f"the {side} locks hold source {lock.source.id!r} twice")
        by_id[lock.source.id] = as_table(lock)
    return by_id


def _source_changes(source: str, old: LockTable | None, new: LockTable | None) -> list[SourcePackageChange]:
    before = {s.key: s for s in old.head.source_packages} if old else {}
    after = {s.key: s for s in new.head.source_packages} if new else {}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key), after.get(key)
        change = _source_change(source, was, now)
        if change is not None:
            changes.append(change)
    return changes


def _source_change(source: str, was: LockedSource | None, now: LockedSource | None) -> SourcePackageChange | None:
    if was is not None and now is not None:
        if was.files == now.files:
            return None
        return SourcePackageChange(source, now.name, now.version, "rebuilt", now.size - was.size)
    if now is not None:
        return SourcePackageChange(source, now.name, now.version, "added", now.size)
    assert was is not None
    return SourcePackageChange(source, was.name, was.version, "removed", -was.size)


def diff_locks(old: Sequence[Lock | LockTable], new: Sequence[Lock | LockTable]) -> LockDiff:
    """Every difference from the ``old`` locks to the ``new`` ones, matched by source id, sorted. Either side
    may be :class:`~minimirror.lock.lockfile.Lock` values or :class:`~minimirror.lock.locktable.LockTable` (what
    the parsed-lock cache gives: only the packages that changed are then made into values).

    Raises ``ValueError`` when one side holds the same source id twice (a caller's mistake: the lock
    readers never return that)."""
    old_by_id, new_by_id = _index(old, "old"), _index(new, "new")
    trust: list[TrustChange] = []
    packages: list[PackageChange] = []
    new_sources: set[tuple[str, str]] = set()
    source_packages: list[SourcePackageChange] = []
    for source in sorted(old_by_id.keys() | new_by_id.keys()):
        before, after = old_by_id.get(source), new_by_id.get(source)
        trust += _trust_changes(source, before.head if before else None, after.head if after else None)
        source_packages += _source_changes(source, before, after)
        changes = _package_changes(source, before, after)
        new_sources |= _new_source_packages(source, before, changes)
        packages += changes
    trust += _origin_changes(packages)
    return LockDiff(
        trust=tuple(sorted(trust, key=lambda change: change.source)),  # stable: each source's fields in table order
        packages=tuple(sorted(packages, key=lambda change: change.sort_key)),
        old_sources=tuple(sorted(old_by_id)),
        new_sources=tuple(sorted(new_by_id)),
        new_source_packages=tuple(sorted(new_sources)),
        source_packages=tuple(source_packages),
    )


def _origin_changes(packages: Sequence[PackageChange]) -> list[TrustChange]:
    """A package that left one source's lock and arrived in another's (sources resolved together: a newer
    version or a pin moved it) now comes from another archive and another key: a trust change, flagged."""
    left: dict[tuple[str, str], set[str]] = {}
    for change in packages:
        if change.kind == "removed":
            left.setdefault((change.name, change.architecture), set()).add(change.source)
    moved = []
    for change in packages:
        origins = left.get((change.name, change.architecture), set()) - {change.source}
        if change.kind == "added" and origins:
            field = f"origin of {change.name}/{change.architecture}"
            moved.append(TrustChange(change.source, field, tuple(sorted(origins)), (change.source,), flagged=True))
    return moved


def added_chains(
    diff: LockDiff, new: Sequence[Lock | LockTable], *, limit: int = 5
) -> tuple[tuple[PackageChange, str], ...]:
    """Each added package with why it is there: its shortest chains from a query line in the ``new`` locks
    (``query: git -> git/amd64 -> libcurl3-gnutls/amd64``), one a line, at most ``limit``."""
    from minimirror.audit.why import format_chains, why

    by_id = {lock.source.id: as_table(lock) for lock in new}
    explained = []
    for change in diff.of_kind("added"):
        lock = by_id.get(change.source)
        chains = why([lock], change.name, change.architecture, limit=limit) if lock else []
        explained.append((change, format_chains(chains)))
    return tuple(explained)
