"""Downloads over HTTP with retries, verified hashes and atomic writes.

One seam for the network: :class:`Downloader` wraps an ``httpx.Client`` (tests hand it a client of their
own). The client honours ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (httpx's ``trust_env``), reuses
connections, and follows redirects to http(s) only. Transient failures are retried with exponential
backoff: 5xx and 429 answers, connection errors and resets, timeouts, and bodies cut short (httpx reports
a body shorter than its Content-Length as a protocol error; a known length or hash catches the rest).
A file is written to a temporary name beside its destination and renamed only once its size and sha256
match, so a destination never holds an unverified or partial file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx

from minimirror import __version__
from minimirror.errors import FetchError, IntegrityError

__all__ = ["DownloadResult", "Downloader", "RetryPolicy", "make_client"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_T = TypeVar("_T")


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


def make_client(*, timeout: float = 30.0, trust_env: bool = True) -> httpx.Client:
    """The client minimirror uses: proxies from the environment, pooled connections, bounded timeouts."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
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

    def download(self, url: str, dest: Path, *, size: int | None = None, sha256: str | None = None) -> DownloadResult:
        """Stream ``url`` into ``dest`` atomically; a size or sha256 mismatch is retried, then refused."""
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> DownloadResult:
            digest = hashlib.sha256()
            written = 0
            with _temporary_beside(dest) as (handle, tmp_path), self._open(url) as response:
                assert response is not None
                for chunk in _iter_body(response, url, size):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                handle.flush()
                _check(url, written, digest.hexdigest(), size=size, sha256=sha256)
                tmp_path.replace(dest)
            return DownloadResult(url=url, path=dest, size=written, sha256=digest.hexdigest())

        result = self._with_retries(url, attempt)
        assert result is not None
        return result

    @contextmanager
    def _open(self, url: str, *, missing_ok: bool = False) -> Iterator[httpx.Response | None]:
        try:
            with self._client.stream("GET", url) as response:
                if missing_ok and response.status_code in (404, 410):
                    yield None
                    return
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
                reason, final = str(exc), exc.final
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


def _iter_body(response: httpx.Response, url: str, size: int | None) -> Iterator[bytes]:
    received = 0
    for chunk in response.iter_bytes(_CHUNK):
        received += len(chunk)
        if size is not None and received > size:
            # A body longer than a verified size is wrong whatever it holds; stop reading (an endless
            # body must not fill the disk).
            message = f"{url}: body longer than the verified {size} bytes"
            raise _Transient(f"body longer than {size} bytes", IntegrityError(message))
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


def _hint_for_status(status: int) -> str:
    if status in (404, 410):
        return "It is gone upstream: check the source URL and dist, or re-lock against the current archive."
    if status in (401, 403):
        return "The server refused access: check credentials or proxy settings."
    return "Check the URL and try again."


@contextmanager
def _temporary_beside(dest: Path) -> Iterator[tuple[BinaryIO, Path]]:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp_path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)
