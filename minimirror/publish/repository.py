"""Publishing: the locks and the cached pool files become an APT repository, byte for byte reproducible.

Layout per Debian's RepositoryFormat (wiki.debian.org/DebianRepository/Format), one tree per ``<prefix>``::

    OUT/signing-key.asc, OUT/signing-key.gpg                       the public key (armored; binary for signed-by=)
    OUT/<prefix>/pool/...                                           the locked pool paths, shared by the prefix
    OUT/<prefix>/dists/<dist>/{Release,InRelease,Release.gpg}
    OUT/<prefix>/dists/<dist>/<component>/binary-<arch>/{Packages,Packages.gz,Packages.xz,Release}
    OUT/<prefix>/dists/<dist>/<component>/binary-<arch>/by-hash/SHA256/<sha256>
    OUT/<prefix>/dists/<dist>/<component>/source/{Sources,Sources.gz,Sources.xz,Release}  with source packages
    OUT/<prefix>/<directory>/<file>                                 each locked source package's files

A lock with ``[[source-package]]`` tables gets, per component, a ``Sources`` index built as ``dpkg-scansources``
builds it, from each ``.dsc`` (RepositoryFormat "Sources Indices", dsc(5)): the ``.dsc``'s fields in order with
``Source`` renamed ``Package``, ``Directory`` added before the checksums, and the ``.dsc`` itself prepended to
``Files`` (md5), ``Checksums-Sha1`` and ``Checksums-Sha256`` (byte for byte dpkg-scansources' output). The
``.dsc`` must list exactly the files the lock names.

Plan, then write: :func:`plan_publish` reads each ``.deb`` once (hashes and control stanza, via
:func:`inspect_debs`) and computes every output file purely (:func:`plan_repository`); :func:`sign_plan` adds
the signatures; :func:`write_tree` applies the plan beside ``OUT`` and swaps it in atomically. :func:`publish`
is the one orchestration function the CLI and the notebooks call.

Reproducibility: every byte is a function of the locks, the pool files, the key and ``SOURCE_DATE_EPOCH``
(default: the newest upstream ``Date`` of the locks). Iteration is sorted, gzip has no name and mtime 0, xz
a fixed preset and check, modes are 0644/0755 whatever the umask, and dates are formatted without the locale.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gzip
import hashlib
import io
import logging
import lzma
import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex

from debian.debian_support import version_compare

from minimirror.atomic import DISK_ERRNOS, disk_errors, fsync_directory, require_space, sync_filesystem
from minimirror.errors import IntegrityError, MinimirrorError, UsageError
from minimirror.filelock import cache_lock, publish_lock
from minimirror.lock.lockfile import Lock, LockedPackage, LockedSource, LockedSourceFile, read_locks
from minimirror.publish.epoch import newest_upstream_date
from minimirror.publish.grouping import release_fields
from minimirror.publish.sign import Signer
from minimirror.upstream.cache import Cache
from minimirror.upstream.debfile import ControlStanza, read_control
from minimirror.upstream.phasing import FIELD as PHASING_FIELD
from minimirror.upstream.source_packages import dsc_fields, parse_checksums

__all__ = [
    "DebInfo",
    "DscInfo",
    "PlannedFile",
    "PublishConfig",
    "PublishError",
    "PublishOptions",
    "PublishPlan",
    "PublishReport",
    "PublishedDist",
    "ReleaseOverrides",
    "inspect_debs",
    "inspect_sources",
    "plan_publish",
    "plan_repository",
    "publish",
    "sign_plan",
    "write_tree",
]

log = logging.getLogger(__name__)

# dak's field order for Packages (what Debian's own indices show); unknown fields follow in control-file order,
# then Section and Priority, then the archive's fields (as dpkg-scanpackages appends them).
_FIELD_ORDER = (
    *("Package", "Source", "Version", "Installed-Size", "Maintainer", "Architecture", "Essential", "Protected"),
    *("Replaces", "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Enhances", "Conflicts"),
    *("Breaks", "Description", "Homepage", "Built-Using", "Static-Built-Using", "Multi-Arch"),
)
_LAST_FIELDS = ("Section", "Priority")
# Fields the archive, not the .deb, decides: never copied from a control file. Phased-Update-Percentage is one
# (Launchpad writes it into the index; the lock keeps the index's value and _stanza writes that one back).
_ARCHIVE_FIELDS = frozenset(
    f.lower() for f in ("Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", PHASING_FIELD)
)
_RANK = {
    **{name.lower(): len(_FIELD_ORDER) + 1 + i for i, name in enumerate(_LAST_FIELDS)},
    **{name.lower(): i for i, name in enumerate(_FIELD_ORDER)},
}
"""A field's place in a stanza; a field in neither list goes between the two (``len(_FIELD_ORDER)``)."""
_UNSAFE_CHAR = re.compile(r"[\\\x00-\x1f\x7f]")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FILE_MODE, _DIR_MODE = 0o644, 0o755
_CHUNK = 1 << 20


