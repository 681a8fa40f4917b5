"""The bundled offline example: a tiny signed APT archive, its sources tree, a primed cache and its lock.

What ``notebooks/build.ipynb`` builds by default, so that ``pytest --nbval-lax notebooks/`` runs it with no
network at all. :func:`write_example` makes, under one directory:

- ``archive/``: a real archive per Debian's RepositoryFormat (wiki.debian.org/DebianRepository/Format):
  ``pool/main/...`` with real ``.deb`` files built by ``dpkg-deb`` (deb(5), deb-control(5)),
  ``dists/stable/main/binary-amd64/Packages{,.gz}`` and an ``InRelease`` clear-signed by a throwaway Ed25519 key
  (``archive-key.asc`` beside it);
- ``sources/example/stable/``: ``source.txt`` naming the archive and its key by ``file://`` URL, ``packages.txt``;
- ``cache/``: the cache primed with what ``minimirror lock`` would have downloaded (the InRelease, the index,
  the pool files), since the archive client fetches only over HTTP(S); a ``file://`` source is then locked
  with ``offline=True``, which re-verifies the stored InRelease against the key, as any offline lock does;
- ``locks/example/stable.lock``: written by :func:`minimirror.locking.lock`.

The packages: ``hello-mirror`` (depends on ``libgreeting``), ``libgreeting``, ``unused-tool`` (not locked) and
``busybox-static`` (the image's HTTP server: the host's ``/bin/busybox`` when it is a static executable, else a
64-byte static ELF header that satisfies the image's check but does not run). The ``.deb`` files, indices and
Release are byte-identical from run to run; the InRelease signature is not (the key is new each time).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from minimirror.atomic import write_atomically
from minimirror.errors import MinimirrorError, UsageError
from minimirror.lock.stage import LockConfig, lock, upstream_of
from minimirror.publish.sign import generate_key, open_signer
from minimirror.sources.tree import load_sources
from minimirror.upstream.cache import Cache

__all__ = [
    "EXAMPLE_EPOCH",
    "Example",
    "ExamplePackage",
    "IndexedDeb",
    "control_text",
    "example_packages",
    "packages_text",
    "release_text",
    "write_example",
]

#: 2024-06-01T00:00:00Z: the example archive's Date, hence the default SOURCE_DATE_EPOCH of its build.
EXAMPLE_EPOCH = 1_717_200_000
DIST, COMPONENT, ARCH = "stable", "main", "amd64"
PREFIX, NAME = "example", "stable"
HOST_BUSYBOX = Path("/bin/busybox")
_MAINTAINER = "minimirror example <example@example.invalid>"
_TIMEOUT = 60
_PT_INTERP = 3


class ExampleError(MinimirrorError):
    """The example could not be built (``dpkg-deb`` missing or failing)."""


@dataclass(frozen=True, slots=True)
class ExamplePackage:
    """One binary package of the example: control fields and payload (path, bytes) pairs."""

    name: str
    version: str
    depends: str = ""
    source: str = ""
    files: tuple[tuple[str, bytes], ...] = ()

    @property
    def filename(self) -> str:
        """The pool path, ``pool/main/<initial>/<source>/<name>_<version without epoch>_amd64.deb``."""
        source = self.source.split(" ", 1)[0] or self.name
        initial = source[:4] if source.startswith("lib") else source[0]
        return f"pool/{COMPONENT}/{initial}/{source}/{self.name}_{self.version.split(':', 1)[-1]}_{ARCH}.deb"


@dataclass(frozen=True, slots=True)
class IndexedDeb:
    """A built ``.deb`` as its Packages stanza needs it."""

    package: ExamplePackage
    size: int
    sha256: str
    md5: str


@dataclass(frozen=True, slots=True)
class Example:
    """Where :func:`write_example` put everything; ``locks_dir`` and ``cache_dir`` are what a build needs."""

    root: Path
    archive_dir: Path
    sources_dir: Path
    locks_dir: Path
    cache_dir: Path
    archive_key: Path
    fingerprint: str
    packages: tuple[str, ...]


# --- pure: the package set and the texts of the archive ---------------------------------------------------


def static_elf_stub() -> bytes:
    """A 64-bit little-endian ELF header without program headers: static for the image's check, never run."""
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    header[0x10:0x14] = (2).to_bytes(2, "little") + (62).to_bytes(2, "little")  # ET_EXEC, x86-64
    return bytes(header)


