"""The lockfile: what a source resolved to, pinned down to the byte, in a TOML file a reviewer can read.

One file per source, ``locks/<prefix>/<name>.lock``, schema 1 (the format is documented field by field in
``docs/lockfile.md``; TOML 1.0 is the syntax). This module holds the values (:class:`Lock` and its parts,
frozen and normalized on construction), a deterministic writer (:func:`dumps_lock`, :func:`write_lock`) and a
strict reader (:func:`loads_lock`, :func:`read_lock`, :func:`read_locks`).

Source packages (a source with ``dependencyFollowSource`` or ``downloadSourcePackages``) are optional
``[[source-package]]`` tables with their ``[[source-package.file]]`` sub-tables, and ``[[upstream.index]]`` pins
of architecture ``source``; the schema stays 1 (see ``docs/lockfile.md``, "Source packages": the addition is
optional, a lock without it is byte for byte what it was, and an older strict reader refuses the new tables
loudly rather than dropping them).

Values normalize themselves: arrays are sorted and de-duplicated, packages are sorted by (name, architecture,
Debian version order, sha256), datetimes are converted to UTC. So two locks that mean the same are equal and
dump to the same bytes whatever order they were built in.

The writer is a small emitter of its own rather than tomli-w: the file has one fixed shape, the bytes of a lock
must never change because a dependency's formatting did (``minimirror lock --check`` compares them), and the
layout wanted here (a header comment, ``Z`` datetimes, arrays on one line when short and one item a line when
long) is not what tomli-w writes. Reading uses the standard library's ``tomllib``.

The reader treats a lock as hostile input (locks arrive in pull requests): every problem is a
:class:`~minimirror.errors.LockError` that names ``file:line:column`` and what is wrong, and anything the
fetcher or publisher would use as a path is checked so it cannot leave the directory it belongs to.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import sys
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn

from debian.debian_support import Version, version_compare

from minimirror.atomic import disk_errors, write_atomically
from minimirror.errors import LockError
from minimirror.package import DEFAULT_PIN_PRIORITY

if (
    TYPE_CHECKING
):  # only for a type: importing minimirror.upstream.archive (release parsing, deb822) costs ~20 ms at start-up
    from minimirror.upstream.archive import Snapshot

__all__ = [
    "SCHEMA",
    "CompanionPin",
    "IndexPin",
    "LeftOutPackage",
    "Lock",
    "LockedPackage",
    "LockedSource",
    "LockedSourceFile",
    "SourcePin",
    "UpstreamPin",
    "dumps_lock",
    "loads_lock",
    "lock_path",
    "pool_path_problem",
    "read_lock",
    "read_lock_source",
    "read_locks",
    "upstream_pin",
    "write_lock",
]

SCHEMA = 1
"""The lockfile schema this minimirror writes and reads."""

_WIDTH = 100  # an array longer than this on one line is written one item a line

# --- the values -----------------------------------------------------------------------------------------


def _sorted_unique(items: Iterable[str]) -> tuple[str, ...]:
    if type(items) is tuple and len(items) < 2:  # most arrays of a lock: nothing to sort (63,420 packages x 3)
        return items
    return tuple(sorted(set(items)))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a lock's datetimes must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One binary package the lock pins, and why it is there (query lines, packages that depend on it)."""

    name: str
    version: str
    architecture: str
    component: str
    filename: str
    size: int
    sha256: str
    source: str
    source_version: str
    queries: tuple[str, ...] = ()
    required_by: tuple[str, ...] = ()
    companion: str | None = None
    """The companion suite (its dist) the package comes from; None for the release suite."""
    missing: tuple[str, ...] = ()
    """Dependencies left out because no source of the group has them (``missing-dependencies = "skip"``)."""
    phased_update_percentage: int | None = None
    """The index's ``Phased-Update-Percentage`` (0-100, Ubuntu's -updates), which publish writes back into the
    stanza so that apt on each node phases the update itself; None when the update is fully phased."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", _sorted_unique(self.queries))
        object.__setattr__(self, "required_by", _sorted_unique(self.required_by))
        object.__setattr__(self, "missing", _sorted_unique(self.missing))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.architecture)

    @property
    def node(self) -> str:
        """``name/architecture``: how ``required-by`` names this package."""
        return f"{self.name}/{self.architecture}"


@dataclass(frozen=True, slots=True)
class LeftOutPackage:
    """A package a pattern or field query matched that no system can install, so the lock leaves it out
    (``[[left-out]]``): listed with the reason, so that a review sees what the mirror will not serve."""

    name: str
    version: str
    architecture: str
    queries: tuple[str, ...]
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", _sorted_unique(self.queries))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.architecture)


@dataclass(frozen=True, slots=True)
class LockedSourceFile:
    """One file of a source package (``.dsc``, tarballs): a bare name in the package's directory."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class LockedSource:
    """One source package the lock pins (``[[source-package]]``), and the locked binaries built from it."""

    name: str
    version: str
    component: str
    directory: str
    files: tuple[LockedSourceFile, ...]
    binaries: tuple[str, ...] = ()
    companion: str | None = None
    """The companion suite (its dist) whose Sources listed it; None for the release suite."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(sorted(set(self.files), key=lambda f: (f.name, f.sha256, f.size))))
        object.__setattr__(self, "binaries", _sorted_unique(self.binaries))

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def path(self, file: LockedSourceFile) -> str:
        """``<directory>/<name>``: the file's path relative to the archive root."""
        return f"{self.directory}/{file.name}"


@dataclass(frozen=True, slots=True)
class IndexPin:
    """One ``Packages`` index the resolution read, as the verified Release described it."""

    path: str
    component: str
    architecture: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class UpstreamPin:
    """The upstream chain of trust: the verified Release (by its sha256), who signed it, and its indices."""

    release: str
    release_sha256: str
    date: datetime
    valid_until: datetime | None
    origin: str
    label: str
    suite: str
    codename: str
    version: str
    signed_by: tuple[str, ...]
    indices: tuple[IndexPin, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "date", _utc(self.date))
        if self.valid_until is not None:
            object.__setattr__(self, "valid_until", _utc(self.valid_until))
        object.__setattr__(self, "signed_by", _sorted_unique(self.signed_by))
        ordered = sorted(set(self.indices), key=lambda i: (i.component, i.architecture, i.path, i.size, i.sha256))
        object.__setattr__(self, "indices", tuple(ordered))


@dataclass(frozen=True, slots=True)
class SourcePin:
    """Where the source is and what was asked of it: the inputs the lock was computed from."""

    id: str
    url: str
    key_url: str
    dist: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    inputs_sha256: str
    queries: tuple[str, ...]
    group: tuple[str, ...] = ()
    """Every source (this one too) resolved together with it as one apt universe; empty when it resolves alone."""
    pin_priority: int | None = None
    """apt's Pin-Priority of the source's packages when it is not the default 500."""

    def __post_init__(self) -> None:
        for name in ("components", "architectures", "queries", "group"):
            object.__setattr__(self, name, _sorted_unique(getattr(self, name)))

    @property
    def priority(self) -> int:
        return DEFAULT_PIN_PRIORITY if self.pin_priority is None else self.pin_priority

    @property
    def flat(self) -> bool:
        """A flat repository (``dist`` is a path ending in ``/``, such as ``./``; no components upstream)."""
        return self.dist.endswith("/")

    @property
    def published_dist(self) -> str:
        """The dist the mirror publishes the source as: its own, or for a flat repository the source's name."""
        return self.id.split("/", 1)[1] if self.flat else self.dist


