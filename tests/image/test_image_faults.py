"""Issue 8.1 for the image stage: network faults on ``image --base`` (pull) and ``--push`` (upload).

The pull side runs against a static registry: the paths the OCI distribution-spec (``spec.md``) answers,
``/v2/<name>/manifests/<digest>`` and ``/v2/<name>/blobs/<digest>``, laid out as files and served by
``tests/fixtures/server.py``'s :class:`LoopbackServer`, whose fault injector cuts, resets, stalls, lies about and
redirects them. The push side runs against Debian's real ``docker-registry`` behind an httpx transport that injects
the same faults (the loopback server does not speak POST/PATCH/PUT). Each fault either heals through
:class:`~minimirror.image.registry.RegistryClient`'s retries or fails with one message naming the URL; a blob whose
digest does not match is never kept under its digest, and an endless body is refused with bounded memory
(the child process's own peak RSS is measured).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer
from test_image import EPOCH, Mirror, busybox_bytes, load_layout, mirror_packages
from test_registry import Registry, make_base, nginx_like_layers, start_registry, stop_registry

import minimirror.image.registry
from minimirror.cli import main
from minimirror.errors import IntegrityError
from minimirror.image.base import BaseImage, load_base
from minimirror.image.registry import RegistryClient, RegistryError, parse_reference, push_layout
from minimirror.upstream.cache import Cache

NAME = "base"


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minimirror.image.registry, "BACKOFF", 0.01)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    for name in ("MINIMIRROR_REGISTRY_USER", "MINIMIRROR_REGISTRY_PASSWORD", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def static_registry(layout: Path, root: Path, digest: str) -> dict[str, str]:
    """The layout's blobs as a registry serves them; the URL path of the manifest and of each blob, by role."""
    repo = root / "v2" / NAME
    (repo / "manifests").mkdir(parents=True)
    (repo / "blobs").mkdir()
    _, manifest, _ = load_layout(layout)
    for blob in (layout / "blobs" / "sha256").iterdir():
        shutil.copyfile(blob, repo / "blobs" / f"sha256:{blob.name}")
    shutil.copyfile(layout / "blobs" / "sha256" / digest[7:], repo / "manifests" / digest)
    paths = {"manifest": f"/v2/{NAME}/manifests/{digest}", "config": f"/v2/{NAME}/blobs/{manifest['config']['digest']}"}
    paths.update({f"layer{i}": f"/v2/{NAME}/blobs/{layer['digest']}" for i, layer in enumerate(manifest["layers"])})
    return paths


class Site:
    """A static registry on loopback holding the nginx-like base; ``ref`` pins it by digest."""

    def __init__(self, root: Path, http_server: ServerFactory) -> None:
        self.layout = root / "layout"
        self.digest = make_base(self.layout, nginx_like_layers())
        self.paths = static_registry(self.layout, root / "site", self.digest)
        self.server: LoopbackServer = http_server(root / "site")
        self.ref = f"127.0.0.1:{self.server.port}/{NAME}@{self.digest}"
        self.cache = root / "cache"

    def pull(self, *, timeout: float = 5.0) -> BaseImage:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            return load_base(self.ref, self.cache, client=client)


@pytest.fixture
def site(tmp_path: Path, http_server: ServerFactory) -> Site:
    return Site(tmp_path, http_server)


def assert_cache_honest(cache: Path) -> None:
    """Every blob in the cache has its own sha256 as its name; nothing partial is left."""
    for path in (cache / "blobs").rglob("*") if (cache / "blobs").is_dir() else cache.rglob("*"):
        if path.is_file() and path.name != ".minimirror.lock":
            assert not path.name.endswith(".partial"), path
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"{path} is not its digest"


# --- pull: faults that heal -----------------------------------------------------------------------------