def example_packages(busybox: bytes) -> tuple[ExamplePackage, ...]:
    """The example archive's packages, sorted by name; ``busybox`` is the ``/bin/busybox`` payload."""
    return (
        ExamplePackage(
            "busybox-static", "1:1.36.1-1", source="busybox (1:1.36.1-1)", files=(("bin/busybox", busybox),)
        ),
        ExamplePackage(
            "hello-mirror",
            "1.0-1",
            depends="libgreeting (>= 2.0)",
            files=(("usr/share/doc/hello-mirror/README", b"Served from an offline minimirror.\n"),),
        ),
        ExamplePackage("libgreeting", "2.1-1", files=(("usr/lib/libgreeting.txt", b"hello\n" * 512),)),
        ExamplePackage("unused-tool", "0.9-1", files=(("usr/bin/unused-tool", b"#!/bin/sh\n"),)),
    )


def _installed_kib(package: ExamplePackage) -> int:
    return sum(-(-len(data) // 1024) for _, data in package.files)


def _control_fields(package: ExamplePackage) -> list[tuple[str, str]]:
    fields = [
        ("Package", package.name),
        ("Source", package.source),
        ("Version", package.version),
        ("Architecture", ARCH),
        ("Maintainer", _MAINTAINER),
        ("Installed-Size", str(_installed_kib(package))),
        ("Depends", package.depends),
        ("Section", "misc"),
        ("Priority", "optional"),
        ("Description", f"{package.name} for the minimirror offline example"),
    ]
    return [(name, value) for name, value in fields if value]


def control_text(package: ExamplePackage) -> str:
    """``DEBIAN/control`` (deb-control(5)): one ``Field: value`` line each, empty fields left out."""
    return "".join(f"{name}: {value}\n" for name, value in _control_fields(package))


def packages_text(debs: Sequence[IndexedDeb]) -> bytes:
    """The ``Packages`` index: each control stanza plus Filename, Size, MD5sum, SHA256, sorted by name."""
    stanzas = []
    for deb in sorted(debs, key=lambda d: d.package.name):
        archive = f"Filename: {deb.package.filename}\nSize: {deb.size}\nMD5sum: {deb.md5}\nSHA256: {deb.sha256}\n"
        stanzas.append(control_text(deb.package) + archive)
    return "\n".join(stanzas).encode()


def release_text(indices: Sequence[tuple[str, bytes]], *, epoch: int = EXAMPLE_EPOCH) -> bytes:
    """The ``Release`` file for index files given as (path below ``dists/stable/``, bytes)."""
    date = format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)
    head = [
        "Origin: minimirror-example",
        "Label: minimirror-example",
        f"Suite: {DIST}",
        f"Codename: {DIST}",
        f"Date: {date}",
        f"Architectures: {ARCH}",
        f"Components: {COMPONENT}",
        "Description: the minimirror offline example",
    ]
    md5 = [f" {hashlib.md5(data, usedforsecurity=False).hexdigest()} {len(data)} {path}" for path, data in indices]
    sha = [f" {hashlib.sha256(data).hexdigest()} {len(data)} {path}" for path, data in indices]
    return "\n".join([*head, "MD5Sum:", *md5, "SHA256:", *sha]).encode() + b"\n"


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        handle.write(data)
    return buffer.getvalue()


# --- I/O: building, signing, writing ------------------------------------------------------------------------


def _host_busybox() -> bytes:
    """The host's static busybox (Debian's busybox-static), else the ELF stub."""
    try:
        data = HOST_BUSYBOX.read_bytes()
    except OSError:
        return static_elf_stub()
    return data if _is_static_elf64(data) else static_elf_stub()


def _is_static_elf64(data: bytes) -> bool:
    """A little-endian 64-bit ELF executable without a PT_INTERP (3) program header: needs no loader."""
    if len(data) < 64 or data[:6] != b"\x7fELF\x02\x01":
        return False
    (phoff,), (phentsize, phnum) = struct.unpack_from("<Q", data, 0x20), struct.unpack_from("<HH", data, 0x36)
    ends = phoff + phentsize * phnum
    return ends <= len(data) and all(
        struct.unpack_from("<I", data, phoff + i * phentsize)[0] != _PT_INTERP for i in range(phnum)
    )


def _walk(root: Path) -> Iterator[Path]:
    yield root
    yield from sorted(root.rglob("*"))


def build_deb(package: ExamplePackage, out: Path, *, epoch: int = EXAMPLE_EPOCH) -> Path:
    """Build ``package`` at ``out/<pool path>`` with ``dpkg-deb``: fixed modes, mtimes and owners."""
    target = out / package.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mm-example-") as tmp:
        root = Path(tmp) / "root"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(control_text(package))
        for rel, data in package.files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        for path in _walk(root):
            path.chmod(0o755 if path.is_dir() or path.parent.name == "bin" else 0o644)
            os.utime(path, (epoch, epoch))
        _dpkg_deb(root, target, epoch)
    return target


def _dpkg_deb(root: Path, target: Path, epoch: int) -> None:
    cmd = ["dpkg-deb", "--build", "--root-owner-group", "-Zgzip", str(root), str(target)]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=_TIMEOUT)
    except FileNotFoundError as exc:
        raise ExampleError("dpkg-deb is not installed; install the Debian package dpkg") from exc
    if proc.returncode != 0:
        raise ExampleError(f"dpkg-deb could not build {target.name}: {proc.stderr.strip()}")