@dataclass(frozen=True, slots=True)
class CompanionPin:
    """A companion suite of the source (``bookworm-security``, ...): where it is, and its own chain of trust."""

    url: str
    key_url: str
    dist: str
    components: tuple[str, ...]
    upstream: UpstreamPin

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", _sorted_unique(self.components))


_VERSION_KEY = functools.cmp_to_key(version_compare)


def _package_order(p: LockedPackage) -> tuple[Any, ...]:
    """Name, architecture, Debian version order, sha256; then every other field, so ties never depend on input
    order (``1.0`` and ``1.00`` compare equal as Debian versions). A key rather than a comparison function:
    tuples compare in C, and a Debian version comparison runs only where a name and architecture tie."""
    return (p.name, p.architecture, _VERSION_KEY(p.version), *_tail(p))


def _in_package_order(packages: Sequence[LockedPackage]) -> bool:
    """Whether ``packages`` are already in :func:`_package_order` (as every lock read from a file is): checked
    pair by pair, by name and architecture first, in a tenth of the time sorting takes."""
    for a, b in itertools.pairwise(packages):
        if a.name < b.name or (a.name == b.name and a.architecture < b.architecture):
            continue
        if a.name != b.name or a.architecture != b.architecture or _package_order(a) > _package_order(b):
            return False
    return True


def _compare_sources(a: LockedSource, b: LockedSource) -> int:
    """Name, Debian version order, then the other fields (so ``1.0``/``1.00`` never depend on input order)."""
    if a.name != b.name:
        return -1 if a.name < b.name else 1
    by_version = version_compare(a.version, b.version)
    if by_version:
        return -1 if by_version < 0 else 1
    rest_a = (a.version, a.component, a.directory, a.files, a.binaries, a.companion or "")
    rest_b = (b.version, b.component, b.directory, b.files, b.binaries, b.companion or "")
    return (rest_a > rest_b) - (rest_a < rest_b)


def _tail(p: LockedPackage) -> tuple[Any, ...]:
    rest = (p.sha256, p.version, p.filename, p.size, p.component, p.source, p.source_version, p.queries, p.required_by)
    return (*rest, p.companion or "")


@dataclass(frozen=True, slots=True)
class Lock:
    """Everything a source resolved to. ``packages`` is kept sorted (see :func:`_package_order`)."""

    schema: ClassVar[int] = SCHEMA

    source: SourcePin
    upstream: UpstreamPin
    packages: tuple[LockedPackage, ...] = field(default=())
    source_packages: tuple[LockedSource, ...] = field(default=())
    companions: tuple[CompanionPin, ...] = field(default=())
    """The source's companion suites, sorted by dist; empty for a source of one suite."""
    left_out: tuple[LeftOutPackage, ...] = field(default=())
    """What the source's selecting queries matched but cannot be installed, sorted as packages are."""

    def __post_init__(self) -> None:
        left_out = sorted(self.left_out, key=lambda p: (p.name, p.architecture, _VERSION_KEY(p.version), p.reason))
        object.__setattr__(self, "left_out", tuple(left_out))
        object.__setattr__(self, "companions", tuple(sorted(self.companions, key=lambda c: (c.dist, c.url))))
        packages = tuple(self.packages)
        ordered = packages if _in_package_order(packages) else sorted(packages, key=_package_order)
        object.__setattr__(self, "packages", tuple(ordered))
        sources = sorted(self.source_packages, key=functools.cmp_to_key(_compare_sources))
        object.__setattr__(self, "source_packages", tuple(sources))

    def base_url(self, item: LockedPackage | LockedSource) -> str:
        """The archive URL a package's ``filename`` (a source package's ``directory``) is relative to: its companion
        suite's, else the source's."""
        if item.companion is not None:
            for companion in self.companions:
                if companion.dist == item.companion:
                    return companion.url
        return self.source.url

    def components(self) -> tuple[str, ...]:
        """Every component of the source and of its companions, sorted: what its published dist holds."""
        return _sorted_unique((*self.source.components, *(c for pin in self.companions for c in pin.components)))

    def upstream_pins(self) -> tuple[UpstreamPin, ...]:
        """The release suite's pin, then each companion's."""
        return (self.upstream, *(companion.upstream for companion in self.companions))

    def by_key(self) -> dict[tuple[str, str, str], LockedPackage]:
        """The packages by (name, version, architecture)."""
        return {package.key: package for package in self.packages}

    def find(self, name: str, architecture: str | None = None) -> tuple[LockedPackage, ...]:
        """Every locked version of ``name`` (of one architecture when given), oldest first."""
        return tuple(
            p for p in self.packages if p.name == name and (architecture is None or p.architecture == architecture)
        )


def upstream_pin(snapshot: Snapshot) -> UpstreamPin:
    """The pin of a verified snapshot: its Release by name and sha256, who signed it, and each index."""
    release = snapshot.release
    return UpstreamPin(
        release=snapshot.release_name,
        release_sha256=snapshot.release_sha256,
        date=release.date,
        valid_until=release.valid_until,
        origin=release.origin,
        label=release.label,
        suite=release.suite,
        codename=release.codename,
        version=release.version,
        signed_by=snapshot.fingerprints,
        indices=tuple(
            IndexPin(i.path, i.component, i.architecture, i.size, i.sha256)
            for i in (*snapshot.indices, *snapshot.source_indices)
        ),
    )


# --- the fields, shared by the writer and the reader ----------------------------------------------------

_Kind = Literal["str", "str?", "int", "int?", "strs", "strs?", "time", "time?"]
_OPTIONAL: Mapping[str, object] = {"str?": None, "time?": None, "int?": None, "strs?": ()}
"""Optional kinds and the value an absent key means; the writer leaves such a key out when it has that value."""
_Check = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class _Field:
    key: str  # as written in the file
    attr: str  # as named on the value
    kind: _Kind
    check: _Check | None = None  # returns the problem with one string (or array item), None when fine


_PATTERNS: dict[_Check, str] = {}
"""The regular expression each :func:`_matching` check fully matches (the column reader checks whole columns
with it, :mod:`minimirror.lock.lockcolumns`)."""


def _matching(pattern: str, what: str) -> _Check:
    compiled = re.compile(pattern)

    @functools.lru_cache(maxsize=1 << 16)  # a whole-suite lock repeats names and nodes hundreds of thousands of times
    def check(value: str) -> str | None:
        return None if compiled.fullmatch(value) else f"{value!r} is not {what}"

    _PATTERNS[check] = pattern
    return check


_SHA256 = _matching(r"[0-9a-f]{64}", "a sha256 (64 lowercase hex digits)")
_FINGERPRINT = _matching(r"[0-9A-F]{40}", "a key fingerprint (40 uppercase hex digits)")
_SAFE = r"[A-Za-z0-9_][A-Za-z0-9._+~-]*"
_SOURCE_ID = _matching(rf"{_SAFE}/{_SAFE}", "a source id '<prefix>/<name>' (letters, digits and . _ + ~ -)")
_NAME = _matching(r"[A-Za-z0-9][A-Za-z0-9+.~_-]*", "a package name")
_ARCH = _matching(r"[a-z0-9][a-z0-9-]*", "an architecture name")
_NODE = _matching(
    rf"(?:{_SAFE}/{_SAFE}:)?[A-Za-z0-9][A-Za-z0-9+.~_-]*/[a-z0-9][a-z0-9-]*",
    "'<name>/<architecture>' (or '<prefix>/<source>:<name>/<architecture>' for a package of another source)",
)
_TOKEN = _matching(r"[^\s\\\x00-\x1f\x7f]+", "a name without spaces or control characters")
_RELEASE = _matching(r"InRelease|Release", "'InRelease' or 'Release'")
_URL = _matching(r"(?:https?|file)://[^\s\x00-\x1f\x7f]+", "an http://, https:// or file:// URL")
_VERSION_CHARS = _matching(r"[0-9A-Za-z][0-9A-Za-z.+~:-]*", "a Debian version")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: str) -> str | None:
    """Free text (a query, an origin): one line, no control characters."""
    return f"{value!r} contains a control character" if _CONTROL.search(value) else None


