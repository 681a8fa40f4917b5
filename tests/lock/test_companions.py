"""Companion suites: a source.txt of several lines (a release suite, then e.g. its -security suite at another
archive) is resolved as apt resolves the same sources.list lines, locked with each suite's chain of trust,
fetched from each package's own archive, and published as one dist that apt accepts. apt is the judge."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer
from fixtures.worktree import WorkTree

from minimirror.audit.diff import diff_locks
from minimirror.cli import main
from minimirror.errors import LockError
from minimirror.lock.lockfile import Lock, loads_lock, read_lock

RELEASE = [
    P("web", "1.0", depends="libssl (>= 3)"),
    P("libssl", "3.0.2"),
    P("tool", "1.0", depends="libfix"),  # libfix is only in the security suite
    P("shell", "5.2"),
]
SECURITY = [P("libssl", "3.0.3"), P("libfix", "1.0")]
SECURITY_DATE = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


@dataclass
class Suites(WorkTree):
    release: FixtureArchive
    security: FixtureArchive
    release_server: LoopbackServer
    security_server: LoopbackServer

    @property
    def source_txt(self) -> Path:
        return self.sources / "fixture" / "stable" / "source.txt"

    @property
    def lock_file(self) -> Path:
        return self.locks / "fixture" / "stable.lock"

    def line(self, archive: FixtureArchive, server: LoopbackServer) -> str:
        assert archive.key is not None
        return f"{server.url} file://{archive.key.public_key_asc_path} {archive.dist} main\n"


@pytest.fixture
def suites(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Suites:
    release = fixture_archive_factory({"main": RELEASE})
    security = fixture_archive_factory({"main": SECURITY}, dist="stable-security", date=SECURITY_DATE)
    made = Suites(tmp_path, release, security, http_server(release.root), http_server(security.root))
    made.source_txt.parent.mkdir(parents=True)
    made.source_txt.write_text(
        "# the release suite first, then its companions\n"
        + made.line(release, made.release_server)
        + made.line(security, made.security_server)
    )
    (made.source_txt.parent / "packages.txt").write_text("web\ntool\nshell\n")
    return made


def _versions(lock: Lock) -> set[tuple[str, str, str]]:
    return {package.key for package in lock.packages}


def test_the_lock_is_what_apt_installs_from_both_suites(suites: Suites, private_apt: AptFactory) -> None:
    assert main(suites.lock_args()) == 0
    lock = read_lock(suites.lock_file)

    apt = private_apt()
    for archive, server in ((suites.release, suites.release_server), (suites.security, suites.security_server)):
        assert archive.key is not None
        apt.add_repository(server.url, archive.dist, ["main"], signed_by=archive.key.public_key_path)
    apt.update()
    assert _versions(lock) == apt.simulate_install(["web", "tool", "shell"])
    assert ("libssl", "3.0.3", "amd64") in _versions(lock)  # the security update wins

    companion_of = {package.name: package.companion for package in lock.packages}
    assert companion_of == {
        "web": None,
        "tool": None,
        "shell": None,
        "libssl": "stable-security",
        "libfix": "stable-security",
    }
    (companion,) = lock.companions
    assert companion.dist == "stable-security" and companion.url == suites.security_server.url.rstrip("/") + "/"
    assert companion.upstream.date == SECURITY_DATE and companion.upstream.indices
    assert loads_lock(suites.lock_file.read_text(), path=suites.lock_file) == lock  # the reader takes it back
    assert main(suites.lock_args("--check")) == 0


def test_fetch_takes_each_file_from_its_own_archive_and_the_published_dist_serves_both(
    suites: Suites, signing_key: SigningKey, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    assert main(suites.lock_args()) == 0
    assert main(["fetch", "--locks", str(suites.locks), "--cache", str(suites.cache)]) == 0
    pool_paths = [path for path in suites.security_server.log.paths() if path.startswith("/pool/")]
    assert sorted(path.rsplit("/", 1)[-1].split("_")[0] for path in pool_paths) == ["libfix", "libssl"]

    key_file = suites.root / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    out = suites.root / "public"
    publish = ["publish", "--locks", str(suites.locks), "--cache", str(suites.cache), "--out", str(out)]
    assert main([*publish, "--sign-key", str(key_file)]) == 0
    assert main(["verify", str(out)]) == 0
    release = (out / "fixture" / "dists" / "stable" / "Release").read_text()
    assert "Date: Mon, 03 Jun 2024 12:00:00 UTC" in release  # the newest upstream Date, the companion's

    apt = private_apt()
    apt.add_repository(http_server(out / "fixture").url, "stable", ["main"], signed_by=out / "signing-key.gpg")
    apt.update()
    assert apt.simulate_install(["web", "tool"]) == {
        ("web", "1.0", "amd64"), ("libssl", "3.0.3", "amd64"), ("tool", "1.0", "amd64"), ("libfix", "1.0", "amd64")
    }  # fmt: skip
    downloaded = apt.download(["libssl", "libfix"], suites.root / "dl")
    assert [path.name.split("_")[:2] for path in downloaded] == [["libfix", "1.0"], ["libssl", "3.0.3"]]


def test_a_new_companion_is_a_flagged_trust_change_and_makes_the_lock_stale(suites: Suites) -> None:
    lines = suites.source_txt.read_text().splitlines(keepends=True)
    suites.source_txt.write_text("".join(lines[:2]))  # the release suite alone
    (suites.source_txt.parent / "packages.txt").write_text("web\nshell\n")  # tool needs the security suite
    assert main(suites.lock_args()) == 0
    before = read_lock(suites.lock_file)
    assert before.companions == () and "[[companion]]" not in suites.lock_file.read_text()
    assert ("libssl", "3.0.2", "amd64") in _versions(before)

    suites.source_txt.write_text("".join(lines))
    assert main(suites.lock_args("--check")) == 1
    assert main(suites.lock_args("--upgrade")) == 0
    after = read_lock(suites.lock_file)
    changes = diff_locks([before], [after])
    (trust,) = [change for change in changes.trust if change.field.startswith("companion")]
    assert trust.field == "companion stable-security" and trust.flagged and trust.new
    upgraded = {(c.name, c.old_version, c.new_version) for c in changes.packages if c.kind == "upgraded"}
    assert ("libssl", "3.0.2", "3.0.3") in upgraded


def test_a_suite_listed_twice_is_located(suites: Suites, capsys: pytest.CaptureFixture[str]) -> None:
    text = suites.source_txt.read_text()
    suites.source_txt.write_text(text + suites.line(suites.security, suites.security_server))
    assert main(suites.lock_args()) == 2
    assert f"{suites.source_txt}:4:" in capsys.readouterr().err


def test_source_packages_come_from_each_binarys_suite_and_apt_get_source_finds_them(
    tmp_path: Path,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
) -> None:
    release = fixture_archive_factory({"main": RELEASE}, sources=True)
    security = fixture_archive_factory({"main": SECURITY}, dist="stable-security", date=SECURITY_DATE, sources=True)
    made = Suites(tmp_path, release, security, http_server(release.root), http_server(security.root))
    made.source_txt.parent.mkdir(parents=True)
    made.source_txt.write_text(made.line(release, made.release_server) + made.line(security, made.security_server))
    (made.source_txt.parent / "packages.txt").write_text("web\n")
    (made.source_txt.parent / "aptly.conf").write_text('{"downloadSourcePackages": true}\n')

    assert main(made.lock_args()) == 0
    lock = read_lock(made.lock_file)
    assert {(s.name, s.version, s.companion) for s in lock.source_packages} == {
        ("web", "1.0", None), ("libssl", "3.0.3", "stable-security")
    }  # fmt: skip
    assert loads_lock(made.lock_file.read_text(), path=made.lock_file) == lock
    assert main(["fetch", "--locks", str(made.locks), "--cache", str(made.cache)]) == 0
    security_files = sorted(p.rsplit("/", 1)[-1] for p in made.security_server.log.paths() if p.startswith("/pool/"))
    assert "libssl_3.0.3.dsc" in security_files

    key_file = tmp_path / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    out = tmp_path / "public"
    where = ["--locks", str(made.locks), "--cache", str(made.cache), "--out", str(out)]
    assert main(["publish", *where, "--sign-key", str(key_file), "--no-fetch"]) == 0
    assert main(["verify", str(out)]) == 0
    server = http_server(out)
    apt = private_apt()
    keyring = out / "signing-key.gpg"
    apt.add_source(f"deb-src [signed-by={keyring}] {server.url}/fixture/ stable main")
    apt.add_source(f"deb [signed-by={keyring}] {server.url}/fixture/ stable main")
    apt.update()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    apt.run("source", "--download-only", "libssl", cwd=downloads)
    assert "libssl_3.0.3.dsc" in {p.name for p in downloads.iterdir()}


def test_a_package_from_an_unknown_suite_is_refused_by_the_reader(suites: Suites) -> None:
    assert main(suites.lock_args()) == 0
    text = suites.lock_file.read_text().replace('companion = "stable-security"', 'companion = "stable-backports"', 1)
    pattern = r"stable\.lock:\d+:\d+: \[\[package\]\] #1 companion 'stable-backports' is not one of the companion"
    with pytest.raises(LockError, match=pattern):
        loads_lock(text, path=suites.lock_file)


def test_sources_check_shows_the_suites_of_a_source(suites: Suites) -> None:
    command = [sys.executable, "-m", "minimirror", "sources", "check", "--sources", str(suites.sources)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}, check=True)
    row = [line.split() for line in done.stdout.splitlines() if "fixture/stable" in line or "stable-security" in line]
    assert [cells[:2] for cells in row] == [["fixture/stable", "stable"], ["stable-security"]]


def test_a_component_only_the_companion_has_is_published_too(
    tmp_path: Path,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
) -> None:
    release = fixture_archive_factory({"main": RELEASE})
    security = fixture_archive_factory(
        {"main": SECURITY, "contrib": [P("extra", "1.0", depends="libssl")]}, dist="stable-security"
    )
    made = Suites(tmp_path, release, security, http_server(release.root), http_server(security.root))
    made.source_txt.parent.mkdir(parents=True)
    contrib = made.line(security, made.security_server).replace(" main\n", " main contrib\n")
    made.source_txt.write_text(made.line(release, made.release_server) + contrib)
    (made.source_txt.parent / "packages.txt").write_text("extra\n")
    assert main(made.lock_args()) == 0
    key_file = tmp_path / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    out = tmp_path / "public"
    where = ["--locks", str(made.locks), "--cache", str(made.cache), "--out", str(out)]
    assert main(["publish", *where, "--sign-key", str(key_file)]) == 0
    assert "Components: contrib main\n" in (out / "fixture" / "dists" / "stable" / "Release").read_text()
    assert main(["verify", str(out)]) == 0
    apt = private_apt()
    apt.add_repository(
        http_server(out / "fixture").url, "stable", ["main", "contrib"], signed_by=out / "signing-key.gpg"
    )
    apt.update()
    assert apt.simulate_install(["extra"]) == {("extra", "1.0", "amd64"), ("libssl", "3.0.3", "amd64")}
