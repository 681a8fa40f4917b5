"""``minimirror.pipeline.example``: the bundled offline example is a real signed archive (apt accepts it) and a
real lock."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fixtures.plugin import AptFactory

from minimirror.cli import main
from minimirror.errors import UsageError
from minimirror.lock.lockfile import read_lock
from minimirror.pipeline.example import (
    EXAMPLE_EPOCH,
    Example,
    ExamplePackage,
    IndexedDeb,
    build_deb,
    control_text,
    packages_text,
    release_text,
    static_elf_stub,
    write_example,
)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    return write_example(tmp_path_factory.mktemp("ex") / "example", busybox=static_elf_stub())


def test_control_text_leaves_empty_fields_out() -> None:
    text = control_text(ExamplePackage("tool", "1:2.0-1", files=(("usr/bin/tool", b"x" * 1025),)))
    assert text.startswith("Package: tool\nVersion: 1:2.0-1\nArchitecture: amd64\n")
    assert "Installed-Size: 2\n" in text and "Depends" not in text and "Source" not in text


def test_packages_and_release_texts_list_every_index_with_its_hashes() -> None:
    debs = [
        IndexedDeb(ExamplePackage("zed", "1"), 10, "a" * 64, "b" * 32),
        IndexedDeb(ExamplePackage("abc", "2", source="abc-src (2)"), 20, "c" * 64, "d" * 32),
    ]
    text = packages_text(debs).decode()
    assert text.index("Package: abc") < text.index("Package: zed")
    assert "Filename: pool/main/a/abc-src/abc_2_amd64.deb\nSize: 20\nMD5sum: " + "d" * 32 in text
    release = release_text([("main/binary-amd64/Packages", b"data")], epoch=EXAMPLE_EPOCH).decode()
    assert "Date: Sat, 01 Jun 2024 00:00:00 GMT\n" in release
    assert f" {hashlib.sha256(b'data').hexdigest()} 4 main/binary-amd64/Packages\n" in release


def test_debs_are_real_and_reproducible(tmp_path: Path) -> None:
    package = ExamplePackage("libfoo", "1.0", files=(("usr/lib/foo", b"foo\n"),))
    first = build_deb(package, tmp_path / "a").read_bytes()
    assert build_deb(package, tmp_path / "b").read_bytes() == first
    assert (tmp_path / "a" / "pool/main/libf/libfoo/libfoo_1.0_amd64.deb").read_bytes()[:8] == b"!<arch>\n"


def test_the_lock_holds_the_closure_signed_by_the_example_key(example: Example) -> None:
    lock = read_lock(example.locks_dir / "example" / "stable.lock")
    assert sorted(p.name for p in lock.packages) == ["busybox-static", "hello-mirror", "libgreeting"]
    assert lock.find("libgreeting")[0].required_by == ("hello-mirror/amd64",)
    assert lock.upstream.signed_by == (example.fingerprint,)
    assert lock.source.url == example.archive_dir.as_uri() + "/"
    for package in lock.packages:
        data = (example.archive_dir / package.filename).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (package.size, package.sha256)


def test_the_lock_is_current_offline(example: Example) -> None:
    dirs = ["--sources", str(example.sources_dir), "--locks", str(example.locks_dir)]
    assert main(["lock", "--check", "--offline", *dirs, "--cache", str(example.cache_dir)]) == 0


def test_apt_accepts_the_archive_and_installs_the_same_closure(example: Example, private_apt: AptFactory) -> None:
    apt = private_apt()
    apt.add_repository(example.archive_dir.as_uri(), "stable", ["main"], signed_by=example.archive_key)
    apt.update()
    installed = apt.simulate_install(["hello-mirror"])
    assert {entry[0] for entry in installed} == {"hello-mirror", "libgreeting"}


def test_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        write_example(tmp_path)