def _query(value: str) -> str | None:
    return "a query is never empty" if not value.strip() else _text(value)


@functools.lru_cache(maxsize=1 << 17)  # a pure check; a lock repeats versions (a package's and its source's)
def _version(value: str) -> str | None:
    problem = _VERSION_CHARS(value)
    if problem is None:
        # what Version(value) checks before it raises ValueError, without building one (a tenth of the time)
        parts = Version.re_valid_version.match(value)
        if parts is None or (parts.group("epoch") is None and ":" in parts.group("upstream_version")):
            problem = f"{value!r} is not a Debian version"
    return problem


def _relative_path(value: str, *, prefix: str = "") -> str | None:
    """A path the fetcher or publisher will write under: relative, inside its directory, plain characters.

    ``..`` is refused as a path part (that is what climbs out); inside a name (``a..b.deb``) it is harmless."""
    if value.startswith("/"):
        return f"{value!r} is an absolute path"
    segments = value.split("/")
    if ".." in segments:
        return f"{value!r} contains '..'"
    if "\\" in value or _CONTROL.search(value):
        return f"{value!r} contains a backslash or a control character"
    if "" in segments or "." in segments:
        return f"{value!r} is not a plain relative file path (empty or '.' part)"
    if prefix and not value.startswith(prefix):
        return f"{value!r} does not start with {prefix!r}"
    return None


def _filename(value: str) -> str | None:
    return _relative_path(value, prefix="pool/")


def _directory(value: str) -> str | None:
    problem = _relative_path(value, prefix="pool/")
    return problem if problem or value != "pool" else f"{value!r} is not below 'pool/'"


def _source_file_name(value: str) -> str | None:
    """A bare file name, joined to a directory by the fetcher and publisher: no '/', no '..', no control char."""
    if not value or value in (".", ".."):
        return f"{value!r} is not a file name"
    if "/" in value or "\\" in value:
        return f"{value!r} contains a path separator"
    return _text(value)


def pool_path_problem(value: str, *, flat: bool = False) -> str | None:
    """Why a ``Filename`` cannot be locked (absolute, ``..``, outside ``pool/``, control characters), or None.
    A flat repository keeps its files where it likes (``./x.deb``), but never outside its own folder."""
    return _relative_path(value) if flat else _filename(value)


_SOURCE_FIELDS = (
    _Field("id", "id", "str", _SOURCE_ID),
    _Field("url", "url", "str", _URL),
    _Field("key-url", "key_url", "str", _URL),
    _Field("dist", "dist", "str", _TOKEN),
    _Field("components", "components", "strs", _TOKEN),
    _Field("architectures", "architectures", "strs", _ARCH),
    _Field("inputs-sha256", "inputs_sha256", "str", _SHA256),
    _Field("queries", "queries", "strs", _query),
    _Field("group", "group", "strs?", _SOURCE_ID),
    _Field("pin-priority", "pin_priority", "int?"),
)
_COMPANION_FIELDS = (
    _Field("url", "url", "str", _URL),
    _Field("key-url", "key_url", "str", _URL),
    _Field("dist", "dist", "str", _TOKEN),
    _Field("components", "components", "strs", _TOKEN),
)
_UPSTREAM_FIELDS = (
    _Field("release", "release", "str", _RELEASE),
    _Field("release-sha256", "release_sha256", "str", _SHA256),
    _Field("date", "date", "time"),
    _Field("valid-until", "valid_until", "time?"),
    _Field("origin", "origin", "str", _text),
    _Field("label", "label", "str", _text),
    _Field("suite", "suite", "str", _text),
    _Field("codename", "codename", "str", _text),
    _Field("version", "version", "str", _text),
    _Field("signed-by", "signed_by", "strs", _FINGERPRINT),
)
_INDEX_FIELDS = (
    _Field("path", "path", "str", _relative_path),
    _Field("component", "component", "str", _TOKEN),
    _Field("architecture", "architecture", "str", _ARCH),
    _Field("size", "size", "int"),
    _Field("sha256", "sha256", "str", _SHA256),
)
_PACKAGE_FIELDS = (
    _Field("name", "name", "str", _NAME),
    _Field("version", "version", "str", _version),
    _Field("architecture", "architecture", "str", _ARCH),
    _Field("component", "component", "str", _TOKEN),
    _Field("companion", "companion", "str?", _TOKEN),
    _Field("filename", "filename", "str", _relative_path),  # below pool/ unless flat: _check_consistency
    _Field("size", "size", "int"),
    _Field("sha256", "sha256", "str", _SHA256),
    _Field("phased-update-percentage", "phased_update_percentage", "int?"),  # range: _read_packages
    _Field("source", "source", "str", _NAME),
    _Field("source-version", "source_version", "str", _version),
    _Field("queries", "queries", "strs", _query),
    _Field("required-by", "required_by", "strs", _NODE),
    _Field("missing", "missing", "strs?", _text),
)

_LEFT_OUT_FIELDS = (
    _Field("name", "name", "str", _NAME),
    _Field("version", "version", "str", _version),
    _Field("architecture", "architecture", "str", _ARCH),
    _Field("queries", "queries", "strs", _query),
    _Field("reason", "reason", "str", _text),
)
_SOURCE_PACKAGE_FIELDS = (
    _Field("name", "name", "str", _NAME),
    _Field("version", "version", "str", _version),
    _Field("component", "component", "str", _TOKEN),
    _Field("companion", "companion", "str?", _TOKEN),
    _Field("directory", "directory", "str", _directory),
    _Field("binaries", "binaries", "strs", _NODE),
)
_SOURCE_FILE_FIELDS = (
    _Field("name", "name", "str", _source_file_name),
    _Field("size", "size", "int"),
    _Field("sha256", "sha256", "str", _SHA256),
)

# --- the writer -----------------------------------------------------------------------------------------

