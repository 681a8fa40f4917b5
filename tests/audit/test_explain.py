"""Changelogs and CVEs of a lock change, read from real fixture .debs (minimirror.audit.explain and the renderings).

The scenario: an old and a new lock of one source with a security companion suite. openssl is upgraded over
three versions from the security suite (xz data member; its libssl3 has no changelog of its own, as its doc
folder is a symlink in Debian), hello is a native package (changelog.gz, zstd member), zlib1g a binNMU
(changelog.Debian.amd64.gz), newpkg is added, nodoc has no changelog, broken is not a .deb, hostile's
changelog tries to break out of the Markdown comment, and gone is removed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.debs import ChangelogEntry, FixturePackage, build_deb, changelog_files, pool_path
from fixtures.plugin import ServerFactory
from fixtures_locks import sha, source, upstream
from markdown_it import MarkdownIt

from minimirror.audit.diff import diff_locks
from minimirror.audit.explain import ChangelogConfig, explain
from minimirror.audit.render import render_json, render_markdown, security_summary
from minimirror.cli import cli
from minimirror.lock.lockfile import CompanionPin, Lock, LockedPackage, lock_path, write_lock
from minimirror.upstream.cache import Cache

SECURITY = "stable-security"
HOSTILE = [
    "* ``` </details> <script>alert(1)</script> | a | b |",
    "* ```` <img src=x onerror=alert(2)> [click](javascript:alert(3)) @everyone",
    "</details>",
    "<details open><summary>fake</summary>",
]


def _openssl(version: str, *, docs: bool) -> FixturePackage:
    entries = [
        ChangelogEntry("3.0.13-1", ["* Fix CVE-2024-0727."], "stable-security", "high"),
        ChangelogEntry("3.0.12-1", ["* Fix CVE-2023-5678 and CVE-2023-6129."], "stable-security", "medium"),
        ChangelogEntry("3.0.11-1", ["* New upstream release."], "stable", "low"),
        ChangelogEntry("3.0.10-1", ["* Fix CVE-2023-2650."], "stable", "critical"),
    ]
    return FixturePackage(
        "openssl",
        version,
        files=changelog_files("openssl", "openssl", entries) if docs else {},
        compression="xz",
    )


def _new_debs() -> dict[str, FixturePackage | bytes]:
    """The new side's package files: a fixture package, or raw bytes for a file that is no .deb."""
    libssl = FixturePackage("libssl3", "3.0.13-1", source="openssl", compression="xz")
    zlib_main = [ChangelogEntry("1:1.2.13.dfsg-1", ["* Fix CVE-2022-37434."], urgency="high")]
    zlib_binnmu = [ChangelogEntry("1:1.2.13.dfsg-1+b1", ["* Binary-only non-maintainer upload for amd64."])]
    hello_entries = [
        ChangelogEntry("2.12", ["* Two."]),
        ChangelogEntry("2.11", ["* One."]),
        ChangelogEntry("2.10", ["* Zero."]),
    ]
    return {
        "openssl": _openssl("3.0.13-1", docs=True),
        "libssl3": libssl,
        "hello": FixturePackage(
            "hello", "2.12", files=changelog_files("hello", "hello", hello_entries, native=True), compression="zstd"
        ),
        "zlib1g": FixturePackage(
            "zlib1g",
            "1:1.2.13.dfsg-1+b1",
            source="zlib (1:1.2.13.dfsg-1)",
            files=changelog_files("zlib1g", "zlib", zlib_main, binnmu=zlib_binnmu),
        ),
        "newpkg": FixturePackage(
            "newpkg", "1.0-1", files=changelog_files("newpkg", "newpkg", [ChangelogEntry("1.0-1", ["* First."])])
        ),
        "nodoc": FixturePackage("nodoc", "2.0-1"),
        "broken": b"!<arch>\nthis is not a Debian package\n",
        "hostile": FixturePackage(
            "hostile",
            "2.0-1",
            files=changelog_files("hostile", "hostile", [ChangelogEntry("2.0-1", HOSTILE, urgency="low")]),
        ),
    }


