"""``--platform linux/amd64,linux/arm64``: an OCI image index with one manifest per platform, each served by the
busybox-static locked for its architecture, over the same repository layer blobs; a docker-archive holds one
platform; ``--push`` pushes the index (Debian's ``docker-registry`` on loopback, read back with ``skopeo``).

Offline: a fixture archive with ``Architectures: amd64 arm64``, whose arm64 busybox-static holds an aarch64 ELF
header (never run here; the real arm64 busybox runs under qemu in the network test at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.podman import podman_service
from fixtures.server import wait_for_http
from test_image import blob, busybox_bytes, layer_files, static_elf
from test_registry import Registry, free_port, running_registry

from minimirror.cli import main
from minimirror.image.httpd import BusyboxError, extract_busybox
from minimirror.upstream.cache import Cache

_INDEX = "application/vnd.oci.image.index.v1+json"
_AARCH64 = 183  # ELF e_machine


def aarch64_elf() -> bytes:
    header = bytearray(static_elf())
    header[0x12:0x14] = _AARCH64.to_bytes(2, "little")
    return bytes(header)


class TwoArchMirror:
    """A fixture archive for amd64 and arm64, locked for both (aptly.conf), both busyboxes in the cache."""

    def __init__(self, root: Path, archive: FixtureArchive, url: str) -> None:
        self.archive = archive
        source = root / "sources" / "fixture" / "stable"
        source.mkdir(parents=True)
        key_url = f"file://{archive.key.public_key_asc_path}"  # type: ignore[union-attr]
        (source / "source.txt").write_text(f"{url} {key_url} {archive.dist} main\n")
        (source / "packages.txt").write_text("web\nbusybox-static\n")
        (source / "aptly.conf").write_text('{"architectures": ["amd64", "arm64"]}\n')
        self.locks, self.cache = root / "locks", root / "cache"
        args = ["--sources", str(root / "sources"), "--locks", str(self.locks), "--cache", str(self.cache)]
        assert main(["lock", *args]) == 0
        for arch in ("amd64", "arm64"):
            Cache(self.cache).put_blob(archive.deb("busybox-static", arch=arch).read_bytes())

    def image_args(self, out: Path, *extra: str) -> list[str]:
        dirs = ["--locks", str(self.locks), "--cache", str(self.cache)]
        return ["image", "--repo", str(self.archive.root), "--image", str(out), *dirs, *extra]


def two_arch_packages() -> list[P]:
    busybox = {"amd64": busybox_bytes(), "arm64": aarch64_elf()}
    return [
        *(
            P("busybox-static", "1:1.36.1-9", arch, files={"bin/busybox": data}, source="busybox (1:1.36.1-9)")
            for arch, data in busybox.items()
        ),
        *(P("web", "1.0", arch, files={"usr/share/doc/web/README": b"web\n"}) for arch in ("amd64", "arm64")),
    ]


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> TwoArchMirror:
    archive = fixture_archive_factory({"main": two_arch_packages()}, architectures=("amd64", "arm64"))
    return TwoArchMirror(tmp_path / "work", archive, http_server(archive.root).url)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as started:
        yield started


def _index(layout: Path) -> tuple[dict[str, object], bytes]:
    top = json.loads((layout / "index.json").read_bytes())["manifests"]
    assert len(top) == 1 and top[0]["mediaType"] == _INDEX
    assert top[0]["annotations"] == {"org.opencontainers.image.ref.name": "localhost/mirror:multi"}
    data = blob(layout, top[0]["digest"])
    return json.loads(data), data


def test_an_index_with_one_manifest_per_platform_over_the_same_repository_layers(
    mirror: TwoArchMirror, tmp_path: Path
) -> None:
    out = tmp_path / "image"
    platforms = ["--platform", "linux/amd64,linux/arm64", "--tag", "localhost/mirror:multi"]
    assert main(mirror.image_args(out, *platforms)) == 0
    index, raw = _index(out)
    entries = index["manifests"]
    assert isinstance(entries, list)
    assert [e["platform"] for e in entries] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    manifests = [json.loads(blob(out, e["digest"])) for e in entries]
    configs = [json.loads(blob(out, m["config"]["digest"])) for m in manifests]
    assert [(c["architecture"], c.get("variant")) for c in configs] == [("amd64", None), ("arm64", "v8")]
    amd64, arm64 = ([layer["digest"] for layer in m["layers"]] for m in manifests)
    assert amd64[1:] == arm64[1:] and len(amd64) >= 3  # the repository: the same blobs, stored once
    assert amd64[0] != arm64[0]  # each platform's server
    servers = [layer_files(out, [digests[0]])["bin/busybox"] for digests in (amd64, arm64)]
    assert servers == [busybox_bytes(), aarch64_elf()]
    assert configs[0]["config"]["Entrypoint"] == configs[1]["config"]["Entrypoint"]
    if shutil.which("skopeo"):
        inspected = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{out}:localhost/mirror:multi"],
            capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert inspected == raw
        arm = subprocess.run(
            ["skopeo", "--override-arch", "arm64", "inspect", f"oci:{out}:localhost/mirror:multi"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert json.loads(arm)["Architecture"] == "arm64"
    again = tmp_path / "again"
    assert main(mirror.image_args(again, *platforms)) == 0
    assert _index(again)[1] == raw  # reproducible: the same index digest


def test_docker_archive_takes_one_platform(
    mirror: TwoArchMirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = ["--format", "docker-archive", "--platform", "linux/amd64,linux/arm64"]
    assert main(mirror.image_args(tmp_path / "both.tar", *both)) == 2
    err = capsys.readouterr().err
    assert "docker-archive holds one platform" in err and "Traceback" not in err
    assert not (tmp_path / "both.tar").exists()
    arm = tmp_path / "arm.tar"
    assert main(mirror.image_args(arm, "--format", "docker-archive", "--platform", "linux/arm64")) == 0
    listing = subprocess.run(["tar", "-xOf", str(arm), "manifest.json"], capture_output=True, check=True).stdout
    config = json.loads(
        subprocess.run(
            ["tar", "-xOf", str(arm), json.loads(listing)[0]["Config"]], capture_output=True, check=True
        ).stdout
    )
    assert config["architecture"] == "arm64"
    assert main(mirror.image_args(tmp_path / "x", "--platform", "windows/amd64")) == 2
    assert "is not linux/ARCH" in capsys.readouterr().err
    assert main(mirror.image_args(tmp_path / "x", "--platform", "linux/arm64", "--arch", "amd64")) == 2
    assert "either --arch or --platform" in capsys.readouterr().err


def test_a_busybox_for_another_machine_is_refused(mirror: TwoArchMirror) -> None:
    with pytest.raises(BusyboxError, match="ELF machine 62, not arm64"):
        extract_busybox(mirror.archive.deb("busybox-static", arch="amd64"), "arm64")
    assert extract_busybox(mirror.archive.deb("busybox-static", arch="arm64"), "arm64") == aarch64_elf()


def test_push_sends_the_index_and_every_platform(mirror: TwoArchMirror, tmp_path: Path, registry: Registry) -> None:
    out, target = tmp_path / "image", f"{registry.host}/mirror:multi"
    args = ["--platform", "linux/amd64,linux/arm64", "--tag", "localhost/mirror:multi", "--push", target]
    assert main(mirror.image_args(out, *args)) == 0
    index, raw = _index(out)
    served = httpx.get(f"http://{registry.host}/v2/mirror/manifests/multi", headers={"Accept": _INDEX}, timeout=30)
    assert served.content == raw and served.headers["content-type"] == _INDEX
    entries = index["manifests"]
    assert isinstance(entries, list)
    for entry in entries:
        child = httpx.get(
            f"http://{registry.host}/v2/mirror/manifests/{entry['digest']}",
            headers={"Accept": entry["mediaType"]}, timeout=30,
        )  # fmt: skip
        assert child.content == blob(out, entry["digest"])
    if shutil.which("skopeo"):
        inspect = ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{target}"]
        assert subprocess.run(inspect, capture_output=True, check=True, timeout=60).stdout == raw


def test_load_takes_the_engines_own_platform(mirror: TwoArchMirror, tmp_path: Path) -> None:
    if shutil.which("podman") is None or shutil.which("runc") is None or os.geteuid() != 0:
        pytest.skip("needs root, podman and runc (apt-get install podman runc)")
    out, tag = tmp_path / "image", "localhost/mirror:multi"
    root = Path(tempfile.mkdtemp(prefix="mm-plat-", dir="/tmp"))  # short: podman limits --runroot's length
    with podman_service(root) as engine:
        args = ["--platform", "linux/amd64,linux/arm64", "--tag", tag, "--load", "--docker-host", engine]
        assert main(mirror.image_args(out, *args)) == 0
        index, _ = _index(out)
        entries = index["manifests"]
        assert isinstance(entries, list)
        amd64 = json.loads(blob(out, entries[0]["digest"]))["config"]["digest"]
        client = docker.DockerClient(base_url=engine, timeout=60)
        try:
            loaded = client.images.get(tag)
            assert loaded.id == amd64 and loaded.attrs["Architecture"] == "amd64"  # this engine's platform
        finally:
            client.close()


# --- the real arm64 busybox, run under qemu -------------------------------------------------------------


def host_two_platform_image(work: Path, cache: Path, out: Path, package: str, *image_args: str) -> tuple[str, str]:
    """The host's release suite locked for amd64 and arm64 with ``package`` (and only that source's lock kept),
    published unsigned into ``work/public`` and packed at ``out`` for both platforms; (prefix, name) of the suite."""
    from test_network import _host_release_suite

    prefix, name = _host_release_suite()
    sources, locks, public = (work / d for d in ("sources", "locks", "public"))
    assert main(["init", "--from-apt", "--sources", str(sources), "--packages", package]) == 0
    (sources / prefix / name / "aptly.conf").write_text('{"architectures": ["amd64", "arm64"]}\n')
    where = ["--locks", str(locks), "--cache", str(cache)]
    assert main(["lock", "--sources", str(sources), *where, "--source", f"{prefix}/{name}"]) == 0
    for other in sorted(locks.glob("*/*.lock")):  # only the source under test
        if other != locks / prefix / f"{name}.lock":
            other.unlink()
    assert main(["publish", *where, "--out", str(public), "--no-sign"]) == 0
    platforms = ["--platform", "linux/amd64,linux/arm64", *image_args]
    assert main(["image", "--repo", str(public), "--image", str(out), *where, *platforms]) == 0
    return prefix, name


def server_layer(out: Path, architecture: str) -> dict[str, bytes]:
    """The files of the server layer (the first) of ``architecture``'s manifest in the image index at ``out``."""
    top = json.loads((out / "index.json").read_bytes())["manifests"][0]
    index = json.loads(blob(out, top["digest"]))
    entry = next(e for e in index["manifests"] if e["platform"]["architecture"] == architecture)
    manifest = json.loads(blob(out, entry["digest"]))
    return layer_files(out, [manifest["layers"][0]["digest"]])