class PublishError(MinimirrorError):
    """The locks and cache cannot make a consistent repository (a missing or conflicting file)."""


# --- values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseOverrides:
    """The Release fields a source may override (``minimirror.toml``: origin, label, suite, codename, description)."""

    origin: str | None = None
    label: str | None = None
    suite: str | None = None
    codename: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """``epoch``: SOURCE_DATE_EPOCH (None: newest upstream Date); ``overrides`` by source id."""

    epoch: int | None = None
    overrides: Mapping[str, ReleaseOverrides] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DebInfo:
    """What a Packages stanza needs from one verified ``.deb``."""

    sha256: str
    md5: str
    size: int
    control: ControlStanza


@dataclass(frozen=True, slots=True)
class DscInfo:
    """What a Sources stanza needs from one verified ``.dsc``: its own hashes and its fields in file order."""

    name: str
    size: int
    md5: str
    sha1: str
    sha256: str
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One output file, relative to OUT: its bytes, or the cached blob it is linked or copied from."""

    path: str
    sha256: str
    size: int
    data: bytes | None = field(default=None, repr=False)
    source: Path | None = None


@dataclass(frozen=True, slots=True)
class PublishedDist:
    source_id: str
    prefix: str
    dist: str
    packages: int
    release: str  # path of dists/<dist>/Release, relative to OUT


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """Every file of the tree, sorted by path, and what was published."""

    epoch: int
    files: tuple[PlannedFile, ...]
    dists: tuple[PublishedDist, ...]
    fingerprint: str | None = None

    def file(self, path: str) -> PlannedFile:
        return next(f for f in self.files if f.path == path)


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """Everything :func:`publish` needs. ``sign_key`` None means unsigned (the CLI insists on ``--no-sign``)."""

    locks_dir: Path
    out_dir: Path
    cache_dir: Path
    sign_key: Path | None
    passphrase: str | None = field(default=None, repr=False)
    options: PublishOptions = field(default_factory=PublishOptions)


@dataclass(frozen=True, slots=True)
class PublishReport:
    out_dir: Path
    epoch: int
    dists: tuple[PublishedDist, ...]
    files: int
    fingerprint: str | None


# --- the orchestration ----------------------------------------------------------------------------------


def publish(config: PublishConfig) -> PublishReport:
    """Read the locks, plan the tree from the cache, sign it (unless unsigned), and swap it into ``out_dir``.

    Holds the published tree's lock, then the cache's (a concurrent fetch could otherwise replace a blob being
    linked), for the whole run: a second publisher of the same place waits (see :mod:`minimirror.filelock`)."""
    with publish_lock(config.out_dir), cache_lock(config.cache_dir):
        return _publish(config)


def _publish(config: PublishConfig) -> PublishReport:
    from minimirror.publish.sign import open_signer, read_secret_key

    locks = read_locks(config.locks_dir)
    if not locks:
        raise UsageError(f"{config.locks_dir}: no <prefix>/<name>.lock files; run `minimirror lock` first")
    _refuse_early(locks, config)
    plan = plan_publish(locks, Cache(config.cache_dir), config.options)
    if config.sign_key is not None:
        secret = read_secret_key(config.sign_key)
        with open_signer(secret, epoch=plan.epoch, passphrase=config.passphrase, name=str(config.sign_key)) as signer:
            plan = sign_plan(plan, signer)
    else:
        log.warning(
            "publishing an UNSIGNED repository: apt will refuse it unless told to trust it; never in production"
        )
    write_tree(plan, config.out_dir)
    return PublishReport(config.out_dir, plan.epoch, plan.dists, len(plan.files), plan.fingerprint)


def _refuse_early(locks: Sequence[Lock], config: PublishConfig) -> None:
    """Refuse, before the pool is read, a tree whose pool files alone do not fit beside ``out_dir`` (they are
    copied when the cache is on another filesystem; links cost no space). :func:`write_tree` checks again with
    the indices counted."""
    parent = _absolute(config.out_dir).parent
    if _same_filesystem(config.cache_dir, parent):
        return
    pool = {p.sha256: p.size for lock in locks for p in lock.packages}
    pool.update((f.sha256, f.size) for lock in locks for s in lock.source_packages for f in s.files)
    require_space(parent, sum(pool.values()))


def _same_filesystem(first: Path, second: Path) -> bool:
    try:
        return first.stat().st_dev == second.stat().st_dev
    except FileNotFoundError:
        return False


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))  # noqa: PTH100 - not resolve(): OUT itself may be a symlink


def plan_publish(locks: Sequence[Lock], cache: Cache, options: PublishOptions) -> PublishPlan:
    """Read every locked ``.deb`` and ``.dsc`` from the cache, then plan the whole tree (unsigned)."""
    return plan_repository(locks, inspect_debs(locks, cache), options, cache, dscs=inspect_sources(locks, cache))


# --- reading the pool files -----------------------------------------------------------------------------


def inspect_debs(locks: Sequence[Lock], cache: Cache) -> dict[str, DebInfo]:
    """Hash and read the control stanza of each locked ``.deb`` in the cache, by sha256.

    Every missing file is named at once (run ``minimirror fetch``); a file whose size, hash or identity
    differs from its lock is an :class:`IntegrityError`.
    """
    wanted = {p.sha256: (lock, p) for lock in locks for p in lock.packages}
    missing = sorted(
        f"{lock.source.id}: {p.filename}" for lock, p in wanted.values() if not cache.has_blob(p.sha256, p.size)
    )
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise PublishError(
            f"{len(missing)} locked pool file(s) are not in the cache {cache.root}; "
            f"run `minimirror fetch` first:\n  {shown}"
        )
    return {sha: _inspect(cache, lock, package) for sha, (lock, package) in sorted(wanted.items())}


def _inspect(cache: Cache, lock: Lock, package: LockedPackage) -> DebInfo:
    path = cache.blob_path(package.sha256)
    name = f"{package.filename} (cache {path})"
    sha256, md5, size, head = _hash_file(path)
    if (sha256, size) != (package.sha256, package.size):
        raise IntegrityError(
            f"{name}: size {size} / sha256 {sha256} differ from {lock.source.id}'s lock "
            f"({package.size} / {package.sha256}); delete the file and run `minimirror fetch` again"
        )
    control = read_control(path, name=name, head=head)  # hashed bytes: not read again
    if control.identity != package.key:
        raise IntegrityError(
            f"{name}: the package says it is {'_'.join(control.identity)}, "
            f"the lock {lock.source.id} says {'_'.join(package.key)}"
        )
    return DebInfo(sha256=sha256, md5=md5, size=size, control=control)


def inspect_sources(locks: Sequence[Lock], cache: Cache) -> dict[str, DscInfo]:
    """Check every locked source file in the cache (size and sha256) and read each ``.dsc``, by its sha256.

    A missing file is a :class:`PublishError` (run ``minimirror fetch``); a ``.dsc`` that lists other files than
    its lock is an :class:`IntegrityError`."""
    missing, found = [], {}
    for lock in locks:
        for source in lock.source_packages:
            for file in source.files:
                if not cache.has_blob(file.sha256, file.size):
                    missing.append(f"{lock.source.id}: {source.path(file)}")
                else:
                    found[file.sha256] = (lock, source, file)
    if missing:
        raise PublishError(
            f"{len(missing)} locked source file(s) are not in the cache {cache.root}; run `minimirror fetch` first:"
            "\n  " + "\n  ".join(sorted(missing)[:20])
        )
    dscs = {}
    for sha, (lock, source, file) in sorted(found.items()):
        _check_blob(cache, lock.source.id, source.path(file), file.sha256, file.size)
        if file.name.endswith(".dsc"):
            dscs[sha] = _inspect_dsc(cache, lock, source, file)
    return dscs


def _check_blob(cache: Cache, source_id: str, name: str, sha256: str, size: int) -> None:
    actual, _, actual_size, _ = _hash_file(cache.blob_path(sha256))
    if (actual, actual_size) != (sha256, size):
        raise IntegrityError(
            f"{name} (cache {cache.blob_path(sha256)}): size {actual_size} / sha256 {actual} differ from "
            f"{source_id}'s lock ({size} / {sha256}); delete the file and run `minimirror fetch` again"
        )


def _inspect_dsc(cache: Cache, lock: Lock, source: LockedSource, file: LockedSourceFile) -> DscInfo:
    path = cache.blob_path(file.sha256)
    data = path.read_bytes()
    name = f"{source.path(file)} (cache {path})"
    fields = dsc_fields(data, name=name)
    listed = {
        (f.name, f.size, f.sha256)
        for f in parse_checksums(_get(fields, "Checksums-Sha256") or "", where=name)  # IntegrityError below if empty
    }
    locked = {(f.name, f.size, f.sha256) for f in source.files if f.name != file.name}
    if listed != locked:
        raise IntegrityError(
            f"{name}: its Checksums-Sha256 lists {sorted(n for n, _, _ in listed)}, but {lock.source.id}'s lock "
            f"gives {source.name} {source.version} the files {sorted(n for n, _, _ in locked)} (or other hashes)"
        )
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    return DscInfo(file.name, len(data), md5, sha1, file.sha256, tuple(fields.items()))


def _get(fields: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in fields.items() if key.lower() == name.lower()), None)


def _hash_file(path: Path) -> tuple[str, str, int, bytes]:
    """sha256, md5, size and the first MiB (where a .deb's control member is) of the file at ``path``."""
    sha256, md5, size, head = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0, b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
            head = head or chunk
            size += len(chunk)
    return sha256.hexdigest(), md5.hexdigest(), size, head


# --- the pure plan --------------------------------------------------------------------------------------


def plan_repository(
    locks: Sequence[Lock],
    debs: Mapping[str, DebInfo],
    options: PublishOptions,
    cache: Cache,
    *,
    dscs: Mapping[str, DscInfo] | None = None,
) -> PublishPlan:
    """Every file of the repository, computed without I/O (``cache`` only names blob paths); ``dscs`` (by
    sha256) is needed when a lock has source packages."""
    epoch = options.epoch if options.epoch is not None else newest_upstream_date(locks)
    files: dict[str, PlannedFile] = {}
    dists: list[PublishedDist] = []
    for lock in sorted(locks, key=lambda lk: lk.source.id):
        overrides = options.overrides.get(lock.source.id, ReleaseOverrides())
        inputs = _Inputs(debs, dscs or {}, cache, release_fields(lock, locks))
        dist_files, published = _plan_source(lock, inputs, overrides, epoch)
        for planned in dist_files:
            _add(files, planned, lock.source.id)
        dists.append(published)
    return PublishPlan(epoch, tuple(files[p] for p in sorted(files)), tuple(dists))


def _add(files: dict[str, PlannedFile], planned: PlannedFile, source_id: str) -> None:
    """Two sources may share a pool file (same path, same bytes); anything else at one path is a conflict."""
    existing = files.get(planned.path)
    if existing is None:
        files[planned.path] = planned
    elif planned.path.split("/")[1:2] != ["pool"]:
        raise PublishError(f"{source_id}: {planned.path} is published by two sources; give them different dists")
    elif existing.sha256 != planned.sha256:
        raise PublishError(
            f"{source_id}: {planned.path} has sha256 {planned.sha256}, but another source of the same prefix "
            f"publishes it with sha256 {existing.sha256}; put the sources under different prefixes"
        )


def _safe_path(value: str, what: str, source_id: str) -> str:
    """Re-check a path taken from a lock: relative, no ``..``/empty/``.`` part, no backslash or control char."""
    parts = value.split("/")
    bad = (
        not value
        or value.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or _UNSAFE_CHAR.search(value) is not None
    )
    if bad:
        raise PublishError(f"{source_id}: refusing the {what} {value!r}: it could leave the published tree")
    return value


@dataclass(frozen=True, slots=True)
class _Inputs:
    debs: Mapping[str, DebInfo]
    dscs: Mapping[str, DscInfo]
    cache: Cache
    grouping: Mapping[str, str]
    """The ``Minimirror-*`` Release fields of the dist (its group, pin, expected gaps)."""


def _plan_source(
    lock: Lock, inputs: _Inputs, overrides: ReleaseOverrides, epoch: int
) -> tuple[list[PlannedFile], PublishedDist]:
    sid = lock.source.id
    if lock.source.flat:
        lock = _flat_as_pool(lock)
    prefix = _safe_path(sid.split("/")[0], "prefix", sid)
    dist_dir = f"{prefix}/dists/{_safe_path(lock.source.published_dist, 'dist', sid)}"
    files = [_pool_file(prefix, p, inputs.cache, sid) for p in lock.packages]
    files += [_source_file(prefix, s, f, inputs.cache, sid) for s in lock.source_packages for f in s.files]
    indices: list[PlannedFile] = []
    archs = _architectures(lock)
    for component in lock.components():
        _safe_path(component, "component", sid)
        for arch in archs:
            indices += _index_files(lock, component, arch, inputs.debs, overrides)
        if lock.source_packages:
            indices += _sources_files(lock, component, inputs.dscs, overrides)
    release = _release_text(lock, overrides, epoch, archs, indices, grouping=inputs.grouping)
    files += [_moved(f, dist_dir) for f in indices]
    files += [_moved(f, dist_dir) for f in _by_hash(indices)]
    files.append(_bytes_file(f"{dist_dir}/Release", release))
    published = PublishedDist(sid, prefix, lock.source.published_dist, len(lock.packages), f"{dist_dir}/Release")
    return files, published


def _flat_as_pool(lock: Lock) -> Lock:
    """A flat repository is published as an ordinary dist (its source's name, the one component ``flat``), its
    files moved below ``pool/flat/<source package>/``: the by-hash indices, per-architecture Packages and
    signed Release apt expects of any dist, and a pool that cannot collide with another source's files."""
    component = lock.source.components[0]

    def moved(package: LockedPackage) -> LockedPackage:
        name = package.filename.rsplit("/", 1)[-1]
        return replace(package, filename=f"pool/{component}/{package.source}/{name}")

    sources = tuple(replace(s, directory=f"pool/{component}/{s.name}") for s in lock.source_packages)
    return replace(lock, packages=tuple(moved(p) for p in lock.packages), source_packages=sources)


def _architectures(lock: Lock) -> tuple[str, ...]:
    """Index architectures: the source's, without ``all`` (folded into each: No-Support-for-Architecture-all)."""
    archs = tuple(a for a in lock.source.architectures if a != "all")
    if not archs:
        raise PublishError(f"{lock.source.id}: the lock names no architecture besides 'all'; nothing to index")
    return archs


def _pool_file(prefix: str, package: LockedPackage, cache: Cache, sid: str) -> PlannedFile:
    path = _safe_path(package.filename, "pool path", sid)
    if not path.startswith("pool/"):
        raise PublishError(f"{sid}: refusing the pool path {path!r}: it does not start with 'pool/'")
    return PlannedFile(f"{prefix}/{path}", package.sha256, package.size, source=cache.blob_path(package.sha256))


def _source_file(prefix: str, source: LockedSource, file: LockedSourceFile, cache: Cache, sid: str) -> PlannedFile:
    path = _safe_path(source.path(file), "source package path", sid)
    if not path.startswith("pool/") or "/" in file.name:
        raise PublishError(f"{sid}: refusing the source package path {path!r}: it must be a file below 'pool/'")
    return PlannedFile(f"{prefix}/{path}", file.sha256, file.size, source=cache.blob_path(file.sha256))


def _sources_files(
    lock: Lock, component: str, dscs: Mapping[str, DscInfo], overrides: ReleaseOverrides
) -> list[PlannedFile]:
    """``<component>/source/`` Sources (three compressions) and its per-directory Release."""
    chosen = [s for s in lock.source_packages if s.component == component]  # already in name, version order
    text = b"\n".join(_source_stanza(s, _dsc_of(lock, s, dscs)) for s in chosen)
    base = f"{component}/source"
    return [
        _bytes_file(f"{base}/Sources", text),
        _bytes_file(f"{base}/Sources.gz", _gzip(text)),
        _bytes_file(f"{base}/Sources.xz", _xz(text)),
        _bytes_file(f"{base}/Release", _directory_release(lock, overrides, component, "source")),
    ]


def _dsc_of(lock: Lock, source: LockedSource, dscs: Mapping[str, DscInfo]) -> DscInfo:
    dsc = next(f for f in source.files if f.name.endswith(".dsc"))
    if dsc.sha256 not in dscs:
        raise PublishError(f"{lock.source.id}: {source.path(dsc)} was not read; plan with plan_publish")
    return dscs[dsc.sha256]


def _source_stanza(source: LockedSource, dsc: DscInfo) -> bytes:
    """One Sources stanza as ``dpkg-scansources`` writes it from a ``.dsc``: its fields in order, ``Source``
    renamed ``Package`` in place, ``Directory`` before the first checksums field, the ``.dsc`` listed first."""
    own = {"files": dsc.md5, "checksums-sha1": dsc.sha1, "checksums-sha256": dsc.sha256}
    ordered: list[tuple[str, str]] = []
    for name, value in dsc.fields:
        folded = name.lower()
        if folded in own and not any(key == "Directory" for key, _ in ordered):
            ordered.append(("Directory", source.directory))
        if folded == "source":
            ordered.append(("Package", source.name))
        else:
            ordered.append((name, _with_dsc_line(value, own[folded], dsc) if folded in own else value))
    return "".join(_field_line(name, value) for name, value in ordered).encode("utf-8")


def _with_dsc_line(value: str, digest: str, dsc: DscInfo) -> str:
    """A checksums field with the ``.dsc``'s own line first (a .dsc cannot list itself)."""
    rest = value if not value or value.startswith("\n") else "\n " + value
    return f"\n {digest} {dsc.size} {dsc.name}{rest}"


def _bytes_file(path: str, data: bytes) -> PlannedFile:
    return PlannedFile(path, hashlib.sha256(data).hexdigest(), len(data), data=data)


def _moved(planned: PlannedFile, directory: str) -> PlannedFile:
    return replace(planned, path=f"{directory}/{planned.path}")


def _index_files(
    lock: Lock, component: str, arch: str, debs: Mapping[str, DebInfo], overrides: ReleaseOverrides
) -> list[PlannedFile]:
    """``<component>/binary-<arch>/`` Packages (three compressions) and its per-directory Release."""
    chosen = [p for p in lock.packages if p.component == component and p.architecture in (arch, "all")]
    text = b"\n".join(_stanza(p, debs[p.sha256]) for p in _sorted_packages(chosen))
    base = f"{component}/binary-{arch}"
    return [
        _bytes_file(f"{base}/Packages", text),
        _bytes_file(f"{base}/Packages.gz", _gzip(text)),
        _bytes_file(f"{base}/Packages.xz", _xz(text)),
        _bytes_file(f"{base}/Release", _directory_release(lock, overrides, component, arch)),
    ]


def _sorted_packages(packages: Iterable[LockedPackage]) -> list[LockedPackage]:
    """By name, Debian version order, architecture (ties, such as ``1.0``/``1.00``, by sha256)."""

    def key(package: LockedPackage) -> tuple[str, _Version, str, str]:
        return (package.name, _Version(package.version), package.architecture, package.sha256)

    return sorted(packages, key=key)


class _Version:
    """A sort key in Debian version order."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Version) -> bool:
        return version_compare(self.text, other.text) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Version) and version_compare(self.text, other.text) == 0

    def __hash__(self) -> int:  # pragma: no cover - sort keys are never hashed
        return hash(self.text)


def _stanza(package: LockedPackage, deb: DebInfo) -> bytes:
    """One Packages stanza: the control fields in Debian's order, then the archive's fields (the locked
    Phased-Update-Percentage, Filename, Size, MD5sum, SHA256)."""
    fields = [(k, v) for k, v in deb.control.fields if k.lower() not in _ARCHIVE_FIELDS]

    def order(item: tuple[int, tuple[str, str]]) -> tuple[int, int]:
        position, (name, _) = item
        return (_RANK.get(name.lower(), len(_FIELD_ORDER)), position)

    ordered = [pair for _, pair in sorted(enumerate(fields), key=order)]
    if package.phased_update_percentage is not None:  # kept so that apt on each node phases the update itself
        ordered.append((PHASING_FIELD, str(package.phased_update_percentage)))
    ordered += [("Filename", package.filename), ("Size", str(deb.size)), ("MD5sum", deb.md5), ("SHA256", deb.sha256)]
    return "".join(_field_line(name, value) for name, value in ordered).encode("utf-8")


def _field_line(name: str, value: str) -> str:
    first, _, rest = value.partition("\n")
    head = f"{name}: {first}" if first else f"{name}:"
    return f"{head}\n{rest}\n" if rest else f"{head}\n"


def _gzip(data: bytes) -> bytes:
    """gzip without a file name and with mtime 0 (RFC 1952), level 9: the same bytes on every machine."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        handle.write(data)
    return buffer.getvalue()


def _xz(data: bytes) -> bytes:
    # Preset 1, not xz's default 6: on 8 MB of Debian's own Packages text, 0.5 s instead of 3.6 s for a file 23 %
    # larger (1.88 MB, not 1.53), and a whole suite's index is 50 MB of text. A client fetches it once per
    # `apt-get update`, from a mirror on its own network (benchmarks/README.md, bench_publish.py).
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=1)


