"""``--load`` and :mod:`minimirror.image.engine`: the docker SDK against ``podman system service`` on a unix socket.

The engine is Podman's Docker-compatible API with this machine's flags (runc, vfs, cgroupfs, file events) and its
storage in a short temporary directory, so the host's images are never touched. Two images are loaded, run and
removed: the busybox-served image, and one built ``--base`` a real nginx (Debian's ``nginx`` binary and its
libraries, packed here into a base, pushed to a loopback ``docker-registry`` and pulled back by digest).
Containers run with ``network_mode="none"`` and are probed from inside with busybox wget, so nothing listens on
any host address. Needs root, podman, runc, busybox-static (and nginx and docker-registry for the nginx test);
skipped with the missing piece named otherwise. Everything started here is stopped by PID, removed by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.podman import ULIMITS, podman_service
from test_image import HOST_BUSYBOX, Mirror, mirror_packages
from test_registry import make_base, start_registry, stop_registry

from minimirror.cli import main
from minimirror.image.engine import EngineError, load_image, remove_container, remove_image, run_image
from minimirror.image.layers import LayerEntry
from minimirror.image.registry import push_layout

pytestmark = pytest.mark.slow
_WAIT = 30.0
NGINX = Path("/usr/sbin/nginx")


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """``unix://PATH`` of a podman API service started for this module."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman or runc not installed (apt-get install podman runc)")
    if os.geteuid() != 0:
        pytest.skip("the podman flags used here (runc, vfs, cgroupfs) need root")
    root = Path(tempfile.mkdtemp(prefix="mm-eng-", dir="/tmp"))  # short: podman limits --runroot's length
    with podman_service(root) as url:
        yield url


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    if not HOST_BUSYBOX.is_file():
        pytest.skip("no /bin/busybox on this machine (apt-get install busybox-static)")
    archive = fixture_archive_factory({"main": mirror_packages(HOST_BUSYBOX.read_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


def _fetch_inside(engine: str, name: str, path: str) -> bytes:
    """``busybox wget`` of http://127.0.0.1:8080/PATH inside the container, retried until the server is up."""
    client = docker.DockerClient(base_url=engine, timeout=60)
    try:
        container = client.containers.get(name)
        deadline = time.monotonic() + _WAIT
        while True:
            code, output = container.exec_run(
                ["/bin/busybox", "wget", "-q", "-O", "-", f"http://127.0.0.1:8080/{path}"]
            )
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        logs = container.logs().decode(errors="replace")
    finally:
        client.close()
    assert code == 0, f"wget exited {code}: {output!r}; container logs:\n{logs}"
    assert isinstance(output, bytes)
    return output


def _image_gone(engine: str, tag: str) -> bool:
    client = docker.DockerClient(base_url=engine, timeout=60)
    try:
        return not any(tag in image.tags for image in client.images.list())
    finally:
        client.close()


def test_load_run_and_remove_the_busybox_image(mirror: Mirror, engine: str, tmp_path: Path) -> None:
    tag, name = f"localhost/mm-engine:{uuid.uuid4().hex[:10]}", f"mm-engine-{uuid.uuid4().hex[:10]}"
    out = tmp_path / "image.tar"
    args = ["--format", "docker-archive", "--tag", tag, "--load", "--docker-host", engine]
    assert main(mirror.image_args(out, *args)) == 0
    try:
        client = docker.DockerClient(base_url=engine, timeout=60)
        loaded = client.images.get(tag)
        client.close()
        config_digest = _config_digest(out)
        assert loaded.id == f"sha256:{config_digest}"  # the engine's id is our config's digest
        # the last -p says where the server listens (as busybox httpd takes it): the container's own loopback only
        run_image(
            tag, name=name, command=["-p", "127.0.0.1:8080"], network_mode="none", ulimits=ULIMITS, docker_host=engine
        )
        served = _fetch_inside(engine, name, "dists/stable/InRelease")
        assert served == (mirror.archive.root / "dists" / "stable" / "InRelease").read_bytes()
    finally:
        remove_container(name, engine)
        remove_image(tag, engine)
    assert _image_gone(engine, tag)
    remove_image(tag, engine)  # removing again is not an error


def _config_digest(archive: Path) -> str:
    import json
    import tarfile

    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    config: str = manifest[0]["Config"]
    return config.removesuffix(".json")


# --- a real nginx as the base ---------------------------------------------------------------------------

_NGINX_CONF = b"""\
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    include /etc/nginx/conf.d/*.conf;
}
"""


def _shared_libraries(binary: Path) -> dict[str, Path]:
    """Path in the image -> host file, for every library ``ldd`` lists (the loader included)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True, timeout=30).stdout
    found: dict[str, Path] = {}
    for line in out.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else words[0]
        if path.startswith("/"):
            found[path.lstrip("/")] = Path(os.path.realpath(path))
    return found


def nginx_base_layers() -> list[list[LayerEntry]]:
    """Debian's nginx with its libraries, a static busybox (for the probe), users and the directories nginx needs."""
    files = {"usr/sbin/nginx": NGINX, "bin/busybox": HOST_BUSYBOX, **_shared_libraries(NGINX)}
    system = [
        LayerEntry.file(path, host.read_bytes(), executable=os.access(host, os.X_OK)) for path, host in files.items()
    ]
    dirs = {str(Path(path).parent) for path in files} | {"etc", "var/lib/nginx", "var/log/nginx", "run", "tmp"}
    parents = {str(parent) for d in dirs for parent in [Path(d), *Path(d).parents] if str(parent) != "."}
    config = [
        LayerEntry.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n"),
        LayerEntry.file("etc/group", b"root:x:0:\nwww-data:x:33:\n"),
        LayerEntry.file("etc/nginx/nginx.conf", _NGINX_CONF),
        LayerEntry.file("etc/nginx/mime.types", Path("/etc/nginx/mime.types").read_bytes()),
        LayerEntry.directory("etc/nginx"),
        LayerEntry.directory("etc/nginx/conf.d"),
    ]
    return [[*map(LayerEntry.directory, sorted(parents)), *system], config]


def test_a_real_nginx_base_pulled_by_digest_serves_srv_on_8080(mirror: Mirror, engine: str, tmp_path: Path) -> None:
    if not NGINX.is_file() or not Path("/etc/nginx/mime.types").is_file():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    run = {"Cmd": ["/usr/sbin/nginx", "-g", "daemon off;"], "Env": ["PATH=/usr/sbin:/bin"]}
    digest = make_base(tmp_path / "base", nginx_base_layers(), run=run)
    (tmp_path / "registry").mkdir()
    registry = start_registry(tmp_path / "registry")
    tag, name = f"localhost/mm-nginx:{uuid.uuid4().hex[:10]}", f"mm-nginx-{uuid.uuid4().hex[:10]}"
    try:
        with httpx.Client() as client:
            push_layout(tmp_path / "base", f"{registry.host}/nginx:1.22", client)
        base = f"{registry.host}/nginx@{digest}"
        assert (
            main(mirror.image_args(tmp_path / "oci", "--base", base, "--tag", tag, "--load", "--docker-host", engine))
            == 0
        )
        run_image(tag, name=name, network_mode="none", ulimits=ULIMITS, docker_host=engine)
        served = _fetch_inside(engine, name, "dists/stable/InRelease")
        assert served == (mirror.archive.root / "dists" / "stable" / "InRelease").read_bytes()
        deb = next(mirror.archive.root.rglob("web_*.deb"))
        assert _fetch_inside(engine, name, str(deb.relative_to(mirror.archive.root))) == deb.read_bytes()
    finally:
        stop_registry(registry.process)
        remove_container(name, engine)
        remove_image(tag, engine)


def test_an_unreachable_engine_is_one_line_naming_the_socket(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    socket_url = f"unix://{tmp_path / 'no-engine.sock'}"
    with pytest.raises(EngineError, match=r"no-engine\.sock could not be reached"):
        load_image(tmp_path / "missing.tar", socket_url)
    out = tmp_path / "image.tar"
    assert main(mirror.image_args(out, "--format", "docker-archive", "--load", "--docker-host", socket_url)) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "podman system service" in err and "DOCKER_HOST" in err and "Traceback" not in err
    assert out.is_file()  # the image is written before the load is tried
