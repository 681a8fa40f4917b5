"""Reading chosen payload files out of a real .deb's data member, streamed (minimirror.upstream.debfile)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.debs import ChangelogEntry, FixturePackage, build_deb, changelog_files

from minimirror.errors import IntegrityError
from minimirror.upstream.debfile import read_control, read_data_files

DOC = "usr/share/doc/hello"
WANTED = frozenset({f"{DOC}/changelog.Debian.gz", f"{DOC}/changelog.Debian.amd64.gz", f"{DOC}/changelog.gz"})


def _package(compression: str) -> FixturePackage:
    files = changelog_files(
        "hello",
        "hello",
        [ChangelogEntry("1.0-1", ["* First."])],
        binnmu=[ChangelogEntry("1.0-1+b1", ["* Rebuild."])],
    )
    files["usr/bin/hello"] = bytes(range(256)) * 400  # payload before the doc folder, as in a real package
    files["usr/share/zzz/after"] = b"after"
    return FixturePackage("hello", "1.0-1+b1", source="hello (1.0-1)", files=files, compression=compression)


@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd", "none"])
def test_wanted_files_come_out_of_every_compression(tmp_path: Path, deb_cache: Path, compression: str) -> None:
    package = _package(compression)
    deb = build_deb(package, tmp_path, cache_dir=deb_cache)
    found = read_data_files(deb, WANTED)
    assert sorted(found) == [f"{DOC}/changelog.Debian.amd64.gz", f"{DOC}/changelog.Debian.gz"]
    assert found[f"{DOC}/changelog.Debian.gz"] == package.files[f"{DOC}/changelog.Debian.gz"]
    assert read_control(deb).identity == ("hello", "1.0-1+b1", "amd64")  # control.tar.zst too, no dpkg-deb
    suffix = {"gzip": ".gz", "xz": ".xz", "zstd": ".zst", "none": ""}[compression]
    assert f"control.tar{suffix} ".encode() in deb.read_bytes()[:200], "the control member was not compressed so"


def test_a_damaged_data_member_is_an_integrity_error_naming_the_file(tmp_path: Path, deb_cache: Path) -> None:
    deb = build_deb(_package("xz"), tmp_path, cache_dir=deb_cache)
    data = bytearray(deb.read_bytes())
    data[-200:] = b"\0" * 200  # the end of data.tar.xz
    deb.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"hello\.deb: data\.tar\.xz is damaged"):
        read_data_files(deb, frozenset({"usr/share/zzz/missing"}), name="hello.deb")
    (tmp_path / "not.deb").write_bytes(b"plain text")
    with pytest.raises(IntegrityError, match=r"not\.deb: not a Debian package"):
        read_data_files(tmp_path / "not.deb", WANTED)