def _by_hash(indices: Sequence[PlannedFile]) -> list[PlannedFile]:
    """``by-hash/SHA256/<sha256>`` beside every file the Release lists (Acquire-By-Hash), the per-directory
    Release included, as the Debian archive does: a client may ask for any listed file by its hash."""
    copies = []
    for index in indices:
        directory = index.path.rpartition("/")[0]
        copies.append(replace(index, path=f"{directory}/by-hash/SHA256/{index.sha256}"))
    return copies


# --- Release files --------------------------------------------------------------------------------------


def format_date(epoch: int) -> str:
    """RFC 2822 in UTC as Debian writes it (``Sat, 01 Jun 2024 00:00:00 UTC``), independent of locale and TZ."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    day, month = _DAYS[moment.weekday()], _MONTHS[moment.month - 1]
    return f"{day}, {moment.day:02d} {month} {moment.year:04d} {moment:%H:%M:%S} UTC"


def _identity(lock: Lock, overrides: ReleaseOverrides) -> dict[str, str]:
    """Origin, Label, Suite, Codename, Version: the upstream's, unless overridden; Suite/Codename never empty."""
    up = lock.upstream
    fields = {
        "Origin": _pick(overrides.origin, up.origin),
        "Label": _pick(overrides.label, up.label),
        "Suite": _pick(overrides.suite, up.suite) or lock.source.published_dist,
        "Version": up.version,
        # a flat repository is published under a dist of minimirror's naming: apt wants it as the Codename
        "Codename": _pick(overrides.codename, "" if lock.source.flat else up.codename) or lock.source.published_dist,
    }
    for name, value in fields.items():
        if "\n" in value or "\r" in value:
            raise PublishError(f"{lock.source.id}: the Release field {name} must be one line, got {value!r}")
    return fields


