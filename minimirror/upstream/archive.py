"""Reading an upstream APT archive the way apt does, trusting nothing that was not verified.

The chain of trust (Debian RepositoryFormat; apt's acquire logic): the source's key verifies ``InRelease``
(else ``Release`` + ``Release.gpg``); the verified Release gives the size and sha256 of every index; an index
is accepted only when both match. Indices are fetched by hash (``by-hash/SHA256/<hash>``) when the Release
says ``Acquire-By-Hash: yes``, falling back to the plain name, and the smallest listed compression is
preferred (``.xz``, then ``.gz``, then none).

A source that asks for source packages (``Upstream.sources``: aptly's ``dependencyFollowSource`` or
``downloadSourcePackages``) also gets each component's ``<component>/source/Sources`` index, under the same rules
(RepositoryFormat, "Sources Indices"); they are kept apart in ``Snapshot.source_indices`` so the binary index
never parses them.

Everything fetched is kept in the :class:`~minimirror.upstream.cache.Cache`: a second run whose InRelease is unchanged
downloads only the InRelease, and ``offline=True`` works from the cache alone, re-verifying the stored
InRelease, and says what is missing when it cannot.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from minimirror.atomic import write_atomically
from minimirror.errors import ArchiveError, IntegrityError, SignatureError
from minimirror.upstream.cache import Cache
from minimirror.upstream.download import Downloader
from minimirror.upstream.release import IndexEntry, ReleaseFile, parse_release
from minimirror.upstream.signature import Verified, dearmor, verify_clearsigned, verify_detached

__all__ = ["FLAT_COMPONENT", "IndexFile", "Snapshot", "Upstream", "fetch_index", "open_snapshot"]

log = logging.getLogger(__name__)

_COMPRESSIONS = (".xz", ".gz", "")


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where an archive is and how far to trust it: what ``source.txt`` and the settings say."""

    url: str
    key_url: str
    dist: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    verify: bool = True
    allow_expired: bool = False
    sources: bool = False
    """Also select each component's ``source/Sources`` index (source packages are mirrored too)."""

    @property
    def base(self) -> str:
        return self.url.rstrip("/") + "/"

    @property
    def flat(self) -> bool:
        """A flat repository (``deb URL ./``, sources.list(5): a dist ending in ``/`` is an exact path, with
        no components): Release and Packages lie at that path, without ``dists/`` or component folders."""
        return self.dist.endswith("/")

    @property
    def dist_url(self) -> str:
        if self.flat:
            path = self.dist.removeprefix("./").strip("/")
            return f"{self.base}{path}/" if path else self.base
        return f"{self.base}dists/{self.dist}/"

    @property
    def cache_key(self) -> str:
        """A stable name for this upstream's Release in the cache."""
        return hashlib.sha256(f"{self.base}\0{self.dist}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One ``Packages`` index of a component and architecture (``source`` for a ``Sources`` index), as the
    verified Release describes it."""

    component: str
    architecture: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified view of an upstream at one moment: what a lock pins as its chain of trust."""

    upstream: Upstream
    release: ReleaseFile
    release_name: str
    release_sha256: str
    fingerprints: tuple[str, ...]
    indices: tuple[IndexFile, ...]
    source_indices: tuple[IndexFile, ...] = ()


def open_snapshot(
    upstream: Upstream,
    *,
    downloader: Downloader | None,
    cache: Cache,
    now: datetime | None = None,
) -> Snapshot:
    """Fetch (or, with ``downloader=None``, read from the cache) and verify an upstream's Release,
    then make sure every index it needs is in the cache. Returns the verified snapshot."""
    name, raw, content, fingerprints = _verified_release(upstream, downloader, cache)
    release = parse_release(content, name=upstream.dist_url + name)
    _check_validity(release, upstream, now or datetime.now(UTC))
    indices = tuple(_select_indices(release, upstream))
    source_indices = tuple(_select_source_indices(release, upstream)) if upstream.sources else ()
    for index in (*indices, *source_indices):
        fetch_index(upstream, release, index, downloader=downloader, cache=cache)
    return Snapshot(
        upstream=upstream,
        release=release,
        release_name=name,
        release_sha256=hashlib.sha256(raw).hexdigest(),
        fingerprints=fingerprints,
        indices=indices,
        source_indices=source_indices,
    )


def fetch_index(
    upstream: Upstream, release: ReleaseFile, index: IndexFile, *, downloader: Downloader | None, cache: Cache
) -> Path:
    """Make sure the index is in the cache (verified by size and sha256) and return its blob path."""
    if cache.has_blob(index.sha256, index.size):
        return cache.blob_path(index.sha256)
    plain_url = upstream.dist_url + index.path
    if downloader is None:
        raise ArchiveError(
            f"offline: {plain_url} (sha256 {index.sha256[:12]}...) is not in the cache. "
            "Run once without --offline to fill the cache."
        )
    destination = cache.blob_path(index.sha256)
    urls = [plain_url]
    if release.acquire_by_hash:
        directory = index.path.rsplit("/", 1)[0] + "/" if "/" in index.path else ""
        urls.insert(0, f"{upstream.dist_url}{directory}by-hash/SHA256/{index.sha256}")
    # Through the cache's partial folder, as pool files go: a download cut or killed half-way is continued by
    # the next run (and the by-hash and plain URLs continue the same bytes), never left behind as a stray file.
    partial = cache.partial_path(index.sha256)
    for url in urls:
        missing_ok = url != urls[-1]
        try:
            done = downloader.download_resumable(
                url, destination, partial, size=index.size, sha256=index.sha256, missing_ok=missing_ok
            )
        except IntegrityError as exc:
            raise IntegrityError(
                f"{plain_url}: refused, it does not match the signed Release ({exc}). The archive may be "
                "changing under a sync (try again later) or something altered it on the way."
            ) from exc
        if done is not None:
            return destination
        log.debug("no by-hash copy at %s, falling back to the plain name", url)
    raise AssertionError("unreachable: the last URL either returned or raised")


def _verified_release(
    upstream: Upstream, downloader: Downloader | None, cache: Cache
) -> tuple[str, bytes, bytes, tuple[str, ...]]:
    """(file name, raw bytes, verified content, fingerprints) of the InRelease, else Release."""
    stored = cache.release_dir(upstream.cache_key)
    if downloader is None:
        name, raw, signature = _stored_release(stored, upstream)
    else:
        name, raw, signature = _download_release(upstream, downloader)
    if upstream.verify:
        try:
            verified = _verify(upstream, name, raw, signature, _keyring(upstream, downloader, cache))
        except SignatureError:
            if downloader is None or not upstream.key_url.startswith(("http://", "https://")):
                raise
            # The cached key may predate a key rotation: fetch it again once before giving up.
            keyring = _keyring(upstream, downloader, cache, refresh=True)
            verified = _verify(upstream, name, raw, signature, keyring)
        content, fingerprints = verified.content, verified.fingerprints
    else:
        log.warning(
            "SIGNATURE CHECKING IS DISABLED for %s (gpgDisableVerify): anyone on the path to the archive "
            "can change what this mirror serves.",
            upstream.dist_url,
        )
        content, fingerprints = _unsigned_content(raw, name), ()
    if downloader is not None:
        # Kept only once verified, so that --offline can verify it again later.
        write_atomically(stored / name, raw)
        if signature is not None:
            write_atomically(stored / "Release.gpg", signature)
    return name, raw, content, fingerprints


def _verify(upstream: Upstream, name: str, raw: bytes, signature: bytes | None, keyring: bytes) -> Verified:
    if signature is None:
        return verify_clearsigned(raw, keyring, name=upstream.dist_url + name)
    return verify_detached(raw, signature, keyring, name=upstream.dist_url + name)


def _download_release(upstream: Upstream, downloader: Downloader) -> tuple[str, bytes, bytes | None]:
    inrelease = downloader.get_bytes(upstream.dist_url + "InRelease", missing_ok=True)
    if inrelease is not None:
        return "InRelease", inrelease, None
    release = downloader.get_bytes(upstream.dist_url + "Release", missing_ok=True)
    if release is None:
        raise ArchiveError(
            f"{upstream.dist_url}: neither InRelease nor Release exists. "
            f"Check the URL and the dist {upstream.dist!r} in source.txt."
        )
    if not upstream.verify:
        return "Release", release, None
    signature = downloader.get_bytes(upstream.dist_url + "Release.gpg", missing_ok=True)
    if signature is None:
        raise SignatureError(
            f"{upstream.dist_url}: the archive is not signed (no InRelease, no Release.gpg). "
            "minimirror only mirrors signed archives; gpgDisableVerify in aptly.conf overrides this."
        )
    return "Release", release, signature


def _stored_release(stored: Path, upstream: Upstream) -> tuple[str, bytes, bytes | None]:
    for name in ("InRelease", "Release"):
        path = stored / name
        if path.is_file():
            signature = stored / "Release.gpg"
            detached = signature.read_bytes() if name == "Release" and upstream.verify else None
            if name == "Release" and upstream.verify and detached is None:
                break
            return name, path.read_bytes(), detached
    raise ArchiveError(
        f"offline: no Release of {upstream.dist_url} in the cache. Run once without --offline to fill it."
    )


def _keyring(upstream: Upstream, downloader: Downloader | None, cache: Cache, *, refresh: bool = False) -> bytes:
    key_url = upstream.key_url
    parts = urlsplit(key_url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise SignatureError(f"cannot read the key {key_url}: {exc.strerror}") from exc
    elif parts.scheme in ("http", "https"):
        key = _remote_key(key_url, downloader, cache, refresh=refresh)
    else:
        raise SignatureError(f"key URL {key_url!r}: only file://, http:// and https:// are supported")
    return dearmor(key, name=key_url)


def _remote_key(key_url: str, downloader: Downloader | None, cache: Cache, *, refresh: bool) -> bytes:
    stored = cache.key_path(key_url)
    if stored.is_file() and not refresh:
        return stored.read_bytes()
    if downloader is None:
        if not stored.is_file():
            raise ArchiveError(f"offline: the key {key_url} is not in the cache. Run once without --offline.")
        return stored.read_bytes()
    key = downloader.get_bytes(key_url)
    assert key is not None
    write_atomically(stored, key)
    return key


def _unsigned_content(raw: bytes, name: str) -> bytes:
    """The text of a Release taken without verification (gpgDisableVerify): strip clear-sign armor."""
    if name != "InRelease":
        return raw
    lines = raw.split(b"\n")
    try:
        start = lines.index(b"") + 1
        end = next(i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN PGP SIGNATURE"))
    except (ValueError, StopIteration) as exc:
        raise ArchiveError(f"{name}: not a clear-signed file") from exc
    return b"\n".join(line[2:] if line.startswith(b"- ") else line for line in lines[start:end]) + b"\n"


def _check_validity(release: ReleaseFile, upstream: Upstream, now: datetime) -> None:
    if release.is_expired(now) and not upstream.allow_expired:
        raise ArchiveError(
            f"{upstream.dist_url}: the Release expired on {release.valid_until:%Y-%m-%d %H:%M UTC} "
            "(Valid-Until); a replayed old Release looks like this. For a frozen snapshot archive, set "
            "allow-expired = true in the source's minimirror.toml."
        )


FLAT_COMPONENT = "flat"
"""How a lock names the one component of a flat repository (which has none), and the component it is
published in."""


def _select_flat_index(release: ReleaseFile, upstream: Upstream) -> IndexFile:
    # A flat Packages lists every architecture at once; the resolver takes the ones it mirrors.
    entry = _best_entry(release, "Packages")
    if entry is None:
        raise ArchiveError(f"{upstream.dist_url}: the Release of this flat repository lists no Packages index")
    return IndexFile(FLAT_COMPONENT, "all", entry.path, entry.size, entry.sha256)


def _select_indices(release: ReleaseFile, upstream: Upstream) -> Iterable[IndexFile]:
    # As apt does: a component is also found as the last part of a listed one (Debian's security archive lists
    # "updates/main" and serves main/binary-*/), and binary-all is read only where the Release offers it: "all"
    # among its Architectures (or no such field) and no No-Support-for-Architecture-all.
    if upstream.flat:
        yield _select_flat_index(release, upstream)
        return
    known = {*release.components, *(listed.rsplit("/", 1)[-1] for listed in release.components)}
    for component in upstream.components:
        if release.components and component not in known:
            raise ArchiveError(
                f"{upstream.dist_url}: component {component!r} is not in the Release "
                f"(it has: {' '.join(release.components)})"
            )
        architectures = list(upstream.architectures)
        offers_all = not release.architectures or "all" in release.architectures
        if offers_all and not release.no_support_for_architecture_all:
            architectures.append("all")
        for architecture in architectures:
            entry = _best_entry(release, f"{component}/binary-{architecture}/Packages")
            if entry is None:
                if architecture == "all":
                    continue
                raise ArchiveError(
                    f"{upstream.dist_url}: no Packages index for {component}/binary-{architecture} "
                    f"in the Release (architectures: {' '.join(release.architectures) or 'not listed'})"
                )
            yield IndexFile(component, architecture, entry.path, entry.size, entry.sha256)


def _select_source_indices(release: ReleaseFile, upstream: Upstream) -> Iterable[IndexFile]:
    if upstream.flat:
        entry = _best_entry(release, "Sources")
        if entry is None:
            message = "the flat repository has no Sources index; turn off source packages"
            raise ArchiveError(f"{upstream.dist_url}: {message}")
        yield IndexFile(FLAT_COMPONENT, "source", entry.path, entry.size, entry.sha256)
        return
    for component in upstream.components:
        entry = _best_entry(release, f"{component}/source/Sources")
        if entry is None:
            raise ArchiveError(
                f"{upstream.dist_url}: no Sources index for {component}/source in the Release, but the source asks "
                "for source packages (dependencyFollowSource or downloadSourcePackages in aptly.conf). "
                "Turn them off, or use an archive that publishes sources (a deb-src line would fail the same way)."
            )
        yield IndexFile(component, "source", entry.path, entry.size, entry.sha256)


def _best_entry(release: ReleaseFile, stem: str) -> IndexEntry | None:
    for suffix in _COMPRESSIONS:
        entry = release.files.get(stem + suffix)
        if entry is not None:
            return entry
    return None
