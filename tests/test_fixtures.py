"""The fixture builder produces archives apt itself accepts, and the server's faults really happen."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from debian.deb822 import Packages
from fixtures import FixturePackage, PrivateApt, SigningKey, build_archive, dose_distcheck
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory

P = FixturePackage

#: a -> (b | c) where b does not exist; c (all) -> virtual v, provided by p; a -> d (>= 2) of two versions.
CHAIN = [
    P("a", "1.0-1", depends="b | c, d (>= 2)", recommends="r"),
    P("c", "3.0", architecture="all", depends="v"),
    P("p", "1:0.5", provides="v", source="pv (0.5)"),
    P("d", "1.5"),
    P("d", "2.1"),
    P("r", "1.0"),
    P("unrelated", "9.9", files={"/usr/share/doc/unrelated/README": b"not pulled in\n"}),
]


def served(archive_root: Path, http_server: ServerFactory, private_apt: AptFactory, key: SigningKey) -> PrivateApt:
    """A private apt that trusts ``key`` and lists the archive served from ``archive_root``."""
    server = http_server(archive_root)
    apt = private_apt()
    apt.add_repository(server.url, "stable", ["main"], signed_by=key.public_key_path)
    return apt


def test_apt_accepts_archive_and_resolves_chain(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    archive = fixture_archive_factory({"main": CHAIN})
    server = http_server(archive.root)
    apt = private_apt()
    apt.add_source(archive.source_line(server.url))

    apt.update()  # raises on any W:/E:/Err: line

    assert apt.simulate_install(["a"]) == {
        ("a", "1.0-1", "amd64"),
        ("c", "3.0", "all"),
        ("p", "1:0.5", "amd64"),
        ("d", "2.1", "amd64"),
    }
    assert ("r", "1.0", "amd64") in apt.simulate_install(["a"], no_recommends=False)
    server.log.clear()
    apt.update()
    assert server.log.paths() == ["/dists/stable/InRelease"]


def test_download_matches_index_hashes(
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    archive = fixture_archive_factory({"main": CHAIN})
    apt = served(archive.root, http_server, private_apt, signing_key)
    apt.update()

    files = apt.download(["a", "c"], tmp_path / "dl")

    with archive.index_path().open() as stanzas:
        index = {
            s["Filename"].rsplit("/", 1)[-1]: s["SHA256"] for s in Packages.iter_paragraphs(stanzas, use_apt_pkg=False)
        }
    assert [f.name for f in files] == ["a_1.0-1_amd64.deb", "c_3.0_all.deb"]
    for file in files:
        assert hashlib.sha256(file.read_bytes()).hexdigest() == index[file.name]
    assert files[0].read_bytes() == archive.deb("a").read_bytes()


def test_apt_refuses_expired_release_after_resign(
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
) -> None:
    archive = fixture_archive_factory({"main": CHAIN[:1]})
    archive.resign(valid_until=datetime(2024, 6, 2, tzinfo=UTC))
    apt = served(archive.root, http_server, private_apt, signing_key)

    proc = apt.update(check=False)

    assert "Valid-Until: Sun, 02 Jun 2024 00:00:00 UTC" in archive.inrelease_path.read_text()
    assert "is expired" in proc.stdout + proc.stderr


def test_apt_refuses_archive_signed_by_other_key(
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
    other_signing_key: SigningKey,
) -> None:
    archive = fixture_archive_factory({"main": CHAIN[:1]}, key=other_signing_key)
    apt = served(archive.root, http_server, private_apt, signing_key)

    proc = apt.update(check=False)

    assert proc.returncode != 0
    assert f"NO_PUBKEY {other_signing_key.fingerprint[-16:]}" in proc.stdout + proc.stderr
    assert "E: The repository" in proc.stderr


def test_apt_rejects_index_rewritten_after_signing(
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
) -> None:
    archive = fixture_archive_factory({"main": CHAIN[:2]}, by_hash=False)
    archive.rewrite_index("main", "amd64", archive.index_path().read_text().replace("3.0", "3.1"))
    apt = served(archive.root, http_server, private_apt, signing_key)

    proc = apt.update(check=False)

    assert "Hash Sum mismatch" in proc.stdout + proc.stderr


def test_arch_all_in_its_own_index_when_not_folded(
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
) -> None:
    archive = fixture_archive_factory({"main": CHAIN[:3]}, no_support_arch_all=False)
    assert "Package: c\n" not in archive.index_path().read_text()
    apt = served(archive.root, http_server, private_apt, signing_key)
    apt.update()
    assert ("c", "3.0", "all") in apt.simulate_install(["c"])


def test_signatures_verify_with_gpgv(fixture_archive_factory: ArchiveFactory, signing_key: SigningKey) -> None:
    archive = fixture_archive_factory({"main": CHAIN[:1]})
    keyring = ["gpgv", "--keyring", str(signing_key.public_key_path)]
    detached = [*keyring, str(archive.release_gpg_path), str(archive.release_path)]
    assert subprocess.run(detached, capture_output=True, check=False).returncode == 0
    assert subprocess.run([*keyring, str(archive.inrelease_path)], capture_output=True, check=False).returncode == 0


def test_same_inputs_give_byte_identical_archives(tmp_path: Path, signing_key: SigningKey, deb_cache: Path) -> None:
    # One build bypasses the .deb cache, so dpkg-deb's own reproducibility is checked too.
    first = build_archive(tmp_path / "one", {"main": CHAIN}, key=signing_key, deb_cache=None)
    second = build_archive(tmp_path / "two", {"main": CHAIN}, key=signing_key, deb_cache=deb_cache)

    assert tree(first.root) == tree(second.root)
    assert sum(name.endswith(".deb") for name in tree(first.root)) == len(CHAIN)


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_dose_distcheck_reports_missing_dependency(fixture_archive_factory: ArchiveFactory) -> None:
    archive = fixture_archive_factory({"main": [*CHAIN, P("broken", "1.0", depends="nowhere")]}, sign=False, key=None)
    assert dose_distcheck(archive.index_path()) == ["broken"]


def test_fault_status_applies_the_given_number_of_times(tmp_path: Path, http_server: ServerFactory) -> None:
    (tmp_path / "dists").mkdir()
    (tmp_path / "dists" / "InRelease").write_bytes(b"signed\n")
    server = http_server(tmp_path)
    rule = server.faults.status("/dists/*", 503, times=2)
    with httpx.Client(base_url=server.url) as client:
        statuses = [client.get("/dists/InRelease").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert rule.hits == 2
    assert [r.fault for r in server.log] == ["status", "status", None]


def test_fault_truncate_cuts_the_body(tmp_path: Path, http_server: ServerFactory) -> None:
    (tmp_path / "blob").write_bytes(b"x" * 4096)
    server = http_server(tmp_path)
    server.faults.truncate("/blob", after_bytes=100)
    with httpx.Client(base_url=server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="received 100 bytes, expected 4096"):
            client.get("/blob")
        assert client.get("/blob").content == b"x" * 4096


def test_range_request_returns_206_with_the_right_bytes(tmp_path: Path, http_server: ServerFactory) -> None:
    blob = bytes(range(256)) * 16
    (tmp_path / "blob").write_bytes(blob)
    server = http_server(tmp_path)
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/blob", headers={"Range": "bytes=1000-1099"})
    assert response.status_code == 206
    assert response.content == blob[1000:1100]
    assert response.headers["Content-Range"] == "bytes 1000-1099/4096"
    assert server.log.records()[0].header("range") == "bytes=1000-1099"


def test_proxy_records_absolute_form_and_forwards(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    archive = fixture_archive_factory({"main": CHAIN[:1]})
    origin = http_server(archive.root)
    proxy = http_server(archive.root.parent, proxy_mode="forward")
    apt = private_apt(proxy=proxy.proxy_url)
    apt.add_source(archive.source_line(origin.url))

    apt.update()

    target = proxy.log.records()[0]
    assert target.via_proxy
    assert target.target == f"{origin.url}/dists/stable/InRelease"
    assert origin.log.paths()[0] == "/dists/stable/InRelease"
    assert not origin.log.records()[0].via_proxy
