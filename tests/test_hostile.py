"""Issue 8.2: hostile archives, validly signed by the key the user trusts, but malicious.

Each archive is built for real, then broken on purpose and signed again with the trusted key (so the signature
check cannot be what saves us). ``lock``, ``fetch`` and ``publish`` must refuse it with one clean message
(exit 2, no traceback) and write nothing outside the locks, cache and output folders.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_faults import Work, assert_cache_trustworthy

from minimirror.cli import main
from minimirror.filelock import PUBLISH_LOCK_NAME

PACKAGES = [P("web", "1.0", depends="libc"), P("libc", "2.37"), P("shell", "5.2")]


@pytest.fixture
def work(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Work:
    archive = fixture_archive_factory({"main": PACKAGES})
    return Work.make(tmp_path / "work", archive, http_server(archive.root), packages="web\n")


def index_text(archive: FixtureArchive) -> str:
    return archive.index_path("main", "amd64").read_text()


def edit_stanza(text: str, package: str, edit: Callable[[str], str]) -> str:
    stanzas = text.strip("\n").split("\n\n")
    return "\n\n".join(edit(s) if s.startswith(f"Package: {package}\n") else s for s in stanzas) + "\n"


def set_field(stanza: str, name: str, value: str) -> str:
    return re.sub(rf"^{name}: .*$", lambda _: f"{name}: {value}", stanza, count=1, flags=re.MULTILINE)


def files_outside(work: Work) -> set[Path]:
    """Every file under the test's directory except the archive, the locks, the cache and the output."""
    mine = (work.locks, work.cache, work.out, work.archive.root)
    out_lock = work.out.parent / PUBLISH_LOCK_NAME  # the output folder's lock lives beside it
    return {
        p
        for p in work.root.parent.rglob("*")
        if p.is_file() and p != out_lock and not any(p.is_relative_to(d) for d in mine)
    }


