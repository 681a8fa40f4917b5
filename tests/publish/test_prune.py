"""``minimirror cache prune`` on a real locked and fetched cache: what no lock needs goes, what one needs stays
(the proof: fetch and an offline re-lock then need nothing from the network, and read no index text again)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_faults import PACKAGES, Work

from minimirror.cli import main
from minimirror.lock.lockfile import read_lock
from minimirror.upstream.cache import Cache
from minimirror.upstream.indexcache import CACHE_FORMAT


@pytest.fixture
def work(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Work:
    archive = fixture_archive_factory({"main": PACKAGES})
    done = Work.make(tmp_path / "work", archive, http_server(archive.root))
    assert main(done.lock_args()) == 0
    assert main(done.fetch_args()) == 0
    return done


def _leftovers(work: Work) -> list[Path]:
    """What an older lock, a killed download and an older minimirror leave in a cache."""
    cache = Cache(work.cache)
    old = cache.put_blob(b"a pool file an earlier lock named")
    index_sha = read_lock(work.lock_file).upstream.indices[0].sha256
    stale_parsed = cache.parsed_dir / f"{index_sha}.v{CACHE_FORMAT - 1}.packages"
    stale_parsed.write_bytes(b"an older cache format")
    other_parsed = cache.parsed_dir / f"{'e' * 64}.v{CACHE_FORMAT}.packages"
    other_parsed.write_bytes(b"the parsed form of an index no lock pins")
    partial = cache.partial_path("f" * 64)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half a download")
    stray = cache.blob_path(old).with_name(f".{old}.x1y2.tmp")
    stray.write_bytes(b"a killed write's temporary")
    # `why` keeps the lock's parsed form (it stays); that of a lock no tree holds any more goes
    assert main(["why", "libssl", "--locks", str(work.locks), "--cache", str(work.cache)]) == 0
    assert len(list((work.cache / "parsed-locks").iterdir())) == 1
    stale_lock = work.cache / "parsed-locks" / f"{'e' * 64}.v1.lock-parsed"
    stale_lock.write_bytes(b"the parsed form of a lock that changed since")
    return sorted([cache.blob_path(old), stale_parsed, other_parsed, partial, stray, stale_lock])


def test_prune_removes_exactly_what_no_lock_needs(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    leftovers = _leftovers(work)
    before = {p for p in work.cache.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert main(["cache", "prune", "--locks", str(work.locks), "--cache", str(work.cache)]) == 0

    after = {p for p in work.cache.rglob("*") if p.is_file()}
    assert sorted(before - after) == leftovers
    lock = read_lock(work.lock_file)
    assert f"removed {len(leftovers)} files" in capsys.readouterr().out
    for package in lock.packages:
        blob = Cache(work.cache).blob_path(package.sha256)
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == package.sha256

    work.server.log.clear()
    assert main(work.fetch_args()) == 0
    assert main([*work.lock_args("--offline", "--upgrade")]) == 0
    assert work.server.log.paths() == []  # nothing needed from the network
    assert read_lock(work.lock_file) == lock


def test_the_parsed_index_a_lock_pins_survives_so_a_warm_lock_parses_no_text(
    work: Work, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["cache", "prune", "--locks", str(work.locks), "--cache", str(work.cache)]) == 0
    import minimirror.upstream.indexcache

    monkeypatch.setattr(
        minimirror.upstream.indexcache, "iter_records", lambda *a, **k: pytest.fail("parsed the index again")
    )
    assert main(work.lock_args("--offline", "--upgrade")) == 0


def test_dry_run_lists_and_removes_nothing(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    leftovers = _leftovers(work)
    before = sorted(p for p in work.cache.rglob("*") if p.is_file())
    capsys.readouterr()
    assert main(["cache", "prune", "-n", "--locks", str(work.locks), "--cache", str(work.cache)]) == 0
    out = capsys.readouterr().out
    assert sorted(p for p in work.cache.rglob("*") if p.is_file()) == before
    assert [line.removeprefix("would remove ") for line in out.splitlines()[:-1]] == [str(p) for p in leftovers]
    assert out.splitlines()[-1].startswith(f"would remove {len(leftovers)} files")


def test_no_locks_at_all_is_refused_and_nothing_is_removed(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p for p in work.cache.rglob("*") if p.is_file())
    capsys.readouterr()
    empty = work.root / "no-locks-here"
    assert main(["cache", "prune", "--locks", str(empty), "--cache", str(work.cache)]) == 2
    assert f"no locks under {empty}" in capsys.readouterr().err
    assert sorted(p for p in work.cache.rglob("*") if p.is_file()) == before


def test_an_unreadable_lock_stops_the_prune_before_anything_is_removed(
    work: Work, capsys: pytest.CaptureFixture[str]
) -> None:
    _leftovers(work)
    before = sorted(p for p in work.cache.rglob("*") if p.is_file())
    work.lock_file.write_text(work.lock_file.read_text().replace("schema = 1", "schema = 1\nsurprise = 2"))
    capsys.readouterr()
    assert main(["cache", "prune", "--locks", str(work.locks), "--cache", str(work.cache)]) == 2
    assert str(work.lock_file) in capsys.readouterr().err
    assert sorted(p for p in work.cache.rglob("*") if p.is_file()) == before


def test_a_cache_shared_by_two_projects_keeps_what_either_needs(
    work: Work, tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory
) -> None:
    archive = fixture_archive_factory({"main": [P("tool", "1.0")]})
    other = Work.make(tmp_path / "other", archive, http_server(archive.root), packages="tool\n")
    other_locks = other.locks
    assert main(["lock", "--sources", str(other.sources), "--locks", str(other_locks), "--cache", str(work.cache)]) == 0
    assert main(["fetch", "--locks", str(other_locks), "--cache", str(work.cache)]) == 0
    needed = {p.sha256 for lock in (work.lock_file, other.lock_file) for p in read_lock(lock).packages}

    args = ["cache", "prune", "--cache", str(work.cache), "--locks", str(work.locks), "--locks", str(other_locks)]
    assert main(args) == 0
    assert all(Cache(work.cache).has_blob(sha) for sha in needed)
    assert main(["cache", "prune", "--cache", str(work.cache), "--locks", str(work.locks)]) == 0
    only_other = {p.sha256 for p in read_lock(other.lock_file).packages} - {
        p.sha256 for p in read_lock(work.lock_file).packages
    }
    assert only_other and not any(Cache(work.cache).has_blob(sha) for sha in only_other)


def test_has_blob_answers_for_the_blob_whatever_the_size_argument(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    sha = cache.put_blob(b"present")
    assert cache.has_blob(sha) and cache.has_blob(sha, 7) and not cache.has_blob(sha, 8)
    assert not cache.has_blob("0" * 64) and not cache.has_blob("0" * 64, 7)