OLD_VERSIONS = {
    "openssl": "3.0.10-1",
    "libssl3": "3.0.10-1",
    "hello": "2.10",
    "zlib1g": "1:1.2.13.dfsg-1",
    "nodoc": "1.0-1",
    "broken": "1.0-1",
    "hostile": "1.0-1",
    "gone": "1.0-1",
}


@dataclass(frozen=True)
class Scenario:
    old: tuple[Lock, ...]
    new: tuple[Lock, ...]
    archive: Path
    blobs: dict[str, bytes]


def _locked(name: str, version: str, data: bytes, filename: str, src: str, companion: str | None) -> LockedPackage:
    return LockedPackage(
        name=name,
        version=version,
        architecture="amd64",
        component="main",
        filename=filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        source=src,
        source_version=version.split("+b", 1)[0],
        queries=(name,),
        companion=companion,
    )


def _old_package(name: str, version: str) -> LockedPackage:
    src = "openssl" if name == "libssl3" else "zlib" if name == "zlib1g" else name
    filename = f"pool/main/{src[0]}/{src}/{name}_{version.rsplit(':', maxsplit=1)[-1]}_amd64.deb"
    return replace(_locked(name, version, sha(f"old {name}").encode(), filename, src, None), size=1000)


def _build(tmp_path: Path, deb_cache: Path, *, url: str) -> Scenario:
    archive = tmp_path / "archive"
    blobs: dict[str, bytes] = {}
    packages = []
    for name, item in sorted(_new_debs().items()):
        if isinstance(item, bytes):
            filename = f"pool/main/{name[0]}/{name}/{name}_2.0-1_amd64.deb"
            (archive / filename).parent.mkdir(parents=True, exist_ok=True)
            (archive / filename).write_bytes(item)
            data, version, src = item, "2.0-1", name
        else:
            filename = pool_path(item)
            data = build_deb(item, archive, cache_dir=deb_cache).read_bytes()
            version, src = item.version, item.source_name
        companion = SECURITY if src == "openssl" else None
        package = _locked(name, version, data, filename, src, companion)
        blobs[package.sha256] = data
        packages.append(package)
    pin = source("fix/main", [p.name for p in packages])
    pin = replace(pin, url=url)
    security_upstream = replace(upstream(8, "12"), label="Debian-Security", suite=SECURITY)
    companion = CompanionPin(url, "file:///usr/share/keyrings/security.gpg", SECURITY, ("main",), security_upstream)
    new = Lock(source=pin, upstream=upstream(8, "12.5"), packages=tuple(packages), companions=(companion,))
    old_packages = tuple(_old_package(name, version) for name, version in OLD_VERSIONS.items())
    old = Lock(source=pin, upstream=upstream(1, "12.4"), packages=old_packages, companions=(companion,))
    return Scenario((old,), (new,), archive, blobs)


@pytest.fixture
def scenario(tmp_path: Path, deb_cache: Path) -> Scenario:
    return _build(tmp_path, deb_cache, url="http://archive.invalid/debian/")


def _warm(cache_dir: Path, scenario: Scenario) -> Cache:
    cache = Cache(cache_dir)
    for data in scenario.blobs.values():
        cache.put_blob(data)
    return cache


def test_changelogs_from_a_warm_cache(tmp_path: Path, scenario: Scenario) -> None:
    _warm(tmp_path / "cache", scenario)
    diff = diff_locks(scenario.old, scenario.new)
    explained = explain(diff, scenario.new, ChangelogConfig(tmp_path / "cache", offline=True))
    assert explained.packages == diff.packages  # the diff itself is unchanged
    logs = {c.source_package: c for c in explained.changelogs or ()}
    # one changelog per source package: openssl's two binaries share one, read from the openssl binary
    assert sorted(logs) == ["broken", "hello", "hostile", "newpkg", "nodoc", "openssl", "zlib"]
    openssl = logs["openssl"]
    assert openssl.status == "read" and openssl.package == "openssl"
    assert [e.version for e in openssl.entries] == ["3.0.13-1", "3.0.12-1", "3.0.11-1"]
    assert openssl.cves == ("CVE-2023-5678", "CVE-2023-6129", "CVE-2024-0727")  # not the old version's
    assert openssl.urgency == "high" and openssl.security_suite == SECURITY
    assert [e.version for e in logs["hello"].entries] == ["2.12", "2.11"]  # native: changelog.gz, zstd member
    zlib = logs["zlib"]  # the binNMU's own entry only: the source's CVE was fixed before the old version
    assert [e.version for e in zlib.entries] == ["1:1.2.13.dfsg-1+b1"] and zlib.cves == ()
    assert [e.version for e in logs["newpkg"].entries] == ["1.0-1"] and logs["newpkg"].old_version == ""
    assert logs["nodoc"].status == "unreadable" and "changelog.Debian.gz" in logs["nodoc"].note
    assert logs["broken"].status == "unreadable" and "data.tar" in logs["broken"].note
    assert [f.source_package for f in explained.security_fixes()] == ["openssl"]
    summary = security_summary(explained)
    assert summary == "security fixes: 3 CVEs in 1 source package (highest urgency: high); 2 changelogs unreadable"


