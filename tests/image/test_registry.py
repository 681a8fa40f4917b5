"""``--base`` and ``--push``: the OCI distribution client against Debian's real ``docker-registry`` on loopback.

A tiny "nginx-like" base (a layout written here with :mod:`minimirror.image.layers`) is pushed to a local registry, then
pulled by digest as ``--base``; the result is checked layer by layer, rebuilt byte for byte, and pushed again.
``oci:`` and ``docker-archive:`` bases, corrupt blobs, a lying registry, and bearer/basic auth are covered too
(a bearer token service needs TLS in ``docker-registry``, so that one dance runs against an httpx MockTransport).

Needs ``docker-registry`` (``apt-get install docker-registry``) for the tests that use the ``registry`` fixtures;
they are skipped with the package named otherwise. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import shutil
import socket
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_image import EPOCH, Mirror, blob, busybox_bytes, layer_members, load_layout, mirror_packages

from minimirror.cli import main
from minimirror.errors import IntegrityError, UsageError
from minimirror.image.base import NGINX_CONF, load_base, parse_base
from minimirror.image.layers import LayerEntry, write_layer
from minimirror.image.oci import canonical_json
from minimirror.image.registry import (
    Credentials,
    RegistryClient,
    RegistryError,
    find_credentials,
    parse_reference,
    push_layout,
)

REGISTRY = Path("/usr/bin/docker-registry")
_WAIT = 20.0


# --- a real registry on loopback ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    process: subprocess.Popen[bytes]


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash through libxcrypt (the ``crypt`` module is deprecated, but there is no other stdlib way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    hashed = crypt.crypt(password, "$2b$05$" + "minimirrortestsaltsalt")
    if not hashed or not hashed.startswith("$2b$"):
        pytest.skip("this libcrypt has no bcrypt")
    return hashed


def start_registry(root: Path, *, users: dict[str, str] | None = None) -> Registry:
    if not REGISTRY.is_file():
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    auth = ""
    if users:
        (root / "htpasswd").write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
        auth = f"auth:\n  htpasswd:\n    realm: minimirror-test\n    path: {root / 'htpasswd'}\n"
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: minimirror-test\n{auth}"
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([str(REGISTRY), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + _WAIT
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2.0)
            return Registry(f"127.0.0.1:{port}", process)
        except httpx.TransportError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    stop_registry(process)
    raise AssertionError(f"docker-registry did not start: {(root / 'registry.log').read_text()}")


def stop_registry(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def running_registry(root: Path) -> Iterator[Registry]:
    """A registry of its own in ``root`` (created), stopped at the end: for a test that counts uploads."""
    root.mkdir(exist_ok=True)
    started = start_registry(root)
    try:
        yield started
    finally:
        stop_registry(started.process)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    started = start_registry(tmp_path_factory.mktemp("registry"))
    yield started
    stop_registry(started.process)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    started = start_registry(tmp_path_factory.mktemp("auth-registry"), users={"alice": "s3cret-Pw"})
    yield started
    stop_registry(started.process)


# --- a tiny nginx-like base, written here ---------------------------------------------------------------

BASE_CONFIG: dict[str, Any] = {
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.22.1"],
    "ExposedPorts": {"80/tcp": {}},
    "StopSignal": "SIGQUIT",
    "Labels": {"maintainer": "base maintainers", "org.opencontainers.image.title": "base"},
}


def _finish_layout(root: Path, written: list[Any], run: dict[str, Any], tag: str, arch: str) -> str:
    blobs = root / "blobs" / "sha256"
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2020-09-13T12:26:40Z",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in written]},
        "history": [{"created": "2020-09-13T12:26:40Z", "created_by": f"base layer {i}"} for i in range(len(written))],
    }
    config_data = canonical_json(config)
    (blobs / hashlib.sha256(config_data).hexdigest()).write_bytes(config_data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + hashlib.sha256(config_data).hexdigest(),
            "size": len(config_data),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.digest, "size": layer.size}
            for layer in written
        ],
    }
    manifest_data = canonical_json(manifest)
    digest = "sha256:" + hashlib.sha256(manifest_data).hexdigest()
    (blobs / digest[7:]).write_bytes(manifest_data)
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": len(manifest_data),
        "annotations": {"org.opencontainers.image.ref.name": tag},
        "platform": {"architecture": arch, "os": "linux"},
    }
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [entry]}))
    return digest


def make_base(root: Path, layers: list[list[LayerEntry]], **kwargs: Any) -> str:
    """Write each layer to its blob, then the layout; returns the manifest digest."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    written = []
    for entries in layers:
        layer = write_layer(entries, root / "layer.tmp", epoch=1_600_000_000, compression="gzip")
        (root / "layer.tmp").replace(blobs / layer.digest[7:])
        written.append(layer)
    return _finish_layout(
        root, written, kwargs.get("run", BASE_CONFIG), kwargs.get("tag", "base"), kwargs.get("arch", "amd64")
    )


