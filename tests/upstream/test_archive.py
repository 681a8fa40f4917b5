"""The archive client against real signed fixture archives on loopback: trust, integrity, faults, cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer

from minimirror.errors import ArchiveError, FetchError, IntegrityError, SignatureError
from minimirror.upstream.archive import Upstream, open_snapshot
from minimirror.upstream.cache import Cache
from minimirror.upstream.download import Downloader, RetryPolicy, make_client

PACKAGES = {"main": [P("hello", "1.0", depends="libhello"), P("libhello", "1.0"), P("doc", "1.0", architecture="all")]}
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.0)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture
def downloader(client: httpx.Client) -> Downloader:
    return Downloader(client, retry=FAST_RETRY)


@pytest.fixture
def archive(fixture_archive_factory: ArchiveFactory) -> FixtureArchive:
    return fixture_archive_factory(PACKAGES)


@pytest.fixture
def server(archive: FixtureArchive, http_server: ServerFactory) -> LoopbackServer:
    return http_server(archive.root)


def upstream_for(archive: FixtureArchive, server: LoopbackServer, **changes: object) -> Upstream:
    assert archive.key is not None
    values: dict[str, object] = {
        "url": server.url,
        "key_url": f"file://{archive.key.public_key_asc_path}",
        "dist": archive.dist,
        "components": ("main",),
        "architectures": ("amd64",),
    }
    values.update(changes)
    return Upstream(**values)  # type: ignore[arg-type]


def test_good_archive_verifies_and_caches_every_index(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    snapshot = open_snapshot(upstream_for(archive, server), downloader=downloader, cache=cache)
    assert archive.key is not None
    assert snapshot.fingerprints == (archive.key.fingerprint,)
    assert snapshot.release_name == "InRelease"
    assert [(i.component, i.architecture, i.path) for i in snapshot.indices] == [
        ("main", "amd64", "main/binary-amd64/Packages.xz")
    ]
    blob = cache.read_blob(snapshot.indices[0].sha256)
    assert blob == archive.index_path("main", "amd64", "xz").read_bytes()
    # fetched by hash, as the Release allows
    assert any("/by-hash/SHA256/" in path for path in server.log.paths())


def test_second_run_with_unchanged_release_downloads_only_the_inrelease(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    upstream = upstream_for(archive, server)
    open_snapshot(upstream, downloader=downloader, cache=cache)
    server.log.clear()
    open_snapshot(upstream, downloader=downloader, cache=cache)
    assert server.log.paths() == [f"/dists/{archive.dist}/InRelease"]


def test_offline_works_from_a_warm_cache_and_names_what_is_missing_from_a_cold_one(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    upstream = upstream_for(archive, server)
    with pytest.raises(ArchiveError, match=r"offline: no Release of .* Run once without --offline"):
        open_snapshot(upstream, downloader=None, cache=Cache(tmp_path / "cold"))
    warm = Cache(tmp_path / "warm")
    online = open_snapshot(upstream, downloader=downloader, cache=warm)
    server.log.clear()
    offline = open_snapshot(upstream, downloader=None, cache=warm)
    assert server.log.paths() == []
    assert offline == online


def test_offline_with_a_missing_index_names_the_index(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    snapshot = open_snapshot(upstream_for(archive, server), downloader=downloader, cache=cache)
    cache.blob_path(snapshot.indices[0].sha256).unlink()
    with pytest.raises(ArchiveError, match=r"offline: .*main/binary-amd64/Packages.xz .* is not in the cache"):
        open_snapshot(upstream_for(archive, server), downloader=None, cache=cache)


def test_tampered_index_is_refused_naming_the_file(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    archive.rewrite_index("main", "amd64", "Package: evil\nVersion: 6.6.6\nArchitecture: amd64\n\n")
    for path in (archive.dist_dir / "main" / "binary-amd64" / "by-hash" / "SHA256").iterdir():
        path.write_bytes(archive.index_path("main", "amd64", "xz").read_bytes())
    with pytest.raises(
        IntegrityError, match=r"main/binary-amd64/Packages.xz: refused, it does not match the signed Release"
    ):
        open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))
    blobs = [p for p in (tmp_path / "c" / "blobs").rglob("*") if p.is_file()]
    assert blobs == [], "an unverified index reached the cache"


def test_bad_signature_is_refused(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    signed = archive.inrelease_path.read_bytes()
    archive.inrelease_path.write_bytes(signed.replace(b"Label: Fixture", b"Label: Fixturf"))
    with pytest.raises(SignatureError, match="InRelease: signature does not verify"):
        open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))


def test_wrong_key_is_refused(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path, other_signing_key: object
) -> None:
    key_url = f"file://{other_signing_key.public_key_path}"  # type: ignore[attr-defined]
    with pytest.raises(SignatureError, match="does not verify with the source's key"):
        open_snapshot(
            upstream_for(archive, server, key_url=key_url), downloader=downloader, cache=Cache(tmp_path / "c")
        )


def test_unsigned_text_after_the_signature_is_refused(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    archive.inrelease_path.write_bytes(archive.inrelease_path.read_bytes() + b"\nSHA256:\n deadbeef 1 x\n")
    with pytest.raises(SignatureError, match="unsigned text after the signature"):
        open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))


def test_release_and_detached_signature_are_used_without_inrelease(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    archive.inrelease_path.unlink()
    snapshot = open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))
    assert snapshot.release_name == "Release"
    assert archive.key is not None
    assert snapshot.fingerprints == (archive.key.fingerprint,)


def test_expired_release_is_refused_unless_the_source_allows_it(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    archive.resign(valid_until=datetime(2020, 1, 2, tzinfo=UTC))
    with pytest.raises(ArchiveError, match=r"expired on 2020-01-02 .*allow-expired = true"):
        open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))
    snapshot = open_snapshot(
        upstream_for(archive, server, allow_expired=True), downloader=downloader, cache=Cache(tmp_path / "c")
    )
    assert snapshot.release.valid_until == datetime(2020, 1, 2, tzinfo=UTC)


def test_release_valid_in_the_future_is_accepted(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    until = datetime.now(UTC) + timedelta(days=7)
    archive.resign(valid_until=until)
    snapshot = open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))
    assert snapshot.release.valid_until is not None and abs(snapshot.release.valid_until - until) < timedelta(seconds=2)
    assert len(snapshot.indices) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"components": ("main", "contrib")}, r"component 'contrib' is not in the Release \(it has: main\)"),
        ({"architectures": ("amd64", "s390x")}, r"no Packages index for main/binary-s390x"),
        ({"dist": "nosuchdist"}, r"neither InRelease nor Release exists.*'nosuchdist'"),
    ],
)
def test_missing_component_architecture_or_dist_is_named(
    archive: FixtureArchive,
    server: LoopbackServer,
    downloader: Downloader,
    tmp_path: Path,
    changes: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ArchiveError, match=message):
        open_snapshot(upstream_for(archive, server, **changes), downloader=downloader, cache=Cache(tmp_path / "c"))


def test_503s_truncated_bodies_and_resets_are_survived_by_retries(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    server.faults.status("*/InRelease", 503, times=2)
    server.faults.truncate("*/by-hash/*", after_bytes=100, times=1)
    server.faults.reset("*/by-hash/*", times=1)
    snapshot = open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))
    assert len(snapshot.indices) == 1
    statuses = [(r.path.rsplit("/", 1)[-1], r.status, r.fault) for r in server.log.records()]
    assert [s for s in statuses if s[0] == "InRelease"][:3] == [
        ("InRelease", 503, statuses[0][2]),
        ("InRelease", 503, statuses[1][2]),
        ("InRelease", 200, None),
    ]


def test_an_index_download_cut_short_is_continued_by_the_next_run_and_leaves_no_stray_file(
    archive: FixtureArchive, server: LoopbackServer, client: httpx.Client, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "c")
    server.faults.truncate("*/by-hash/*", after_bytes=100, times=1)
    with pytest.raises(FetchError, match="by-hash"):
        open_snapshot(upstream_for(archive, server), downloader=Downloader(client, retry=RetryPolicy(1)), cache=cache)
    (kept,) = (tmp_path / "c" / "partial").iterdir()
    assert kept.stat().st_size == 100

    server.log.clear()
    snapshot = open_snapshot(
        upstream_for(archive, server), downloader=Downloader(client, retry=FAST_RETRY), cache=cache
    )
    ranges = [r.header("Range") for r in server.log.records() if "/by-hash/" in r.path]
    assert ranges == ["bytes=100-"]
    assert cache.read_blob(snapshot.indices[0].sha256) == archive.index_path("main", "amd64", "xz").read_bytes()
    assert list((tmp_path / "c" / "partial").iterdir()) == []
    strays = [p.name for p in (tmp_path / "c" / "blobs").rglob("*") if p.is_file() and p.name.startswith(".")]
    assert strays == []


def test_persistent_failure_names_the_url_and_what_to_try(
    archive: FixtureArchive, server: LoopbackServer, downloader: Downloader, tmp_path: Path
) -> None:
    server.faults.status("*/InRelease", 503, times=None)
    with pytest.raises(FetchError) as caught:
        open_snapshot(upstream_for(archive, server), downloader=downloader, cache=Cache(tmp_path / "c"))
    message = str(caught.value)
    assert f"{server.url.rstrip('/')}/dists/{archive.dist}/InRelease" in message
    assert "HTTP 503" in message and "after 4 attempts" in message and "--offline" in message


def test_proxy_variables_are_honoured(
    archive: FixtureArchive,
    http_server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin = http_server(archive.root)
    proxy = http_server(archive.root, proxy_mode="forward")
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with make_client(timeout=5.0) as client:
        open_snapshot(
            upstream_for(archive, origin), downloader=Downloader(client, retry=FAST_RETRY), cache=Cache(tmp_path / "c")
        )
    assert [r.via_proxy for r in proxy.log.records()] and all(r.via_proxy for r in proxy.log.records())
    assert any(path.endswith("/InRelease") for path in proxy.log.paths())


def test_gpg_disable_verify_reads_the_release_and_warns(
    archive: FixtureArchive,
    server: LoopbackServer,
    downloader: Downloader,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = open_snapshot(
        upstream_for(archive, server, verify=False, key_url=""), downloader=downloader, cache=Cache(tmp_path / "c")
    )
    assert snapshot.fingerprints == ()
    assert snapshot.release.label == "Fixture"
    assert "SIGNATURE CHECKING IS DISABLED" in caplog.text
