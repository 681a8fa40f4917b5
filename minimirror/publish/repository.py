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

Plan, then write: :func:`plan_publish` reads each ``.deb`` once, when its stanza is due (hashes and control
stanza checked against the lock), and computes every output file (:func:`plan_repository`); :func:`sign_plan`
adds the signatures; :func:`write_tree` applies the plan beside ``OUT`` and swaps it in atomically.
:func:`publish` is the one orchestration function the CLI and the notebooks call.

Memory stays flat in the number of packages beyond the locks themselves: no control stanza outlives its own
stanza, each index is held only as its ``.gz`` and ``.xz`` (:mod:`minimirror.publish.packages_index`), and the
pool's files are made from the locks again when they are written (:class:`PoolFiles`), never all at once.

Reproducibility: every byte is a function of the locks, the pool files, the key and ``SOURCE_DATE_EPOCH``
(default: the newest upstream ``Date`` of the locks). Iteration is sorted, gzip has no name and mtime 0, xz
a fixed preset and check, modes are 0644/0755 whatever the umask, and dates are formatted without the locale.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import heapq
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex

from minimirror.atomic import DISK_ERRNOS, disk_errors, fsync_directory, require_space, sync_filesystem
from minimirror.errors import IntegrityError, MinimirrorError, UsageError
from minimirror.filelock import cache_lock, publish_lock
from minimirror.lock.lockfile import Lock, LockedPackage, LockedSource, LockedSourceFile, read_locks
from minimirror.publish.epoch import newest_upstream_date
from minimirror.publish.grouping import release_fields
from minimirror.publish.packages_index import (
    DebInfo,
    IndexText,
    IndexWriter,
    field_line,
    gunzip_chunks,
    gzip_bytes,
    sorted_packages,
    stanza,
    xz_bytes,
)
from minimirror.publish.sign import Signer
from minimirror.upstream.cache import Cache
from minimirror.upstream.debfile import read_control
from minimirror.upstream.source_packages import dsc_fields, parse_checksums

__all__ = [
    "DebInfo",
    "DscInfo",
    "PlannedFile",
    "PoolFiles",
    "PublishConfig",
    "PublishError",
    "PublishOptions",
    "PublishPlan",
    "PublishReport",
    "PublishedDist",
    "ReadDeb",
    "ReleaseOverrides",
    "inspect_sources",
    "plan_publish",
    "plan_repository",
    "publish",
    "sign_plan",
    "write_tree",
]

log = logging.getLogger(__name__)

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
    """One output file, relative to OUT: its bytes, the cached blob it is linked or copied from (a path), or
    ``gunzip``: a gzip stream of its bytes (an uncompressed index, held only as its ``.gz``; ``md5`` is then its
    MD5, which the Release lists)."""

    path: str
    sha256: str
    size: int
    data: bytes | None = field(default=None, repr=False)
    source: str | None = None
    gunzip: bytes | None = field(default=None, repr=False)
    md5: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PublishedDist:
    source_id: str
    prefix: str
    dist: str
    packages: int
    release: str  # path of dists/<dist>/Release, relative to OUT


