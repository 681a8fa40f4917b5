"""The project's own example: examples/sources locked into locks/, reviewed like code and kept fresh.

The lock was made against the real Debian 12 index (../shared/data, served at the example's placeholder URL);
these checks need no network: a packages.txt edited without re-locking fails here, as `lock --check` does in CI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixtures import REPO_ROOT
from fixtures.plugin import ServerFactory

from minimirror.cli import main
from minimirror.lock.lockfile import read_locks

ROOT = REPO_ROOT
ARGS = ["--sources", str(ROOT / "examples" / "sources"), "--locks", str(ROOT / "locks")]


def test_the_example_lock_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", "--check", *ARGS]) == 0, capsys.readouterr().err


def test_the_example_lock_holds_every_query_and_explains_its_packages(capsys: pytest.CaptureFixture[str]) -> None:
    (lock,) = read_locks(ROOT / "locks")
    names = {p.name for p in lock.packages}
    for wanted in ("ceph-common", "rbd-nbd", "openssh-server", "curl", "python3", "openvswitch-switch", "lvm2"):
        assert wanted in names
    assert lock.upstream.signed_by and lock.upstream.codename == "bookworm"
    assert main(["why", "--locks", str(ROOT / "locks"), "libssl3"]) == 0
    assert "query: " in capsys.readouterr().out


REAL = ROOT.parent / "shared" / "data" / "debian-bookworm"


def _locked_files(locks: Path) -> list[tuple[str, str, str, str, str]]:
    (lock,) = read_locks(locks)
    return [(p.name, p.version, p.architecture, p.filename, p.sha256) for p in lock.packages]


@pytest.mark.skipif(not (REAL / "dists").is_dir(), reason=f"the real Debian index is not at {REAL}")
def test_the_example_locks_the_same_files_against_the_real_index_cold_and_warm(
    tmp_path: Path, http_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole lock path on the real 63,000-package index: download, verify, parse and cache it (cold), then
    # answer from the lazily read parsed cache (warm); both must give the committed lock's files.
    server = http_server(REAL)
    sources = tmp_path / "sources"
    shutil.copytree(ROOT / "examples" / "sources", sources)
    source_txt = sources / "debian" / "bookworm" / "source.txt"
    source_txt.write_text(source_txt.read_text().replace("http://127.0.0.1:8080/debian", server.url.rstrip("/")))
    args = ["lock", "--upgrade", "--sources", str(sources), "--locks", str(tmp_path / "locks")]
    args += ["--cache", str(tmp_path / "cache")]
    expected = _locked_files(ROOT / "locks")

    assert main(args) == 0
    assert _locked_files(tmp_path / "locks") == expected

    import minimirror.upstream.indexcache

    shutil.rmtree(tmp_path / "locks")
    monkeypatch.setattr(
        minimirror.upstream.indexcache, "iter_records", lambda *a, **k: pytest.fail("warm lock parsed text")
    )
    assert main(args) == 0
    assert _locked_files(tmp_path / "locks") == expected