_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}
_ESCAPES.update({code: f"\\u{code:04X}" for code in [*range(0x20), 0x7F] if code not in _ESCAPES})


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest kept as UTF-8."""
    return '"' + value.translate(_ESCAPES) + '"'


def _toml_datetime(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _assignment(key: str, value: object) -> str:
    if isinstance(value, str):
        return f"{key} = {_toml_string(value)}"
    if isinstance(value, bool) or not isinstance(value, int | datetime | tuple):
        raise TypeError(f"cannot write {key} = {value!r}")
    if isinstance(value, datetime):
        return f"{key} = {_toml_datetime(value)}"
    if isinstance(value, int):
        return f"{key} = {value}"
    items = [_toml_string(item) for item in value]
    one_line = f"{key} = [{', '.join(items)}]"
    if len(one_line) <= _WIDTH:
        return one_line
    return "\n".join([f"{key} = [", *(f"    {item}," for item in items), "]"])


def _table(header: str, value: object, fields: Sequence[_Field]) -> list[str]:
    lines = ["", header]
    for spec in fields:
        item = getattr(value, spec.attr)
        if item is not None and not (spec.kind in _OPTIONAL and item == _OPTIONAL[spec.kind]):
            lines.append(_assignment(spec.key, item))
    return lines


def dumps_lock(lock: Lock) -> str:
    """The text of the lock: the same value always gives the same text (sorted tables and arrays, ``\\n``)."""
    lines = [
        f"# minimirror lock for {lock.source.id}. Generated by `minimirror lock`; review changes, do not edit by hand.",
        f"schema = {lock.schema}",
    ]
    lines += _table("[source]", lock.source, _SOURCE_FIELDS)
    lines += _table("[upstream]", lock.upstream, _UPSTREAM_FIELDS)
    for index in lock.upstream.indices:
        lines += _table("[[upstream.index]]", index, _INDEX_FIELDS)
    for companion in lock.companions:
        lines += _table("[[companion]]", companion, _COMPANION_FIELDS)
        lines += _table("", companion.upstream, _UPSTREAM_FIELDS)[2:]  # the same table: no blank line, no header
        for index in companion.upstream.indices:
            lines += _table("[[companion.index]]", index, _INDEX_FIELDS)
    # A table's lines joined at once ("\n".join is the same text either way): a whole suite's 700,000 line
    # strings are never all alive together, only 63,000 table strings (measured: +92 MiB, not +131, while it runs).
    lines += ("\n".join(_table("[[package]]", package, _PACKAGE_FIELDS)) for package in lock.packages)
    lines += ("\n".join(_table("[[left-out]]", left_out, _LEFT_OUT_FIELDS)) for left_out in lock.left_out)
    for source in lock.source_packages:
        lines += _table("[[source-package]]", source, _SOURCE_PACKAGE_FIELDS)
        for file in source.files:
            lines += _table("[[source-package.file]]", file, _SOURCE_FILE_FIELDS)
    return "\n".join(lines) + "\n"


# --- the reader: where things are in the text -----------------------------------------------------------

_Where = tuple[int, int, int]  # line, column of the key (or header), column of the value
_HEADER_LINE = re.compile(r"\s*(\[\[|\[)\s*([A-Za-z0-9_.\- \t]+?)\s*\]")
_KEY_LINE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=\s*")
_DECODE_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*\Z")


def _scan_locations(text: str) -> dict[tuple[str, int, str], _Where]:
    """Where each table header and ``key =`` is, by (table name, occurrence, key); key ``""`` is the header.

    A cheap line scan, not a TOML parser: it is only used to point at a line, so text that fools it (a
    multi-line string holding ``key = ...``, inline tables, dotted or quoted keys) only makes the location
    less precise, never changes what is accepted.
    """
    found: dict[tuple[str, int, str], _Where] = {}
    counts: Counter[str] = Counter()
    section, occurrence = "", 0
    for number, line in enumerate(text.split("\n"), start=1):
        if header := _HEADER_LINE.match(line):
            section = re.sub(r"\s+", "", header.group(2))
            occurrence = counts[section] if header.group(1) == "[[" else 0
            counts[section] += 1
            column = header.start(1) + 1
            found.setdefault((section, occurrence, ""), (number, column, column))
        elif key := _KEY_LINE.match(line):
            found.setdefault((section, occurrence, key.group(1)), (number, key.start(1) + 1, key.end() + 1))
    return found


class _Context:
    """The file being read: its name, and (scanned only when an error needs it) where its keys are."""

    __slots__ = ("_locations", "path", "text")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self._locations: Mapping[tuple[str, int, str], _Where] | None = None

    @property
    def locations(self) -> Mapping[tuple[str, int, str], _Where]:
        if self._locations is None:
            self._locations = _scan_locations(self.text)
        return self._locations

    def fail(self, line: int, column: int, message: str) -> NoReturn:
        raise LockError(f"{self.path}:{line}:{column}: {message}")


@dataclass(frozen=True, slots=True)
class _Place:
    """A table of the file: how to find its lines, and how a message names it."""

    context: _Context
    section: str  # "" for the top level, "source", "upstream", "upstream.index", "package"
    occurrence: int
    label: str  # "[source]", "[[package]] #3"

    def where(self, key: str = "") -> _Where:
        locations = self.context.locations
        for candidate in ((self.section, self.occurrence, key), (self.section, self.occurrence, "")):
            if candidate in locations:
                return locations[candidate]
        parent, _, name = self.section.rpartition(".")
        return locations.get((parent, 0, name), (1, 1, 1))

    def fail(self, message: str, key: str = "", *, at_key: bool = False) -> NoReturn:
        line, key_column, value_column = self.where(key)
        label = f"{self.label} " if self.label else ""
        self.context.fail(line, key_column if at_key or not key else value_column, f"{label}{message}")


# --- the reader: values -----------------------------------------------------------------------------


def _require(table: Mapping[str, Any], key: str, place: _Place) -> Any:
    if key not in table:
        place.fail(f"is missing the field {key!r}")
    return table[key]


def _read_string(value: Any, spec: _Field, place: _Place) -> str:
    if not isinstance(value, str):
        place.fail(f"{spec.key} must be a string, not {_type_name(value)}", spec.key)
    problem = spec.check(value) if spec.check else None
    if problem:
        place.fail(f"{spec.key}: {problem}", spec.key)
    return value


def _read_value(value: Any, spec: _Field, place: _Place) -> Any:
    if spec.kind in ("str", "str?"):
        return _read_string(value, spec, place)
    if spec.kind in ("int", "int?"):
        if isinstance(value, bool) or not isinstance(value, int):
            place.fail(f"{spec.key} must be an integer, not {_type_name(value)}", spec.key)
        if value < 0 and spec.kind == "int":
            place.fail(f"{spec.key} must not be negative (got {value})", spec.key)
        return value
    if spec.kind in ("strs", "strs?"):
        if not isinstance(value, list):
            place.fail(f"{spec.key} must be an array of strings, not {_type_name(value)}", spec.key)
        return tuple(_read_string(item, spec, place) for item in value)
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset():
        given = "a datetime in another zone, or none" if isinstance(value, datetime) else _type_name(value)
        place.fail(f"{spec.key} must be a UTC datetime such as 2026-07-11T10:16:37Z, not {given}", spec.key)
    return value


def _type_name(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a float", list: "an array"}
    return names.get(type(value), "a table" if isinstance(value, dict) else f"a {type(value).__name__}")


@functools.cache
def _known_keys(fields: tuple[_Field, ...]) -> frozenset[str]:
    return frozenset(spec.key for spec in fields)


def _read_fields(table: Any, fields: tuple[_Field, ...], place: _Place) -> dict[str, Any]:
    """The fields of one table, typed and checked; unknown keys are errors (a typo must not pass silently)."""
    if not isinstance(table, dict):
        place.fail(f"must be a table, not {_type_name(table)}")
    known = _known_keys(fields)
    if not known.issuperset(table):
        for key in sorted(table.keys() - known):
            message = f"has an unknown field {key!r} (known: {', '.join(spec.key for spec in fields)})"
            place.fail(message, key, at_key=True)
    values: dict[str, Any] = {}
    for spec in fields:
        value = table.get(spec.key, _ABSENT)
        if value is _ABSENT and spec.kind in _OPTIONAL:
            values[spec.attr] = _OPTIONAL[spec.kind]
        elif _plainly_valid(value, spec):
            values[spec.attr] = tuple(value) if type(value) is list else value
        else:  # the general path, which names what is wrong
            values[spec.attr] = _read_value(_require(table, spec.key, place), spec, place)
    return values


_ABSENT = object()


def _plainly_valid(value: object, spec: _Field) -> bool:
    """The common case, checked fast (a whole-suite lock has 800,000 values): a valid string, a non-negative
    integer, or an array of valid strings, of the field's kind. False sends the value down the general path."""
    kind, check = spec.kind, spec.check
    if type(value) is str:
        return kind in ("str", "str?") and (check is None or check(value) is None)
    if type(value) is int:
        return kind in ("int", "int?") and value >= 0
    if type(value) is list:
        return (
            kind in ("strs", "strs?")
            and all(type(item) is str for item in value)
            and (check is None or all(check(item) is None for item in value))
        )
    return False


