"""The hand-written ELF reader against binutils' ``readelf`` on the host's real binaries, its errors, and nginx's
Depends closure read from the lock's ``required-by`` (across a group's sources, the newest of several versions)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimirror.image.elf import ElfError, check_machine, read_elf
from minimirror.image.nginx import depends_closure
from minimirror.lock.lockfile import Lock, LockedPackage, SourcePin, UpstreamPin

H = "0" * 64
HOST_BINARIES = (
    "/usr/sbin/nginx",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/bin/busybox",
)


def _readelf(path: str) -> tuple[str | None, tuple[str, ...]]:
    program = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    dynamic = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True, check=True).stdout
    interp = re.search(r"Requesting program interpreter: (\S+)\]", program)
    return (interp.group(1) if interp else None), tuple(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic))


@pytest.mark.parametrize("path", HOST_BINARIES)
def test_loader_and_needed_libraries_agree_with_readelf(path: str) -> None:
    if shutil.which("readelf") is None or not Path(path).is_file():
        pytest.skip(f"needs readelf (binutils) and {path}")
    info = read_elf(Path(path).read_bytes(), path)
    assert (info.interpreter, info.needed) == _readelf(path)
    check_machine(info, "amd64", path)
    with pytest.raises(ElfError, match=rf"^{path} is built for ELF machine 62, not arm64 \(183\)"):
        check_machine(info, "arm64", path)


def test_not_an_elf_and_a_truncated_one_are_named() -> None:
    with pytest.raises(ElfError, match=r"^x: is not an ELF executable$"):
        read_elf(b"#!/bin/sh\n" + bytes(64), "x:")
    if Path("/usr/sbin/nginx").is_file():
        head = Path("/usr/sbin/nginx").read_bytes()[:80]  # the header promises program headers beyond the end
        with pytest.raises(ElfError, match=r"^nginx is a damaged ELF file"):
            read_elf(head, "nginx")


def _package(node: str, *required_by: str, version: str = "1.0") -> LockedPackage:
    name, arch = node.split("/")
    queries = () if required_by else (name,)
    filename = f"pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb"
    return LockedPackage(name, version, arch, "main", filename, 1, H, name, version, queries, required_by)


def _lock(source_id: str, *packages: LockedPackage) -> Lock:
    queries = tuple(sorted({q for p in packages for q in p.queries}))
    source = SourcePin(
        source_id, "http://archive.example/", "file:///k.gpg", "stable", ("main",), ("amd64",), H, queries
    )
    upstream = UpstreamPin("InRelease", H, datetime(2026, 1, 1, tzinfo=UTC), None, "", "", "", "", "", (), ())
    return Lock(source, upstream, packages)


def test_the_closure_follows_required_by_backwards_across_a_group() -> None:
    nginx = _package("nginx/amd64")
    debian = _lock(
        "debian/stable",
        _package("libc6/amd64", "vendor/stable:nginx/amd64", "libssl3/amd64", "curl/amd64"),
        _package("libssl3/amd64", "vendor/stable:nginx/amd64"),
        _package("curl/amd64"),  # locked for itself: not nginx's
        _package("perl-base/amd64", "vendor/stable:nginx-common/all"),
    )
    vendor = _lock(
        "vendor/stable",
        nginx,
        _package("nginx-common/all", "nginx/amd64"),
        _package("zlib1g/amd64", "nginx/amd64", version="1.2"),
        _package("zlib1g/amd64", "nginx/amd64", version="1.10"),
    )
    closure = depends_closure([debian, vendor], nginx)
    assert [(p.name, p.version) for p in closure] == [
        ("nginx", "1.0"), ("libc6", "1.0"), ("libssl3", "1.0"), ("nginx-common", "1.0"), ("perl-base", "1.0"),
        ("zlib1g", "1.10"),
    ]  # fmt: skip
