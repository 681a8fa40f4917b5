"""End to end against the host's real Debian archive: init --from-apt, lock, publish, and apt as the judge.

The archive's address is read from the host's APT configuration at run time; nothing here names a host.
Skipped when the host has no usable Debian entry (a ``deb`` line with Signed-By for a release suite).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory

from minimirror.audit.diff import diff_locks
from minimirror.audit.explain import ChangelogConfig, explain
from minimirror.audit.render import render_markdown
from minimirror.cli import main
from minimirror.lock.lockfile import Lock, read_locks
from minimirror.sources.hostapt import plan_sources, read_apt_sources, suites_for_packages
from minimirror.sources.tree import load_sources

pytestmark = pytest.mark.network

QUERIES = ("hello", "busybox-static")


def _host_release_suite() -> tuple[str, str]:
    try:
        planned = plan_sources(read_apt_sources(Path("/")))
    except Exception as exc:  # any trouble reading the host's configuration means: nothing to test against
        pytest.skip(f"cannot read the host's APT configuration: {exc}")
    release = suites_for_packages(planned)
    usable = [p for p in planned if (p.prefix, p.name) in release and p.key_url and "main" in p.components]
    if not usable:
        pytest.skip("the host's APT configuration has no release suite with Signed-By and a main component")
    return usable[0].prefix, usable[0].name


def test_init_lock_publish_against_the_real_archive(
    tmp_path: Path, signing_key: SigningKey, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    prefix, name = _host_release_suite()
    sources, locks, cache, out = (tmp_path / d for d in ("sources", "locks", "cache", "public"))
    assert main(["init", "--from-apt", "--sources", str(sources), "--packages", " ".join(QUERIES)]) == 0
    only = ["--source", f"{prefix}/{name}"]
    assert main(["lock", "--sources", str(sources), "--locks", str(locks), "--cache", str(cache), *only]) == 0
    (lock,) = read_locks(locks)
    names = {p.name for p in lock.packages}
    assert set(QUERIES) <= names and "libc6" in names  # hello needs the C library
    assert lock.upstream.signed_by, "the real archive's signature was not recorded"
    # The host's -updates/-security lines are the source's companions, and the lock is what apt installs from
    # the same lines of the real archive.
    source = next(s for s in load_sources(sources) if s.source_id == f"{prefix}/{name}")
    assert {c.dist for c in lock.companions} == {c.dist for c in source.companions}
    judge = private_apt()
    for suite in source.suites:
        judge.add_repository(suite.url, suite.dist, suite.components, signed_by=Path(suite.key_url[len("file://") :]))
    judge.update()
    assert {p.key for p in lock.packages} == judge.simulate_install(QUERIES)

    key_file = tmp_path / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    publish = ["publish", "--locks", str(locks), "--cache", str(cache), "--out", str(out)]
    assert main([*publish, "--sign-key", str(key_file)]) == 0
    assert main(["verify", str(out), "--no-dose"]) == 0

    server = http_server(out / prefix)
    apt = private_apt()
    apt.add_repository(server.url, lock.source.dist, list(lock.source.components), signed_by=out / "signing-key.gpg")
    apt.update()
    downloaded = apt.download(list(QUERIES), tmp_path / "downloads")
    assert sorted(p.name.split("_")[0] for p in downloaded) == sorted(QUERIES)


def test_a_third_party_source_on_top_of_the_real_archive(
    tmp_path: Path,
    signing_key: SigningKey,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A fixture third-party repository whose package needs the real distribution's libc6 and iptables, resolved
    together with the host's real Debian suites; apt over all those lines is the judge, then the published
    group installs through ``apt-sources``."""
    prefix, name = _host_release_suite()
    sources, locks, cache, out = (tmp_path / d for d in ("sources", "locks", "cache", "public"))
    assert main(["init", "--from-apt", "--sources", str(sources), "--packages", "hello"]) == 0
    for other in [d for d in sources.glob("*/*") if d.relative_to(sources).as_posix() != f"{prefix}/{name}"]:
        shutil.rmtree(other)  # only the release suite (and its companions) under the third-party one
    third = fixture_archive_factory({"main": [P("dockerish", "1.0-1", depends="libc6 (>= 2.34), iptables")]},
                                    dist="bookworm", origin="Docker", label="Docker CE")  # fmt: skip
    third_server = http_server(third.root)
    assert third.key is not None
    directory = sources / "docker" / "bookworm"
    directory.mkdir(parents=True)
    (directory / "source.txt").write_text(f"{third_server.url} file://{third.key.public_key_asc_path} bookworm main\n")
    (directory / "packages.txt").write_text("dockerish\n")
    (directory / "minimirror.toml").write_text(f'resolve-with = ["{prefix}/{name}"]\n')
    assert main(["lock", "--sources", str(sources), "--locks", str(locks), "--cache", str(cache)]) == 0
    by_id = {lock.source.id: lock for lock in read_locks(locks)}
    assert [p.name for p in by_id["docker/bookworm"].packages] == ["dockerish"]
    assert "iptables" in {p.name for p in by_id[f"{prefix}/{name}"].packages}

    judge = private_apt()
    source = next(s for s in load_sources(sources) if s.source_id == f"{prefix}/{name}")
    for suite in source.suites:
        judge.add_repository(suite.url, suite.dist, suite.components, signed_by=Path(suite.key_url[len("file://") :]))
    judge.add_repository(third_server.url, "bookworm", ["main"], signed_by=third.key.public_key_path)
    judge.update()
    union = {p.key for lock in by_id.values() for p in lock.packages}
    assert union == judge.simulate_install(["hello", "dockerish"])

    key_file = tmp_path / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    publish = ["publish", "--locks", str(locks), "--cache", str(cache), "--out", str(out)]
    assert main([*publish, "--sign-key", str(key_file)]) == 0
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    assert main(["apt-sources", str(out), "--url", http_server(out).url]) == 0
    node = private_apt()
    (node.root / "etc/apt/sources.list.d/mirror.sources").write_text(capsys.readouterr().out)
    node.update()
    assert node.simulate_install(["hello", "dockerish"]) == union
    assert len(node.download(["dockerish", "iptables"], tmp_path / "downloads")) == 2