def _pick(override: str | None, upstream: str) -> str:
    return override if override is not None else upstream


def _directory_release(lock: Lock, overrides: ReleaseOverrides, component: str, arch: str) -> bytes:
    identity = _identity(lock, overrides)
    fields = {
        "Archive": identity["Suite"],
        "Origin": identity["Origin"],
        "Label": identity["Label"],
        "Version": identity["Version"],
        "Component": component,
        "Architecture": arch,
    }
    return _deb822(fields)


def _release_text(
    lock: Lock,
    overrides: ReleaseOverrides,
    epoch: int,
    archs: Sequence[str],
    indices: Sequence[PlannedFile],
    *,
    grouping: Mapping[str, str],
) -> bytes:
    description = overrides.description or ""
    if "\n" in description or "\r" in description:
        raise PublishError(f"{lock.source.id}: the Release Description must be one line")
    fields = {
        **_identity(lock, overrides),
        "Date": format_date(epoch),
        "Acquire-By-Hash": "yes",
        "No-Support-for-Architecture-all": "Packages",
        "Architectures": " ".join(archs),
        "Components": " ".join(lock.components()),
        "Description": description,
        **grouping,
    }
    entries = sorted(indices, key=lambda f: f.path)
    width = max((len(str(f.size)) for f in entries), default=1)
    md5 = {f.path: hashlib.md5(f.data or b"", usedforsecurity=False).hexdigest() for f in entries}
    fields["MD5Sum"] = "".join(f"\n {md5[f.path]} {f.size:>{width}} {f.path}" for f in entries)
    fields["SHA256"] = "".join(f"\n {f.sha256} {f.size:>{width}} {f.path}" for f in entries)
    return _deb822(fields)


