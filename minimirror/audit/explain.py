"""The changelogs of a diff's changes, read from the new ``.deb`` files: the I/O side of the changelog audit.

For each source package of a :class:`~minimirror.audit.diff.LockDiff` with an upgraded, downgraded, added or
rebuilt binary, :func:`explain` reads the changelog once (not once per binary) out of one of its new ``.deb``
files: the binary named like the source first (the others' ``usr/share/doc/<package>`` is often a symlink to
it), then the others by name. The ``.deb`` is the cache's blob (:class:`~minimirror.upstream.cache.Cache`, as
``minimirror fetch`` stores it), re-hashed against the lock's sha256 before it is read; a missing one is
downloaded through the :class:`~minimirror.upstream.download.Downloader` into the cache, checked against the
lock's size and sha256 on the way in (``--offline``: reported ``unknown``). Only the data member is read, as a
stream (:func:`~minimirror.upstream.debfile.read_data_files`); the entries are picked by
:mod:`minimirror.audit.changelog`. Nothing here raises for one package: a package that cannot be read is
``unreadable`` with the reason, and the rest of the diff goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from debian.debian_support import Version

from minimirror.audit.changelog import ChangelogStatus, SourceChangelog, changelog_entries, gunzip_text
from minimirror.audit.diff import LockDiff, PackageChange
from minimirror.errors import FetchError, IntegrityError
from minimirror.filelock import cache_lock
from minimirror.lock.lockfile import Lock, LockedPackage
from minimirror.upstream.cache import Cache, default_cache_dir
from minimirror.upstream.debfile import read_data_files
from minimirror.upstream.download import Downloader, make_client

__all__ = ["EXPLAINED_KINDS", "ChangelogConfig", "explain"]

log = logging.getLogger(__name__)

EXPLAINED_KINDS = frozenset({"upgraded", "downgraded", "added", "rebuilt"})
"""The kinds of change whose new package has something to say (``removed`` has no new package, ``moved`` the
same bytes)."""

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class ChangelogConfig:
    """Where the ``.deb`` files are (``cache_dir``; ``None``: the default cache, ``$XDG_CACHE_HOME/minimirror``)
    and whether the network may be used for the missing ones."""

    cache_dir: Path | None = None
    offline: bool = False

    @property
    def cache_root(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()


class _Unread(Exception):
    """Why one ``.deb`` gave no changelog: ``status`` as :class:`SourceChangelog` names it, and the reason."""

    def __init__(self, status: ChangelogStatus, note: str) -> None:
        super().__init__(note)
        self.status = status
        self.note = note


def explain(
    diff: LockDiff, new_locks: Sequence[Lock], config: ChangelogConfig, *, client: httpx.Client | None = None
) -> LockDiff:
    """``diff`` with :attr:`~LockDiff.changelogs` filled in: one :class:`SourceChangelog` per (source, source
    package) with an explained change, sorted. ``client`` is used as given (not closed); without one, a client
    is made only when something must be downloaded. The cache is locked (as ``fetch`` locks it) unless
    ``offline``, since downloads write to it."""
    with ExitStack() as stack:
        if not config.offline:
            stack.enter_context(cache_lock(config.cache_root))
        reader = _Reader(Cache(config.cache_root), config.offline, client)
        try:
            by_id = {lock.source.id: lock for lock in new_locks}
            groups = _groups(diff)
            changelogs = tuple(reader.changelog(by_id.get(key[0]), key, changes) for key, changes in groups)
        finally:
            reader.close()
    return dataclasses.replace(diff, changelogs=changelogs)


def _groups(diff: LockDiff) -> list[tuple[tuple[str, str], tuple[PackageChange, ...]]]:
    groups = diff.by_source_package()
    explained = (
        (key, tuple(c for c in changes if c.kind in EXPLAINED_KINDS and c.new)) for key, changes in groups.items()
    )
    return [(key, changes) for key, changes in explained if changes]


def _candidates(source_package: str, changes: Sequence[PackageChange]) -> list[PackageChange]:
    """The binary named like its source first (it owns the doc folder), then the others by name and arch."""
    return sorted(changes, key=lambda c: (c.name != source_package, c.name, c.architecture, c.new_version))


def _security_suite(lock: Lock | None, package: LockedPackage) -> str:
    """The package's companion suite when it is a security suite (``bookworm-security``, ``jammy-security``,
    an archive labelled ``Debian-Security``), else empty."""
    if lock is None or package.companion is None:
        return ""
    pin = next((c for c in lock.companions if c.dist == package.companion), None)
    label = (pin.upstream.label or "") if pin else ""
    return package.companion if "security" in f"{package.companion} {label}".lower() else ""


class _Reader:
    """Reads changelogs out of ``.deb`` files, each at most once, downloading into the cache when allowed."""

    def __init__(self, cache: Cache, offline: bool, client: httpx.Client | None) -> None:
        self._cache = cache
        self._offline = offline
        self._client = client
        self._own_client: httpx.Client | None = None
        self._texts: dict[str, str | _Unread] = {}

    def close(self) -> None:
        if self._own_client is not None:
            self._own_client.close()

    def changelog(self, lock: Lock | None, key: tuple[str, str], changes: Sequence[PackageChange]) -> SourceChangelog:
        source, source_package = key
        old = max((c.old_version for c in changes if c.old), key=_version_key, default="")
        problems: list[_Unread] = []
        for change in _candidates(source_package, changes):
            assert change.new is not None
            base = SourceChangelog(
                source,
                source_package,
                change.old_version or old,
                change.new_version,
                "read",
                package=change.name,
                security_suite=_security_suite(lock, change.new),
            )
            try:
                text = self._text(lock, change.new)
            except _Unread as unread:
                problems.append(unread)
                if unread.status == "unknown":
                    break  # offline: another binary of the source is no likelier to be cached
                continue
            entries = changelog_entries(text, old=base.old_version, new=base.new_version)
            if entries:
                return dataclasses.replace(base, entries=entries)
            problems.append(_Unread("unreadable", f"{change.name}: the changelog has no entry"))
        worst = next((p for p in problems if p.status == "unknown"), problems[0] if problems else None)
        assert worst is not None
        return dataclasses.replace(base, status=worst.status, note=worst.note)

    def _text(self, lock: Lock | None, package: LockedPackage) -> str:
        known = self._texts.get(package.sha256)
        if known is None:
            try:
                known = self._read(lock, package)
            except _Unread as unread:
                known = unread
            self._texts[package.sha256] = known
        if isinstance(known, _Unread):
            raise known
        return known

    def _read(self, lock: Lock | None, package: LockedPackage) -> str:
        path = self._deb(lock, package)
        label = f"{package.name}_{package.version}_{package.architecture}.deb"
        doc = f"usr/share/doc/{package.name}"
        debian, native, binnmu = (
            f"{doc}/changelog.Debian.gz",
            f"{doc}/changelog.gz",
            f"{doc}/changelog.Debian.{package.architecture}.gz",
        )
        try:
            files = read_data_files(path, frozenset({debian, native, binnmu}), name=label)
        except IntegrityError as exc:
            raise _Unread("unreadable", str(exc)) from exc
        main = files.get(debian, files.get(native))
        if main is None:
            raise _Unread("unreadable", f"{label} has no {debian} or {native}")
        try:
            parts = [gunzip_text(files[binnmu], name=binnmu)] if binnmu in files else []
            parts.append(gunzip_text(main, name=debian if debian in files else native))
        except ValueError as exc:
            raise _Unread("unreadable", f"{label}: {exc}") from exc
        return "\n".join(parts)

    def _deb(self, lock: Lock | None, package: LockedPackage) -> Path:
        """The verified cache blob of ``package``, downloaded into the cache first when missing and allowed."""
        blob = self._cache.blob_path(package.sha256)
        if self._cache.has_blob(package.sha256, package.size):
            if _sha256_of(blob) == package.sha256:
                return blob
            log.warning("%s: the cached blob of %s does not match its sha256; removed", blob, package.filename)
            blob.unlink(missing_ok=True)
        if self._offline:
            raise _Unread("unknown", f"{package.filename} is not in the cache (--offline)")
        if lock is None:
            raise _Unread("unreadable", f"{package.filename}: no lock names its archive")
        return self._download(lock.base_url(package), package)

    def _download(self, base_url: str, package: LockedPackage) -> Path:
        url = f"{base_url.rstrip('/')}/{package.filename}"
        if self._client is None:
            self._client = self._own_client = make_client()
        downloader = Downloader(self._client)
        blob, partial = self._cache.blob_path(package.sha256), self._cache.partial_path(package.sha256)
        try:
            done = downloader.download_resumable(
                url, blob, partial, size=package.size, sha256=package.sha256, missing_ok=True
            )
        except IntegrityError as exc:
            raise _Unread("unreadable", f"{url} does not match the lock: {exc}") from exc
        except FetchError as exc:
            raise _Unread("unreadable", f"cannot download {url}: {exc.reason}") from exc
        if done is None:
            raise _Unread("unreadable", f"{url} is gone upstream (HTTP 404/410)")
        return blob


def _version_key(version: str) -> Version:
    return Version(version)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
