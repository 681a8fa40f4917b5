"""``minimirror fetch`` on signed fixture archives served on loopback, locked with ``minimirror lock``.

Real .debs, real locks; the server's request log and fault injection show what went over the wire.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import shutil
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer

from minimirror.cli import main
from minimirror.errors import FetchError, IntegrityError
from minimirror.lock.lockfile import Lock, LockedPackage, read_lock
from minimirror.publish.fetch import FetchConfig, FetchReport, fetch, plan_fetch
from minimirror.upstream.cache import Cache
from minimirror.upstream.download import RetryPolicy

BIG_PAYLOAD = random.Random(5).randbytes(300_000)  # incompressible: the .deb is ~300 kB, many read chunks
PACKAGES = [
    P("web", "1.0", depends="libssl (>= 3), bigdata", source="web-src (1.0)"),
    P("bigdata", "1.0", architecture="all", files={"usr/share/bigdata/blob": BIG_PAYLOAD}),
    P("libssl", "3.0.2"),
    P("shell", "5.2", depends="libc"),
    P("libc", "2.37"),
]
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)


@dataclasses.dataclass
class Locked:
    """A served fixture archive, a sources tree pointing at it, and its lock (already written)."""

    root: Path
    archive_root: Path
    server: LoopbackServer

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def cache(self) -> Cache:
        return Cache(self.root / "cache")

    @property
    def lock(self) -> Lock:
        return read_lock(self.locks / "fixture" / "stable.lock")

    def package(self, name: str) -> LockedPackage:
        return self.lock.find(name)[0]

    def args(self, *extra: str) -> list[str]:
        return ["fetch", "--locks", str(self.locks), "--cache", str(self.cache.root), *extra]

    def config(self, **changes: object) -> FetchConfig:
        return dataclasses.replace(FetchConfig(self.locks, self.cache.root, retry=FAST), **changes)  # type: ignore[arg-type]

    def pool_paths(self) -> list[str]:
        return sorted(f"/{p.filename}" for p in self.lock.packages)

    def assert_cache_complete(self) -> None:
        for package in self.lock.packages:
            blob = self.cache.blob_path(package.sha256)
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == package.sha256, package.name
        assert not any((self.cache.root / "partial").glob("*")), "no partial file is left behind"


@pytest.fixture
def locked(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Locked:
    archive = fixture_archive_factory({"main": PACKAGES})
    assert archive.key is not None
    server = http_server(archive.root)
    source_dir = tmp_path / "sources" / "fixture" / "stable"
    source_dir.mkdir(parents=True)
    key_url = f"file://{archive.key.public_key_asc_path}"
    (source_dir / "source.txt").write_text(f"{server.url} {key_url} {archive.dist} main\n")
    (source_dir / "packages.txt").write_text("web\nshell\n")
    dirs = ["--sources", str(tmp_path / "sources"), "--locks", str(tmp_path / "locks")]
    assert main(["lock", *dirs, "--cache", str(tmp_path / "cache")]) == 0
    server.log.clear()
    return Locked(tmp_path, archive.root, server)


def pool_requests(server: LoopbackServer) -> list[str]:
    return [path for path in server.log.paths() if path.startswith("/pool/")]


def test_fetch_stores_every_locked_file_verified(locked: Locked, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(locked.args()) == 0
    locked.assert_cache_complete()
    total = sum(p.size for p in locked.lock.packages)
    assert capsys.readouterr().out.strip() == f"downloaded 5 files / {total / 2**20:.1f} MiB, reused 0"
    assert sorted(pool_requests(locked.server)) == locked.pool_paths()  # each file once


def test_second_fetch_of_a_complete_cache_makes_no_request(locked: Locked, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(locked.args()) == 0
    locked.server.log.clear()
    capsys.readouterr()
    assert main(locked.args()) == 0
    assert len(locked.server.log) == 0
    assert capsys.readouterr().out.strip() == "downloaded 0 files / 0.0 MiB, reused 5"


def test_tampered_blob_is_named_removed_and_downloaded_again(locked: Locked, caplog: pytest.LogCaptureFixture) -> None:
    fetch(locked.config())
    blob = locked.cache.blob_path(locked.package("libssl").sha256)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    blob.write_bytes(bytes(data))
    locked.server.log.clear()
    with caplog.at_level(logging.WARNING, logger="minimirror"):
        report = fetch(locked.config())
    assert report == FetchReport(
        downloaded=1, reused=4, bytes_downloaded=locked.package("libssl").size, corrupt=(blob,)
    )
    assert pool_requests(locked.server) == [f"/{locked.package('libssl').filename}"]
    assert any(str(blob) in r.getMessage() and "does not match its sha256" in r.getMessage() for r in caplog.records)
    locked.assert_cache_complete()


def test_truncated_body_is_resumed_with_a_range_request(locked: Locked) -> None:
    big = locked.package("bigdata")
    assert big.size > 250_000
    rule = locked.server.faults.truncate(f"/{big.filename}", after_bytes=100_000)
    report = fetch(locked.config())
    assert rule.hits == 1 and report.downloaded == 5
    records = [r for r in locked.server.log if r.path == f"/{big.filename}"]
    assert [r.header("Range") for r in records] == [None, "bytes=100000-"]
    assert records[1].status == 206
    locked.assert_cache_complete()


def test_partial_file_from_an_earlier_run_is_continued(locked: Locked) -> None:
    big = locked.package("bigdata")
    partial = locked.cache.partial_path(big.sha256)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes((locked.archive_root / big.filename).read_bytes()[:123_456])
    fetch(locked.config())
    records = [r for r in locked.server.log if r.path == f"/{big.filename}"]
    assert [r.header("Range") for r in records] == ["bytes=123456-"]
    locked.assert_cache_complete()


def test_a_wrong_partial_file_is_caught_by_the_whole_file_hash(locked: Locked) -> None:
    big = locked.package("bigdata")
    partial = locked.cache.partial_path(big.sha256)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"\0" * 50_000)  # not a prefix of the file: resuming it gives a wrong whole
    fetch(locked.config())
    records = [r for r in locked.server.log if r.path == f"/{big.filename}"]
    assert [r.header("Range") for r in records] == ["bytes=50000-", None]
    locked.assert_cache_complete()


def test_503s_are_retried(locked: Locked) -> None:
    rule = locked.server.faults.status("/pool/*", 503, times=3)
    progress: list[tuple[int, int, int, int]] = []
    report = fetch(locked.config(), progress=lambda *args: progress.append(args))
    assert rule.hits == 3 and report.downloaded == 5
    assert [r.status for r in locked.server.log].count(503) == 3
    total = sum(p.size for p in locked.lock.packages)
    assert progress[0] == (0, 0, 5, total) and progress[-1] == (5, total, 5, total)
    locked.assert_cache_complete()


def test_files_gone_upstream_are_all_named_then_found_through_a_fallback(
    locked: Locked, http_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = locked.root / "snapshot"
    for name in ("libc", "shell"):
        source = locked.archive_root / locked.package(name).filename
        (snapshot / locked.package(name).filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, snapshot / locked.package(name).filename)
        source.unlink()
    capsys.readouterr()
    assert main(locked.args()) == 2
    err = capsys.readouterr().err
    assert "cannot fetch 2 files (3 downloaded, 0 reused)" in err
    for name, version in (("libc", "2.37"), ("shell", "5.2")):
        assert f"{locked.package(name).filename} ({name} {version} amd64 (fixture/stable)): gone upstream" in err
        assert f"{locked.server.url}/{locked.package(name).filename}" in err
    assert "--fallback-url" in err and "Traceback" not in err
    fallback = http_server(snapshot)
    assert main(locked.args("--fallback-url", fallback.url + "/")) == 0
    assert capsys.readouterr().out.startswith("downloaded 2 files")
    assert sorted(pool_requests(fallback)) == sorted(f"/{locked.package(n).filename}" for n in ("libc", "shell"))
    locked.assert_cache_complete()


def test_wrong_bytes_of_the_right_size_fail_and_store_nothing(locked: Locked) -> None:
    libssl = locked.package("libssl")
    served = locked.archive_root / libssl.filename
    served.write_bytes(b"x" * libssl.size)
    with pytest.raises(IntegrityError) as caught:
        fetch(locked.config())
    error = caught.value
    assert isinstance(error, FetchError)
    assert [f.filename for f in error.failures] == [libssl.filename]  # type: ignore[attr-defined]
    assert libssl.filename in error.render() and "do not match the lock" in error.render()
    assert not locked.cache.blob_path(libssl.sha256).exists()
    assert not locked.cache.partial_path(libssl.sha256).exists()
    assert locked.cache.has_blob(locked.package("web").sha256)  # the others were fetched


def test_proxy_variables_are_honoured(
    locked: Locked, http_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = http_server(locked.root, proxy_mode="forward")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.proxy_url)
    monkeypatch.setenv("http_proxy", proxy.proxy_url)
    fetch(locked.config())
    via_proxy = sorted(r.path for r in proxy.log if r.via_proxy)
    assert via_proxy == locked.pool_paths()
    assert sorted(pool_requests(locked.server)) == locked.pool_paths()  # forwarded to the origin
    locked.assert_cache_complete()


def test_plan_reads_each_sha_once_across_locks_and_sees_what_is_present(locked: Locked) -> None:
    lock = locked.lock
    mirror = dataclasses.replace(
        lock, source=dataclasses.replace(lock.source, id="other/stable", url="http://archive.example/debian")
    )
    cache = locked.cache
    plan = plan_fetch([lock, mirror], cache, fallback_urls=["http://snapshot.example/archive/"])
    assert len(plan.download) == 5 and plan.reuse == ()
    web = next(item for item in plan.download if item.filename == locked.package("web").filename)
    assert web.urls == (f"{locked.server.url}/{web.filename}", f"http://archive.example/debian/{web.filename}")
    assert web.fallbacks == (f"http://snapshot.example/archive/{web.filename}",)
    assert web.packages == ("web 1.0 amd64 (fixture/stable)", "web 1.0 amd64 (other/stable)")
    assert web.dest == cache.blob_path(web.sha256)
    cache.blob_path(web.sha256).parent.mkdir(parents=True)
    cache.blob_path(web.sha256).write_bytes(b"short")
    assert plan_fetch([lock], cache).wrong_size == (
        dataclasses.replace(web, urls=web.urls[:1], fallbacks=(), packages=web.packages[:1]),
    )
    cache.blob_path(web.sha256).write_bytes((locked.archive_root / web.filename).read_bytes())
    again = plan_fetch([lock], cache)
    assert [item.filename for item in again.reuse] == [web.filename] and len(again.download) == 4
    assert len(locked.server.log) == 0


def test_downloads_start_with_the_largest_file_and_failures_keep_the_plan_order(locked: Locked) -> None:
    assert fetch(locked.config(jobs=1)).downloaded == 5
    by_size = sorted(locked.lock.packages, key=lambda p: p.size, reverse=True)
    assert pool_requests(locked.server) == [f"/{p.filename}" for p in by_size]  # one worker: the order it ran
    gone = sorted(p.filename for p in by_size[:2]) + sorted(p.filename for p in by_size[-2:])
    for filename in gone:
        (locked.archive_root / filename).unlink()
    shutil.rmtree(locked.cache.root / "blobs")
    with pytest.raises(FetchError) as caught:
        fetch(locked.config())
    assert [f.filename for f in caught.value.failures] == sorted(gone)  # type: ignore[attr-defined]


def test_a_complete_cache_is_checked_even_where_no_http_client_can_be_made(
    locked: Locked, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch(locked.config())
    locked.server.log.clear()
    monkeypatch.setenv("SSL_CERT_FILE", str(locked.root / "no-such-ca-bundle.pem"))  # httpx.Client() would fail
    assert fetch(locked.config()) == FetchReport(downloaded=0, reused=5, bytes_downloaded=0)
    assert len(locked.server.log) == 0


@pytest.mark.parametrize(("jobs", "per_host"), [(4, 2), (2, 4), (4, 4)])
def test_no_more_downloads_from_one_host_than_per_host_allows(locked: Locked, jobs: int, per_host: int) -> None:
    """Five files from one host, each answer held back 0.3 s: as many at a time as both limits allow."""
    locked.server.faults.stall("/pool/*", 0.3, times=None)
    assert fetch(locked.config(jobs=jobs, per_host=per_host)).downloaded == 5
    assert locked.server.log.peak_in_flight == min(jobs, per_host)
    locked.assert_cache_complete()


def test_the_command_line_defaults_are_the_library_s() -> None:
    from minimirror.cli import fetch as cli_fetch
    from minimirror.publish import fetch as fetching

    assert (cli_fetch.JOBS, cli_fetch.PER_HOST) == (fetching.DEFAULT_JOBS, fetching.DEFAULT_PER_HOST)
    assert FetchConfig(Path("locks"), Path("cache")).per_host == fetching.DEFAULT_PER_HOST
