"""The local cache: content-addressed blobs, the last verified Release of each upstream, and fetched keys.

Layout below the cache directory (default ``$XDG_CACHE_HOME/minimirror``, else ``~/.cache/minimirror``)::

    blobs/sha256/<2 hex>/<sha256>     any file we verified by hash: indices, pool files
    partial/<sha256>.part             a download in progress (or cut): the next try continues it
    releases/<upstream key>/<name>    the last InRelease (or Release + Release.gpg) fetched for an upstream
    keys/<sha256 of the key URL>      the last key fetched from an http(s) key URL
    parsed/                           parsed indices (see minimirror.upstream.indexcache), keyed by the index's sha256
    parsed-locks/                     parsed locks for why and diff (minimirror.lock.lockcache), by the lock's sha256

Blobs are trusted only by name: a blob is written under its sha256 only after the bytes were hashed, through a
temporary file and a rename, so an interrupted write never leaves a file under a valid-looking name.
Reading a blob re-checks its size, and its hash whenever the caller reads the bytes anyway.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from minimirror.atomic import write_atomically
from minimirror.errors import IntegrityError

__all__ = ["Cache", "default_cache_dir"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    return Path(base) / "minimirror"


@dataclass(frozen=True, slots=True)
class Cache:
    root: Path

    def blob_path(self, sha256: str) -> Path:
        return Path(self.blob_file(sha256))

    def blob_file(self, sha256: str) -> str:
        """:meth:`blob_path` as a string, for loops over thousands of blobs (publish: a ``Path`` each was most
        of its loop's own time at 20,000 packages)."""
        return f"{self.root}/blobs/sha256/{sha256[:2]}/{_checked(sha256)}"

    def partial_path(self, sha256: str) -> Path:
        """Where the download of the blob ``sha256`` gathers its bytes until they are verified and renamed in:
        one name per blob, so that a cut or killed download is continued by the next run, not left behind."""
        return self.root / "partial" / f"{_checked(sha256)}.part"

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        """Whether the blob is present (with ``size`` bytes, when given); its hash is not read here."""
        try:
            stat = self.blob_path(sha256).stat()
        except FileNotFoundError:
            return False
        return size is None or stat.st_size == size

    def read_blob(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256``, or ``None``; a corrupted blob is removed and reported missing."""
        path = self.blob_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            path.unlink(missing_ok=True)
            return None
        return data

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest, len(data)):
            write_atomically(self.blob_path(digest), data)
        return digest

    def drop_partials(self) -> None:
        """Remove every partial download. Called after a write the disk refused: the space the partial files hold
        matters more then than resuming them. The caller holds the cache's lock, so none is another run's."""
        for part in sorted((self.root / "partial").glob("*.part")):
            part.unlink(missing_ok=True)

    def release_dir(self, upstream_key: str) -> Path:
        return self.root / "releases" / upstream_key

    def key_path(self, key_url: str) -> Path:
        return self.root / "keys" / hashlib.sha256(key_url.encode()).hexdigest()

    @property
    def parsed_dir(self) -> Path:
        return self.root / "parsed"


def _checked(sha256: str) -> str:
    """``sha256`` if it is a hex digest: names built from it never leave their folder."""
    if not _HEX64.match(sha256):
        raise IntegrityError(f"not a sha256 hex digest: {sha256!r}")
    return sha256