def _array_of_tables(table: Mapping[str, Any], key: str, place: _Place) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        place.fail(f"{key} must be an array of tables ([[{key}]]), not {_type_name(value)}", key)
    return value


# --- the reader: the document ---------------------------------------------------------------------------


def _parse_toml(text: str, context: _Context, *, checked_packages: bool = False) -> dict[str, Any]:
    try:
        fast = _parse_written_shape(text, checked_packages=checked_packages)
    except ValueError:  # not a TOMLDecodeError, which it catches: int() of a number too long to convert
        _too_long_integer(text, context)
    if fast is not None:
        return fast
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _DECODE_POSITION.search(message)
        if position:
            line, column = int(position.group(1)), int(position.group(2))
            message = message[: position.start()]
        else:  # "(at end of document)"
            lines = text.split("\n")
            line, column = len(lines), len(lines[-1]) + 1
            message = message.replace(" (at end of document)", " at the end of the file")
        context.fail(line, column, f"not valid TOML: {message}")
    except RecursionError:
        context.fail(1, 1, "not valid TOML: nested too deeply")
    except ValueError:  # tomllib lets int()'s own error through
        _too_long_integer(text, context)


def _too_long_integer(text: str, context: _Context) -> NoReturn:
    """Python refuses to convert an integer of more than ``sys.get_int_max_str_digits()`` digits (a guard against
    quadratic time): a lock can hold no such number, so it is refused, at the first run of that many digits."""
    limit = sys.get_int_max_str_digits()
    found = re.search(rf"[0-9_]{{{limit + 1},}}", text) if limit else None
    start = found.start() if found else 0
    line, column = text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)
    context.fail(line, column, f"not valid TOML: an integer of more than {limit} digits")


# A whole-suite lock is 30 MB of [[package]] tables, which tomllib (pure Python, and a general TOML parser) reads in
# ~8 s. The tables after the header are read here instead, line by line, but only in the one shape the writer above
# emits: ``key = "plain string"``, ``key = 123``, arrays of plain strings on one line or one item a line, the known
# table headers, blank lines. Anything else anywhere (an escape, a comment after a value, other spacing, a key given
# twice) makes the whole text go to tomllib, so what is accepted, and every error message, stay tomllib's.
_TAIL_TABLES = ("[[package]]", "[[left-out]]", "[[source-package]]")
_PLAIN = r'"[^"\\\x00-\x1f\x7f]*"'
_FAST_LINE = re.compile(rf"([A-Za-z0-9_-]+) = (?:({_PLAIN})|(0|[1-9][0-9]*)|\[((?:{_PLAIN}(?:, {_PLAIN})*)?)\]|(\[))")
_FAST_ITEM = re.compile(rf"    ({_PLAIN}),")
_FAST_STRINGS = re.compile(_PLAIN)


def _parse_written_shape(text: str, *, checked_packages: bool = False) -> dict[str, Any] | None:
    """The document, when everything after the header is in the writer's own shape; else None (use tomllib).

    With ``checked_packages``, ``package`` may instead be the packages already read and checked
    (:class:`_CheckedPackages`), which only :func:`_read_packages` understands."""
    starts = [found for table in _TAIL_TABLES if (found := text.find(f"\n{table}\n")) >= 0]
    if not starts:
        return None
    split = min(starts) + 1
    head = text[:split]
    if '"""' in head or "'''" in head:
        return None  # a multi-line string could hold the table header the split was made at
    try:
        document = tomllib.loads(head)
    except tomllib.TOMLDecodeError:
        return None
    if any(key in document for key in ("package", "left-out", "source-package")):
        return None
    run = _read_package_run(text, split) if checked_packages else None
    if run is not None:
        document["package"], split = run
    return document if _read_tail(text[split:], document) else None  # a copy of what is left: little, or all


def _read_tail(text: str, document: dict[str, Any]) -> bool:
    lines = iter(text.split("\n"))
    table: dict[str, Any] | None = None
    for line in lines:
        if not line:
            continue
        if line[0] == "[":
            table = _new_table(line, document)
            if table is None:
                return False
            continue
        match = _FAST_LINE.fullmatch(line)
        if match is None or table is None or match.group(1) in table:
            return False
        key, string, number, items = match.groups()[:4]
        if string is not None:
            table[key] = string[1:-1]
        elif number is not None:
            table[key] = int(number)
        elif items is not None:
            table[key] = [item[1:-1] for item in _FAST_STRINGS.findall(items)]
        elif (values := _read_items(lines)) is not None:
            table[key] = values
        else:
            return False
    return True


def _read_items(lines: Iterator[str]) -> list[str] | None:
    """The items of an array written one a line, up to its ``]``; None for anything else."""
    values: list[str] = []
    for item in lines:
        if item == "]":
            return values
        found = _FAST_ITEM.fullmatch(item)
        if found is None:
            return None
        values.append(found.group(1)[1:-1])
    return None


def _new_table(header: str, document: dict[str, Any]) -> dict[str, Any] | None:
    table: dict[str, Any] = {}
    if header == "[[source-package.file]]":
        sources = document.get("source-package")
        if not sources:
            return None
        owner, key = sources[-1], "file"
    elif header in _TAIL_TABLES:
        owner, key = document, header[2:-2]
    else:
        return None
    tables = owner.setdefault(key, _Tables())
    if not isinstance(tables, _Tables):
        return None  # ``file = ...`` given as a key before its tables: tomllib says what is wrong
    tables.append(table)
    return table


class _Tables(list[dict[str, Any]]):
    """An array of tables this reader made from headers (not an array some key was given as)."""


# The [[package]] tables are nine lines in ten of a whole-suite lock, so in the writer's shape they are read whole,
# one regular expression a table (the writer's fields in the writer's order, each once), straight into checked
# values: the checks of _read_fields and _read_packages, each run once per distinct value (names, versions and the
# query and required-by arrays repeat across a suite). A table that does not match, or a value a check refuses,
# ends the run, and then every table is read line by line as above: what is refused, and how it is reported, stay
# the general path's.
_STRING = r'"([^"\\\x00-\x1f\x7f]*)"\n'
_ARRAY = rf"\[((?:{_PLAIN}(?:, {_PLAIN})*)?)\]\n|\[\n((?:    {_PLAIN},\n)*)\]\n"
_PACKAGE_TABLE = re.compile(
    r"\[\[package\]\]\n"
    rf"name = {_STRING}version = {_STRING}architecture = {_STRING}component = {_STRING}"
    rf"(?:companion = {_STRING})?filename = {_STRING}size = (0|[1-9][0-9]*)\n"
    r'sha256 = "([0-9a-f]{64})"\n(?:phased-update-percentage = (0|[1-9][0-9]*)\n)?'
    rf"source = {_STRING}source-version = {_STRING}queries = (?:{_ARRAY})required-by = (?:{_ARRAY})"
    rf"(?:missing = (?:{_ARRAY}))?(?:\n|\Z)"
)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_+~-][A-Za-z0-9_+~.-]*(?:/[A-Za-z0-9_+~-][A-Za-z0-9_+~.-]*)*")
"""Paths that plainly pass :func:`_relative_path` (no part is empty or starts with a dot); others are checked."""


