"""Downloads over HTTP with retries, verified hashes and atomic writes.

One seam for the network: :class:`Downloader` wraps an ``httpx.Client`` (tests hand it a client of their
own). The client honours ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (httpx's ``trust_env``), reuses
connections, and follows redirects to http(s) only. Transient failures are retried with exponential
backoff: 5xx and 429 answers, connection errors and resets, timeouts, and bodies cut short (httpx reports
a body shorter than its Content-Length as a protocol error; a known length or hash catches the rest).
:meth:`Downloader.download_resumable` writes a file to a named partial file and renames it to its destination
only once its size and sha256 match, so a destination never holds an unverified or partial file; an interrupted
download is continued from the partial file with a single byte range (``Range: bytes=N-``, RFC 9110 §14.2): a
``206`` whose ``Content-Range`` starts at ``N`` is appended, a ``200`` (a server or proxy without ranges) starts
over, a ``416`` drops the partial file; the whole file's sha256 is checked at the end either way, so a resumed
file is as trustworthy as one read in one go.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx

from minimirror import __version__
from minimirror.errors import FetchError, IntegrityError

__all__ = ["ByteProgress", "DownloadResult", "Downloader", "RetryPolicy", "make_client"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_BLOCK = 1 << 20
"""How much of a body :meth:`Downloader.download_resumable` gathers before writing and hashing it. httpcore hands
the body over in reads of at most 64 KiB; one ``write`` and one ``sha256.update`` a MiB instead of one a read
means fewer calls, and far fewer GIL hand-overs between the download threads (both release the GIL). The reads
are copied into one buffer per thread, reused from file to file: a fresh MiB for every block (``b"".join``)
would be fresh memory from the kernel each time, and its page faults cost more than the copy."""
_MAX_UNSIZED = 64 << 20
"""The most read of a body whose size no signature vouches for (an InRelease, a key): Debian's largest InRelease
is well under 1 MiB, and an endless body must neither fill memory nor run forever."""
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_T = TypeVar("_T")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

ByteProgress = Callable[[int], None]
"""Told how many bytes a download added to (or, when it starts over, took from) what is on disk."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff * (2**attempt), self.max_backoff))


@dataclass(frozen=True, slots=True)
class DownloadResult:
    url: str
    path: Path
    size: int
    sha256: str


class _Transient(Exception):
    """A failure worth another try. ``final`` is raised instead of a FetchError if every try fails."""

    def __init__(self, reason: str, final: Exception | None = None) -> None:
        super().__init__(reason)
        self.final = final


class _RangeRefused(_Transient):
    """A 416 to a resume request: the partial file is dropped and the next try starts from zero."""


def make_client(*, timeout: float = 30.0, trust_env: bool = True, max_connections: int | None = None) -> httpx.Client:
    """The client minimirror uses: proxies from the environment, pooled connections, bounded timeouts.

    ``max_connections`` bounds the pool (and keeps that many alive); give it when more threads than httpx's
    default 20 kept-alive connections share the client."""
    limits = (
        httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
        if max_connections is None
        else httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    )
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        limits=limits,
        follow_redirects=True,
        trust_env=trust_env,
        headers={"User-Agent": f"minimirror/{__version__}"},
        # No explicit transport: httpx mounts the environment's proxies only on its default transports.
    )


