"""Tests for minimirror.upstream.index: parsing, strictness, laziness, PackageIndex order, the parsed-form cache."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import random
from pathlib import Path

import pytest
from debian.deb822 import Deb822
from fixtures import REPO_ROOT

from minimirror.errors import ArchiveError, IntegrityError
from minimirror.package import Package
from minimirror.upstream.index import (
    IndexFormatError,
    PackageIndex,
    StanzaFields,
    field_of,
    iter_packages,
    parse_provides,
)
from minimirror.upstream.indexcache import load_index_cached, load_index_part

REAL_INDEX = (REPO_ROOT / "../shared/data/debian-bookworm/dists/bookworm/main/binary-amd64/Packages.xz").resolve()

TEXT = """\
Package: hello
Version: 2.10-3
Architecture: amd64
Depends: libc6 (>= 2.34)
Provides: greeter (= 1.0), hello-world
Description: example package based on GNU hello
 The GNU hello program produces a familiar, friendly greeting.
 .
 It allows non-programmers to use a classic computer science tool.
Tag: interface::commandline,
 role::program
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
SHA256: aaaa

Package: libfoo1
Source: foo (1.2-1)
Version: 1:1.2-1+b1
Architecture: amd64
Multi-Arch: same
SHA256: bbbb
"""


def parse(text: str | bytes, name: str = "test/Packages") -> list[Package]:
    data = text.encode() if isinstance(text, str) else text
    return list(iter_packages(data, name=name))


def python_debian(raw: str) -> dict[str, str]:
    return dict(Deb822(raw.splitlines(keepends=True)))


# --- parsing ---------------------------------------------------------------------------------------------


def test_parses_identity_and_fields() -> None:
    hello, libfoo = parse(TEXT)
    assert hello.key == ("hello", "2.10-3", "amd64")
    assert libfoo.key == ("libfoo1", "1:1.2-1+b1", "amd64")
    assert libfoo.source_name == "foo"
    assert libfoo.source_version == "1.2-1"
    assert hello.field("depends") == "libc6 (>= 2.34)"
    assert hello.fields["Tag"] == "interface::commandline,\n role::program"
    assert hello.fields["Description"].splitlines()[2] == " ."


def test_lazy_fields_equal_python_debian_field_for_field() -> None:
    for package, raw in zip(parse(TEXT), TEXT.split("\n\n"), strict=True):
        assert dict(package.fields) == python_debian(raw)
        assert list(package.fields) == list(python_debian(raw))


def test_fields_are_lazy_and_read_only() -> None:
    (hello, _) = parse(TEXT)
    fields = hello.fields
    assert isinstance(fields, StanzaFields)
    assert fields.get("Depends") == "libc6 (>= 2.34)"
    assert fields.get("Pre-Depends") is None
    assert fields._parsed is None  # both answered from the raw text
    assert len(fields) == 9
    with pytest.raises(TypeError):
        fields["Depends"] = "x"  # type: ignore[index]


def test_crlf_and_extra_blank_lines_parse_like_lf() -> None:
    crlf = "\r\n\r\n" + TEXT.replace("\n", "\r\n").replace("SHA256: aaaa\r\n", "SHA256: aaaa\r\n\r\n\r\n")
    assert [(p.key, dict(p.fields)) for p in parse(crlf)] == [(p.key, dict(p.fields)) for p in parse(TEXT)]


def test_no_trailing_newline_and_unusual_spelling_take_the_slow_path() -> None:
    text = "architecture: all\npackage: a\nversion:1.0\n  \n"[:-4]
    (package,) = parse(text)
    assert package.key == ("a", "1.0", "all")
    (last,) = parse("Package: a\nVersion: 1\nArchitecture: all")
    assert isinstance(last.fields, StanzaFields)
    assert last.fields.line == 1


def test_line_numbers_follow_the_file() -> None:
    packages = parse(TEXT + "\n\n\nPackage: z\nVersion: 1\nArchitecture: all\n")
    assert [p.fields.line for p in packages if isinstance(p.fields, StanzaFields)] == [1, 15, 24]


def test_streaming_xz_and_gzip_equal_plain(tmp_path: Path) -> None:
    body = "".join(f"Package: p{i}\nVersion: {i}\nArchitecture: all\nX: {'y' * 500}\n\n" for i in range(4000))
    plain = [(p.key, p.fields.text()) for p in parse(body)]  # type: ignore[attr-defined]
    two_members = gzip.compress(body[:1000].encode()) + gzip.compress(body[1000:].encode())
    for data in (lzma.compress(body.encode()), gzip.compress(body.encode()), two_members):
        path = tmp_path / "Packages.any"
        path.write_bytes(data)
        assert [(p.key, p.fields.text()) for p in iter_packages(path)] == plain  # type: ignore[attr-defined]
    assert len(plain) == 4000


@pytest.mark.parametrize("xz_program", [True, False], ids=["xz-process", "lzma-module"])
def test_xz_with_and_without_the_xz_program(xz_program: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if not xz_program:  # the fallback when xz-utils is missing
        monkeypatch.setattr(shutil, "which", lambda name: None)
    body = "".join(stanza(f"p{number}", "1.0") for number in range(2000))
    data = lzma.compress(body.encode())
    assert [p.key for p in parse(data)] == [(f"p{number}", "1.0", "amd64") for number in range(2000)]
    with pytest.raises(ArchiveError, match="idx: corrupt or truncated xz"):
        parse(data[: len(data) // 2], name="idx")


# --- strictness ------------------------------------------------------------------------------------------

GOOD = "Package: a\nVersion: 1\nArchitecture: all\n"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (GOOD + "\nVersion: 1\nArchitecture: all\n", 5, "no Package field"),
        (GOOD + "\nPackage: b\nArchitecture: all\n", 5, "no Version field"),
        (GOOD + "\nPackage: b\nVersion: 1\n", 5, "no Architecture field"),
        (GOOD + "\nPackage: b\nVersion: 1\nArchitecture: all\nno colon here\n", 8, "no colon"),
        (GOOD + "\nPackage: b\n: empty\n", 6, "empty name"),
        (GOOD + "\n continued\nPackage: b\n", 5, "continuation line opens a stanza"),
        (GOOD + "Description: x\n   \n .\n", 5, "whitespace-only line"),
        (GOOD + "Package: again\n", 4, "duplicate field 'Package' \\(first on line 1\\)"),
        (GOOD + "\nPackage: b c\nVersion: 1\nArchitecture: all\n", 5, "contains whitespace"),
        ("Package: a\nVersion:\nArchitecture: all\n", 1, "no Version field"),
    ],
)
def test_malformed_stanzas_name_index_and_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(IndexFormatError, match=problem) as caught:
        parse(text, name="http://mirror.test/Packages")
    assert caught.value.index == "http://mirror.test/Packages"
    assert caught.value.line == line
    assert str(caught.value).startswith(f"http://mirror.test/Packages:{line}: ")


def test_non_utf8_names_the_line() -> None:
    with pytest.raises(IndexFormatError, match="not UTF-8: byte 0xff") as caught:
        parse(GOOD.encode() + b"\nPackage: b\nVersion: 1\nArchitecture: all\nX: \xff\n", name="idx")
    assert caught.value.line == 8


def test_oversized_field_is_refused() -> None:
    from minimirror.upstream.index import MAX_FIELD_BYTES

    with pytest.raises(IndexFormatError, match=r"'Description' is \d+ bytes, over the"):
        parse(GOOD + "Description: " + "x" * (MAX_FIELD_BYTES + 1) + "\n")


def test_duplicate_field_in_lazy_parse_names_both_lines() -> None:
    (package,) = parse(GOOD + "Depends: a\nDepends: b\n", name="idx")
    with pytest.raises(IndexFormatError, match=r"idx:5: duplicate field 'Depends' \(first on line 4\)"):
        dict(package.fields)


def test_same_package_with_different_sha256_names_both() -> None:
    first = parse(GOOD + "SHA256: 11\n", name="main/Packages")
    second = parse("\n" + GOOD + "SHA256: 22\n", name="contrib/Packages")
    inconsistent = PackageIndex.build([("main", first), ("contrib", second)])  # checked when looked up
    pattern = r"a_1_all .*11 in main/Packages:1 \(main\).*22 in contrib/Packages:2"
    for look_up in (lambda: inconsistent.by_name("a"), lambda: list(inconsistent), lambda: len(inconsistent)):
        with pytest.raises(ArchiveError, match=pattern):
            look_up()
    index = PackageIndex.build([("main", first), ("contrib", parse(GOOD + "SHA256: 11\n"))])
    assert len(index) == 1
    assert index.component_of(first[0]) == "main"


# --- PackageIndex ----------------------------------------------------------------------------------------


def stanza(name: str, version: str, arch: str = "amd64", extra: str = "") -> str:
    return f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n" + (extra and extra + "\n") + "\n"


def test_by_name_is_newest_first_in_debian_order() -> None:
    versions = ["1.0", "1:0.9", "1.0~rc1", "1.0-1", "1.0+b1", "0.99", "2.0~~", "2.0~"]
    text = "".join(stanza("x", v) for v in versions) + stanza("x", "1.0", "arm64") + stanza("x", "1.00")
    index = PackageIndex.build([("main", parse(text))])
    got = [(p.version, p.architecture) for p in index.by_name("x")]
    assert got == [
        ("1:0.9", "amd64"),
        ("2.0~", "amd64"),
        ("2.0~~", "amd64"),
        ("1.0+b1", "amd64"),
        ("1.0-1", "amd64"),
        ("1.0", "amd64"),
        ("1.00", "amd64"),
        ("1.0", "arm64"),
        ("1.0~rc1", "amd64"),
        ("0.99", "amd64"),
    ]
    assert index.by_name("missing") == ()
    assert [p.name for p in index] == ["x"] * 10
    assert index.get("x", "1.0", "arm64") is not None


def test_providers_keep_versioned_provides_and_components() -> None:
    text = (
        stanza("mta-b", "1", extra="Provides: mail-transport-agent, sendmail (= 8.1)")
        + stanza("mta-a", "2", extra="Provides: mail-transport-agent")
        + stanza("plain", "1")
    )
    contrib = parse(stanza("mta-c", "1", "all", "Provides: default-mta (= 1:2.0)"))
    index = PackageIndex.build([("main", parse(text)), ("contrib", contrib)])
    assert [(p.name, v) for p, v in index.providers("mail-transport-agent")] == [("mta-a", None), ("mta-b", None)]
    assert [(p.name, v) for p, v in index.providers("sendmail")] == [("mta-b", "8.1")]
    assert [(p.name, v) for p, v in index.providers("default-mta")] == [("mta-c", "1:2.0")]
    assert index.component_of(contrib[0]) == "contrib"
    assert [p.name for p in index] == ["mta-a", "mta-b", "mta-c", "plain"]


def test_providers_are_found_whatever_the_field_name_case_and_from_the_parsed_cache(tmp_path: Path) -> None:

    text = stanza("a", "1", extra="PROVIDES: virt") + stanza("b", "1", extra="Description: provides: nothing")
    data = text.encode()
    for _ in range(2):  # cold, then warm from the parsed cache
        part = load_index_part(data, sha(data), tmp_path, component="main")
        index = PackageIndex([part])
        assert [(p.name, v) for p, v in index.providers("virt")] == [("a", None)]
        assert index.providers("nothing") == ()


def test_field_of_is_case_insensitive_without_full_parse() -> None:
    (package,) = parse(stanza("a", "1", extra="provides: b"))
    assert field_of(package, "Provides") == "b"
    assert parse_provides("a ,b (= 1), c:any (=2),\n d") == [("a", None), ("b", "1"), ("c", "2"), ("d", None)]


# --- cache -----------------------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(packages: list[Package]) -> list[tuple[tuple[str, str, str], dict[str, str]]]:
    return [(p.key, dict(p.fields)) for p in packages]


def test_cache_round_trip_and_warm_load_skips_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = lzma.compress(TEXT.encode())
    cold = load_index_cached(data, sha(data), tmp_path, name="idx")
    assert snapshot(cold) == snapshot(parse(TEXT))
    import minimirror.upstream.indexcache as module

    monkeypatch.setattr(module, "iter_records", lambda *a, **k: pytest.fail("warm load parsed the text"))
    warm = load_index_cached(b"not even read", sha(data), tmp_path, name="idx")
    assert snapshot(warm) == snapshot(cold)
    assert [p.fields.line for p in warm] == [1, 15]  # type: ignore[attr-defined]


@pytest.mark.parametrize("damage", ["truncate", "flip", "flip-table", "garbage", "empty", "other-version"])
def test_damaged_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    data = TEXT.encode()
    load_index_cached(data, sha(data), tmp_path)
    (cache_file,) = tmp_path.iterdir()
    content = bytearray(cache_file.read_bytes())
    if damage == "truncate":
        content = content[: len(content) - 7]
    elif damage == "flip":
        content[-20] ^= 0xFF
    elif damage == "flip-table":
        content[90] ^= 0xFF  # inside the table, just after the 62-byte header
    elif damage == "garbage":
        content = bytearray(random.Random(1).randbytes(len(content)))
    elif damage == "empty":
        content = bytearray()
    else:
        content[8] += 1
    cache_file.write_bytes(bytes(content))
    assert snapshot(load_index_cached(data, sha(data), tmp_path)) == snapshot(parse(TEXT))
    assert cache_file.read_bytes() != bytes(content)  # rewritten


def _warm_index(tmp_path: Path, source: Path, sha256: str) -> PackageIndex:
    return PackageIndex([load_index_part(source, sha256, tmp_path / "parsed", component="main", name="idx")])


def test_warm_lookups_read_only_their_records_and_a_damaged_one_is_parsed_again(tmp_path: Path) -> None:
    text = "".join(stanza(f"p{n}", "1", extra=f"Provides: v{n}") for n in range(50))
    source = tmp_path / "Packages"
    source.write_text(text)
    digest = sha(source.read_bytes())
    _warm_index(tmp_path, source, digest)  # cold: parses and writes the cache
    (cache_file,) = (tmp_path / "parsed").iterdir()
    content = bytearray(cache_file.read_bytes())
    at = content.rindex(b"Package: p49")  # inside the last record
    content[at + 9] ^= 0x01  # "p49" -> "q49": a different but well-formed record, caught by its CRC only
    cache_file.write_bytes(bytes(content))

    index = _warm_index(tmp_path, source, digest)
    assert [p.name for p in index.by_name("p3")] == ["p3"]
    assert [p.name for p, _ in index.providers("v7")] == ["p7"]
    assert cache_file.read_bytes() == bytes(content)  # the damaged record was not read, nothing rebuilt

    assert [p.key for p in index.by_name("p49")] == [("p49", "1", "amd64")]  # the damage is found and repaired
    assert cache_file.read_bytes() != bytes(content)
    assert [p.name for p, _ in _warm_index(tmp_path, source, digest).providers("v49")] == ["p49"]


def test_a_damaged_record_whose_index_is_gone_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "Packages"
    source.write_text(stanza("a", "1"))
    digest = sha(source.read_bytes())
    _warm_index(tmp_path, source, digest)
    (cache_file,) = (tmp_path / "parsed").iterdir()
    content = bytearray(cache_file.read_bytes())
    content[-3] ^= 0xFF
    cache_file.write_bytes(bytes(content))
    source.unlink()
    with pytest.raises(ArchiveError, match=r"cannot read the index idx .*run the command again online"):
        _warm_index(tmp_path, source, digest).by_name("a")


def test_cache_refuses_data_with_another_sha256(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="idx: sha256 is"):
        load_index_cached(TEXT.encode(), "0" * 64, tmp_path, name="idx")
    assert list(tmp_path.iterdir()) == []


# --- the real Debian index -------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_INDEX.exists(), reason=f"shared Debian data absent ({REAL_INDEX})")
def test_real_bookworm_index(tmp_path: Path) -> None:
    data = REAL_INDEX.read_bytes()
    packages = load_index_cached(data, sha(data), tmp_path, name="bookworm/main/amd64")
    assert len(packages) == 63440
    texts = lzma.decompress(data).decode().rstrip("\n").split("\n\n")
    for i in random.Random(20260711).sample(range(len(texts)), 300):
        assert dict(packages[i].fields) == python_debian(texts[i]), texts[i][:80]
        assert packages[i].key == tuple(python_debian(texts[i])[k] for k in ("Package", "Version", "Architecture"))
    warm = load_index_cached(data, sha(data), tmp_path, name="bookworm/main/amd64")
    assert [(p.key, p.fields.raw) for p in warm] == [(p.key, p.fields.raw) for p in packages]  # type: ignore[attr-defined]
    index = PackageIndex.build([("main", warm)])
    assert len(index) == 63440
    assert any(p.name == "postfix" for p, _ in index.providers("mail-transport-agent"))
