"""``Downloader.download_resumable`` gathers a body's reads into a per-thread block buffer before writing and
hashing them; these check the edges of that buffering against an httpx MockTransport (no network): reads
smaller, straddling and larger than the buffer, a body cut inside a block (every byte received is on disk and
the next try asks for the rest), and a body longer than the locked size (nothing past it is written)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from minimirror.errors import IntegrityError
from minimirror.upstream import download
from minimirror.upstream.download import Downloader, RetryPolicy

DATA = random.Random(8).randbytes(3 * download._BLOCK + 12_345)
SHA256 = hashlib.sha256(DATA).hexdigest()
URL = "http://mirror.invalid/pool/main/d/data/data_1.0_all.deb"
NO_WAIT = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)


def reads(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` cut into reads of the given sizes, cycling through them."""
    offset = 0
    while offset < len(data):
        for size in sizes:
            yield data[offset : offset + size]
            offset += size
            if offset >= len(data):
                return


def downloader(handler: Callable[[httpx.Request], httpx.Response]) -> Downloader:
    return Downloader(httpx.Client(transport=httpx.MockTransport(handler)), retry=NO_WAIT, sleep=lambda _: None)


@pytest.mark.parametrize(
    "sizes",
    [
        [65_536],  # what httpcore hands over from a fast socket
        [1, 7, 65_536, 1_000_000, 3],  # reads that straddle the block boundary
        [2 * download._BLOCK + 1, 10],  # a read larger than the whole buffer (a decoded body can give one)
        [download._BLOCK],  # reads exactly the buffer's size
    ],
)
def test_reads_of_any_size_are_stored_intact(tmp_path: Path, sizes: list[int]) -> None:
    seen: list[int] = []
    get = downloader(lambda request: httpx.Response(200, content=reads(DATA, sizes)))
    dest, partial = tmp_path / "blob", tmp_path / "partial" / "blob.part"
    result = get.download_resumable(URL, dest, partial, size=len(DATA), sha256=SHA256, progress=seen.append)
    assert result is not None and dest.read_bytes() == DATA
    assert not partial.exists()
    assert sum(seen) == len(DATA) and all(count > 0 for count in seen)


def test_a_body_cut_inside_a_block_keeps_every_byte_and_resumes_from_there(tmp_path: Path) -> None:
    cut = download._BLOCK + 100_000  # one full block written, then part of the next still in the buffer
    requests: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.headers.get("Range"))
        if len(requests) == 1:

            def body() -> Iterator[bytes]:
                yield from reads(DATA[:cut], [65_536])
                raise httpx.ReadError("connection reset by peer")

            return httpx.Response(200, content=body())
        start = int(request.headers["Range"].removeprefix("bytes=").removesuffix("-"))
        headers = {"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"}
        return httpx.Response(206, headers=headers, content=reads(DATA[start:], [65_536]))

    dest, partial = tmp_path / "blob", tmp_path / "partial" / "blob.part"
    assert downloader(handler).download_resumable(URL, dest, partial, size=len(DATA), sha256=SHA256) is not None
    assert requests == [None, f"bytes={cut}-"]
    assert dest.read_bytes() == DATA


def test_nothing_past_the_locked_size_is_written(tmp_path: Path) -> None:
    endless = DATA + b"x" * download._BLOCK
    get = downloader(lambda request: httpx.Response(200, content=reads(endless, [65_536])))
    dest, partial = tmp_path / "blob", tmp_path / "partial" / "blob.part"
    with pytest.raises(IntegrityError, match="body longer than the verified"):
        get.download_resumable(URL, dest, partial, size=len(DATA), sha256=SHA256)
    assert not dest.exists()
    assert not partial.exists() or partial.stat().st_size <= len(DATA)


def test_each_thread_reuses_one_buffer(tmp_path: Path) -> None:
    get = downloader(lambda request: httpx.Response(200, content=reads(DATA, [65_536])))
    for number in range(2):
        dest, partial = tmp_path / f"blob{number}", tmp_path / "partial" / f"blob{number}.part"
        get.download_resumable(URL, dest, partial, size=len(DATA), sha256=SHA256)
    assert get._block_buffer() is get._block_buffer()
    assert len(get._block_buffer()) == download._BLOCK
