"""The real nginx of the host's Debian archive, locked for amd64 and arm64: ``--server nginx --platform
linux/amd64,linux/arm64`` takes each platform's binary and libraries from the real .debs (their symlink chains,
merged-/usr paths and the loader's absolute link), and the arm64 layer serves the tree under qemu-aarch64-static.

One test, marked ``network``: the archive's address is read from the host's APT configuration. Downloads go to a
cache kept between runs (``$MINIMIRROR_TEST_CACHE``, else ``~/.cache/minimirror-tests``): minimirror's own
content-addressed cache, whose files are checked against the lock's sha256 on every use, so keeping it is safe.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from fixtures.server import wait_for_http
from test_image_platforms import host_two_platform_image, server_layer
from test_registry import free_port

from minimirror.image.nginx import nginx_conf

pytestmark = [pytest.mark.network, pytest.mark.slow]
_AARCH64, _X86_64 = 183, 62
LIBRARIES = ("libc.so.6", "libcrypt.so.1", "libpcre2-8.so.0", "libssl.so.3", "libcrypto.so.3", "libz.so.1")


def _cache() -> Path:
    root = Path(os.environ.get("MINIMIRROR_TEST_CACHE") or Path.home() / ".cache" / "minimirror-tests")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _machine(data: bytes) -> int:
    return int.from_bytes(data[18:20], "little")


def test_real_nginx_for_two_platforms_and_the_arm64_one_serves_under_qemu(tmp_path: Path) -> None:
    qemu, setpriv = shutil.which("qemu-aarch64-static"), shutil.which("setpriv")
    if qemu is None or setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root, qemu-aarch64-static and setpriv (apt-get install qemu-user-static util-linux)")
    # world-readable: nginx runs as 65534 here as in the image, and must read the tree and its own files
    work = Path(tempfile.mkdtemp(prefix="mm-ngx-arm-", dir="/tmp"))
    work.chmod(0o755)
    try:
        out, public = tmp_path / "image", work / "public"
        prefix, name = host_two_platform_image(work, _cache(), out, "nginx", "--server", "nginx")
        amd64, arm64 = server_layer(out, "amd64"), server_layer(out, "arm64")
        assert amd64["lib64/ld-linux-x86-64.so.2"][:4] == b"\x7fELF"  # the loader, through libc6's absolute link
        assert sorted(arm64) == sorted(
            ["usr/sbin/nginx", "lib/ld-linux-aarch64.so.1", "etc/nginx/nginx.conf", "etc/passwd", "etc/group"]
            + [f"lib/aarch64-linux-gnu/{so}" for so in LIBRARIES]
        )  # exactly what the binary loads: no iproute2, perl or debconf though nginx depends on them
        assert {_machine(data) for path, data in arm64.items() if path.startswith(("usr/", "lib/"))} == {_AARCH64}
        assert {_machine(data) for path, data in amd64.items() if path.startswith(("usr/", "lib"))} == {_X86_64}
        rootfs = work / "rootfs"
        for path, data in arm64.items():
            target = rootfs / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o755)
        _serve_under_qemu(qemu, setpriv, rootfs, public, work, prefix, name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _serve_under_qemu(qemu: str, setpriv: str, rootfs: Path, public: Path, work: Path, prefix: str, dist: str) -> None:
    """The arm64 layer's nginx, its loader and libraries found by qemu under ``rootfs`` (``-L``), the image's
    config with the tree, a temp dir and a loopback port put in, run as 65534 as the image runs it."""
    tmp, port = work / "tmp", free_port()
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)
    conf = work / "nginx.conf"
    conf.write_text(nginx_conf(root=str(public), tmp=str(tmp), listen=f"127.0.0.1:{port}"))
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    argv = [*as_nobody, qemu, "-L", str(rootfs), str(rootfs / "usr/sbin/nginx"), "-e", "stderr", "-c", str(conf)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/{prefix}/dists/{dist}/Release"
        response = wait_for_http(url, seconds=60, process=process)
        assert response.status_code == 200
        assert response.content == (public / prefix / "dists" / dist / "Release").read_bytes()
        deb = next((public / prefix / "pool").rglob("nginx_*_arm64.deb"))
        with httpx.Client(timeout=30.0) as client:  # one kept-alive connection for both
            got = client.get(f"http://127.0.0.1:{port}/{deb.relative_to(public)}")
            again = client.get(f"http://127.0.0.1:{port}/{deb.relative_to(public)}")
        expected = hashlib.sha256(deb.read_bytes()).hexdigest()
        assert hashlib.sha256(got.content).hexdigest() == expected == hashlib.sha256(again.content).hexdigest()
        assert got.headers["content-type"] == "application/vnd.debian.binary-package"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err.decode(errors="replace")  # SIGTERM: a clean fast shutdown