@pytest.mark.network
@pytest.mark.slow
def test_real_arm64_busybox_serves_the_tree_under_qemu(tmp_path: Path) -> None:
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        pytest.skip("qemu-aarch64-static is not installed (apt-get install qemu-user-static)")
    out, public = tmp_path / "image", tmp_path / "public"
    prefix, name = host_two_platform_image(tmp_path, tmp_path / "cache", out, "busybox-static")
    server = server_layer(out, "arm64")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(server["bin/busybox"])
    busybox.chmod(0o755)
    assert busybox.read_bytes()[:4] == b"\x7fELF" and int.from_bytes(busybox.read_bytes()[18:20], "little") == _AARCH64
    conf = tmp_path / "httpd.conf"
    conf.write_bytes(server["etc/httpd.conf"])
    port = free_port()
    argv = [qemu, str(busybox), "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(public), "-c", str(conf)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        inrelease = f"http://127.0.0.1:{port}/{prefix}/dists/{name}/Release"
        response = wait_for_http(inrelease, process=process)
        release = public / prefix / "dists" / name / "Release"
        assert response.status_code == 200 and response.content == release.read_bytes()
        deb = next((public / prefix / "pool").rglob("busybox-static_*_arm64.deb"))
        got = httpx.get(f"http://127.0.0.1:{port}/{deb.relative_to(public)}", timeout=30.0)
        assert got.content == deb.read_bytes()
        assert got.headers["content-type"] == "application/vnd.debian.binary-package"
    finally:
        process.terminate()
        process.wait(timeout=10)
