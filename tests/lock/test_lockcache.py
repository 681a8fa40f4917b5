"""The parsed-lock cache: a warm read is the strict read's value; a damaged, forged, foreign or stale entry is
ignored and the lock read strictly (so a bad lock is still refused); concurrent readers write one whole entry."""

from __future__ import annotations

import hashlib
import marshal
import multiprocessing
import struct
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimirror.errors import LockError
from minimirror.lock import lockcache
from minimirror.lock.lockcache import cache_path, read_lock_table, read_lock_tables, stale_entries
from minimirror.lock.lockfile import (
    CompanionPin,
    IndexPin,
    LeftOutPackage,
    Lock,
    LockedPackage,
    LockedSource,
    LockedSourceFile,
    SourcePin,
    UpstreamPin,
    dumps_lock,
    read_lock,
    write_lock,
)
from minimirror.lock.locktable import PACKAGE_COLUMNS

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
KEY = "4D64FEC119C2029067D6E791F8D2585B8783D481"


def _upstream(*, valid_until: datetime | None) -> UpstreamPin:
    indices = (
        IndexPin("main/binary-amd64/Packages.xz", "main", "amd64", 10, H1),
        IndexPin("main/source/Sources.xz", "main", "source", 11, H2),
    )
    date = datetime(2026, 7, 11, 10, 16, 37, 250000, tzinfo=UTC)
    return UpstreamPin(
        "InRelease", H3, date, valid_until, "Debian", "Debian", "stable", "bookworm", "12", (KEY,), indices
    )


def _package(name: str, version: str, **fields: object) -> LockedPackage:
    source = str(fields.pop("source", name))
    package = LockedPackage(
        name, version, "amd64", "main", f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb", 100, H1, source,
        version,
    )  # fmt: skip
    return replace(package, **fields)  # type: ignore[arg-type]


def rich_lock() -> Lock:
    """A lock with every kind of table and optional field the format has."""
    source = SourcePin(
        "debian/bookworm", "http://archive.example/debian/", "file:///k.gpg", "bookworm", ("main",), ("amd64",), H2,
        ("curl", "Name (% lib*)"), group=("debian/bookworm", "docker/bookworm"), pin_priority=990,
    )  # fmt: skip
    security = CompanionPin(
        "http://security.example/debian-security/", "file:///s.gpg", "bookworm-security", ("main",),
        _upstream(valid_until=None),
    )  # fmt: skip
    curl = _package("curl", "7.88.1-10+deb12u12", queries=("curl",), companion="bookworm-security")
    packages = (
        replace(curl, phased_update_percentage=30),
        _package("libcurl4", "7.88.1-10+deb12u12", source="curl", required_by=("curl/amd64",), missing=("libx",)),
        _package("libz", "1:1.2.13", queries=("Name (% lib*)",), required_by=("docker/bookworm:dockerish/amd64",)),
    )
    files = (
        LockedSourceFile("curl_7.88.1-10+deb12u12.dsc", 10, H1),
        LockedSourceFile("curl_7.88.1.orig.tar.xz", 9, H2),
    )
    sources = (
        LockedSource("curl", "7.88.1-10+deb12u12", "main", "pool/main/c/curl", files, ("curl/amd64", "libcurl4/amd64")),
        LockedSource("libz", "1:1.2.13", "main", "pool/main/l/libz", (LockedSourceFile("libz_1.2.13.dsc", 1, H3),),
                     ("libz/amd64",)),
    )  # fmt: skip
    left_out = (LeftOutPackage("libbroken", "2.0", "amd64", ("Name (% lib*)",), "needs gone, which nothing has"),)
    return Lock(
        source, _upstream(valid_until=datetime(2026, 7, 18, tzinfo=UTC)), packages, sources, (security,), left_out
    )


@pytest.fixture
def lock_file(tmp_path: Path) -> Path:
    path = tmp_path / "locks" / "debian" / "bookworm.lock"
    write_lock(path, rich_lock())
    return path