class _CheckedPackages(list[LockedPackage]):
    """The [[package]] tables, already read and checked by :func:`_read_package_run`."""


@functools.lru_cache(maxsize=1 << 16)
def _checked_array(one_line: str | None, one_a_line: str | None, check: _Check) -> tuple[str, ...] | None:
    """The items of an array as :func:`_read_package_run` captured it, or None when one fails ``check``."""
    found = _FAST_STRINGS.findall(one_line if one_line is not None else one_a_line or "")
    # Interned: a whole suite's 263,000 required-by items name 56,000 nodes, one object each (-13 MiB a read).
    # Interned strings are freed with their last reference, so this keeps nothing after the lock is gone.
    items = tuple(sys.intern(item[1:-1]) for item in found)
    return None if any(check(item) is not None for item in items) else items


def _read_package_run(text: str, start: int) -> tuple[_CheckedPackages, int] | None:
    """The [[package]] tables from ``start`` in ``text`` and where they end, when every one is in the writer's
    shape and passes every check; else None. (An offset, not a copy of the text from there: a 20,000-package
    lock is 6.7 MB of it, most of a publish's peak memory beyond the lock itself.)"""
    packages, position, size = _CheckedPackages(), start, len(text)
    match = _PACKAGE_TABLE.match
    while position < size and (found := match(text, position)) is not None:
        package = _checked_package(found.groups())
        if package is None:
            return None
        packages.append(package)
        position = found.end()
    if not packages or text.find("[[package]]", position) >= 0:
        return None  # a table the run could not take (or tables out of order): all go the general way
    return packages, position


def _checked_package(groups: tuple[str | None, ...]) -> LockedPackage | None:
    name, version, arch, component, companion, filename, size, sha256, phased, source, source_version = groups[:11]
    assert name is not None and version is not None and arch is not None and component is not None
    assert filename is not None and size is not None and sha256 is not None
    assert source is not None and source_version is not None
    arch, component = sys.intern(arch), sys.intern(component)  # values shared by many tables: one object each
    source, source_version = sys.intern(source), sys.intern(source_version)
    queries = _checked_array(groups[11], groups[12], _query)
    required_by = _checked_array(groups[13], groups[14], _NODE)
    missing = _checked_array(groups[15], groups[16], _text)
    if (
        queries is None
        or required_by is None
        or missing is None
        or not (queries or required_by)
        or _NAME(name)
        or _version(version)
        or _ARCH(arch)
        or _TOKEN(component)
        or (companion is not None and _TOKEN(companion))
        or (_PLAIN_PATH.fullmatch(filename) is None and _relative_path(filename))
        or (phased is not None and int(phased) > 100)
        or _NAME(source)
        or _version(source_version)
    ):
        return None
    return LockedPackage(
        name,
        version,
        arch,
        component,
        filename,
        int(size),
        sha256,
        source,
        source_version,
        queries,
        required_by,
        companion,
        missing,
        None if phased is None else int(phased),
    )


def _check_schema(document: Mapping[str, Any], top: _Place) -> None:
    if "schema" not in document:
        top.fail("no 'schema = 1' line: this is not a minimirror lock, or a damaged one")
    schema = document["schema"]
    if isinstance(schema, bool) or not isinstance(schema, int):
        top.fail(f"schema must be an integer, not {_type_name(schema)}", "schema")
    if schema > SCHEMA:
        top.fail(f"unknown schema {schema}: this minimirror reads schema {SCHEMA}; upgrade minimirror", "schema")
    if schema != SCHEMA:
        top.fail(f"unknown schema {schema}: this minimirror reads schema {SCHEMA} (no lock was ever older)", "schema")


def _read_source(document: Mapping[str, Any], top: _Place) -> SourcePin:
    place = _Place(top.context, "source", 0, "[source]")
    return SourcePin(**_read_fields(_require(document, "source", top), _SOURCE_FIELDS, place))


def _read_upstream(document: Mapping[str, Any], source: SourcePin, top: _Place) -> UpstreamPin:
    place = _Place(top.context, "upstream", 0, "[upstream]")
    table = _require(document, "upstream", top)
    if not isinstance(table, dict):
        top.fail(f"upstream must be a table ([upstream]), not {_type_name(table)}", "upstream")
    return _read_pin(table, place, components=source.components, architectures=source.architectures)


def _read_pin(
    table: Mapping[str, Any],
    place: _Place,
    *,
    components: Sequence[str],
    architectures: Sequence[str],
    skip: frozenset[str] = frozenset({"index"}),
) -> UpstreamPin:
    """The chain of trust in ``table`` ([upstream] or a [[companion]]) and its ``index`` sub-tables."""
    fields = _read_fields({k: v for k, v in table.items() if k not in skip}, _UPSTREAM_FIELDS, place)
    section, context = f"{place.section}.index", place.context
    indices = []
    for number, item in enumerate(_array_of_tables(table, "index", place)):
        index_place = _Place(context, section, number, f"[[{section}]] #{number + 1}")
        index = IndexPin(**_read_fields(item, _INDEX_FIELDS, index_place))
        _check_member(index.component, components, "component", index_place)
        _check_member(index.architecture, {*architectures, "all", "source"}, "architecture", index_place)
        indices.append(index)
    _check_unique([i.path for i in indices], section, "path", context, "is listed twice")
    return UpstreamPin(**fields, indices=tuple(indices))


def _read_companions(document: Mapping[str, Any], source: SourcePin, top: _Place) -> list[CompanionPin]:
    companions: list[CompanionPin] = []
    names = frozenset(spec.key for spec in _COMPANION_FIELDS) | {"index"}
    for number, item in enumerate(_array_of_tables(document, "companion", top)):
        place = _Place(top.context, "companion", number, f"[[companion]] #{number + 1}")
        if not isinstance(item, dict):
            place.fail(f"must be a table, not {_type_name(item)}")
        suite = _read_fields({k: v for k, v in item.items() if k in names - {"index"}}, _COMPANION_FIELDS, place)
        pin = _read_pin(item, place, components=suite["components"], architectures=source.architectures, skip=names)
        if suite["dist"] == source.dist:
            place.fail(f"dist {suite['dist']!r} is the release suite's own", "dist")
        companions.append(CompanionPin(**suite, upstream=pin))
    _check_unique([c.dist for c in companions], "companion", "dist", top.context, "is listed twice")
    return companions


def _read_packages(document: Mapping[str, Any], top: _Place) -> list[LockedPackage]:
    tables = _array_of_tables(document, "package", top)
    if isinstance(tables, _CheckedPackages):
        packages = list(tables)
        _check_unique([p.key for p in packages], "package", "name", top.context, "is locked twice")
        return packages
    packages = []
    for number, item in enumerate(tables):
        place = _Place(top.context, "package", number, f"[[package]] #{number + 1}")
        package = LockedPackage(**_read_fields(item, _PACKAGE_FIELDS, place))
        if package.phased_update_percentage not in (None, *range(101)):
            place.fail(
                f"phased-update-percentage must be 0 to 100 (got {package.phased_update_percentage})",
                "phased-update-percentage",
            )
        if not package.queries and not package.required_by:
            place.fail(f"{package.node}: queries and required-by are both empty; nothing says why it is locked")
        packages.append(package)
    _check_unique([p.key for p in packages], "package", "name", top.context, "is locked twice")
    return packages