def _indexed(package: ExamplePackage, path: Path) -> IndexedDeb:
    data = path.read_bytes()
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return IndexedDeb(package, len(data), hashlib.sha256(data).hexdigest(), md5)


def _write_archive(archive: Path, packages: Sequence[ExamplePackage]) -> tuple[bytes, tuple[str, str]]:
    """Pool, indices, InRelease and the public key; returns (InRelease bytes, (fingerprint, key path))."""
    debs = [_indexed(p, build_deb(p, archive)) for p in packages]
    plain = packages_text(debs)
    base = f"{COMPONENT}/binary-{ARCH}/Packages"
    indices = [(base, plain), (f"{base}.gz", _gzip(plain))]
    dist_dir = archive / "dists" / DIST
    for path, data in indices:
        write_atomically(dist_dir / path, data)
    release = release_text(indices)
    key = generate_key("minimirror example archive key")
    with open_signer(key.secret_armored, epoch=EXAMPLE_EPOCH, passphrase=None, name="example key") as signer:
        inrelease = signer.clearsign(release)
    write_atomically(dist_dir / "Release", release)
    write_atomically(dist_dir / "InRelease", inrelease)
    write_atomically(archive / "archive-key.asc", key.public_armored)
    return inrelease, (key.fingerprint, str(archive / "archive-key.asc"))


def _write_sources(sources: Path, archive: Path, key: Path, queries: Sequence[str]) -> None:
    source_dir = sources / PREFIX / NAME
    source_dir.mkdir(parents=True, exist_ok=True)
    (source_dir / "source.txt").write_text(f"{archive.as_uri()} {key.as_uri()} {DIST} {COMPONENT}\n")
    (source_dir / "packages.txt").write_text("".join(f"{query}\n" for query in queries))


def _prime_cache(example: Example, inrelease: bytes) -> None:
    """Store what an online lock and fetch would have downloaded: the InRelease, the indices, the pool files."""
    cache = Cache(example.cache_dir)
    (source,) = load_sources(example.sources_dir)
    write_atomically(cache.release_dir(upstream_of(source).cache_key) / "InRelease", inrelease)
    for path in sorted(example.archive_dir.rglob("*")):
        if path.is_file() and (path.suffix == ".deb" or path.name.startswith("Packages")):
            cache.put_blob(path.read_bytes())


def write_example(
    root: Path, *, busybox: bytes | None = None, packages: Sequence[ExamplePackage] | None = None
) -> Example:
    """Build the offline example under ``root`` (which must be empty or absent) and lock it; see the module doc.

    ``busybox`` is the payload of ``busybox-static``'s ``/bin/busybox`` (default: the host's static busybox,
    else an ELF stub). Takes about a second: four ``dpkg-deb`` runs, a key generation, one signature.
    ``packages`` replaces the example's package set (each one then a query line of packages.txt): what a
    benchmark uses to make an archive of its own, as real, locked the same way.
    """
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root}: not empty; the example is written into a new or empty directory")
    if packages is None:
        packages = example_packages(_host_busybox() if busybox is None else busybox)
        queries: Sequence[str] = ("hello-mirror", "busybox-static")
    else:
        queries = sorted({p.name for p in packages})
    archive = root / "archive"
    inrelease, (fingerprint, key) = _write_archive(archive, packages)
    example = Example(
        root=root,
        archive_dir=archive,
        sources_dir=root / "sources",
        locks_dir=root / "locks",
        cache_dir=root / "cache",
        archive_key=Path(key),
        fingerprint=fingerprint,
        packages=tuple(p.name for p in packages),
    )
    _write_sources(example.sources_dir, archive, example.archive_key, queries)
    _prime_cache(example, inrelease)
    lock(LockConfig(example.sources_dir, example.locks_dir, example.cache_dir, offline=True))
    return example