@dataclass(frozen=True, slots=True)
class PoolFiles:
    """The pool files of a plan, made again from the locks each time they are iterated, in path order.

    ``sources``: each (prefix, lock as published: a flat one moved below ``pool/``), ``blobs`` the cache.
    Kept as PlannedFiles, 20,000 packages would hold 20,000 more objects and paths beside the lock that
    already names them; a pass over the locks takes tens of milliseconds. Iterating raises
    :class:`PublishError` on a path that could leave the tree or that two sources publish with other bytes."""

    sources: tuple[tuple[str, Lock], ...] = ()
    blobs: Cache | None = None
    count: int = 0
    """How many files (each path once), as :func:`_pool_files` counted them."""

    def __iter__(self) -> Iterator[PlannedFile]:
        if self.blobs is None:
            return
        for path, sha256, size in self.entries():
            yield PlannedFile(path, sha256, size, source=self.blobs.blob_file(sha256))

    def entries(self) -> Iterator[tuple[str, str, int]]:
        """(path, sha256, size) of each file, each path once."""
        last_path, last_sha256 = "", ""
        for path, sha256, size, sid in heapq.merge(*(_pool_entries(prefix, lock) for prefix, lock in self.sources)):
            if path == last_path:  # two sources share a pool file (same path, same bytes); else a conflict
                if sha256 != last_sha256:
                    raise PublishError(
                        f"{sid}: {path} has sha256 {sha256}, but another source of the same prefix publishes it "
                        f"with sha256 {last_sha256}; put the sources under different prefixes"
                    )
                continue
            last_path, last_sha256 = path, sha256
            yield path, sha256, size


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """Every file of the tree and what was published: ``files`` (the dists' indices, Releases, signatures,
    the key), sorted by path, and ``pool``."""

    epoch: int
    files: tuple[PlannedFile, ...]
    dists: tuple[PublishedDist, ...]
    pool: PoolFiles = field(default_factory=PoolFiles)
    fingerprint: str | None = None

    def file(self, path: str) -> PlannedFile:
        return next(f for f in self.all_files() if f.path == path)

    def all_files(self) -> Iterator[PlannedFile]:
        """``files`` and ``pool`` together, in path order."""
        return heapq.merge(self.files, self.pool, key=lambda f: f.path)


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
    files = len(plan.files) + plan.pool.count
    return PublishReport(config.out_dir, plan.epoch, plan.dists, files, plan.fingerprint)


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
    """Read every locked ``.deb`` and ``.dsc`` from the cache, then plan the whole tree (unsigned).

    Each ``.deb`` is read when its stanza is due (:class:`_DebReader`): its hashes and control file checked
    against the lock, its stanza written into its index, nothing of it kept. A file the cache lacks is named,
    with every other one missing, once the pass is over (run ``minimirror fetch``); a file whose size, hash or
    identity differs from its lock is an :class:`IntegrityError` at once."""
    reader = _DebReader(cache)
    plan = plan_repository(locks, reader, options, cache, dscs=inspect_sources(locks, cache))
    if reader.missing:
        missing = sorted(reader.missing)
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise PublishError(
            f"{len(missing)} locked pool file(s) are not in the cache {cache.root}; "
            f"run `minimirror fetch` first:\n  {shown}"
        )
    return plan


# --- reading the pool files -----------------------------------------------------------------------------

ReadDeb = Callable[[Lock, LockedPackage], DebInfo | None]
"""What planning needs from the pool: a locked ``.deb``'s hashes and control stanza, checked against the lock;
None for a file the cache does not have (the reader reports those)."""