def nginx_like_layers() -> list[list[LayerEntry]]:
    return [
        [
            LayerEntry.directory("etc"),
            LayerEntry.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/:/sbin/nologin\n"),
            LayerEntry.directory("usr"),
            LayerEntry.directory("usr/sbin"),
            LayerEntry.file("usr/sbin/nginx", b"#!/bin/sh\necho not really nginx\n", executable=True),
        ],
        [
            LayerEntry.directory("etc"),
            LayerEntry.directory("etc/nginx"),
            LayerEntry.directory("etc/nginx/conf.d"),
            LayerEntry.file("etc/nginx/conf.d/default.conf", b"server { listen 80; root /usr/share/nginx/html; }\n"),
            LayerEntry.file("docker-entrypoint.sh", b'#!/bin/sh\nexec "$@"\n', executable=True),
        ],
    ]


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


@pytest.fixture(autouse=True)
def _fixed_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    for name in ("MINIMIRROR_REGISTRY_USER", "MINIMIRROR_REGISTRY_PASSWORD", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def pushed_base(registry: Registry, root: Path, name: str = "base") -> str:
    """The nginx-like base pushed to the registry; its pinned reference."""
    digest = make_base(root, nginx_like_layers())
    with httpx.Client() as client:
        result = push_layout(root, f"{registry.host}/{name}:1.22", client)
    assert result.digest == digest
    return f"{registry.host}/{name}@{digest}"


def files_of(data: bytes, compressed: bool = True) -> dict[str, bytes]:
    raw = gzip.decompress(data) if compressed else data
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]


# --- --base from a registry, pinned by digest -----------------------------------------------------------