def _read_source_packages(document: Mapping[str, Any], top: _Place) -> list[LockedSource]:
    sources, file_number = [], 0
    for number, item in enumerate(_array_of_tables(document, "source-package", top)):
        place = _Place(top.context, "source-package", number, f"[[source-package]] #{number + 1}")
        if not isinstance(item, dict):
            place.fail(f"must be a table, not {_type_name(item)}")
        fields = _read_fields({k: v for k, v in item.items() if k != "file"}, _SOURCE_PACKAGE_FIELDS, place)
        files = []
        for entry in _array_of_tables(item, "file", place):
            label = f"[[source-package.file]] #{file_number + 1}"
            file_place = _Place(top.context, "source-package.file", file_number, label)
            files.append(LockedSourceFile(**_read_fields(entry, _SOURCE_FILE_FIELDS, file_place)))
            file_number += 1
        _check_source_files(files, place)
        sources.append(LockedSource(**fields, files=tuple(files)))
    _check_unique([s.key for s in sources], "source-package", "name", top.context, "is locked twice")
    return sources


def _check_source_files(files: Sequence[LockedSourceFile], place: _Place) -> None:
    names = [f.name for f in files]
    if sum(name.endswith(".dsc") for name in names) != 1:
        place.fail("must list exactly one .dsc among its [[source-package.file]] tables")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        place.fail(f"lists the file {duplicates[0]!r} twice")


def _check_sources_consistency(
    source: SourcePin,
    companions: Sequence[CompanionPin],
    packages: Sequence[LockedPackage],
    sources: Sequence[LockedSource],
    top: _Place,
) -> None:
    """Each source package's suite and component are the source's; its ``binaries`` are locked packages built
    from it; with any source package locked, every locked binary's source is locked too (a hand-edited lock
    cannot drop one silently)."""
    by_node = {p.node: p for p in packages}
    components = {companion.dist: companion.components for companion in companions}
    for number, locked in enumerate(sources):
        place = _Place(top.context, "source-package", number, f"[[source-package]] #{number + 1}")
        if locked.companion is not None:
            _check_member(locked.companion, components, "companion", place, whose="companion suites")
        _check_member(locked.component, components.get(locked.companion or "", source.components), "component", place)
        for node in locked.binaries:
            binary = by_node.get(node)
            if binary is None:
                place.fail(f"binaries names {node!r}, which is not a package of this lock", "binaries")
            if (binary.source, binary.source_version) != locked.key:
                place.fail(f"binaries names {node!r}, built from {binary.source} {binary.source_version}", "binaries")
    if not sources:
        return
    keys = {s.key for s in sources}
    for number, package in enumerate(packages):
        if (package.source, package.source_version) not in keys:
            place = _Place(top.context, "package", number, f"[[package]] #{number + 1}")
            place.fail(f"its source {package.source} {package.source_version} has no [[source-package]]", "source")


def _check_unique(keys: Sequence[object], section: str, key: str, context: _Context, problem: str) -> None:
    if len(set(keys)) == len(keys):
        return
    first: dict[object, int] = {}
    for number, item in enumerate(keys):
        if item in first:
            place = _Place(context, section, number, f"[[{section}]] #{number + 1}")
            shown = " ".join(item) if isinstance(item, tuple) else str(item)
            earlier = place.context.locations.get((section, first[item], ""), (0, 0, 0))[0]
            place.fail(f"{shown} {problem} (first at line {earlier})", key)
        first[item] = number


def _check_consistency(
    source: SourcePin, companions: Sequence[CompanionPin], packages: Sequence[LockedPackage], top: _Place
) -> None:
    """Cross-table rules, in file order: the suite and components of each package, its architecture,
    ``required-by`` naming locked packages (or, in a group, packages of the group's other sources), and every
    package reachable from some query or from another source of the group (a ``required-by`` cycle alone is no
    reason)."""
    if source.group and source.id not in source.group:
        top.fail(f"[source] group {list(source.group)} does not name the source itself, {source.id!r}")
    architectures = {*source.architectures, "all"}
    components = {companion.dist: companion.components for companion in companions}
    allowed: dict[str | None, tuple[str, ...]] = {None: source.components}
    allowed.update(components)
    nodes = {p.node for p in packages}
    pool_only = not source.flat
    for number, package in enumerate(packages):
        # a package that plainly passes is let through here; any other gets the checks that say what is wrong
        if (
            package.component not in allowed.get(package.companion, ())
            or package.architecture not in architectures
            or (pool_only and not (package.filename.startswith("pool/") and _PLAIN_PATH.fullmatch(package.filename)))
            or not nodes.issuperset(package.required_by)
        ):
            place = _Place(top.context, "package", number, f"[[package]] #{number + 1}")
            _check_package(package, place, source, components, nodes)
    reached = _reachable_from_queries(packages)
    if len(reached) < len(nodes):
        for number, package in enumerate(packages):
            if package.node not in reached:
                place = _Place(top.context, "package", number, f"[[package]] #{number + 1}")
                place.fail(f"{package.node} is not reachable from any query (its required-by chain is a cycle)")


def _check_package(
    package: LockedPackage,
    place: _Place,
    source: SourcePin,
    components: Mapping[str, tuple[str, ...]],
    nodes: Collection[str],
) -> None:
    """One package's suite, component, architecture, filename and ``required-by`` (see :func:`_check_consistency`)."""
    if package.companion is not None:
        _check_member(package.companion, components, "companion", place, whose="companion suites")
    allowed = components.get(package.companion or "", source.components)
    _check_member(package.component, allowed, "component", place)
    _check_member(package.architecture, {*source.architectures, "all"}, "architecture", place)
    if not source.flat and (problem := _filename(package.filename)):
        place.fail(f"filename: {problem}", "filename")
    for parent in package.required_by:
        other, _, _ = parent.rpartition(":")
        if other and (other == source.id or other not in source.group):
            message = f"required-by names {parent!r}, but {other!r} is not another source of this lock's group"
            place.fail(message, "required-by")
        if not other and parent not in nodes:
            place.fail(f"required-by names {parent!r}, which is not a package of this lock", "required-by")


def _check_member(value: str, allowed: Iterable[str], key: str, place: _Place, *, whose: str = "source's") -> None:
    if value not in allowed:
        place.fail(f"{key} {value!r} is not one of the {whose}: {', '.join(sorted(allowed)) or '(none)'}", key)


def _reachable_from_queries(packages: Sequence[LockedPackage]) -> set[str]:
    return _reachable([p.node for p in packages], [p.queries for p in packages], [p.required_by for p in packages])


def _reachable(
    nodes: Sequence[str], queries: Sequence[tuple[str, ...]], required_by: Sequence[tuple[str, ...]]
) -> set[str]:
    """The nodes reached from some query, given each package's node, queries and ``required-by`` (as columns,
    so that the column reader, :mod:`minimirror.lock.lockcolumns`, shares it)."""
    # a package another source of the group needs is reached from that source's queries (its lock says how)
    reached = {
        node
        for node, named, parents in zip(nodes, queries, required_by, strict=True)
        if named or any(":" in parent for parent in parents)
    }
    if len(reached) == len(set(nodes)):
        return reached  # every package is named by a query (a whole suite): nothing to walk
    children: dict[str, set[str]] = {}
    for node, parents in zip(nodes, required_by, strict=True):
        for parent in parents:
            children.setdefault(parent, set()).add(node)
    todo = list(reached)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in reached:
                reached.add(child)
                todo.append(child)
    return reached