class _DebReader:
    """:data:`ReadDeb` from the cache; remembers the ``.deb`` files it lacks (absent, or of another size)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.missing: list[str] = []

    def __call__(self, lock: Lock, package: LockedPackage) -> DebInfo | None:
        path = self.cache.blob_file(package.sha256)
        try:
            sha256, md5, size, head = _hash_file(path, package.size)
        except _WrongSize:
            self.missing.append(f"{lock.source.id}: {package.filename}")
            return None
        name = f"{package.filename} (cache {path})"
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


class _WrongSize(Exception):
    """The blob is absent or not of the size the lock gives: the cache does not have it (as ``has_blob``)."""


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
    actual, _, actual_size, _ = _hash_file(cache.blob_file(sha256))
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


def _hash_file(path: str, size: int | None = None) -> tuple[str, str, int, bytes]:
    """sha256, md5, size and the first MiB (where a .deb's control member is) of the file at ``path``.

    With ``size``, a file that is absent or of another size raises :class:`_WrongSize` before it is read (one
    ``open`` and ``fstat``, not a ``stat`` of its own). ``os.read`` of the file's own size, not a buffered
    ``read`` of a MiB: a small .deb is then one allocation of its size (0.2 s of 20,000 files' 0.4 s here)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if size is None:
            raise
        raise _WrongSize from None
    try:
        actual = os.fstat(fd).st_size
        if size is not None and actual != size:
            raise _WrongSize
        head = os.read(fd, min(actual + 1, _CHUNK))  # + 1: a file that grew since is hashed whole all the same
        sha256, md5, read = hashlib.sha256(head), hashlib.md5(head, usedforsecurity=False), len(head)
        while chunk := os.read(fd, _CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
            read += len(chunk)
    finally:
        os.close(fd)
    return sha256.hexdigest(), md5.hexdigest(), read, head


# --- the pure plan --------------------------------------------------------------------------------------


def plan_repository(
    locks: Sequence[Lock],
    read_deb: ReadDeb,
    options: PublishOptions,
    cache: Cache,
    *,
    dscs: Mapping[str, DscInfo] | None = None,
) -> PublishPlan:
    """Every file of the repository; the pool is read only through ``read_deb`` (``cache`` only names blob
    paths). ``dscs`` (by sha256) is needed when a lock has source packages.

    The pool's paths are checked first (:func:`_pool_files`), so a hostile lock is refused before any ``.deb``
    is read; then each source's Packages indices are made in one pass over its packages."""
    epoch = options.epoch if options.epoch is not None else newest_upstream_date(locks)
    ordered = sorted(locks, key=lambda lk: lk.source.id)
    published = [_flat_as_pool(lock) if lock.source.flat else lock for lock in ordered]
    pool = _pool_files([(_prefix(lock), lock) for lock in published], cache)
    files: dict[str, PlannedFile] = {}
    dists: list[PublishedDist] = []
    for lock, as_published in zip(ordered, published, strict=True):
        overrides = options.overrides.get(lock.source.id, ReleaseOverrides())
        inputs = _Inputs(read_deb, dscs or {}, release_fields(lock, locks))
        dist_files, dist = _plan_source(as_published, inputs, overrides, epoch)
        for planned in dist_files:
            _add(files, planned, lock.source.id)
        dists.append(dist)
    return PublishPlan(epoch, tuple(files[p] for p in sorted(files)), tuple(dists), pool)


def _add(files: dict[str, PlannedFile], planned: PlannedFile, source_id: str) -> None:
    """A dist's file at a path another source publishes too is a conflict (pool files: :class:`PoolFiles`)."""
    if planned.path in files:
        raise PublishError(f"{source_id}: {planned.path} is published by two sources; give them different dists")
    files[planned.path] = planned


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


def _prefix(lock: Lock) -> str:
    return _safe_path(lock.source.id.split("/")[0], "prefix", lock.source.id)


@dataclass(frozen=True, slots=True)
class _Inputs:
    read_deb: ReadDeb
    dscs: Mapping[str, DscInfo]
    grouping: Mapping[str, str]
    """The ``Minimirror-*`` Release fields of the dist (its group, pin, expected gaps)."""


def _plan_source(
    lock: Lock, inputs: _Inputs, overrides: ReleaseOverrides, epoch: int
) -> tuple[list[PlannedFile], PublishedDist]:
    """The files of one source's dist (a flat source's ``lock`` already moved below ``pool/``)."""
    sid = lock.source.id
    prefix = _prefix(lock)
    dist_dir = f"{prefix}/dists/{_safe_path(lock.source.published_dist, 'dist', sid)}"
    archs = _architectures(lock)
    for component in lock.components():
        _safe_path(component, "component", sid)
    texts = _packages_texts(lock, archs, inputs.read_deb)
    indices: list[PlannedFile] = []
    for component in lock.components():
        for arch in archs:
            indices += _index_files(lock, component, arch, texts[component, arch], overrides)
        if lock.source_packages:
            indices += _sources_files(lock, component, inputs.dscs, overrides)
    release = _release_text(lock, overrides, epoch, archs, indices, grouping=inputs.grouping)
    files = [_moved(f, dist_dir) for f in indices]
    files += [_moved(f, dist_dir) for f in _by_hash(indices)]
    files.append(_bytes_file(f"{dist_dir}/Release", release))
    published = PublishedDist(sid, prefix, lock.source.published_dist, len(lock.packages), f"{dist_dir}/Release")
    return files, published


def _packages_texts(lock: Lock, archs: Sequence[str], read_deb: ReadDeb) -> dict[tuple[str, str], IndexText]:
    """Each (component, architecture)'s Packages index, from one pass over the lock's packages in index order:
    each ``.deb`` is read once, also an ``all`` one that every architecture's index lists, and its stanza
    written into its indices at once (each index's order is the pass's, since filtering keeps the order)."""
    writers = {(component, arch): IndexWriter() for component in lock.components() for arch in archs}
    for package in sorted_packages(lock.packages):
        _write_stanza(package, read_deb(lock, package), archs, writers)  # no local keeps the .deb's DebInfo
    return {key: writer.finish() for key, writer in sorted(writers.items())}


def _write_stanza(
    package: LockedPackage, deb: DebInfo | None, archs: Sequence[str], writers: Mapping[tuple[str, str], IndexWriter]
) -> None:
    if deb is None:
        return  # not in the cache: the reader names it
    text = b""
    for arch in archs if package.architecture == "all" else (package.architecture,):
        writer = writers.get((package.component, arch))
        if writer is not None:
            text = text or stanza(package, deb)
            writer.add(text)


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


def _pool_files(sources: Sequence[tuple[str, Lock]], cache: Cache) -> PoolFiles:
    """The pool of ``sources`` (each prefix and lock), its paths checked and its files counted in one pass."""
    pool = PoolFiles(tuple(sources), cache)
    return replace(pool, count=sum(1 for _ in pool.entries()))


def _pool_entries(prefix: str, lock: Lock) -> Iterator[tuple[str, str, int, str]]:
    """(path, sha256, size, source id) of each pool file of ``lock``, in path order, each path checked."""
    sid = lock.source.id

    def binary(package: LockedPackage) -> tuple[str, str, int, str]:
        path = _safe_path(package.filename, "pool path", sid)
        if not path.startswith("pool/"):
            raise PublishError(f"{sid}: refusing the pool path {path!r}: it does not start with 'pool/'")
        return (f"{prefix}/{path}", package.sha256, package.size, sid)

    def source(package: LockedSource, file: LockedSourceFile) -> tuple[str, str, int, str]:
        path = _safe_path(package.path(file), "source package path", sid)
        if not path.startswith("pool/") or "/" in file.name:
            raise PublishError(f"{sid}: refusing the source package path {path!r}: it must be a file below 'pool/'")
        return (f"{prefix}/{path}", file.sha256, file.size, sid)

    binaries = (binary(p) for p in sorted(lock.packages, key=lambda p: p.filename))
    sources = sorted(source(s, f) for s in lock.source_packages for f in s.files)
    return heapq.merge(binaries, sources)


def _sources_files(
    lock: Lock, component: str, dscs: Mapping[str, DscInfo], overrides: ReleaseOverrides
) -> list[PlannedFile]:
    """``<component>/source/`` Sources (three compressions) and its per-directory Release."""
    chosen = [s for s in lock.source_packages if s.component == component]  # already in name, version order
    text = b"\n".join(_source_stanza(s, _dsc_of(lock, s, dscs)) for s in chosen)
    base = f"{component}/source"
    return [
        _bytes_file(f"{base}/Sources", text),
        _bytes_file(f"{base}/Sources.gz", gzip_bytes(text)),
        _bytes_file(f"{base}/Sources.xz", xz_bytes(text)),
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
    return "".join(field_line(name, value) for name, value in ordered).encode("utf-8")


def _with_dsc_line(value: str, digest: str, dsc: DscInfo) -> str:
    """A checksums field with the ``.dsc``'s own line first (a .dsc cannot list itself)."""
    rest = value if not value or value.startswith("\n") else "\n " + value
    return f"\n {digest} {dsc.size} {dsc.name}{rest}"


def _bytes_file(path: str, data: bytes) -> PlannedFile:
    return PlannedFile(path, hashlib.sha256(data).hexdigest(), len(data), data=data)


def _moved(planned: PlannedFile, directory: str) -> PlannedFile:
    return replace(planned, path=f"{directory}/{planned.path}")


def _index_files(
    lock: Lock, component: str, arch: str, text: IndexText, overrides: ReleaseOverrides
) -> list[PlannedFile]:
    """``<component>/binary-<arch>/`` Packages (three compressions) and its per-directory Release."""
    base = f"{component}/binary-{arch}"
    return [
        PlannedFile(f"{base}/Packages", text.sha256, text.size, gunzip=text.gz, md5=text.md5),
        _bytes_file(f"{base}/Packages.gz", text.gz),
        _bytes_file(f"{base}/Packages.xz", text.xz),
        _bytes_file(f"{base}/Release", _directory_release(lock, overrides, component, arch)),
    ]


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
    md5 = {f.path: f.md5 or hashlib.md5(f.data or b"", usedforsecurity=False).hexdigest() for f in entries}
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
    first = next(iter(plan.pool), None)
    linked = first is not None and _same_filesystem(Path(first.source or parent), parent)
    return sum(f.size for f in plan.files) + (0 if linked else sum(size for _, _, size in plan.pool.entries()))


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
    folders = _Folders(top, plan.epoch)
    for planned in plan.all_files():
        # A lexical check is enough: the staging tree is new and holds only what this loop makes (folders,
        # files and hard links, never a symbolic link), so no path in it can lead elsewhere.
        if not _inside(planned.path):
            raise PublishError(f"refusing to write {planned.path!r}: it leaves {root}")
        target = f"{top}/{planned.path}"
        folders.enter(target.rpartition("/")[0])
        if planned.data is not None:
            _write_bytes(target, planned.data, plan.epoch)
        elif planned.gunzip is not None:
            _write_gunzipped(target, planned.gunzip, plan.epoch)
        elif planned.source is not None:
            _link_or_copy(planned.source, target, plan.epoch)
    folders.close()
    # The new tree durable before it is swapped in: one syncfs, not an fsync per file and folder (thousands).
    sync_filesystem(root)


def _inside(path: str) -> bool:
    return not path.startswith("/") and os.path.normpath(path) == path and not path.startswith("..")


class _Folders:
    """Makes the staging tree's folders as files in path order need them, and dates each (SOURCE_DATE_EPOCH)
    once it is left: in path order every path below a folder comes in one run (they share its name and a
    ``/`` as a prefix), so a folder left is never entered again and only the chain of open folders is kept,
    not every folder made (20,000 at 20,000 packages), nor a ``stat`` per file.

    ``os.mkdir``'s mode is masked by the umask, so each new folder is given 0755 explicitly."""

    def __init__(self, top: str, epoch: int) -> None:
        self.open = [top]
        self.epoch = epoch

    def enter(self, directory: str) -> None:
        while directory != self.open[-1] and not directory.startswith(f"{self.open[-1]}/"):
            self._leave()
        made = self.open[-1]
        for name in directory[len(made) + 1 :].split("/") if directory != made else ():
            made = f"{made}/{name}"
            os.mkdir(made, _DIR_MODE)  # noqa: PTH102 - strings: see _write_files
            os.chmod(made, _DIR_MODE)  # noqa: PTH101
            self.open.append(made)

    def close(self) -> None:
        while self.open:
            self._leave()

    def _leave(self) -> None:
        os.utime(self.open.pop(), (self.epoch, self.epoch))


def _write_gunzipped(target: str, gz: bytes, epoch: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), _FILE_MODE)
        for chunk in gunzip_chunks(gz):
            handle.write(chunk)
    os.utime(target, (epoch, epoch))


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
