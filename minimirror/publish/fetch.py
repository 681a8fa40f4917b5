"""The fetch stage: every pool file the locks name, downloaded into the content-addressed cache and verified.

Implements the "Fetch" step of ``DESIGN.md`` ("Fetch, publish, sign"): each ``[[package]]`` of each lock
(``docs/lockfile.md``, schema 1) names a pool file by ``filename``, ``size`` and ``sha256``; its URL is the
source's ``url`` joined with ``filename`` (Debian RepositoryFormat: ``Filename`` is relative to the archive
root). Source packages (``[[source-package]]``) are fetched the same way, file by file: the URL is the source's
``url`` joined with ``directory/name``. A file is stored as the blob ``blobs/sha256/<2 hex>/<sha256>`` of
:class:`~minimirror.upstream.cache.Cache` and is accepted only when its size and sha256 match the lock, so a blob
name is a promise about the bytes.

Two steps, as everywhere in minimirror: :func:`plan_fetch` decides, reading nothing but the locks and the sizes
of the blobs already present (no network, no writes); :func:`fetch` applies the plan.

- Blobs already present with the right size are re-hashed (a tampered or rotted blob is removed, named in a
  warning and downloaded again): that check is what makes the cache trustworthy, and costs a read of the cache.
- Downloads run in a bounded thread pool over one shared ``httpx.Client`` (connections are reused; proxies come
  from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``), the largest files first so that no big file is left to
  finish alone at the end. Each file goes through ``cache/partial/<sha256>.part`` and is resumed with
  ``Range: bytes=N-`` after a cut (:meth:`~minimirror.upstream.download.Downloader.download_resumable`), with the
  Downloader's retries and backoff.
- A file gone upstream (404/410) is tried at each ``fallback_urls`` base in order (a snapshot archive, say).
- Every failure is collected; :func:`fetch` then raises one :class:`FetchFailures` naming each file, its
  packages, the URLs tried and what to do. A complete cache makes no network request at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from minimirror.atomic import disk_errors, require_space
from minimirror.errors import FetchError, IntegrityError, LockError, UsageError
from minimirror.filelock import cache_lock
from minimirror.lock.lockfile import Lock, LockedPackage, read_locks
from minimirror.upstream.cache import Cache
from minimirror.upstream.download import Downloader, RetryPolicy, make_client

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_PER_HOST",
    "FetchConfig",
    "FetchFailure",
    "FetchFailures",
    "FetchIntegrityFailures",
    "FetchItem",
    "FetchPlan",
    "FetchProgress",
    "FetchReport",
    "fetch",
    "plan_fetch",
]

log = logging.getLogger(__name__)

_HASH_BLOCK = 1 << 20

DEFAULT_JOBS = 16
DEFAULT_PER_HOST = 16
"""Chosen from ``benchmarks/bench_fetch_wan.py`` (see benchmarks/README.md): on a link with a 40 ms round trip and
25 MiB/s per connection, 300 files (143 MiB) took 3.2 s over 8 connections, 1.95 s over 16 and 2.0 s over 32; curl
took 2.4 s over 8 and 1.6 s over 50. httpx cannot pipeline requests, as apt does over its one connection per host,
so connections are what hide the round trips; past 16 they buy nothing here, and a polite client takes no more
than it gains from. ``--per-host`` lowers it for a mirror that asks for fewer."""


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """What ``minimirror fetch`` works on. ``fallback_urls`` are archive base URLs (``http://host/debian``)
    tried in order for a file gone from its source; ``retry`` is the Downloader's policy."""

    locks_dir: Path
    cache_dir: Path
    jobs: int = DEFAULT_JOBS
    fallback_urls: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    per_host: int = DEFAULT_PER_HOST
    """At most this many downloads at a time from one host, however many ``jobs`` run (several sources)."""

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {self.jobs}")
        if self.per_host < 1:
            raise UsageError(f"--per-host must be at least 1, got {self.per_host}")


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One pool file: where it comes from, what it must be, where it goes, and which packages are in it."""

    sha256: str
    size: int
    filename: str
    urls: tuple[str, ...]
    """The lock's URLs (one per source that has the file), tried first."""
    fallbacks: tuple[str, ...]
    """The same file under each fallback base, tried only when it is gone (404/410) from ``urls``."""
    dest: Path
    packages: tuple[str, ...]
    """``name version architecture (prefix/name)``, for messages."""


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """``download`` (missing, or present with the wrong size: ``wrong_size``) and ``reuse`` (present, right
    size; still to be re-hashed), each sorted by filename."""

    download: tuple[FetchItem, ...]
    reuse: tuple[FetchItem, ...]
    wrong_size: tuple[FetchItem, ...] = ()

    @property
    def download_bytes(self) -> int:
        return sum(item.size for item in self.download)

    def space_needed(self, cache: Cache) -> int:
        """The bytes the downloads add to the cache: each file's size, less what its partial file already holds."""
        return sum(max(item.size - (_size_of(cache.partial_path(item.sha256)) or 0), 0) for item in self.download)


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """One file that could not be fetched, every URL tried, why, and what to do."""

    filename: str
    sha256: str
    packages: tuple[str, ...]
    urls: tuple[str, ...]
    reason: str
    hint: str
    integrity: bool = False

    def render(self) -> str:
        tried = "".join(f"\n      {url}" for url in self.urls)
        return f"  {self.filename} ({', '.join(self.packages)}): {self.reason}\n    tried:{tried}\n    {self.hint}"


@dataclass(frozen=True, slots=True)
class FetchReport:
    """``downloaded``/``reused`` count files; ``bytes_downloaded`` is the size of the files downloaded;
    ``corrupt`` names the blobs found damaged (and downloaded again)."""

    downloaded: int
    reused: int
    bytes_downloaded: int
    failures: tuple[FetchFailure, ...] = ()
    corrupt: tuple[Path, ...] = ()


class FetchFailures(FetchError):
    """Some files could not be fetched: each is listed with its packages, the URLs tried and what to do.

    ``report`` says what did succeed (those files are in the cache; a new run fetches only the rest)."""

    def __init__(self, report: FetchReport) -> None:
        self.report = report
        self.failures = report.failures
        first = self.failures[0]
        more = f" (and {len(self.failures) - 1} more files)" if len(self.failures) > 1 else ""
        super().__init__(first.urls[-1], first.reason + more, first.hint)

    def render(self) -> str:
        count = len(self.failures)
        done = f"{self.report.downloaded} downloaded, {self.report.reused} reused"
        lines = [f"cannot fetch {count} file{'s' if count > 1 else ''} ({done}):"]
        lines += [failure.render() for failure in self.failures]
        return "\n".join(lines)


class FetchIntegrityFailures(FetchFailures, IntegrityError):
    """Every failure is a file whose bytes do not match the lock: what a tampering mirror or proxy causes."""


class FetchProgress(Protocol):
    """Called after each change (from worker threads, one call at a time) with the downloads' totals."""

    def __call__(self, files_done: int, bytes_done: int, files_total: int, bytes_total: int) -> None: ...


# --- planning (pure: the locks and the sizes of the blobs present) -------------------------------------


def _join(base: str, filename: str) -> str:
    return f"{base.rstrip('/')}/{filename}"


def _label(lock: Lock, package: LockedPackage) -> str:
    return f"{package.name} {package.version} {package.architecture} ({lock.source.id})"


@dataclass(frozen=True, slots=True)
class _Wanted:
    """One file a lock names: a binary package's pool file or a file of a source package."""

    filename: str
    size: int
    sha256: str
    label: str
    base_url: str
    """The archive the filename is relative to: the source's, or its companion suite's."""


def _wanted(lock: Lock) -> Iterator[_Wanted]:
    for package in lock.packages:
        yield _Wanted(package.filename, package.size, package.sha256, _label(lock, package), lock.base_url(package))
    for source in lock.source_packages:
        label = f"{source.name} {source.version} source ({lock.source.id})"
        for file in source.files:
            yield _Wanted(source.path(file), file.size, file.sha256, label, lock.base_url(source))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _merge(entries: Sequence[tuple[Lock, _Wanted]], cache: Cache, fallback_urls: Sequence[str]) -> FetchItem:
    """One item for every (lock, file) naming the same sha256; they must agree on the size."""
    first = entries[0][1]
    sizes = {package.size for _, package in entries}
    if len(sizes) > 1:
        names = ", ".join(f"{p.label}: {p.size}" for _, p in entries)
        raise LockError(f"the locks give sha256 {first.sha256} different sizes ({names}); re-run `minimirror lock`")
    filenames = _unique(package.filename for _, package in entries)
    return FetchItem(
        sha256=first.sha256,
        size=first.size,
        filename=first.filename,
        urls=_unique(_join(package.base_url, package.filename) for _, package in entries),
        fallbacks=_unique(_join(base, name) for base in fallback_urls for name in filenames),
        dest=cache.blob_path(first.sha256),
        packages=_unique(package.label for _, package in entries),
    )


def plan_fetch(locks: Iterable[Lock], cache: Cache, *, fallback_urls: Sequence[str] = ()) -> FetchPlan:
    """Every pool file of every lock, once per sha256, split into what to download and what is present.

    Reads only the sizes of the blobs present (``stat``); nothing is written and the network is not touched.
    """
    by_sha: dict[str, list[tuple[Lock, _Wanted]]] = {}
    for lock in locks:
        for wanted in _wanted(lock):
            by_sha.setdefault(wanted.sha256, []).append((lock, wanted))
    items = sorted((_merge(entries, cache, fallback_urls) for entries in by_sha.values()), key=_order)
    sizes = {item.sha256: _size_of(item.dest) for item in items}
    reuse = tuple(item for item in items if sizes[item.sha256] == item.size)
    wrong = tuple(item for item in items if sizes[item.sha256] not in (None, item.size))
    download = tuple(item for item in items if sizes[item.sha256] != item.size)
    return FetchPlan(download=download, reuse=reuse, wrong_size=wrong)


def _order(item: FetchItem) -> tuple[str, str]:
    return (item.filename, item.sha256)


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


# --- applying the plan --------------------------------------------------------------------------------


def fetch(
    config: FetchConfig, *, client: httpx.Client | None = None, progress: FetchProgress | None = None
) -> FetchReport:
    """Make the cache hold every pool file the locks under ``config.locks_dir`` name, verified.

    Raises :class:`FetchFailures` (an :class:`IntegrityError` too when every failure is one) listing every file
    that could not be fetched, after fetching all the others. ``client`` is used as given (and not closed);
    without one, a client is made only if something must be downloaded.
    """
    with cache_lock(config.cache_dir):
        return _fetch(config, client, progress)


def _fetch(config: FetchConfig, client: httpx.Client | None, progress: FetchProgress | None) -> FetchReport:
    cache = Cache(config.cache_dir)
    plan = plan_fetch(read_locks(config.locks_dir), cache, fallback_urls=config.fallback_urls)
    needed = plan.space_needed(cache)
    require_space(cache.root, needed)
    with disk_errors(cache.root, needed=needed, cleanup=cache.drop_partials):
        return _apply(config, cache, plan, client, progress)


def _apply(
    config: FetchConfig, cache: Cache, plan: FetchPlan, client: httpx.Client | None, progress: FetchProgress | None
) -> FetchReport:
    for item in plan.wrong_size:
        log.warning("%s: wrong size for %s (%s); downloading it again", item.dest, item.filename, item.packages[0])
    corrupt = _verify_present(plan.reuse, workers=min(config.jobs, os.cpu_count() or 1))
    corrupt_sha = {item.sha256 for item in corrupt}
    reused = tuple(item for item in plan.reuse if item.sha256 not in corrupt_sha)
    todo = tuple(sorted((*plan.download, *corrupt), key=_order))
    failures = _download_all(config, cache, todo, client, progress) if todo else ()
    failed = {failure.sha256 for failure in failures}
    done = [item for item in todo if item.sha256 not in failed]
    report = FetchReport(
        downloaded=len(done),
        reused=len(reused),
        bytes_downloaded=sum(item.size for item in done),
        failures=failures,
        corrupt=tuple(item.dest for item in (*plan.wrong_size, *corrupt)),
    )
    if failures:
        raise (FetchIntegrityFailures if all(f.integrity for f in failures) else FetchFailures)(report)
    return report


def _verify_present(items: Sequence[FetchItem], *, workers: int) -> tuple[FetchItem, ...]:
    """Re-hash the blobs present; remove (with a warning) and return those whose sha256 is wrong."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minimirror-verify") as pool:
        intact = list(pool.map(_blob_intact, items))
    corrupt = tuple(item for item, ok in zip(items, intact, strict=True) if not ok)
    for item in corrupt:
        log.warning(
            "%s: the cached blob of %s (%s) does not match its sha256; removed, downloading it again",
            item.dest,
            item.filename,
            item.packages[0],
        )
        item.dest.unlink(missing_ok=True)
    return corrupt


def _blob_intact(item: FetchItem) -> bool:
    digest = hashlib.sha256()
    try:
        with item.dest.open("rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == item.sha256


class _Tally:
    """The downloads' progress, updated from worker threads and passed on one call at a time."""

    def __init__(self, items: Sequence[FetchItem], progress: FetchProgress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._files = 0
        self._bytes = 0
        self._totals = (len(items), sum(item.size for item in items))

    def add(self, *, files: int = 0, count: int = 0) -> None:
        if self._progress is None:
            return
        with self._lock:
            self._files += files
            self._bytes += count
            self._progress(self._files, self._bytes, *self._totals)

    def on_bytes(self, count: int) -> None:
        self.add(count=count)


def _download_all(
    config: FetchConfig,
    cache: Cache,
    items: Sequence[FetchItem],
    client: httpx.Client | None,
    progress: FetchProgress | None,
) -> tuple[FetchFailure, ...]:
    tally = _Tally(items, progress)
    tally.add()
    own = client is None
    http = client if client is not None else make_client(max_connections=config.jobs)
    # Largest first: a big file started last would finish alone on one connection, long after the others.
    # The failures are still reported in the plan's order.
    largest_first = sorted(items, key=lambda item: item.size, reverse=True)
    slots = _HostSlots(config.per_host)
    try:
        downloader = Downloader(http, retry=config.retry)
        with ThreadPoolExecutor(max_workers=config.jobs, thread_name_prefix="minimirror-fetch") as pool:
            outcomes = dict(
                zip(
                    (item.sha256 for item in largest_first),
                    pool.map(lambda item: _download_one(downloader, cache, item, tally, slots), largest_first),
                    strict=True,
                )
            )
    finally:
        if own:
            http.close()
    return tuple(outcome for item in items if (outcome := outcomes[item.sha256]) is not None)


class _HostSlots:
    """At most ``limit`` downloads at a time per host (scheme, name and port), shared by the worker threads."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._guard = threading.Lock()
        self._slots: dict[tuple[str, str], threading.Semaphore] = {}

    @contextmanager
    def taken(self, url: str) -> Iterator[None]:
        parts = urlsplit(url)
        with self._guard:
            slot = self._slots.setdefault((parts.scheme, parts.netloc), threading.Semaphore(self._limit))
        with slot:
            yield


def _download_one(
    downloader: Downloader, cache: Cache, item: FetchItem, tally: _Tally, slots: _HostSlots
) -> FetchFailure | None:
    """Fetch one item from its URLs, then (only if gone from all of them) its fallbacks; None when done."""
    tried: list[str] = []
    try:
        for url in (*item.urls, *item.fallbacks):
            if tried:
                log.info("%s is gone from %s; trying %s", item.filename, tried[-1], url)
            tried.append(url)
            with slots.taken(url):
                result = downloader.download_resumable(
                    url,
                    item.dest,
                    cache.partial_path(item.sha256),
                    size=item.size,
                    sha256=item.sha256,
                    missing_ok=True,
                    progress=tally.on_bytes,
                )
            if result is not None:
                tally.add(files=1)
                return None
    except IntegrityError as exc:
        return _failure(item, tried, str(exc), _INTEGRITY_HINT, integrity=True)
    except FetchError as exc:
        return _failure(item, tried, exc.reason, exc.hint or _RETRY_HINT)
    return _failure(item, tried, "gone upstream (HTTP 404/410 from every URL tried)", _gone_hint(item))


_INTEGRITY_HINT = (
    "The server sent bytes that do not match the lock (a broken mirror or proxy, or a changed archive): "
    "nothing was stored. Check the source URL and any proxy, or re-lock with `minimirror lock`."
)
_RETRY_HINT = "Check the URL and your network or proxy settings (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), then run again."


def _gone_hint(item: FetchItem) -> str:
    name = item.packages[0].split(" ", 1)[0]
    hint = f"Re-lock against the current archive (`minimirror lock --upgrade-package {name}`)"
    if not item.fallbacks:
        hint += ", or pass --fallback-url with an archive that still has it (a snapshot archive)"
    return hint + "."


def _failure(item: FetchItem, tried: Sequence[str], reason: str, hint: str, *, integrity: bool = False) -> FetchFailure:
    return FetchFailure(
        filename=item.filename,
        sha256=item.sha256,
        packages=item.packages,
        urls=tuple(tried),
        reason=reason,
        hint=hint,
        integrity=integrity,
    )