def _deb822(fields: Mapping[str, str]) -> bytes:
    """One stanza, empty fields left out (a value starting with a newline is a multi-line field)."""
    lines = [
        f"{name}:{value}" if value.startswith("\n") else f"{name}: {value}" for name, value in fields.items() if value
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- signing --------------------------------------------------------------------------------------------


def sign_plan(plan: PublishPlan, signer: Signer) -> PublishPlan:
    """Add ``InRelease`` and ``Release.gpg`` beside each Release, and the public key at the top of OUT."""
    files = {f.path: f for f in plan.files}
    for published in plan.dists:
        release = files[published.release].data or b""
        directory = published.release.rpartition("/")[0]
        for added in (
            _bytes_file(f"{directory}/InRelease", signer.clearsign(release)),
            _bytes_file(f"{directory}/Release.gpg", signer.detach_sign(release)),
        ):
            files[added.path] = added
    for added in (
        _bytes_file("signing-key.asc", signer.public_key(armor=True)),
        _bytes_file("signing-key.gpg", signer.public_key(armor=False)),
    ):
        files[added.path] = added
    return replace(plan, files=tuple(files[p] for p in sorted(files)), fingerprint=signer.fingerprint)


# --- writing and swapping -------------------------------------------------------------------------------


def write_tree(plan: PublishPlan, out_dir: Path) -> None:
    """Write the plan to ``OUT.new-<random>`` beside ``out_dir``, make it durable, and swap it in.

    A run killed at any point leaves the previous ``out_dir`` whole (or restorable: the next run restores it
    from ``OUT.old-*`` when the kill fell between the two renames of the fallback swap) and leaves stale
    ``.new-*``/``.old-*`` directories, which the next run removes. One publisher at a time per parent directory.
    """
    out_dir = _absolute(out_dir)
    parent = out_dir.parent
    with disk_errors(parent):
        parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(parent):
        _recover(out_dir)
        needed = _space_needed(plan, parent)
        require_space(parent, needed)
        staging = parent / f"{out_dir.name}.new-{token_hex(6)}"
        try:
            with disk_errors(staging, needed=needed):
                _write_files(plan, staging)
                _swap(staging, out_dir)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


def _space_needed(plan: PublishPlan, parent: Path) -> int:
    """The bytes the new tree takes beside the previous one (which stays until the swap): every index and
    signature, and the pool files that are copied, not linked (the cache is on another filesystem)."""
    sources = [f for f in plan.files if f.source is not None]
    linked = bool(sources) and _same_filesystem(sources[0].source or parent, parent)
    return sum(f.size for f in plan.files if f.data is not None or not linked)


class _exclusive:
    """An exclusive ``flock`` on a directory, refused at once when another publisher holds it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self.fd)
            raise PublishError(f"{self.directory}: another `minimirror publish` is writing here; wait for it") from exc

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _siblings(out_dir: Path, kind: str) -> list[Path]:
    return sorted(p for p in out_dir.parent.glob(f"{out_dir.name}.{kind}-*") if p.is_dir() and not p.is_symlink())


def _recover(out_dir: Path) -> None:
    """Restore ``OUT`` from ``OUT.old-*`` if a run died between its renames; remove every stale sibling."""
    olds = _siblings(out_dir, "old")
    if not out_dir.exists() and olds:
        log.warning("%s: restoring the previous tree from %s (an earlier publish was interrupted)", out_dir, olds[0])
        olds[0].rename(out_dir)
    for stale in [*_siblings(out_dir, "new"), *_siblings(out_dir, "old")]:
        log.info("removing %s, left by an interrupted publish", stale)
        shutil.rmtree(stale)


def _write_files(plan: PublishPlan, root: Path) -> None:
    root.mkdir(mode=_DIR_MODE)
    root.chmod(_DIR_MODE)
    # Paths as strings: a Path per file and folder is most of this loop's own time for 20,000 packages.
    top = os.fspath(root)
    made = {top}
    for planned in plan.files:
        # A lexical check is enough: the staging tree is new and holds only what this loop makes (folders,
        # files and hard links, never a symbolic link), so no path in it can lead elsewhere.
        if not _inside(planned.path):
            raise PublishError(f"refusing to write {planned.path!r}: it leaves {root}")
        target = f"{top}/{planned.path}"
        _make_parents(target.rpartition("/")[0], made)
        if planned.data is not None:
            _write_bytes(target, planned.data, plan.epoch)
        elif planned.source is not None:
            _link_or_copy(os.fspath(planned.source), target, plan.epoch)
    for directory in sorted(made, key=lambda d: d.count("/"), reverse=True):
        os.utime(directory, (plan.epoch, plan.epoch))
    # The new tree durable before it is swapped in: one syncfs, not an fsync per file and folder (thousands).
    sync_filesystem(root)


def _inside(path: str) -> bool:
    return not path.startswith("/") and os.path.normpath(path) == path and not path.startswith("..")


def _make_parents(directory: str, made: set[str]) -> None:
    """Create ``directory`` and its missing parents, remembering each in ``made`` (no ``stat`` per file).

    ``os.mkdir``'s mode is masked by the umask, so each new folder is given 0755 explicitly."""
    if directory in made:
        return
    _make_parents(directory.rpartition("/")[0], made)
    os.mkdir(directory, _DIR_MODE)  # noqa: PTH102 - strings: see _write_files
    os.chmod(directory, _DIR_MODE)  # noqa: PTH101
    made.add(directory)


def _write_bytes(target: str, data: bytes, epoch: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), _FILE_MODE)
        handle.write(data)
    os.utime(target, (epoch, epoch))