SECURITY_QUERIES = ("openssl",)


def test_changelogs_name_real_cves_of_a_real_security_update(tmp_path: Path) -> None:
    """A lock of the real archive with its security companion, against an older lock of the same packages: the
    package the security suite updated names real CVE ids, read from its real .deb."""
    prefix, name = _host_release_suite()
    sources, locks, cache = (tmp_path / d for d in ("sources", "locks", "cache"))
    assert main(["init", "--from-apt", "--sources", str(sources), "--packages", " ".join(SECURITY_QUERIES)]) == 0
    only = ["--source", f"{prefix}/{name}"]
    assert main(["lock", "--sources", str(sources), "--locks", str(locks), "--cache", str(cache), *only]) == 0
    (lock,) = read_locks(locks)
    security = [p for p in lock.packages if p.companion and p.companion.endswith("-security")]
    if not security:
        pytest.skip("no package of the lock comes from a -security companion today")
    package = next((p for p in security if p.name == p.source), security[0])

    def older_lock(version: str) -> Lock:
        packages = (replace(p, version=version, sha256="0" * 64) if p == package else p for p in lock.packages)
        return replace(lock, packages=tuple(packages))

    # First the whole changelog (the real .deb downloaded into the cache, verified), to find the last version
    # that was not a security upload: what the release suite had before the security suite updated it.
    everything = explain(diff_locks([older_lock("0")], [lock]), [lock], ChangelogConfig(cache))
    (whole,) = everything.changelogs or ()
    assert whole.status == "read", whole.note
    older = next(e.version for e in whole.entries if "security" not in e.distribution)
    diff = explain(diff_locks([older_lock(older)], [lock]), [lock], ChangelogConfig(cache, offline=True))
    (changelog,) = diff.changelogs or ()
    assert changelog.status == "read" and changelog.source_package == package.source
    assert changelog.security_suite == package.companion
    assert changelog.cves and all(re.fullmatch(r"CVE-\d{4}-\d{4,}", cve) for cve in changelog.cves)
    assert changelog.entries[0].version == package.version and older not in {e.version for e in changelog.entries}
    markdown = render_markdown(diff)
    assert "### Security fixes" in markdown and changelog.cves[0] in markdown
