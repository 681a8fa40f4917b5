"""End to end against the host's real Debian archive: init --from-apt, lock, publish, and apt as the judge.

The archive's address is read from the host's APT configuration at run time; nothing here names a host.
Skipped when the host has no usable Debian entry (a ``deb`` line with Signed-By for a release suite).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ServerFactory

from minimirror.cli import main
from minimirror.lock.lockfile import read_locks
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