def _entry(cache: Path, lock_file: Path) -> Path:
    return cache_path(cache, hashlib.sha256(lock_file.read_bytes()).hexdigest())


def _no_strict_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, *, path: object, memo: object = None) -> Lock:
        raise AssertionError(f"{path} was read strictly, not from the cache")

    monkeypatch.setattr(lockcache, "loads_lock_table", refuse)


def test_a_warm_read_is_the_strict_read_without_parsing(
    lock_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    strict = read_lock(lock_file)
    assert strict == rich_lock()
    cold = read_lock_table(lock_file, cache)
    assert cold.lock() == strict
    assert _entry(cache, lock_file).is_file()
    _no_strict_read(monkeypatch)
    warm = read_lock_table(lock_file, cache)
    assert warm.lock() == strict
    assert warm.head == replace(strict, packages=())
    assert all(warm.columns[name] == tuple(getattr(p, name) for p in strict.packages) for name in PACKAGE_COLUMNS)
    assert [path.name for path in (cache / "parsed-locks").iterdir()] == [_entry(cache, lock_file).name]


def test_without_a_cache_directory_nothing_is_written(lock_file: Path, tmp_path: Path) -> None:
    assert read_lock_table(lock_file, None).lock() == read_lock(lock_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locks"]


def _damaged(entry: bytes, how: str) -> bytes:
    header = struct.calcsize("<8sH32s32s32s")
    if how == "truncated":
        return entry[: len(entry) // 2]
    if how == "empty":
        return b""
    if how == "a byte flipped in the body":
        at = len(entry) - 5
        return entry[:at] + bytes([entry[at] ^ 1]) + entry[at + 1 :]
    if how == "another magic":
        return b"X" + entry[1:]
    if how == "another format":
        return entry[:8] + struct.pack("<H", lockcache.FORMAT + 1) + entry[10:]
    if how == "garbage":
        return b"\x00" * header + b"junk" * 100
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["truncated", "empty", "a byte flipped in the body", "another magic", "another format", "garbage"]
)
def test_a_damaged_entry_is_ignored_and_replaced(lock_file: Path, tmp_path: Path, how: str) -> None:
    cache = tmp_path / "cache"
    read_lock_table(lock_file, cache)
    entry = _entry(cache, lock_file)
    good = entry.read_bytes()
    entry.write_bytes(_damaged(good, how))
    assert read_lock_table(lock_file, cache).lock() == read_lock(lock_file)
    assert entry.read_bytes() == good  # rewritten from the strict read


def _forged(entry: bytes, column: str, values: tuple[object, ...]) -> bytes:
    """The entry with one column replaced and its checksum recomputed, as only someone writing the cache could."""
    header = struct.Struct("<8sH32s32s32s")
    sizes = struct.Struct(f"<{2 + len(PACKAGE_COLUMNS)}Q")
    magic, version, reader, digest, _ = header.unpack_from(entry)
    count, *lengths = sizes.unpack_from(entry, header.size)
    parts, at = [], header.size + sizes.size
    for length in lengths:
        parts.append(entry[at : at + length])
        at += length
    parts[1 + PACKAGE_COLUMNS.index(column)] = marshal.dumps(values, 4)
    packed = sizes.pack(count, *map(len, parts))
    checksum = hashlib.sha256(packed + b"".join(parts)).digest()
    return header.pack(magic, version, reader, digest, checksum) + packed + b"".join(parts)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("size", ("100", "100", "100")),  # strings where the reader gives integers
        ("size", (-1, 100, 100)),
        ("queries", (("curl",), (), [])),
        ("name", ("curl", "libcurl4")),  # one value short
    ],
)
def test_a_column_of_the_wrong_shape_makes_the_lock_be_read_strictly(
    lock_file: Path, tmp_path: Path, column: str, values: tuple[object, ...]
) -> None:
    cache = tmp_path / "cache"
    read_lock_table(lock_file, cache)
    entry = _entry(cache, lock_file)
    entry.write_bytes(_forged(entry.read_bytes(), column, values))
    table = read_lock_table(lock_file, cache)
    assert table.columns[column] == tuple(getattr(p, column) for p in rich_lock().packages)
    assert table.lock() == read_lock(lock_file)


