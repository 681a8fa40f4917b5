"""``minimirror verify`` on published trees built as signed fixture archives, clean and tampered with."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import ArchiveFactory

from minimirror.cli import main
from minimirror.publish import verify
from minimirror.publish.verify import VerifyReport, find_dists, verify_tree

PACKAGES = [
    P("web", "1.0", depends="libssl (>= 3), webcommon", pre_depends="libc"),
    P("webcommon", "1.0", architecture="all"),
    P("libssl", "3.0.2"),
    P("libc", "2.37"),
    P("mailer", "1.0", depends="mail-transport-agent, libfoo-abi (>= 2) | libc (>= 9)"),
    P("postfix", "3.7", provides="mail-transport-agent, libfoo-abi (= 2.1)"),
]


def publish(factory: ArchiveFactory, out: Path, packages: list[P], *, prefix: str = "fixture") -> FixtureArchive:
    """A publish-like tree: OUT/signing-key.{gpg,asc} and OUT/<prefix>/{dists,pool}."""
    archive = factory({"main": packages}, root=out / prefix)
    assert archive.key is not None
    shutil.copyfile(archive.key.public_key_path, out / "signing-key.gpg")
    shutil.copyfile(archive.key.public_key_asc_path, out / "signing-key.asc")
    return archive


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "public"


@pytest.fixture
def archive(fixture_archive_factory: ArchiveFactory, out: Path) -> FixtureArchive:
    return publish(fixture_archive_factory, out, PACKAGES)


def paths(report: VerifyReport) -> set[str]:
    return {p.path for p in report.problems}


def messages(report: VerifyReport, path: str) -> str:
    return "\n".join(p.message for p in report.problems if p.path == path)


def test_clean_tree_verifies(archive: FixtureArchive, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = verify_tree(out)
    assert report.problems == ()
    assert report.warnings == ()
    assert (report.dists, report.indices, report.packages) == (1, 3, len(PACKAGES))
    assert report.pool_files >= len(PACKAGES)
    assert main(["verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().err


def test_single_archive_root_and_armored_keyring(archive: FixtureArchive) -> None:
    assert archive.key is not None
    assert [(d.prefix, d.name) for d in find_dists(archive.root)] == [("", "stable")]
    assert verify_tree(archive.root, keyring=archive.key.public_key_asc_path).problems == ()


def test_changed_pool_file(archive: FixtureArchive, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deb = archive.deb("libssl")
    deb.write_bytes(deb.read_bytes()[:-1] + b"X")
    rel = str(deb.relative_to(out))
    report = verify_tree(out)
    assert paths(report) == {rel}
    assert "sha256 differs from the index" in messages(report, rel)
    assert main(["verify", str(out)]) == 1
    assert f"{rel}: sha256 differs" in capsys.readouterr().out


def test_changed_packages_gz(archive: FixtureArchive, out: Path) -> None:
    gz = archive.index_path(compression="gz")
    text = gzip.decompress(gz.read_bytes()).decode()
    gz.write_bytes(gzip.compress(text.split("\n\n", 1)[1].encode(), mtime=0))
    rel = str(gz.relative_to(out))
    report = verify_tree(out)
    assert "Release says" in messages(report, rel)
    assert "holds different stanzas from Packages" in messages(report, rel)


def test_missing_by_hash_copy(archive: FixtureArchive, out: Path) -> None:
    xz = archive.index_path(compression="xz")
    assert verify_tree(out).ok  # clean first: the copy is there and checked
    copies = sorted((xz.parent / "by-hash" / "SHA256").iterdir())
    victim = next(c for c in copies if c.name == hashlib.sha256(xz.read_bytes()).hexdigest())
    victim.unlink()
    report = verify_tree(out)
    assert paths(report) == {str(victim.relative_to(out))}
    assert "missing by-hash copy of Packages.xz" in report.problems[0].message


def test_by_hash_copy_must_match_its_name(archive: FixtureArchive, out: Path) -> None:
    copy = next((archive.index_path().parent / "by-hash" / "SHA256").iterdir())
    copy.write_bytes(b"tampered\n")
    report = verify_tree(out)
    assert "not the one its name says" in messages(report, str(copy.relative_to(out)))


def test_release_edited_after_signing(archive: FixtureArchive, out: Path) -> None:
    release = archive.release_path
    release.write_bytes(release.read_bytes().replace(b"Origin: Fixture", b"Origin: Evil"))
    report = verify_tree(out)
    dist = "fixture/dists/stable"
    assert "signature does not verify" in messages(report, f"{dist}/Release.gpg")
    assert "signed content differs from Release" in messages(report, f"{dist}/InRelease")


def test_wrong_key(
    archive: FixtureArchive, out: Path, other_signing_key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", str(out), "--keyring", str(other_signing_key.public_key_asc_path)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "fixture/dists/stable/InRelease: signature does not verify" in printed
    assert "fixture/dists/stable/Release.gpg: signature does not verify" in printed


def test_missing_keyring_is_a_problem_not_a_crash(archive: FixtureArchive, out: Path) -> None:
    (out / "signing-key.gpg").unlink()
    report = verify_tree(out)
    assert "cannot read the signing key" in messages(report, "signing-key.gpg")


def test_unsatisfiable_dependencies(
    fixture_archive_factory: ArchiveFactory, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = [
        P("app", "1.0", depends="libmissing (>= 2) | libc (>= 9)"),
        P("tool", "1.0", depends="virt (>= 2)"),  # provided only unversioned / too old
        P("vprov", "1.0", provides="virt (= 1.5)"),
        P("uprov", "1.0", provides="virt"),
        P("ok", "1.0", depends="virt, virt (>= 1.5), libc:any"),
        P("libc", "2.37"),
    ]
    publish(fixture_archive_factory, out, broken)
    code = main(["verify", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    index = "fixture/dists/stable/main/binary-amd64"
    assert f"{index}: app 1.0 (amd64): Depends 'libmissing (>= 2) | libc (>= 9)' cannot be satisfied" in printed
    assert "no package libmissing" in printed
    assert f"{index}: tool 1.0 (amd64): Depends 'virt (>= 2)' cannot be satisfied" in printed
    assert " ok 1.0" not in printed
    if shutil.which("dose-distcheck"):
        assert "dose-distcheck (amd64): app 1.0 (amd64) is not installable" in printed
        assert "tool 1.0 (amd64) is not installable" in printed
    assert main(["verify", str(out), "--no-dose"]) == 1
    assert "dose-distcheck" not in capsys.readouterr().out


def test_symlink_escaping_the_tree(archive: FixtureArchive, out: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the mirror\n")
    link = out / "fixture" / "pool" / "leak.deb"
    link.symlink_to(secret)
    (out / "fixture" / "pool" / "inside").symlink_to("main")  # inside the tree: fine
    report = verify_tree(out)
    assert paths(report) == {"fixture/pool/leak.deb"}
    assert "symlink points outside the tree" in report.problems[0].message


def test_filename_escaping_the_tree_is_refused(archive: FixtureArchive, out: Path) -> None:
    text = archive.index_path().read_text()
    first = text.split("Filename: ", 1)[1].split("\n", 1)[0]
    archive.rewrite_index("main", "amd64", text.replace(first, "../../etc/passwd", 1), resign=True)
    report = verify_tree(out)
    assert any("refusing Filename '../../etc/passwd'" in p.message for p in report.problems)


def test_orphan_pool_file_is_a_warning(archive: FixtureArchive, out: Path) -> None:
    (out / "fixture" / "pool" / "main" / "stray.deb").write_bytes(b"stray")
    report = verify_tree(out)
    assert report.ok
    assert [str(w) for w in report.warnings] == [
        "fixture/pool/main/stray.deb: orphan: no Packages index names this pool file"
    ]


def test_not_a_tree(tmp_path: Path) -> None:
    report = verify_tree(tmp_path)
    assert not report.ok
    assert any("not a published tree" in p.message for p in report.problems)


def test_pool_file_symlinked_inside_the_tree_verifies(archive: FixtureArchive, out: Path) -> None:
    # A symlink anywhere makes verify resolve every path it follows (the fast path trusts a tree without any).
    deb = archive.deb("libssl")
    moved = out / "fixture" / "pool" / "elsewhere" / deb.name
    moved.parent.mkdir()
    deb.rename(moved)
    deb.symlink_to(moved)
    report = verify_tree(out)
    assert report.problems == ()


def test_pool_file_symlinked_outside_the_tree(archive: FixtureArchive, out: Path, tmp_path: Path) -> None:
    deb = archive.deb("libssl")
    copy = tmp_path / deb.name
    shutil.copyfile(deb, copy)
    deb.unlink()
    deb.symlink_to(copy)
    rel = str(deb.relative_to(out))
    report = verify_tree(out)
    assert "symlink points outside the tree" in messages(report, rel)
    assert "is a symlink leading outside the tree (libssl_3.0.2_amd64 in fixture/dists/stable)" in messages(report, rel)


def test_changed_pool_file_found_from_a_compressed_index(archive: FixtureArchive, out: Path) -> None:
    # Debian ships only Packages.{gz,xz}: the pool is then checked against the first compressed variant.
    archive.index_path().unlink()
    deb = archive.deb("libc")
    deb.write_bytes(deb.read_bytes() + b"X")
    report = verify_tree(out)
    rel = str(deb.relative_to(out))
    assert paths(report) == {rel}
    assert "size differs from the index" in messages(report, rel)


def test_compressed_index_that_does_not_decompress(archive: FixtureArchive, out: Path) -> None:
    xz = archive.index_path(compression="xz")
    xz.write_bytes(xz.read_bytes()[:40])
    deb = archive.deb("web")
    deb.write_bytes(b"tampered")
    report = verify_tree(out)
    rel = str(xz.relative_to(out))
    assert "Release says" in messages(report, rel)
    assert len([p for p in report.problems if p.path == rel]) == 2  # the hash, and the stream
    assert "size differs from the index" in messages(report, str(deb.relative_to(out)))


def test_interrupted_verify_leaves_no_dose_distcheck_behind(
    archive: FixtureArchive, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dose-distcheck runs while the pool is hashed; a Ctrl-C meanwhile must not leave it (or its files) behind.
    if shutil.which("dose-distcheck") is None:
        pytest.skip("dose-distcheck is not installed")
    started: list[verify._DoseRun] = []
    start = verify._DoseRun.start

    def recording(files: list[Path], arch: str) -> verify._DoseRun:
        started.append(start(files, arch))
        return started[-1]

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(verify._DoseRun, "start", staticmethod(recording))
    monkeypatch.setattr(verify._Checker, "check_sources", interrupted)
    with pytest.raises(KeyboardInterrupt):
        verify_tree(out)
    assert started
    for run in started:
        assert run.process is not None and run.process.poll() is not None
        assert run.outputs is not None and all(output.closed for output in run.outputs)