def loads_lock(text: str, *, path: Path | str) -> Lock:
    """Read a lock from its text, strictly. ``path`` is named in every error (``path:line:column: problem``)."""
    context = _Context(str(path), text)
    document = _parse_toml(text, context, checked_packages=True)
    top = _Place(context, "", 0, "")
    _check_schema(document, top)
    for key in sorted(set(document) - {*_TOP_LEVEL}):
        known = "schema, [source], [upstream], [[companion]], [[package]], [[left-out]], [[source-package]]"
        top.fail(f"unknown top-level field {key!r} (known: {known})", key)
    source = _read_source(document, top)
    upstream = _read_upstream(document, source, top)
    companions = _read_companions(document, source, top)
    packages = _read_packages(document, top)
    _check_consistency(source, companions, packages, top)
    left_out = _read_left_out(document, source, lambda: {p.key for p in packages}, top)
    sources = _read_source_packages(document, top)
    _check_sources_consistency(source, companions, packages, sources, top)
    return Lock(
        source=source,
        upstream=upstream,
        packages=tuple(packages),
        source_packages=tuple(sources),
        companions=tuple(companions),
        left_out=tuple(left_out),
    )


_TOP_LEVEL = ("schema", "source", "upstream", "companion", "package", "left-out", "source-package")


def _read_left_out(
    document: Mapping[str, Any],
    source: SourcePin,
    locked_keys: Callable[[], Collection[tuple[str, str, str]]],
    top: _Place,
) -> list[LeftOutPackage]:
    """Each ``[[left-out]]``: of the source's architectures, named by a query, and not locked after all
    (``locked_keys`` gives the (name, version, architecture) of the locked packages, asked only when needed)."""
    tables = _array_of_tables(document, "left-out", top)
    locked = locked_keys() if tables else set()
    architectures = {*source.architectures, "all"}
    found = []
    for number, item in enumerate(tables):
        place = _Place(top.context, "left-out", number, f"[[left-out]] #{number + 1}")
        left_out = LeftOutPackage(**_read_fields(item, _LEFT_OUT_FIELDS, place))
        _check_member(left_out.architecture, architectures, "architecture", place)
        if not left_out.queries:
            place.fail(f"{left_out.name}: queries is empty; nothing says which query matched it", "queries")
        if left_out.key in locked:
            place.fail(f"{' '.join(left_out.key)} is also locked as a [[package]]", "name")
        found.append(left_out)
    _check_unique([p.key for p in found], "left-out", "name", top.context, "is listed twice")
    return found


# --- files ----------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    return _decode(_read_bytes(path), path)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise LockError(f"{path}: no such lock; run `minimirror lock` to create it") from exc
    except OSError as exc:
        raise LockError(f"{path}: cannot read the lock: {exc.strerror}") from exc


def _decode(data: bytes, path: Path | str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LockError(f"{path}:{line}:{column}: not UTF-8 (byte {exc.start})") from exc


def read_lock(path: Path | str) -> Lock:
    """Read and check one lock file."""
    return loads_lock(_read_text(Path(path)), path=path)


def read_lock_source(path: Path | str) -> SourcePin:
    """Only the ``[source]`` table of a lock, checked as :func:`read_lock` checks it: what ``lock --check``
    compares. The header is parsed alone, so a whole-suite lock of 30 MB answers in milliseconds; the tables after
    it are checked by whatever reads the whole lock (fetch, publish, diff)."""
    text = _read_text(Path(path))
    starts = [found for table in _TAIL_TABLES if (found := text.find(f"\n{table}\n")) >= 0]
    head = text[: min(starts) + 1] if starts else text
    if '"""' in head or "'''" in head:
        head = text  # a multi-line string could hold a table header: read it all
    context = _Context(str(path), head)
    document = _parse_toml(head, context)
    top = _Place(context, "", 0, "")
    _check_schema(document, top)
    return _read_source(document, top)


def lock_path(locks_dir: Path | str, source_id: str) -> Path:
    """``<locks_dir>/<prefix>/<name>.lock`` for the source ``<prefix>/<name>``."""
    problem = _SOURCE_ID(source_id)
    if problem:
        raise LockError(f"no lock path for source id {problem}")
    prefix, name = source_id.split("/")
    return Path(locks_dir) / prefix / f"{name}.lock"


def read_locks(locks_dir: Path | str) -> tuple[Lock, ...]:
    """Every ``<prefix>/<name>.lock`` below ``locks_dir``, sorted by source id. Each lock's ``[source] id``
    must match its place, so a lock copied to another source's file is refused."""
    locks = []
    for path in _lock_files_of(locks_dir):
        text = _read_text(path)
        lock = loads_lock(text, path=path)
        _check_place(lock.source, path, text)
        locks.append(lock)
    return tuple(sorted(locks, key=lambda lock: lock.source.id))


def _lock_files_of(locks_dir: Path | str) -> list[Path]:
    """:func:`_lock_files` of a locks directory that must exist (every reader of a whole tree of locks)."""
    root = Path(locks_dir)
    if not root.is_dir():
        raise LockError(f"{root}: no locks directory; run `minimirror lock` to create it")
    return _lock_files(root)


def _lock_files(root: Path) -> list[Path]:
    """The ``<prefix>/<name>.lock`` files below ``root``, sorted, hidden ones left out."""
    found = sorted(root.glob("*/*.lock"))
    return [path for path in found if not (path.name.startswith(".") or path.parent.name.startswith("."))]


def _check_place(source: SourcePin, path: Path, text: str) -> None:
    """A lock in a directory sits at its source id's place, so a lock copied to another source's file is refused."""
    expected = f"{path.parent.name}/{path.stem}"
    if source.id != expected:
        place = _Place(_Context(str(path), text), "source", 0, "[source]")
        place.fail(f"id {source.id!r} does not match the file's place (expected {expected!r})", "id")


def write_lock(path: Path | str, lock: Lock) -> bool:
    """Write the lock atomically (a temporary file in the same directory, fsync, rename).

    Returns ``False``, leaving the file untouched, when it already holds these exact bytes. A lock the reader
    would refuse is never written.
    """
    target = Path(path)
    text = dumps_lock(lock)
    loads_lock(text, path=target)
    data = text.encode("utf-8")
    del text  # a whole-suite lock is 30 MB: not kept twice while the old file is compared and the new one written
    try:
        if _holds(target, data):
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LockError(f"{target}: cannot read the lock: {exc.strerror}") from exc
    try:
        with disk_errors(target, needed=len(data)):  # a full disk says so as in every stage
            _replace_atomically(target, data)
    except OSError as exc:
        raise LockError(f"{target}: cannot write the lock: {exc.strerror or exc}") from exc
    return True


def _holds(target: Path, data: bytes) -> bool:
    """``target`` holds exactly ``data``: the size first, then a MiB at a time (never the old lock whole beside
    the new one)."""
    with target.open("rb") as old:
        if os.fstat(old.fileno()).st_size != len(data):
            return False
        view = memoryview(data)
        for start in range(0, len(data), 1 << 20):
            if old.read(1 << 20) != view[start : start + (1 << 20)]:
                return False
        return old.read(1) == b""


def _replace_atomically(target: Path, data: bytes) -> None:
    try:
        mode = target.stat().st_mode & 0o777  # a lock keeps the permissions someone gave it
    except FileNotFoundError:
        mode = 0o644
    write_atomically(target, data, mode=mode, durable=True)