def run_refused(work: Work, args: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    before = files_outside(work)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "error:" in err
    for text in expected:
        assert text in err, err
    assert files_outside(work) == before, "nothing is written outside the locks, cache and output folders"
    assert_cache_trustworthy(work.cache)
    return err


ESCAPES = {
    "dot-dot": "pool/main/w/web/../../../../../../../tmp/mm-hostile-escape.deb",
    "absolute": "/tmp/mm-hostile-escape.deb",
    "outside pool": "dists/stable/Release",
    "backslash": "pool\\..\\..\\mm-hostile-escape.deb",
    "control character": "pool/main/w/web/web\x01.deb",
}


@pytest.mark.parametrize("kind", sorted(ESCAPES))
def test_a_filename_that_leaves_the_pool_is_refused_at_lock_time(
    work: Work, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ESCAPES[kind]
    text = edit_stanza(index_text(work.archive), "web", lambda s: set_field(s, "Filename", bad))
    work.archive.rewrite_index("main", "amd64", text, resign=True)
    run_refused(work, work.lock_args(), capsys, "dists/stable/: web_1.0_amd64 in main/binary-amd64", "Filename")
    assert not work.lock_file.exists()
    assert not Path("/tmp/mm-hostile-escape.deb").exists()


def test_a_gigantic_field_is_refused(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    huge = "x" * (2 << 20)
    text = edit_stanza(index_text(work.archive), "web", lambda s: s + f"\nX-Padding: {huge}")
    work.archive.rewrite_index("main", "amd64", text, resign=True)
    run_refused(work, work.lock_args(), capsys, "over the 1048576-byte limit")


def test_a_gigantic_stanza_without_blank_lines_is_refused(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    lines = "".join(f"X-Field-{n}: {'y' * 1000}\n" for n in range(17_000))
    text = edit_stanza(index_text(work.archive), "web", lambda s: s + "\n" + lines.rstrip("\n"))
    work.archive.rewrite_index("main", "amd64", text, resign=True)
    run_refused(work, work.lock_args(), capsys, "stanza longer than")


def test_a_non_utf8_field_is_refused(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    path = work.archive.index_path("main", "amd64")
    raw = edit_stanza(index_text(work.archive), "web", lambda s: s + "\nX-Latin1: @@").encode()
    data = raw.replace(b"@@", b"caf\xe9 \xff\xfe")
    for compression in ("xz", "gz", None):
        variant = work.archive.index_path("main", "amd64", compression)
        if variant.exists():
            variant.write_bytes(data)
    for variant in (path.with_suffix(".xz"), path.with_suffix(".gz")):
        variant.unlink(missing_ok=True)
    work.archive.resign()
    run_refused(work, work.lock_args(), capsys, "UTF-8")


def test_duplicate_stanzas_with_conflicting_hashes_are_refused(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    text = index_text(work.archive)
    web = next(s for s in text.split("\n\n") if s.startswith("Package: web\n"))
    twin = set_field(set_field(web.strip("\n"), "SHA256", "0" * 64), "Size", "999")
    work.archive.rewrite_index("main", "amd64", text.rstrip("\n") + "\n\n" + twin + "\n", resign=True)
    run_refused(work, work.lock_args(), capsys, "web")
    assert not work.lock_file.exists()


def test_a_release_listing_a_missing_index_is_refused(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    for leftover in work.archive.dist_dir.rglob("binary-amd64/*"):
        if leftover.is_file():
            leftover.unlink()
    for leftover in work.archive.dist_dir.rglob("by-hash/SHA256/*"):
        leftover.unlink()
    run_refused(work, work.lock_args(), capsys, "HTTP 404", "binary-amd64/Packages")


def test_a_release_pointing_an_index_outside_its_dist_is_refused(
    work: Work, capsys: pytest.CaptureFixture[str]
) -> None:
    release = work.archive.release_path.read_text()
    release = release.replace("main/binary-amd64/Packages.xz", "../../../etc/Packages.xz")
    assert work.archive.key is not None
    signed = work.archive.key.clearsign(release.encode(), at=work.archive.settings.epoch)
    work.archive.inrelease_path.write_bytes(signed)
    run_refused(work, work.lock_args(), capsys, "outside the dist directory")


def _inrelease_with_two_messages(work: Work) -> bytes:
    assert work.archive.key is not None
    evil = work.archive.key.clearsign(b"Origin: evil\nDate: Sat, 01 Jun 2024 00:00:00 UTC\n")
    return work.archive.inrelease_path.read_bytes() + evil


def _inrelease_with_trailing_text(work: Work) -> bytes:
    return work.archive.inrelease_path.read_bytes() + b"SHA256:\n 00 1 main/binary-amd64/Packages\n"


def _inrelease_with_leading_text(work: Work) -> bytes:
    return b"Origin: evil\n\n" + work.archive.inrelease_path.read_bytes()


INRELEASES = {
    "two signed messages": (_inrelease_with_two_messages, "found 2"),
    "trailing unsigned text": (_inrelease_with_trailing_text, "unsigned text after the signature"),
    "leading unsigned text": (_inrelease_with_leading_text, "text before the signed message"),
}


@pytest.mark.parametrize("kind", sorted(INRELEASES))
def test_an_inrelease_with_more_than_one_signed_message_is_refused(
    work: Work, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, expected = INRELEASES[kind]
    work.archive.inrelease_path.write_bytes(make(work))
    run_refused(work, work.lock_args(), capsys, expected, "InRelease")


# --- a package whose ./control is a symlink out of the archive ---------------------------------------------


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def _tar_gz(entries: list[tarfile.TarInfo]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for entry in entries:
            tar.addfile(entry)
    return buffer.getvalue()


def _symlinked_control_deb(target: str) -> bytes:
    link = tarfile.TarInfo("./control")
    link.type, link.linkname = tarfile.SYMTYPE, target
    return _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", _tar_gz([link])), ("data.tar.gz", _tar_gz([]))])


def test_a_package_whose_control_file_is_a_symlink_out_is_refused_at_publish(
    work: Work, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = _symlinked_control_deb("/etc/hostname")
    deb = work.archive.deb("web")
    deb.write_bytes(hostile)
    sha256, md5 = hashlib.sha256(hostile).hexdigest(), hashlib.md5(hostile).hexdigest()

    def edit(stanza: str) -> str:
        return set_field(set_field(set_field(stanza, "Size", str(len(hostile))), "SHA256", sha256), "MD5sum", md5)

    work.archive.rewrite_index("main", "amd64", edit_stanza(index_text(work.archive), "web", edit), resign=True)
    assert main(work.lock_args()) == 0  # the index is consistent: the lock pins the bytes it lists
    assert main(work.fetch_args()) == 0
    args = ["publish", "--locks", str(work.locks), "--cache", str(work.cache), "--out", str(work.out), "--no-sign"]
    run_refused(work, args, capsys, "holds no ./control file", "web_1.0_amd64.deb")
    assert not work.out.exists()