def test_an_entry_made_by_another_reader_is_not_used(
    lock_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    read_lock_table(lock_file, cache)
    made = _entry(cache, lock_file).read_bytes()
    monkeypatch.setattr(lockcache, "_READER", hashlib.sha256(b"a reader that checks more").digest())
    assert read_lock_table(lock_file, cache).lock() == read_lock(lock_file)
    assert _entry(cache, lock_file).read_bytes() != made  # replaced by this reader's entry
    _no_strict_read(monkeypatch)
    assert read_lock_table(lock_file, cache).lock() == read_lock(lock_file)


def test_a_bad_lock_is_refused_even_beside_the_entry_of_a_good_one(lock_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    read_lock_table(lock_file, cache)
    good_entry = _entry(cache, lock_file)
    lock_file.write_text(lock_file.read_text().replace('filename = "pool/main/c/curl/', 'filename = "pool/../', 1))
    # the good lock's entry, copied to the name of the bad lock's bytes: its inside names other bytes
    _entry(cache, lock_file).write_bytes(good_entry.read_bytes())
    with pytest.raises(LockError, match=r"bookworm.lock:\d+:\d+: \[\[package\]\] #1 filename: .* contains '\.\.'"):
        read_lock_table(lock_file, cache)
    with pytest.raises(LockError, match=r"contains '\.\.'"):
        read_lock_tables(lock_file.parents[1], cache)


def test_a_changed_lock_is_a_miss(lock_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = read_lock_table(lock_file, cache).lock()
    changed = replace(first, packages=(replace(first.packages[0], size=101), *first.packages[1:]))
    write_lock(lock_file, changed)
    assert read_lock_table(lock_file, cache).lock() == changed
    assert len(list((cache / "parsed-locks").iterdir())) == 2


def test_a_lock_at_another_source_s_place_is_refused_from_the_cache_too(lock_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert [t.source.id for t in read_lock_tables(lock_file.parents[1], cache)] == ["debian/bookworm"]
    moved = lock_file.parents[1] / "debian" / "trixie.lock"
    lock_file.rename(moved)
    with pytest.raises(LockError, match=r"trixie.lock:\d+:\d+: \[source\] id 'debian/bookworm' does not match"):
        read_lock_tables(lock_file.parents[1], cache)


def test_an_unwritable_cache_only_costs_speed(lock_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache directory should be")
    assert read_lock_table(lock_file, cache).lock() == read_lock(lock_file)


def _read_in_child(lock_file: str, cache: str) -> str:
    return dumps_lock(read_lock_table(lock_file, Path(cache)).lock())


def test_concurrent_cold_readers_leave_one_whole_entry(lock_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        texts = pool.starmap(_read_in_child, [(str(lock_file), str(cache))] * 8)
    assert set(texts) == {lock_file.read_text()}
    assert [path.name for path in (cache / "parsed-locks").iterdir()] == [_entry(cache, lock_file).name]
    assert read_lock_table(lock_file, cache).lock() == read_lock(lock_file)


def test_stale_entries_are_those_of_other_bytes(lock_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    read_lock_table(lock_file, cache)
    kept = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    stray = cache / "parsed-locks" / ".x.tmp"
    stray.write_bytes(b"left by a killed write")
    assert stale_entries(cache, {kept}) == [stray]
    assert stale_entries(cache, set()) == sorted([stray, _entry(cache, lock_file)])
    assert stale_entries(tmp_path / "nothing", set()) == []