def test_offline_with_an_empty_cache_reports_unknown_not_an_error(tmp_path: Path, scenario: Scenario) -> None:
    diff = explain(diff_locks(scenario.old, scenario.new), scenario.new, ChangelogConfig(tmp_path / "c", offline=True))
    assert {c.status for c in diff.changelogs or ()} == {"unknown"}
    assert "not in the cache (--offline)" in (diff.changelogs or ())[0].note
    assert security_summary(diff) == "security fixes: from a security suite: 1 source package; 7 changelogs unknown"
    assert not (tmp_path / "c").exists()  # offline writes nothing


def test_missing_debs_are_downloaded_verified_into_the_cache(
    tmp_path: Path, deb_cache: Path, http_server: ServerFactory
) -> None:
    server = http_server(tmp_path / "archive")
    built = _build(tmp_path, deb_cache, url=server.url + "/")
    cache = Cache(tmp_path / "cache")
    diff = explain(diff_locks(built.old, built.new), built.new, ChangelogConfig(cache.root))
    logs = {c.source_package: c for c in diff.changelogs or ()}
    assert logs["openssl"].cves == ("CVE-2023-5678", "CVE-2023-6129", "CVE-2024-0727")
    libssl = next(p for p in built.new[0].packages if p.name == "libssl3")
    # every .deb read is now in the cache; libssl3's was not needed (its source's changelog came from openssl)
    assert all(cache.has_blob(digest) for digest in built.blobs if digest != libssl.sha256)
    assert not cache.has_blob(libssl.sha256)
    # a server that sends other bytes than the lock's: refused, nothing stored, the diff still works
    tampered = _build(tmp_path / "t", deb_cache, url=server.url + "/")
    victim = next(p for p in tampered.new[0].packages if p.name == "hello")
    (tmp_path / "archive" / victim.filename).write_bytes(b"tampered")
    cache2 = Cache(tmp_path / "cache2")
    logs = {
        c.source_package: c
        for c in explain(diff_locks(tampered.old, tampered.new), tampered.new, ChangelogConfig(cache2.root)).changelogs
        or ()
    }
    assert logs["hello"].status == "unreadable" and "does not match the lock" in logs["hello"].note
    assert not cache2.has_blob(victim.sha256)
    assert logs["openssl"].status == "read"


def test_a_tampered_cache_blob_is_not_read(tmp_path: Path, scenario: Scenario) -> None:
    cache = _warm(tmp_path / "cache", scenario)
    victim = next(p for p in scenario.new[0].packages if p.name == "openssl")
    blob = cache.blob_path(victim.sha256)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    diff = explain(diff_locks(scenario.old, scenario.new), scenario.new, ChangelogConfig(cache.root, offline=True))
    logs = {c.source_package: c for c in diff.changelogs or ()}
    # the openssl binary's blob is removed; libssl3 (intact, same source) has no changelog of its own
    assert not blob.exists() and logs["openssl"].status == "unknown"


