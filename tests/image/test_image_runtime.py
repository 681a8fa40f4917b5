"""The image at run time: skopeo and umoci read the OCI layout, podman loads the docker-archive and runs it,
and apt updates from and downloads through the busybox httpd inside the container, which runs as 65534.

Needs root, podman, runc, skopeo, umoci and a static busybox (``apt-get install podman runc skopeo umoci
busybox-static``); each test is skipped with the missing piece named otherwise. Podman keeps its storage in a
temporary directory (``--root``/``--runroot``), so the host's images and containers are never touched, and
every container and image created here is removed by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from fixtures import LoopbackServer, build_archive
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory
from fixtures.podman import limits_conf, ulimit_args
from fixtures.server import wait_for_http
from test_image import HOST_BUSYBOX, Mirror, mirror_packages

from minimirror.cli import main
from minimirror.image.httpd import extract_busybox

pytestmark = pytest.mark.slow
_TIMEOUT = 120


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install podman runc skopeo umoci busybox-static)")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass(frozen=True)
class Built:
    mirror: Mirror
    public: Path
    layout: Path
    archive_tar: Path
    tag: str
    manifest_digest: str
    config_digest: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, signing_key: SigningKey, deb_cache: Path) -> Iterator[Built]:
    if not HOST_BUSYBOX.is_file():
        pytest.skip("no /bin/busybox on this machine (apt-get install busybox-static)")
    root = tmp_path_factory.mktemp("image-runtime")
    packages = mirror_packages(HOST_BUSYBOX.read_bytes())
    archive = build_archive(root / "archive", {"main": packages}, key=signing_key, deb_cache=deb_cache)
    extract_busybox(archive.deb("busybox-static"))  # static, or this module has nothing to run
    public, key_file = root / "public", root / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    server = LoopbackServer(archive.root).start()
    try:  # the whole pipeline: lock, publish (fetching the pool and signing), image
        mirror = Mirror(root / "work", archive, server.url)
        where = ["--locks", str(mirror.locks), "--cache", str(mirror.cache), "--out", str(public)]
        assert main(["publish", *where, "--sign-key", str(key_file)]) == 0
    finally:
        server.stop()
    tag = f"localhost/minimirror-test:{uuid.uuid4().hex[:12]}"
    layout, archive_tar = root / "oci", root / "image.tar"
    assert main(mirror.image_args(layout, "--tag", tag, repo=public)) == 0
    assert main(mirror.image_args(archive_tar, "--tag", tag, "--format", "docker-archive", repo=public)) == 0
    index = json.loads((layout / "index.json").read_bytes())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest[7:]).read_bytes())
    yield Built(mirror, public, layout, archive_tar, tag, manifest_digest, manifest["config"]["digest"])


def test_skopeo_reads_the_layout(built: Built) -> None:
    _require("skopeo")
    inspected = json.loads(_run("skopeo", "inspect", f"oci:{built.layout}").stdout)
    assert inspected["Digest"] == built.manifest_digest
    assert (inspected["Architecture"], inspected["Os"]) == ("amd64", "linux")
    assert len(inspected["Layers"]) >= 3 and inspected["Labels"]["io.minimirror.locks.sha256"]
    config = json.loads(_run("skopeo", "inspect", "--config", f"oci:{built.layout}").stdout)
    assert config["config"]["User"] == "65534:65534"
    raw = _run("skopeo", "inspect", "--raw", "--config", f"docker-archive:{built.archive_tar}").stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == built.config_digest  # the same config bytes


def test_umoci_unpacks_a_runnable_bundle(built: Built, tmp_path: Path) -> None:
    _require("umoci")
    image = f"{built.layout}:{built.tag}"
    stat = json.loads(_run("umoci", "stat", "--json", "--image", image).stdout)
    comments = [entry["comment"] for entry in stat["history"]]
    assert comments[0] == "server" and comments[-1] == "repository" and set(comments[1:-1]) == {"pool"}
    bundle = tmp_path / "bundle"
    _run("umoci", "unpack", "--image", image, str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin" / "busybox").read_bytes() == HOST_BUSYBOX.read_bytes()
    assert os.access(rootfs / "bin" / "busybox", os.X_OK)
    inrelease = built.public / "fixture" / "dists" / "stable" / "InRelease"
    assert (rootfs / "srv" / "fixture" / "dists" / "stable" / "InRelease").read_bytes() == inrelease.read_bytes()
    process = json.loads((bundle / "config.json").read_bytes())["process"]
    assert (process["user"]["uid"], process["user"]["gid"]) == (65534, 65534)
    assert process["args"][:3] == ["/bin/busybox", "sh", "-c"] and process["cwd"] == "/srv"


class Podman:
    """podman with this machine's flags and its storage under ``root``; remembers what it created.

    ``root`` must be short: podman refuses a ``--runroot`` longer than 50 characters.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = [
            "podman", "--root", str(root / "storage"), "--runroot", str(root / "run"), "--runtime", "runc",
            "--storage-driver=vfs", "--cgroup-manager=cgroupfs", "--events-backend=file",
        ]  # fmt: skip
        self.containers: list[str] = []
        self.images: list[str] = []

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(*self.base, *args, check=check)

    def cleanup(self) -> None:
        for name in self.containers:
            self("rm", "--force", "--time", "0", name, check=False)
        for image in self.images:
            self("rmi", "--force", image, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def podman() -> Iterator[Podman]:
    _require("podman", "runc")
    if os.geteuid() != 0:
        pytest.skip("the podman flags used here (runc, vfs, cgroupfs) need root")
    runner = Podman(Path(tempfile.mkdtemp(prefix="mm-podman-", dir="/tmp")))
    yield runner
    runner.cleanup()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_podman_loads_runs_and_apt_installs_from_it(built: Built, podman: Podman, private_apt: AptFactory) -> None:
    loaded = podman("load", "--input", str(built.archive_tar))
    podman.images.append(built.tag)
    assert built.tag in loaded.stdout
    image_id = podman("image", "inspect", "--format", "{{.Id}}", built.tag).stdout.strip()
    assert image_id == built.config_digest[7:]  # podman's image id is the config digest: same bytes as OCI
    name, port = f"minimirror-test-{uuid.uuid4().hex[:12]}", _free_port()
    podman.containers.append(name)
    # Host network, and the image's own entrypoint told (by -p, as busybox httpd takes it) to listen on loopback
    # only: no bridge, so no traffic to any address but 127.0.0.1.
    podman(
        "run", "--detach", "--name", name, *ulimit_args(),
        "--network", "host", built.tag, "-p", f"127.0.0.1:{port}",
    )  # fmt: skip
    archive = built.mirror.archive
    url = f"http://127.0.0.1:{port}/fixture"
    response = wait_for_http(f"{url}/dists/stable/InRelease")
    assert response.status_code == 200
    assert response.content == (built.public / "fixture" / "dists" / "stable" / "InRelease").read_bytes()
    assert podman("exec", name, "/bin/busybox", "id", "-u").stdout.strip() == "65534"
    apt = private_apt()
    apt.add_repository(url, "stable", ["main"], signed_by=built.public / "signing-key.gpg")
    apt.update()  # fails on any W:/E:/Err: line: the signature, by-hash and indices all came from the container
    assert apt.simulate_install(["web"]) == {("web", "1.0", "amd64"), ("libssl", "3.0.2", "amd64")}
    downloaded = apt.download(["web", "busybox-static"], apt.root / "downloads")
    expected = [archive.deb("busybox-static").read_bytes(), archive.deb("web").read_bytes()]
    assert [path.read_bytes() for path in downloaded] == expected
    pool_file = next((built.public / "fixture" / "pool").rglob("web_*.deb")).relative_to(built.public / "fixture")
    deb = httpx.get(f"{url}/{pool_file}", timeout=10.0)
    assert deb.headers["content-type"] == "application/vnd.debian.binary-package"
    assert httpx.get(f"http://127.0.0.1:{port}/sbom.spdx.json", timeout=10.0).json()["spdxVersion"] == "SPDX-2.3"
    logs = podman("logs", name)
    assert (logs.stdout + logs.stderr).count("response:200") >= 5  # -v: busybox logs each response


def test_podman_pulls_the_oci_layout_to_the_same_image(built: Built, podman: Podman) -> None:
    podman("pull", f"oci:{built.layout}")
    podman.images.append(built.config_digest[7:])
    ids = podman("images", "--no-trunc", "--format", "{{.ID}}").stdout.split()
    assert built.config_digest in ids or built.config_digest[7:] in ids


def test_podman_stop_ends_the_container_within_a_second(built: Built, podman: Podman) -> None:
    podman("load", "--input", str(built.archive_tar))
    podman.images.append(built.tag)
    name, port = f"minimirror-test-{uuid.uuid4().hex[:12]}", _free_port()
    podman.containers.append(name)
    podman(
        "run", "--detach", "--name", name, *ulimit_args(),
        "--network", "host", built.tag, "-p", f"127.0.0.1:{port}",
    )  # fmt: skip
    ready = wait_for_http(f"http://127.0.0.1:{port}/healthz")  # the documented probe path
    assert (ready.status_code, ready.content) == (200, b"ok\n")
    pids = podman("top", name, "pid", "args").stdout
    assert "sh -c" in pids and "nc -lll" in pids and "httpd -i" in pids  # PID 1 is busybox sh, nc its child
    started = time.monotonic()
    podman("stop", "--time", "10", name)  # SIGTERM, then SIGKILL after 10 s if it were ignored
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"podman stop took {elapsed:.2f} s: SIGTERM was not handled"
    state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
    assert state == ["exited", "0"]  # a clean exit, not a SIGKILL (137)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)  # httpd went with it


def test_kube_manifests_run_under_podman_kube_play_and_apt_installs(
    built: Built, podman: Podman, private_apt: AptFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    podman("load", "--input", str(built.archive_tar))
    podman.images.append(built.tag)
    name, port = f"mm-kube-{uuid.uuid4().hex[:8]}", _free_port()
    capsys.readouterr()
    assert main(["kube", "--image", built.tag, "--replicas", "1", "--name", name]) == 0
    deployment, service, budget = yaml.safe_load_all(capsys.readouterr().out)
    assert (deployment["kind"], service["kind"], budget["kind"]) == ("Deployment", "Service", "PodDisruptionBudget")
    # The one change for this machine: the host's network (no bridge here), with the server told to listen on
    # loopback at a free port (the last -p wins, as in busybox httpd). Podman refuses port declarations on the
    # host network, so the probes name the port by number instead of by its name.
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_spec["hostNetwork"] = True
    container = pod_spec["containers"][0]
    container["args"] = ["-p", f"127.0.0.1:{port}"]
    assert container.pop("ports") == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        container[probe]["httpGet"]["port"] = port
    manifest = tmp_path / "mirror.yaml"
    manifest.write_text(yaml.safe_dump_all([deployment, service, budget], sort_keys=False))
    # kube play has no --ulimit: this machine's limits go through a containers.conf given to this one command
    conf = limits_conf(tmp_path / "containers.conf")
    play = [*podman.base, "kube", "play", str(manifest)]
    try:
        env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        played = subprocess.run(play, capture_output=True, text=True, env=env, check=False, timeout=_TIMEOUT)
        assert played.returncode == 0, played.stderr
        response = wait_for_http(f"http://127.0.0.1:{port}/healthz")
        assert (response.status_code, response.content) == (200, b"ok\n")
        listed = podman("ps", "--pod", "--format", "{{.ID}} {{.Image}} {{.PodName}}").stdout.splitlines()
        (mirror_id,) = [line.split()[0] for line in listed if built.tag in line and f"{name}-pod" in line]
        inspected = json.loads(podman("inspect", mirror_id).stdout)[0]
        assert inspected["Config"]["User"] == "65534:65534" and inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert inspected["EffectiveCaps"] in (None, [])  # every capability dropped
        url = f"http://127.0.0.1:{port}/fixture"
        apt = private_apt()
        apt.add_repository(url, "stable", ["main"], signed_by=built.public / "signing-key.gpg")
        apt.update()
        assert apt.simulate_install(["web"]) == {("web", "1.0", "amd64"), ("libssl", "3.0.2", "amd64")}
        downloaded = apt.download(["web"], apt.root / "downloads")
        assert [path.read_bytes() for path in downloaded] == [built.mirror.archive.deb("web").read_bytes()]
    finally:
        podman("kube", "down", str(manifest), check=False)