HEALS: dict[str, Callable[[Site], object]] = {
    "503 once on the manifest": lambda s: s.server.faults.status(s.paths["manifest"], 503),
    "502 twice on a layer": lambda s: s.server.faults.status(s.paths["layer0"], 502, times=2),
    "429 once on the config": lambda s: s.server.faults.status(s.paths["config"], 429),
    "reset twice on a layer": lambda s: s.server.faults.reset(s.paths["layer1"], times=2),
    "truncated twice on a layer": lambda s: s.server.faults.truncate(s.paths["layer0"], 10, times=2),
    "truncated manifest": lambda s: s.server.faults.truncate(s.paths["manifest"], 5),
    "Content-Length too long": lambda s: s.server.faults.lie_length(s.paths["layer1"], 1 << 20),
    "stall past the timeout": lambda s: s.server.faults.stall(s.paths["config"], 1.5),
}


@pytest.mark.parametrize("fault", HEALS)
def test_pull_heals_through_retries(site: Site, fault: str) -> None:
    HEALS[fault](site)
    base = site.pull(timeout=0.5)
    assert base.digest == site.digest
    assert len(base.layers) == 2
    assert_cache_honest(site.cache)


# --- pull: faults that fail cleanly ---------------------------------------------------------------------


def other_host(tmp_path: Path, http_server: ServerFactory, path: str, data: bytes) -> str:
    root = tmp_path / "elsewhere"
    (root / path.lstrip("/")).parent.mkdir(parents=True)
    (root / path.lstrip("/")).write_bytes(data)
    return http_server(root).url.rstrip("/") + path


FAILS: dict[str, tuple[Callable[[Site, Path, ServerFactory], object], str, type[Exception]]] = {
    "500 always": (lambda s, t, h: s.server.faults.status(s.paths["layer0"], 500, times=None), "layer0", RegistryError),
    "403 on the manifest": (
        lambda s, t, h: s.server.faults.status(s.paths["manifest"], 403),
        "manifest",
        RegistryError,
    ),
    "reset always": (lambda s, t, h: s.server.faults.reset(s.paths["config"], times=None), "config", RegistryError),
    "truncated always": (
        lambda s, t, h: s.server.faults.truncate(s.paths["layer1"], 10, times=None),
        "layer1",
        RegistryError,
    ),
    "Content-Length too short": (
        lambda s, t, h: s.server.faults.lie_length(s.paths["layer0"], 10, times=None),
        "layer0",
        IntegrityError,
    ),
    "redirect to file:": (
        lambda s, t, h: s.server.faults.redirect(s.paths["layer0"], "file:///etc/passwd"),
        "layer0",
        RegistryError,
    ),
    "redirect to another host with other bytes": (
        lambda s, t, h: s.server.faults.redirect(s.paths["layer1"], other_host(t, h, "/x/blob", b"other bytes\n")),
        "layer1",
        IntegrityError,
    ),
    "endless manifest": (lambda s, t, h: s.server.faults.endless(s.paths["manifest"]), "manifest", RegistryError),
    "endless layer": (lambda s, t, h: s.server.faults.endless(s.paths["layer0"]), "layer0", RegistryError),
}


@pytest.mark.parametrize("fault", FAILS)
def test_pull_fails_cleanly_naming_the_url(site: Site, tmp_path: Path, http_server: ServerFactory, fault: str) -> None:
    inject, role, error = FAILS[fault]
    inject(site, tmp_path, http_server)
    with pytest.raises(error) as raised:
        site.pull(timeout=2.0)
    assert f"{site.server.url.rstrip('/')}{site.paths[role]}" in str(raised.value)
    assert_cache_honest(site.cache)


def test_redirect_to_another_host_with_the_right_bytes_is_accepted(
    site: Site, tmp_path: Path, http_server: ServerFactory
) -> None:
    data = (site.layout / "blobs" / "sha256" / site.paths["layer0"].rsplit(":", 1)[1]).read_bytes()
    site.server.faults.redirect(site.paths["layer0"], other_host(tmp_path, http_server, "/storage/b", data))
    assert site.pull().digest == site.digest
    assert_cache_honest(site.cache)


# --- through the CLI: image --base ------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


