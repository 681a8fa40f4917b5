"""``--server nginx``: the locked nginx, exactly the libraries it loads, our nginx.conf; run under podman.

Offline: a signed fixture archive whose ``nginx``, ``libc6``, ``libcrypt1``, ``libpcre2-8-0``, ``libssl3`` and
``zlib1g`` hold the host's real files (``apt-get install nginx``; skipped otherwise), with ``iproute2`` and
``nginx-common`` in nginx's Depends as Debian's package has them, locked with the real CLI. The fixture builder
writes no symlinks, so each library sits at its soname; the real packages' symlink chains are followed in the
network test of the arm64 nginx under qemu (``test_image_nginx_arm64.py``).

The container runs with ``--network none`` and is reached from its own network namespace (``nsenter --net``):
nginx listens on the image's port 8080 as it would in a cluster, and nothing else on this shared machine can
collide with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory
from fixtures.podman import limits_conf, ulimit_args
from test_image import blob, layer_files, layer_members, load_layout

from minimirror.cli import main
from minimirror.image.nginx import ENTRYPOINT, nginx_conf
from minimirror.upstream.cache import Cache

HOST_NGINX = Path("/usr/sbin/nginx")
TRIPLET = "lib/x86_64-linux-gnu"
LIBRARIES = {  # package -> the sonames of the host's libraries it ships here
    "libc6": ("libc.so.6",),
    "libcrypt1": ("libcrypt.so.1",),
    "libpcre2-8-0": ("libpcre2-8.so.0",),
    "libssl3": ("libssl.so.3", "libcrypto.so.3"),
    "zlib1g": ("libz.so.1",),
}
LOADER = "lib64/ld-linux-x86-64.so.2"
DEPENDS = "libc6 (>= 1.0), libcrypt1, libpcre2-8-0, libssl3, zlib1g, iproute2, nginx-common"
_TIMEOUT = 120


def host_file(path: str) -> bytes:
    return Path("/", path).read_bytes()  # through the host's symlinks: the bytes the loader maps


def nginx_packages(*, depends: str = DEPENDS, architecture: str = "amd64") -> list[P]:
    libraries = [
        P(name, "1.0", architecture, files={f"{TRIPLET}/{so}": host_file(f"{TRIPLET}/{so}") for so in sonames})
        for name, sonames in LIBRARIES.items()
    ]
    libc = libraries[0]
    libraries[0] = P("libc6", "1.0", architecture, files={**libc.files, LOADER: host_file(LOADER)})
    return [
        P("nginx", "1.22.1-9", architecture, depends=depends, files={"usr/sbin/nginx": HOST_NGINX.read_bytes()}),
        P("nginx-common", "1.22.1-9", "all", files={"etc/nginx/nginx.conf": b"# Debian's, not ours\n"}),
        P("iproute2", "6.1.0-3", architecture, files={"bin/ip": b"not loaded by nginx\n"}),
        *libraries,
        P("web", "1.0", architecture, depends="libssl3", files={"usr/share/doc/web/README": b"web\n"}),
    ]


class NginxMirror:
    """A locked fixture archive with nginx, and every locked .deb in the cache."""

    def __init__(self, root: Path, archive: FixtureArchive, url: str, *, architecture: str = "amd64") -> None:
        self.archive = archive
        source = root / "sources" / "fixture" / "stable"
        source.mkdir(parents=True)
        key_url = f"file://{archive.key.public_key_asc_path}"  # type: ignore[union-attr]
        (source / "source.txt").write_text(f"{url} {key_url} {archive.dist} main\n")
        (source / "packages.txt").write_text("web\nnginx\n")
        (source / "aptly.conf").write_text(json.dumps({"architectures": [architecture]}))
        self.locks, self.cache = root / "locks", root / "cache"
        args = ["--sources", str(root / "sources"), "--locks", str(self.locks), "--cache", str(self.cache)]
        assert main(["lock", *args]) == 0
        for deb in sorted(archive.root.rglob("*.deb")):
            Cache(self.cache).put_blob(deb.read_bytes())

    def image_args(self, out: Path, *extra: str, repo: Path | None = None) -> list[str]:
        dirs = ["--locks", str(self.locks), "--cache", str(self.cache), "--server", "nginx"]
        return ["image", "--repo", str(repo or self.archive.root), "--image", str(out), *dirs, *extra]


def _require_host_nginx() -> None:
    if not HOST_NGINX.is_file() or not Path("/", LOADER).exists():
        pytest.skip("no /usr/sbin/nginx on this machine (apt-get install nginx)")


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> NginxMirror:
    _require_host_nginx()
    archive = fixture_archive_factory({"main": nginx_packages()})
    return NginxMirror(tmp_path / "work", archive, http_server(archive.root).url)


def test_the_layer_holds_nginx_and_only_the_libraries_it_loads(mirror: NginxMirror, tmp_path: Path) -> None:
    out = tmp_path / "image"
    assert main(mirror.image_args(out)) == 0
    _, manifest, config = load_layout(out)
    server = manifest["layers"][0]["digest"]
    files = layer_files(out, [server])
    sonames = sorted(f"{TRIPLET}/{so}" for names in LIBRARIES.values() for so in names)
    assert sorted(files) == sorted(
        ["usr/sbin/nginx", LOADER, *sonames, "etc/nginx/nginx.conf", "etc/passwd", "etc/group"]
    )  # no iproute2, no nginx-common: only what the binary loads
    assert files["usr/sbin/nginx"] == HOST_NGINX.read_bytes() and files[LOADER] == host_file(LOADER)
    assert all(files[path] == host_file(path) for path in sonames)
    assert files["etc/nginx/nginx.conf"] == nginx_conf().encode()
    modes = {member.name: member.mode for member in layer_members(blob(out, server))}
    assert modes["tmp"] == 0o1777 and modes["usr/sbin/nginx"] == 0o755
    run = config["config"]
    assert run["Entrypoint"] == list(ENTRYPOINT) and run["User"] == "65534:65534"
    assert config["history"][0]["created_by"].startswith("minimirror image: nginx")
    again = tmp_path / "again"
    assert main(mirror.image_args(again)) == 0  # reproducible: the same bytes from the same lock
    assert (again / "index.json").read_bytes() == (out / "index.json").read_bytes()
    assert blob(again, server) == blob(out, server)


def test_build_takes_the_server_option_too(mirror: NginxMirror, tmp_path: Path) -> None:
    where = ["--locks", str(mirror.locks), "--cache", str(mirror.cache), "--out", str(tmp_path / "public")]
    assert main(["build", *where, "--no-sign", "--image", str(tmp_path / "image"), "--server", "nginx"]) == 0
    _, manifest, config = load_layout(tmp_path / "image")
    assert config["config"]["Entrypoint"] == list(ENTRYPOINT)
    assert "usr/sbin/nginx" in layer_files(tmp_path / "image", [manifest["layers"][0]["digest"]])


def test_the_config_serves_srv_with_the_httpd_mime_types() -> None:
    conf = nginx_conf()
    lines = ("daemon off;", "pid /tmp/nginx.pid;", "error_log stderr;", "access_log /dev/stdout;", "root /srv;")
    for line in (*lines, "sendfile on;", "keepalive_timeout 65;"):
        assert line in conf
    assert "application/vnd.debian.binary-package deb udeb;" in conf and "listen 8080 default_server;" in conf
    if HOST_NGINX.is_file():  # nginx itself reads it: `nginx -t` with the paths put elsewhere
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "nginx.conf"
            path.write_text(nginx_conf(root=tmp, tmp=tmp, listen="127.0.0.1:1"))
            checked = subprocess.run(
                [str(HOST_NGINX), "-t", "-e", "stderr", "-c", str(path)], capture_output=True, text=True, check=False
            )
            assert checked.returncode == 0, checked.stderr


def test_a_library_missing_from_the_lock_is_named(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _require_host_nginx()
    packages = [p for p in nginx_packages(depends=DEPENDS.replace(", zlib1g", "")) if p.name != "zlib1g"]
    archive = fixture_archive_factory({"main": packages})
    mirror = NginxMirror(tmp_path / "work", archive, http_server(archive.root).url)
    assert main(mirror.image_args(tmp_path / "image")) == 2
    err = capsys.readouterr().err
    assert "libz.so.1 (needed by /usr/sbin/nginx) is in none of the packages locked for amd64" in err
    assert "lock the package that ships it" in err and "Traceback" not in err
    assert not (tmp_path / "image").exists()


def test_an_nginx_for_another_machine_is_refused(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _require_host_nginx()
    archive = fixture_archive_factory({"main": nginx_packages(architecture="arm64")}, architectures=("arm64",))
    mirror = NginxMirror(tmp_path / "work", archive, http_server(archive.root).url, architecture="arm64")
    assert main(mirror.image_args(tmp_path / "image", "--platform", "linux/arm64")) == 2
    err = capsys.readouterr().err
    assert "/usr/sbin/nginx is built for ELF machine 62, not arm64 (183)" in err and "Traceback" not in err


def test_no_nginx_in_the_lock_and_nginx_with_base_are_usage_errors(
    mirror: NginxMirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(mirror.image_args(tmp_path / "x", "--base", "oci:/nonexistent")) == 2
    assert "--base serves with the base's nginx; leave out --server nginx" in capsys.readouterr().err
    assert main(mirror.image_args(tmp_path / "x", "--arch", "arm64")) == 2
    err = capsys.readouterr().err
    assert "no nginx for arm64 in the locks" in err and "Add a line `nginx` to a packages.txt" in err


# --- under podman ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    name: str
    netns: str  # /proc/PID/ns/net of the container's nginx


def _podman_base(root: Path) -> list[str]:
    return [
        "podman", "--root", str(root / "storage"), "--runroot", str(root / "run"), "--runtime", "runc",
        "--storage-driver=vfs", "--cgroup-manager=cgroupfs", "--events-backend=file",
    ]  # fmt: skip


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _curl(netns: str, url: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    argv = ["nsenter", f"--net={netns}", "curl", "--silent", "--show-error", "--max-time", "10", *extra, url]
    return subprocess.run(argv, capture_output=True, check=False, timeout=_TIMEOUT)


def _wait_ready(netns: str) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        got = _curl(netns, "http://127.0.0.1:8080/healthz", "--fail")
        if got.returncode == 0 or time.monotonic() > deadline:
            assert got.returncode == 0, got.stderr
            return got.stdout
        time.sleep(0.2)


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[list[str]]:
    missing = [tool for tool in ("podman", "runc", "nsenter", "curl") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and podman, runc, nsenter, curl (missing: {', '.join(missing) or 'root'})")
    root = Path(tempfile.mkdtemp(prefix="mm-ngx-", dir="/tmp"))  # short: podman limits --runroot's length
    yield _podman_base(root)
    _run(*_podman_base(root), "rm", "--all", "--force", "--time", "0", check=False)
    _run(*_podman_base(root), "rmi", "--all", "--force", check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_podman_runs_it_read_only_as_nobody_apt_installs_and_stop_is_immediate(
    mirror: NginxMirror, podman: list[str], tmp_path: Path, private_apt: AptFactory
) -> None:
    tar, tag = tmp_path / "image.tar", f"localhost/minimirror-nginx:{uuid.uuid4().hex[:12]}"
    assert main(mirror.image_args(tar, "--format", "docker-archive", "--tag", tag)) == 0
    _run(*podman, "load", "--input", str(tar))
    name = f"mm-nginx-{uuid.uuid4().hex[:8]}"
    limits = ulimit_args()
    # A read-only root with no tmpfs of podman's own but /tmp: nginx writes nowhere else.
    readonly = ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,mode=1777"]
    _run(*podman, "run", "--detach", "--name", name, *limits, *readonly, "--network", "none", tag)
    pid = _run(*podman, "inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    netns = f"/proc/{pid}/ns/net"
    assert _wait_ready(netns) == b"ok\n"
    top = _run(*podman, "top", name, "user", "pid", "args").stdout
    assert "nginx: master process /usr/sbin/nginx" in top and "nginx: worker process" in top
    assert all(line.split()[0] in ("USER", "nobody", "65534") for line in top.splitlines()), top
    pool = next(mirror.archive.root.rglob("web_*.deb"))
    url = f"http://127.0.0.1:8080/{pool.relative_to(mirror.archive.root)}"
    got = _curl(netns, url, "--fail", "--include")
    head, _, body = got.stdout.partition(b"\r\n\r\n")
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(pool.read_bytes()).hexdigest()
    assert b"Content-Type: application/vnd.debian.binary-package" in head
    apt = private_apt(wrapper=["nsenter", f"--net={netns}"])  # apt in the container's network
    apt.add_repository("http://127.0.0.1:8080", "stable", ["main"], signed_by=mirror.archive.key.public_key_asc_path)  # type: ignore[union-attr]
    apt.update()
    downloaded = apt.download(["web"], apt.root / "downloads")
    assert [path.read_bytes() for path in downloaded] == [pool.read_bytes()]
    started = time.monotonic()
    _run(*podman, "stop", "--time", "10", name)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"podman stop took {elapsed:.2f} s: nginx did not handle SIGTERM as PID 1"
    state = _run(*podman, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
    assert state == ["exited", "0"]
    logs = _run(*podman, "logs", name)
    assert '"GET /healthz HTTP/1.1" 200 3' in logs.stdout  # the access log: a line per request on stdout
    assert '"GET /dists/stable/InRelease HTTP/1.1" 200' in logs.stdout


@pytest.mark.slow
def test_without_a_writable_tmp_nginx_says_what_it_could_not_write(
    mirror: NginxMirror, podman: list[str], tmp_path: Path
) -> None:
    tar, tag = tmp_path / "image.tar", f"localhost/minimirror-nginx:{uuid.uuid4().hex[:12]}"
    assert main(mirror.image_args(tar, "--format", "docker-archive", "--tag", tag)) == 0
    _run(*podman, "load", "--input", str(tar))
    limits = ulimit_args()
    argv = [*podman, "run", "--rm", *limits, "--read-only", "--read-only-tmpfs=false", "--network", "none", tag]
    failed = _run(*argv, check=False)
    assert failed.returncode != 0 and "/tmp/nginx-client_body" in failed.stderr and "Read-only" in failed.stderr


@pytest.mark.slow
def test_kube_manifests_run_the_nginx_image_under_podman_kube_play(
    mirror: NginxMirror, podman: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tar, tag = tmp_path / "image.tar", f"localhost/minimirror-nginx:{uuid.uuid4().hex[:12]}"
    assert main(mirror.image_args(tar, "--format", "docker-archive", "--tag", tag)) == 0
    _run(*podman, "load", "--input", str(tar))
    name = f"mm-kn-{uuid.uuid4().hex[:8]}"
    capsys.readouterr()
    assert main(["kube", "--image", tag, "--replicas", "1", "--name", name, "--server", "nginx"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    # One change for this machine (no bridge network): podman refuses port declarations without one, so the
    # probes name the port by number. The rest as printed: read-only root, an emptyDir at /tmp, uid 65534.
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container.pop("ports") == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = 8080
    manifest = tmp_path / "mirror.yaml"
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    conf = limits_conf(tmp_path / "containers.conf")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    play = [*podman, "kube", "play", "--network", "none", str(manifest)]
    try:
        played = subprocess.run(play, capture_output=True, text=True, env=env, check=False, timeout=_TIMEOUT)
        assert played.returncode == 0, played.stderr
        listed = _run(*podman, "ps", "--pod", "--format", "{{.ID}} {{.Image}} {{.PodName}}").stdout.splitlines()
        (mirror_id,) = [line.split()[0] for line in listed if tag in line and f"{name}-pod" in line]
        inspected = json.loads(_run(*podman, "inspect", mirror_id).stdout)[0]
        assert inspected["Config"]["User"] == "65534:65534" and inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert "/tmp" in {mount["Destination"] for mount in inspected["Mounts"]}
        netns = f"/proc/{inspected['State']['Pid']}/ns/net"
        assert _wait_ready(netns) == b"ok\n"
        pool = next(mirror.archive.root.rglob("web_*.deb"))
        got = _curl(netns, f"http://127.0.0.1:8080/{pool.relative_to(mirror.archive.root)}", "--fail")
        assert got.stdout == pool.read_bytes()
    finally:
        _run(*podman, "kube", "down", str(manifest), check=False)