def _link_or_copy(source: str, target: str, epoch: int) -> None:
    """Hard-link the cached blob (same filesystem), else copy it. A link shares the blob's inode, so its mode
    becomes 0644 and its mtime is left alone (other trees may link it too)."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS - {errno.EACCES}:
            raise  # full or read-only: the caller's disk_errors names the tree and the space it needs
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise PublishError(f"cannot place {source} at {target}: {exc.strerror}") from exc
        _copy(source, target)
        os.utime(target, (epoch, epoch))
    if stat.S_IMODE(os.stat(target).st_mode) != _FILE_MODE:  # noqa: PTH116 - strings: see _write_files
        os.chmod(target, _FILE_MODE)  # noqa: PTH101


def _copy(source: str, target: str) -> None:
    """Copy in the kernel with ``copy_file_range(2)``, which shares the blocks (a reflink) where the filesystem
    can (Btrfs, XFS: a copy-on-write clone, so editing one never changes the other); else a plain copy."""
    with open(source, "rb") as src, open(target, "xb") as dst:  # noqa: PTH123 - strings, as in the loop above
        try:
            while os.copy_file_range(src.fileno(), dst.fileno(), _CHUNK << 6):
                pass
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            src.seek(0)
            dst.seek(0)
            dst.truncate()
            shutil.copyfileobj(src, dst, _CHUNK)


def _swap(staging: Path, out_dir: Path) -> None:
    """Put ``staging`` at ``out_dir``: one atomic exchange where the kernel offers it, else two renames."""
    if not out_dir.exists():
        staging.rename(out_dir)
    elif _exchange(staging, out_dir):
        shutil.rmtree(staging)  # now the previous tree
    else:
        old = out_dir.parent / f"{out_dir.name}.old-{token_hex(6)}"
        out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old)
    fsync_directory(out_dir.parent)


def _exchange(first: Path, second: Path) -> bool:
    """``renameat2(RENAME_EXCHANGE)``: swap two directories atomically (Linux >= 3.15); False if unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise PublishError(f"cannot swap {first} into {second}: {os.strerror(code)}")