class Downloader:
    """Fetches URLs to bytes or to files, retrying transient failures and checking what it is told to."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._local = threading.local()

    def _block_buffer(self) -> bytearray:
        """This thread's buffer for :func:`_receive` (see ``_BLOCK``)."""
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = bytearray(_BLOCK)
        return buffer

    def get_bytes(
        self, url: str, *, size: int | None = None, sha256: str | None = None, missing_ok: bool = False
    ) -> bytes | None:
        """The body of ``url``; ``None`` for a 404/410 when ``missing_ok``. Checks size/sha256 when given."""

        def attempt() -> bytes | None:
            with self._open(url, missing_ok=missing_ok) as response:
                if response is None:
                    return None
                body = b"".join(_iter_body(response, url, size))
            _check(url, len(body), hashlib.sha256(body).hexdigest(), size=size, sha256=sha256)
            return body

        return self._with_retries(url, attempt)

    def download_resumable(
        self,
        url: str,
        dest: Path,
        partial: Path,
        *,
        size: int,
        sha256: str,
        missing_ok: bool = False,
        progress: ByteProgress | None = None,
    ) -> DownloadResult | None:
        """Download ``url`` to ``dest`` through ``partial``, continuing whatever ``partial`` already holds.

        Bytes are appended to ``partial`` as they arrive, so a cut connection (or an interrupted run) loses
        nothing: the next try asks for the rest with ``Range: bytes=N-``. ``dest`` appears (by a rename) only
        once the whole file has ``size`` bytes and ``sha256``; a mismatch drops ``partial`` and is retried, then
        refused with an IntegrityError. ``None`` for a 404/410 when ``missing_ok``; ``partial`` is then kept, so
        another URL of the same file continues it. ``progress`` follows the bytes on disk (see ByteProgress).
        """
        shown = _Shown(progress)

        def attempt() -> DownloadResult | None:
            have = _usable_partial(partial, size)
            shown.to(have)
            digest = _hash_file(partial) if have else hashlib.sha256()
            if have < size:
                try:
                    with self._open(url, missing_ok=missing_ok, headers=_range_from(have)) as response:
                        if response is None:
                            shown.to(0)  # the partial file stays for another URL, which counts it again
                            return None
                        have, digest = _receive(
                            response,
                            url,
                            partial,
                            have=have,
                            size=size,
                            digest=digest,
                            shown=shown,
                            buffer=self._block_buffer(),
                        )
                except _RangeRefused:
                    partial.unlink(missing_ok=True)
                    shown.to(0)
                    raise
            _accept(url, partial, dest, have, digest.hexdigest(), size=size, sha256=sha256, shown=shown)
            return DownloadResult(url=url, path=dest, size=size, sha256=sha256)

        return self._with_retries(url, attempt)

    @contextmanager
    def _open(
        self, url: str, *, missing_ok: bool = False, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response | None]:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if missing_ok and response.status_code in (404, 410):
                    yield None
                    return
                if response.status_code == 416 and headers and "Range" in headers:
                    raise _RangeRefused(f"HTTP 416 to {headers['Range']}")
                if response.status_code in _RETRY_STATUS:
                    raise _Transient(f"HTTP {response.status_code} {response.reason_phrase}")
                if response.status_code >= 400:
                    raise FetchError(
                        url,
                        f"HTTP {response.status_code} {response.reason_phrase}",
                        _hint_for_status(response.status_code),
                    )
                yield response
        except httpx.UnsupportedProtocol as exc:
            raise FetchError(url, f"refused: {exc}", "only http:// and https:// URLs are fetched") from exc
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc

    def _with_retries(self, url: str, attempt: Callable[[], _T]) -> _T:
        reason = ""
        final: Exception | None = None
        for number in range(self._retry.attempts):
            try:
                return attempt()
            except _Transient as exc:
                # A body that did not match what was verified is the finding that matters: keep it even when a
                # later try fails otherwise (e.g. a lying server's leftover bytes spoiling the reused connection).
                reason, final = str(exc), exc.final or final
                if number + 1 < self._retry.attempts:
                    delay = self._retry.delay(number)
                    log.info("retrying %s in %.1fs after: %s", url, delay, reason)
                    self._sleep(delay)
        if final is not None:
            raise final
        raise FetchError(
            url,
            f"{reason} (after {self._retry.attempts} attempts)",
            "Check the URL and your network or proxy settings (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), "
            "then run again; use --offline to work from the cache.",
        )


def _iter_body(
    response: httpx.Response, url: str, size: int | None, *, chunk_size: int | None = _CHUNK
) -> Iterator[bytes]:
    """The body in chunks; ``chunk_size=None`` passes on each read as it arrives (httpx would otherwise hold
    back a last partial chunk when the connection is cut, and a resumable download would lose it)."""
    received = 0
    for chunk in response.iter_bytes(chunk_size):
        received += len(chunk)
        if size is not None and received > size:
            # A body longer than a verified size is wrong whatever it holds; stop reading (an endless
            # body must not fill the disk).
            message = f"{url}: body longer than the verified {size} bytes"
            raise _Transient(f"body longer than {size} bytes", IntegrityError(message))
        if size is None and received > _MAX_UNSIZED:
            raise FetchError(
                url,
                f"refused: the body goes on past {_MAX_UNSIZED >> 20} MiB, far more than a Release file or key",
                "Check that the URL names a Release file or key, and any proxy in between.",
            )
        yield chunk


def _check(url: str, body_size: int, body_sha256: str, *, size: int | None, sha256: str | None) -> None:
    """Compare a body with what a verified index promised. A mismatch may be a cut or a stale cache
    on the way, so it is retried; if it persists it is an :class:`IntegrityError`, never a FetchError."""
    if size is not None and body_size != size:
        message = f"{url}: got {body_size} bytes, the verified index says {size}"
        raise _Transient(f"size {body_size} instead of {size}", IntegrityError(message))
    if sha256 is not None and body_sha256 != sha256:
        message = f"{url}: sha256 {body_sha256} differs from the verified {sha256}"
        raise _Transient("sha256 mismatch", IntegrityError(message))