def test_image_base_heals_then_a_dead_base_fails_without_touching_the_image(
    site: Site, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "image"
    site.server.faults.status(site.paths["manifest"], 503)
    site.server.faults.reset(site.paths["layer0"])
    assert main(mirror.image_args(out, "--base", site.ref)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    Cache(mirror.cache).blob_path(site.paths["layer1"].rsplit(":", 1)[1]).unlink()  # pulled again
    site.server.faults.status(site.paths["layer1"], 500, times=None)
    capsys.readouterr()
    assert main(mirror.image_args(out, "--base", site.ref)) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"{site.server.url.rstrip('/')}{site.paths['layer1']}" in err and "after 4 tries" in err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_push_to_a_failing_registry_names_the_url(
    mirror: Mirror, tmp_path: Path, http_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    server = http_server(tmp_path / "empty")
    server.faults.status("/v2/*", 503, times=None)
    assert main(mirror.image_args(tmp_path / "image", "--push", f"127.0.0.1:{server.port}/mirror:1")) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"{server.url.rstrip('/')}/v2/mirror/blobs/sha256:" in err and "HTTP 503 (after 4 tries)" in err
    assert "Traceback" not in err and (tmp_path / "image" / "index.json").is_file()
    assert len([r for r in server.log if r.method == "HEAD"]) == 4  # one HEAD, three retries


# --- push: the real docker-registry behind a faulty transport ---------------------------------------------


class Faulty(httpx.BaseTransport):
    """Passes requests to the real transport, except that the first matching ones fail as ``plan`` says."""

    def __init__(self, plan: list[tuple[str, str, str]]) -> None:
        self.inner = httpx.HTTPTransport()
        self.plan = plan  # (method, path fragment, "reset" | "503" | "500")
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        for step in self.plan:
            method, fragment, kind = step
            if request.method == method and fragment in request.url.path:
                self.plan.remove(step)
                if kind == "reset":
                    raise httpx.ReadError("connection reset by peer", request=request)
                return httpx.Response(int(kind), text="injected\n", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    started = start_registry(tmp_path_factory.mktemp("registry"))
    yield started
    stop_registry(started.process)


def test_push_heals_idempotent_faults_and_never_repeats_an_upload(registry: Registry, tmp_path: Path) -> None:
    digest = make_base(tmp_path / "layout", nginx_like_layers())
    plan = [("HEAD", "/blobs/", "reset"), ("HEAD", "/blobs/", "503"), ("GET", "/manifests/", "502")]
    with httpx.Client(transport=Faulty(plan)) as client:
        assert push_layout(tmp_path / "layout", f"{registry.host}/healed:1", client).digest == digest
        pulled = RegistryClient(client, parse_reference(f"{registry.host}/healed:1")).get_manifest("1")
    assert pulled.digest == digest and plan == []
    failing = Faulty([("PATCH", "/blobs/uploads/", "500"), ("PUT", "/blobs/uploads/", "500")])
    (tmp_path / "big").write_bytes(os.urandom(300_000))
    big = "sha256:" + hashlib.sha256((tmp_path / "big").read_bytes()).hexdigest()
    with httpx.Client(transport=failing) as client:
        repo = RegistryClient(client, parse_reference(f"{registry.host}/failing:1"))
        with pytest.raises(RegistryError, match=r"/v2/failing/blobs/uploads/.*HTTP 500"):
            repo.push_blob(big, tmp_path / "big", chunk=100_000)
    assert [m for m, _ in failing.seen].count("PATCH") == 1  # a non-idempotent request is sent once


# --- memory: an endless body, in a child process -------------------------------------------------------

_CHILD = r"""
import re, sys
from minimirror.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()  # VmHWM: this process's own peak (ru_maxrss inherits the parent's)
print("PEAK_KIB", re.search(r"VmHWM:\s+(\d+)", status).group(1), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("role", ["manifest", "layer0"])
def test_an_endless_body_is_refused_with_bounded_memory(site: Site, mirror: Mirror, tmp_path: Path, role: str) -> None:
    site.server.faults.endless(site.paths[role], times=None)
    env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "COLUMNS": "200"}
    args = mirror.image_args(tmp_path / "image", "--base", site.ref)
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, timeout=120, check=False)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "longer than the" in err and site.paths[role] in err.replace("\n", "")
    peak_mib = int(err.split("PEAK_KIB")[1].split()[0]) / 1024
    print(f"endless {role}: refused, peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < 150
    assert_cache_honest(mirror.cache)
