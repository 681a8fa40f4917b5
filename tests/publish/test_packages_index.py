"""The Packages index written stanza by stanza: the same bytes as the whole text compressed at once."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import random

import pytest
from fixtures import REPO_ROOT

from minimirror.publish.packages_index import IndexWriter, gunzip_chunks, gzip_bytes, xz_bytes

REAL_INDEX = REPO_ROOT.parent / "shared" / "data" / "debian-bookworm" / "dists/bookworm/main/binary-amd64/Packages.xz"


@pytest.fixture(scope="module")
def debian_stanzas() -> list[bytes]:
    """The first 6,000 stanzas of Debian bookworm's real main/amd64 index (about 5 MB: many write batches)."""
    if not REAL_INDEX.exists():
        pytest.skip(f"real Debian index not found at {REAL_INDEX} (../shared/data is not beside this checkout)")
    text = lzma.decompress(REAL_INDEX.read_bytes())
    return [stanza + b"\n" for stanza in text.split(b"\n\n")[:6000]]


@pytest.mark.parametrize("count", [0, 1, 2, 6000])
def test_streamed_index_is_the_whole_text_compressed_at_once(debian_stanzas: list[bytes], count: int) -> None:
    stanzas = debian_stanzas[:count]
    writer = IndexWriter()
    for stanza in stanzas:
        writer.add(stanza)
    index = writer.finish()
    text = b"\n".join(stanzas)  # what the publisher wrote before it streamed: one join, one compression each
    assert (index.sha256, index.size) == (hashlib.sha256(text).hexdigest(), len(text))
    assert index.md5 == hashlib.md5(text, usedforsecurity=False).hexdigest()
    assert index.gz == gzip_bytes(text) and gzip.decompress(index.gz) == text
    assert index.xz == xz_bytes(text) == lzma.compress(text, check=lzma.CHECK_CRC64, preset=1)
    assert b"".join(gunzip_chunks(index.gz)) == text
    assert index.gz[4:8] == bytes(4)  # gzip's mtime: 0, so the bytes are the same on every run


def test_gunzip_chunks_are_bounded_and_whole() -> None:
    """The uncompressed Packages is written from its .gz a chunk at a time, never held whole in memory."""
    text = random.Random(5).randbytes(3 << 20) + bytes(5 << 20)  # 8 MiB: incompressible, then very compressible
    chunks = list(gunzip_chunks(gzip_bytes(text)))
    assert b"".join(chunks) == text
    assert len(chunks) >= 8 and max(len(chunk) for chunk in chunks) <= 1 << 20