def test_base_pulled_by_digest_keeps_its_layers_and_adds_nginx_conf_and_srv(
    mirror: Mirror, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = pushed_base(registry, tmp_path / "base")
    out = tmp_path / "image"
    assert main(mirror.image_args(out, "--base", ref, "--tag", "localhost/mirror:nginx")) == 0
    assert f"base     {ref.split('@')[1]}" in capsys.readouterr().out
    _, manifest, config = load_layout(out)
    _, base_manifest, base_config = load_layout(tmp_path / "base")
    digests = [layer["digest"] for layer in manifest["layers"]]
    assert digests[:2] == [layer["digest"] for layer in base_manifest["layers"]]  # byte for byte, first
    assert len(digests) >= 5  # the base's two, the nginx configuration, the pool buckets, the metadata
    conf = files_of(blob(out, digests[2]), compressed=False)
    assert conf == {"etc/nginx/conf.d/default.conf": NGINX_CONF.encode()}
    assert "listen 8080 default_server;" in NGINX_CONF and "root /srv;" in NGINX_CONF
    repository = {m.name for digest in digests[3:] for m in layer_members(blob(out, digest))}
    assert {"srv/dists/stable/InRelease", "srv/sbom.spdx.json"} <= repository
    run = config["config"]
    assert run["Entrypoint"] == ["/docker-entrypoint.sh"] and run["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert run["Env"] == BASE_CONFIG["Env"] and run["StopSignal"] == "SIGQUIT" and "User" not in run
    assert run["ExposedPorts"] == {"8080/tcp": {}}
    assert run["Labels"]["maintainer"] == "base maintainers"  # kept
    assert run["Labels"]["org.opencontainers.image.title"] == "APT mirror of fixture/stable"  # ours win
    assert config["rootfs"]["diff_ids"][:2] == base_config["rootfs"]["diff_ids"]
    pool = ["pool"] * (len(digests) - 4)
    assert [h.get("comment") for h in config["history"]] == [None, None, "server", *pool, "repository"]
    assert config["created"] == "2024-06-01T00:00:00Z"


def test_same_base_digest_gives_byte_identical_images(mirror: Mirror, registry: Registry, tmp_path: Path) -> None:
    ref = pushed_base(registry, tmp_path / "base", "repro")
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(mirror.image_args(first, "--base", ref)) == 0
    shutil.rmtree(mirror.cache / "blobs")  # pulled again from the registry, not reused from the cache
    mirror.cache_deb("busybox-static")
    assert main(mirror.image_args(second, "--base", ref)) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    tar_a, tar_b = tmp_path / "a.tar", tmp_path / "b.tar"
    for tar in (tar_a, tar_b):
        assert main(mirror.image_args(tar, "--base", ref, "--format", "docker-archive")) == 0
    assert tar_a.read_bytes() == tar_b.read_bytes()


def test_a_tag_only_base_is_refused_with_the_fix(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(mirror.image_args(tmp_path / "image", "--base", "127.0.0.1:5000/nginx:1.25")) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "must be pinned by digest" in err and "HOST/NAME@sha256:" in err and "Traceback" not in err
    assert not (tmp_path / "image").exists()
    with pytest.raises(UsageError, match="not a registry reference"):
        parse_base("nginx@sha256:" + "0" * 64)  # no host: no implicit default registry
    assert parse_base("oci:/some/dir:v1").tag == "v1" and parse_base("oci:/a:b/c").location == "/a:b/c"


# --- --push ---------------------------------------------------------------------------------------------


def test_push_then_skopeo_and_our_client_read_the_same_digest(
    mirror: Mirror, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, target = tmp_path / "image", f"{registry.host}/mirror:1"
    assert main(mirror.image_args(out, "--push", target)) == 0
    index, manifest, _ = load_layout(out)
    digest = index["manifests"][0]["digest"]
    assert f"pushed   {target}@{digest}" in capsys.readouterr().out
    if shutil.which("skopeo"):
        inspect = ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{target}"]
        raw = subprocess.run(inspect, capture_output=True, check=True, timeout=60).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    with httpx.Client() as client:
        pulled = RegistryClient(client, parse_reference(target)).get_manifest("1")
        assert pulled.digest == digest and json.loads(pulled.data) == manifest
        again = push_layout(out, target, client)  # everything is there already: nothing uploaded
    assert (again.uploaded, again.skipped, again.digest) == (0, len(manifest["layers"]) + 1, digest)


def test_chunked_upload_and_verified_download(registry: Registry, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000  # 256 000 bytes, pushed in 100 000-byte PATCHes
    (tmp_path / "blob").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client() as client:
        repo = RegistryClient(client, parse_reference(f"{registry.host}/chunks:x"))
        assert repo.push_blob(digest, tmp_path / "blob", chunk=100_000) is True
        assert repo.has_blob(digest) and repo.push_blob(digest, tmp_path / "blob") is False
        repo.get_blob(digest, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


def test_push_to_a_stopped_registry_says_which_url(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{free_port()}/mirror:1"
    assert main(mirror.image_args(tmp_path / "image", "--push", target)) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"http://{target.split('/', maxsplit=1)[0]}/v2/mirror/blobs/" in err and "is the registry running" in err
    assert "Traceback" not in err and (tmp_path / "image" / "index.json").is_file()  # the image itself is written


# --- auth -----------------------------------------------------------------------------------------------


def test_basic_auth_from_environment_and_auth_file(
    mirror: Mirror,
    auth_registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"{auth_registry.host}/private:1"
    assert main(mirror.image_args(tmp_path / "a", "--push", target)) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "HTTP 401" in err and "MINIMIRROR_REGISTRY_USER" in err
    monkeypatch.setenv("MINIMIRROR_REGISTRY_USER", "alice")
    monkeypatch.setenv("MINIMIRROR_REGISTRY_PASSWORD", "s3cret-Pw")
    assert main(mirror.image_args(tmp_path / "b", "--push", target)) == 0
    monkeypatch.delenv("MINIMIRROR_REGISTRY_USER")
    monkeypatch.delenv("MINIMIRROR_REGISTRY_PASSWORD")
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"alice:s3cret-Pw").decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    _, manifest, _ = load_layout(tmp_path / "b")
    ref = (
        f"{auth_registry.host}/private@"
        + json.loads((tmp_path / "b" / "index.json").read_bytes())["manifests"][0]["digest"]
    )
    assert manifest["layers"]
    assert find_credentials(auth_registry.host) == Credentials("alice", "s3cret-Pw")
    assert "s3cret" not in repr(find_credentials(auth_registry.host))
    assert main(mirror.image_args(tmp_path / "c", "--base", ref)) == 0  # a pull with the auth file's entry


def _token_registry(
    log: list[tuple[str, str, dict[str, str]]], *, token_status: int = 200
) -> Callable[[httpx.Request], httpx.Response]:
    manifest = b'{"schemaVersion":2}'

    def handle(request: httpx.Request) -> httpx.Response:
        log.append((request.url.host, request.headers.get("authorization", ""), dict(request.url.params)))
        if request.url.host == "auth.example":
            return httpx.Response(token_status, json={"token": "tok-123"} if token_status == 200 else {})
        if request.headers.get("authorization") != "Bearer tok-123":
            challenge = (
                'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:lib/base:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(
            200, content=manifest, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        )

    return handle


def test_bearer_token_dance_sends_the_credentials_only_to_the_realm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    log: list[tuple[str, str, dict[str, str]]] = []
    credentials = Credentials("bob", "hunter2-very-secret")
    with httpx.Client(transport=httpx.MockTransport(_token_registry(log))) as client:
        repo = RegistryClient(client, parse_reference("registry.example/lib/base:1"), credentials)
        assert repo.get_manifest("1").data == b'{"schemaVersion":2}'
        repo.get_manifest("1")  # the token is reused: no second challenge
    hosts = [(host, authorization) for host, authorization, _ in log]
    basic = "Basic " + base64.b64encode(b"bob:hunter2-very-secret").decode()
    assert hosts == [
        ("registry.example", ""),
        ("auth.example", basic),
        ("registry.example", "Bearer tok-123"),
        ("registry.example", "Bearer tok-123"),
    ]
    assert log[1][2] == {"service": "registry.example", "scope": "repository:lib/base:pull"}
    assert "hunter2" not in caplog.text
    with httpx.Client(transport=httpx.MockTransport(_token_registry([], token_status=401))) as client:
        repo = RegistryClient(client, parse_reference("registry.example/lib/base:1"), credentials)
        with pytest.raises(RegistryError, match="token service answered 401") as refused:
            repo.get_manifest("1")
    assert "hunter2" not in str(refused.value) and "hunter2" not in caplog.text


# --- a registry that lies, a corrupt layout -------------------------------------------------------------


def test_a_blob_or_manifest_with_another_digest_is_refused(tmp_path: Path) -> None:
    wanted = "sha256:" + hashlib.sha256(b"the real bytes").hexdigest()

    def liar(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"other bytes", headers={"Content-Type": "application/json"})

    with httpx.Client(transport=httpx.MockTransport(liar)) as client:
        repo = RegistryClient(client, parse_reference("registry.example/lib/base:1"))
        with pytest.raises(IntegrityError, match="not " + wanted):
            repo.get_blob(wanted, tmp_path / "blob")
        with pytest.raises(IntegrityError, match="refusing it"):
            repo.get_manifest(wanted)
    assert not list(tmp_path.iterdir())  # nothing kept, not even the partial file


def test_a_corrupt_layer_in_an_oci_base_is_named(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_base(tmp_path / "base", nginx_like_layers())
    _, manifest, _ = load_layout(tmp_path / "base")
    layer = tmp_path / "base" / "blobs" / "sha256" / manifest["layers"][1]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 1
    layer.write_bytes(bytes(data))
    assert main(mirror.image_args(tmp_path / "image", "--base", f"oci:{tmp_path / 'base'}:base")) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert str(layer) in err and "the base is corrupt" in err and not (tmp_path / "image").exists()


# --- oci: and docker-archive: bases ---------------------------------------------------------------------


def test_oci_base_by_tag_and_docker_archive_base_give_the_same_files(mirror: Mirror, tmp_path: Path) -> None:
    make_base(tmp_path / "base", nginx_like_layers())
    assert main(mirror.image_args(tmp_path / "from-oci", "--base", f"oci:{tmp_path / 'base'}:base")) == 0
    assert (
        main(
            mirror.image_args(tmp_path / "base.tar", "--base", f"oci:{tmp_path / 'base'}", "--format", "docker-archive")
        )
        == 0
    )
    assert main(mirror.image_args(tmp_path / "from-tar", "--base", f"docker-archive:{tmp_path / 'base.tar'}")) == 0
    _, via_oci, config_oci = load_layout(tmp_path / "from-oci")
    _, via_tar, config_tar = load_layout(tmp_path / "from-tar")
    assert config_oci["rootfs"]["diff_ids"][:2] == config_tar["rootfs"]["diff_ids"][:2]
    # The docker-archive's layers are kept uncompressed: their digest is their diff_id, nothing recompressed.
    kinds = [layer["mediaType"].rsplit(".", 1)[1] for layer in via_tar["layers"]]
    assert set(kinds) == {"tar"}  # ours are plain tars too (the default compression)
    assert [layer["digest"] for layer in via_tar["layers"]] == config_tar["rootfs"]["diff_ids"]
    first_base_layer = files_of(blob(tmp_path / "from-tar", via_tar["layers"][0]["digest"]), compressed=False)
    assert first_base_layer == files_of(blob(tmp_path / "from-oci", via_oci["layers"][0]["digest"]))
    again = tmp_path / "again.tar"
    assert (
        main(
            mirror.image_args(again, "--base", f"docker-archive:{tmp_path / 'base.tar'}", "--format", "docker-archive")
        )
        == 0
    )
    with tarfile.open(again) as archive:
        docker = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert len(docker[0]["Layers"]) == len(config_tar["rootfs"]["diff_ids"])
        for name, diff_id in zip(docker[0]["Layers"], config_tar["rootfs"]["diff_ids"], strict=True):
            assert "sha256:" + hashlib.sha256(archive.extractfile(name).read()).hexdigest() == diff_id  # type: ignore[union-attr]


def test_an_index_with_two_platforms_needs_arch(tmp_path: Path) -> None:
    make_base(tmp_path / "amd", nginx_like_layers(), tag="multi")
    make_base(tmp_path / "arm", nginx_like_layers()[:1], tag="multi", arch="arm64")
    index = json.loads((tmp_path / "amd" / "index.json").read_bytes())
    arm_entry = json.loads((tmp_path / "arm" / "index.json").read_bytes())["manifests"][0]
    arm_entry["platform"]["variant"] = "v8"
    index["manifests"].append(arm_entry)
    for path in (tmp_path / "arm" / "blobs" / "sha256").iterdir():
        shutil.copyfile(path, tmp_path / "amd" / "blobs" / "sha256" / path.name)
    (tmp_path / "amd" / "index.json").write_bytes(canonical_json(index))
    with pytest.raises(UsageError, match="2 images match"):
        load_base(f"oci:{tmp_path / 'amd'}:multi", tmp_path / "cache")
    arm = load_base(f"oci:{tmp_path / 'amd'}:multi", tmp_path / "cache", arch="arm64")
    assert arm.architecture == "arm64" and len(arm.layers) == 1
    assert load_base(f"oci:{tmp_path / 'amd'}", tmp_path / "cache", arch="amd64").architecture == "amd64"