def _rendered_html(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def test_markdown_security_first_and_hostile_changelog_text_stays_text(tmp_path: Path, scenario: Scenario) -> None:
    _warm(tmp_path / "cache", scenario)
    diff = explain(
        diff_locks(scenario.old, scenario.new), scenario.new, ChangelogConfig(tmp_path / "cache", offline=True)
    )
    text = render_markdown(diff)
    lines = text.splitlines()
    assert lines[0].startswith("**minimirror lock diff**:") and lines[2] == "### Security fixes"
    assert lines[4] == "security fixes: 3 CVEs in 1 source package (highest urgency: high); 2 changelogs unreadable"
    assert "| `fix/main` | `openssl` | `3.0.13-1` | `high` | `stable-security` |" in text
    assert text.count("<details><summary>changelog of openssl 3.0.10-1 -&gt; 3.0.13-1") == 1  # once per source
    rendered = _rendered_html(text)
    assert "<script>" not in rendered and "<img" not in rendered and "<a href" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered  # shown, as text, inside a code block
    # the hostile changelog's </details> lines did not close a block: every <details> opened is closed after it
    assert rendered.count("<details") == rendered.count("</details>") == text.count("<details") - 1
    assert "&lt;details open&gt;&lt;summary&gt;fake" in rendered and "<summary>fake</summary>" not in rendered
    assert "CVE-2024-0727" in rendered


def test_json_and_dataframe_gain_changelog_and_cves(tmp_path: Path, scenario: Scenario) -> None:
    _warm(tmp_path / "cache", scenario)
    diff = explain(
        diff_locks(scenario.old, scenario.new), scenario.new, ChangelogConfig(tmp_path / "cache", offline=True)
    )
    data = json.loads(render_json(diff))
    rows = {row["package"]: row for row in data["packages"]}
    assert rows["libssl3"]["cves"] == ["CVE-2023-5678", "CVE-2023-6129", "CVE-2024-0727"]
    assert rows["openssl"]["changelog"][0] == {
        "version": "3.0.13-1",
        "distribution": "stable-security",
        "urgency": "high",
        "text": "* Fix CVE-2024-0727.",
    }
    assert rows["nodoc"]["changelog"] is None and rows["nodoc"]["changelog_status"] == "unreadable"
    assert rows["gone"]["changelog"] is None and rows["gone"]["changelog_status"] is None  # removed
    assert data["security"]["cves"] == ["CVE-2023-5678", "CVE-2023-6129", "CVE-2024-0727"]
    frame = diff.to_dataframe()
    assert list(frame.columns[-5:]) == ["cves", "urgency", "security_suite", "changelog_status", "changelog"]
    hello = frame[frame["package"] == "hello"].iloc[0]
    assert hello["cves"] == [] and "(2.12) unstable; urgency=medium" in hello["changelog"]
    plain = diff_locks(scenario.old, scenario.new)
    assert "cves" not in plain.to_dataframe().columns and "security" not in json.loads(render_json(plain))


def test_cli_diff_changelogs(tmp_path: Path, scenario: Scenario) -> None:
    for side, locks in (("old", scenario.old), ("new", scenario.new)):
        for lock in locks:
            write_lock(lock_path(tmp_path / side, lock.source.id), lock)
    _warm(tmp_path / "cache", scenario)
    runner = CliRunner()
    base = ["diff", str(tmp_path / "old"), str(tmp_path / "new")]
    plain = runner.invoke(cli, [*base, "--format", "markdown", "--cache", str(tmp_path / "empty")])
    assert plain.exit_code == 0 and "Security fixes" not in plain.output
    # without --changelogs nothing is downloaded; the cache keeps only the locks' parsed form (lockcache)
    assert [path.name for path in (tmp_path / "empty").iterdir()] == ["parsed-locks"]
    cached = ["--changelogs", "--offline", "--cache", str(tmp_path / "cache")]
    table = runner.invoke(cli, [*base, *cached], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "security fixes: 3 CVEs in 1 source package" in table.output and "CVE-2024-0727" in table.output
    unknown = runner.invoke(
        cli, [*base, "--changelogs", "--offline", "--cache", str(tmp_path / "none"), "--format", "json"]
    )
    assert unknown.exit_code == 0
    assert {row["changelog_status"] for row in json.loads(unknown.output)["packages"]} == {"unknown", None}
