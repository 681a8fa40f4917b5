"""``--push-via engine``: the docker SDK's push through ``podman system service`` to Debian's ``docker-registry``.

Both on loopback: the registry on 127.0.0.1, marked insecure in a ``registries.conf`` of this module's own (the
service gets it through ``CONTAINERS_REGISTRIES_CONF``), so the host's ``/etc/containers`` is never read for it nor
touched. The pushed image is read back with ``skopeo inspect`` and its config compared with ours; the digest the
engine reports is checked against the registry's, and a rewritten manifest must be reported, not hidden. Needs root,
podman, runc, docker-registry and skopeo; skipped with the missing piece named otherwise. Everything started here is
stopped by PID.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.podman import podman_service
from test_image import Mirror, busybox_bytes, mirror_packages
from test_registry import Registry, free_port, start_registry, stop_registry

from minimirror.cli import main
from minimirror.image.engine import EngineError, push_digest, remove_image

pytestmark = pytest.mark.slow
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    started = start_registry(tmp_path_factory.mktemp("registry"))
    yield started
    stop_registry(started.process)


@pytest.fixture(scope="module")
def engine(registry: Registry) -> Iterator[str]:
    """``unix://PATH`` of a podman API service for this module, with the loopback registry marked insecure."""
    if shutil.which("podman") is None or shutil.which("runc") is None or shutil.which("skopeo") is None:
        pytest.skip("podman, runc or skopeo not installed (apt-get install podman runc skopeo)")
    if os.geteuid() != 0:
        pytest.skip("the podman flags used here (runc, vfs, cgroupfs) need root")
    root = Path(tempfile.mkdtemp(prefix="mm-push-", dir="/tmp"))  # short: podman limits --runroot's length
    conf = root / "registries.conf"
    conf.write_text(
        f'unqualified-search-registries = []\n[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n'
    )
    with podman_service(root, registries_conf=conf) as url:
        yield url


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


def _skopeo(*args: str) -> bytes:
    argv = ["skopeo", "inspect", "--tls-verify=false", *args]
    return subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout


def _ours(archive: Path) -> tuple[dict[str, object], str]:
    """The image configuration in our docker-archive, and its digest."""
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config: dict[str, object] = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
    return config, manifest[0]["Config"].removesuffix(".json")


def _printed(out: str, key: str) -> str:
    return next(line.split(None, 1)[1] for line in out.splitlines() if line.startswith(key + " "))


def test_push_via_engine_lands_in_the_registry_with_our_config_and_any_rewrite_is_reported(
    mirror: Mirror,
    engine: str,
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag, target = f"localhost/mm-push:{uuid.uuid4().hex[:10]}", f"{registry.host}/mm-push:{uuid.uuid4().hex[:8]}"
    out = tmp_path / "image.tar"
    args = ["--format", "docker-archive", "--tag", tag, "--push", target, "--push-via", "engine"]
    try:
        assert main(mirror.image_args(out, *args, "--docker-host", engine)) == 0
    finally:
        remove_image(tag, engine)
        remove_image(target, engine)
    captured = capsys.readouterr()
    printed, err = captured.out, " ".join(captured.err.split())
    built, pushed, loaded = _printed(printed, "manifest"), _printed(printed, "pushed"), _printed(printed, "loaded")
    reference, _, reported = pushed.partition("@")
    assert reference == target and reported.startswith("sha256:")
    raw = _skopeo("--raw", f"docker://{target}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == reported  # the engine reported what the registry holds
    config, config_digest = _ours(out)
    pulled = json.loads(_skopeo("--config", f"docker://{target}"))
    assert loaded == f"sha256:{config_digest}"
    assert pulled == config  # the same image configuration, layers' diff_ids included: the same files
    assert json.loads(raw)["config"]["digest"] == f"sha256:{config_digest}"  # byte for byte, whatever the gzip
    if reported == built:
        assert "rewrote the manifest" not in err
    else:  # Podman recompresses: both digests are said, on stderr and in the printed lines
        assert "rewrote the manifest" in err and reported in err and built in err, err


def test_an_engine_push_to_a_closed_port_names_socket_and_reference(
    mirror: Mirror, engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tag, target = f"localhost/mm-push:{uuid.uuid4().hex[:10]}", f"127.0.0.1:{free_port()}/mm-push:closed"
    out = tmp_path / "image.tar"
    args = ["--format", "docker-archive", "--tag", tag, "--push", target, "--push-via", "engine"]
    try:
        assert main(mirror.image_args(out, *args, "--docker-host", engine)) == 2
    finally:
        remove_image(tag, engine)
        remove_image(target, engine)
    err = capsys.readouterr().err.replace("\n", " ")
    assert engine.removeprefix("unix://") in err and target in err and "Traceback" not in err
    assert out.is_file()  # the image is written before the push is tried


def test_push_via_engine_without_push_is_a_usage_error(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(mirror.image_args(tmp_path / "image", "--push-via", "engine")) == 2
    assert "--push-via engine needs --push" in capsys.readouterr().err
    assert not (tmp_path / "image").exists()  # refused before anything is built


# --- the progress stream, pure ----------------------------------------------------------------------------


def test_the_digest_is_read_from_docker_aux_or_the_status_line() -> None:
    docker_events: list[dict[str, Any]] = [
        {"status": "Pushing"},
        {"progressDetail": {}, "aux": {"Tag": "1", "Digest": DIGEST_A, "Size": 9}},
    ]
    assert push_digest(docker_events, "h:1/n:1", "unix:///s") == DIGEST_A
    podman_events = [{"status": "Copying blob"}, {"status": f"1: digest: {DIGEST_B} size: 9"}]
    assert push_digest(podman_events, "h:1/n:1", "unix:///s") == DIGEST_B
    assert push_digest([{"status": "done"}], "h:1/n:1", "unix:///s") is None


def test_an_error_event_is_an_engine_error_naming_socket_and_reference() -> None:
    events: list[dict[str, Any]] = [
        {"status": "Pushing"},
        {"errorDetail": {"message": "denied"}, "error": "denied: requested access"},
    ]
    with pytest.raises(EngineError, match=r"unix:///s could not push h:1/n:1: denied: requested access"):
        push_digest(events, "h:1/n:1", "unix:///s")
    with pytest.raises(EngineError, match=r"could not push h:1/n:1: unauthorized"):
        push_digest([{"errorDetail": {"message": "unauthorized"}}], "h:1/n:1", "unix:///s")