class _Shown:
    """Tells a ByteProgress callback how the bytes on disk changed, given their new absolute count."""

    def __init__(self, progress: ByteProgress | None) -> None:
        self._progress = progress
        self._count = 0

    def to(self, count: int) -> None:
        if self._progress is not None and count != self._count:
            self._progress(count - self._count)
        self._count = count


def _usable_partial(partial: Path, size: int) -> int:
    """The length of ``partial`` (0 when absent); a partial file longer than the file it is part of is dropped."""
    try:
        have = partial.stat().st_size
    except FileNotFoundError:
        return 0
    if have > size:
        partial.unlink(missing_ok=True)
        return 0
    return have


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest


def _range_from(offset: int) -> dict[str, str] | None:
    return {"Range": f"bytes={offset}-"} if offset else None


def _resume_offset(response: httpx.Response, url: str, have: int) -> int:
    """Where the body starts in the file: ``have`` for a 206 continuing it, 0 for a full answer."""
    if response.status_code != 206:
        return 0
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None or int(match.group(1)) != have:
        raise _Transient(f"{url}: 206 with Content-Range {response.headers.get('Content-Range')!r}, not from {have}")
    return have


def _receive(
    response: httpx.Response,
    url: str,
    partial: Path,
    *,
    have: int,
    size: int,
    digest: hashlib._Hash,
    shown: _Shown,
    buffer: bytearray,
) -> tuple[int, hashlib._Hash]:
    """Append the body to ``partial`` (or rewrite it, for a full answer), keeping ``digest`` and ``shown`` in
    step with what is on disk; returns the new length and digest. The reads are gathered in ``buffer`` and
    written and hashed a buffer at a time."""
    start = _resume_offset(response, url, have)
    if start != have:
        log.info("%s: the server sent the whole file instead of bytes %d-; starting over", url, have)
        digest = hashlib.sha256()
        shown.to(0)
    written = start
    capacity = len(buffer)
    with memoryview(buffer) as view, _open_partial(partial, append=bool(start)) as handle:
        filled = 0  # view[:filled] is received but not yet written
        try:
            for chunk in _iter_body(response, url, size - start, chunk_size=None):
                count = len(chunk)
                if filled + count > capacity:
                    written += _write_block(handle, digest, view[:filled])
                    filled = 0
                    shown.to(written)
                if count >= capacity:  # a read as large as the buffer (a decoded body can give one)
                    written += _write_block(handle, digest, chunk)
                    shown.to(written)
                    continue
                view[filled : filled + count] = chunk
                filled += count
        finally:
            # Whatever arrived goes to disk even when the body is cut: the next try asks for the rest.
            written += _write_block(handle, digest, view[:filled])
            handle.flush()
    shown.to(written)
    return written, digest


def _write_block(handle: BinaryIO, digest: hashlib._Hash, block: bytes | memoryview) -> int:
    """Append ``block`` to the file and the digest: one call each, both releasing the GIL."""
    if block:
        handle.write(block)
        digest.update(block)
    return len(block)


def _open_partial(partial: Path, *, append: bool) -> BinaryIO:
    """``partial`` opened to append (or to rewrite); its directory is made only when missing, not on every file."""
    try:
        return partial.open("ab") if append else partial.open("wb")
    except FileNotFoundError:
        partial.parent.mkdir(parents=True, exist_ok=True)
        return partial.open("ab") if append else partial.open("wb")


def _accept(
    url: str, partial: Path, dest: Path, have: int, have_sha256: str, *, size: int, sha256: str, shown: _Shown
) -> None:
    """Rename a complete, matching ``partial`` to ``dest``; drop it (and retry) when it does not match."""
    try:
        _check(url, have, have_sha256, size=size, sha256=sha256)
    except _Transient:
        partial.unlink(missing_ok=True)
        shown.to(0)
        raise
    try:
        partial.replace(dest)
    except FileNotFoundError:  # the blob's directory is made only when missing, not on every file
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(dest)


def _hint_for_status(status: int) -> str:
    if status in (404, 410):
        return "It is gone upstream: check the source URL and dist, or re-lock against the current archive."
    if status in (401, 403):
        return "The server refused access: check credentials or proxy settings."
    return "Check the URL and try again."
