"""``why``: the shortest chains from a query line to a locked package, through ``required-by``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimirror.audit.why import format_chains, why
from minimirror.errors import LockError
from minimirror.lock.lockcache import read_lock_tables
from minimirror.lock.lockfile import Lock, LockedPackage, SourcePin, UpstreamPin, lock_path, write_lock

H = "0" * 64


def _package(
    node: str, queries: tuple[str, ...] = (), required_by: tuple[str, ...] = (), version: str = "1.0"
) -> LockedPackage:
    name, arch = node.split("/")
    filename = f"pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb"
    return LockedPackage(name, version, arch, "main", filename, 1, H, name, version, queries, required_by)


def _lock(*packages: LockedPackage, source_id: str = "debian/bookworm") -> Lock:
    queries = tuple(sorted({q for p in packages for q in p.queries}))
    source = SourcePin(
        source_id,
        "http://archive.example/debian/",
        "file:///k.gpg",
        "bookworm",
        ("main",),
        ("amd64", "arm64"),
        H,
        queries,
    )
    upstream = UpstreamPin("InRelease", H, datetime(2026, 1, 1, tzinfo=UTC), None, "", "", "", "", "", (), ())
    return Lock(source, upstream, packages)


GIT = _lock(
    _package("git/amd64", queries=("git",)),
    _package("curl/amd64", queries=("curl",)),
    _package("libcurl3-gnutls/amd64", required_by=("git/amd64",)),
    _package("libcurl4/amd64", required_by=("curl/amd64",)),
    _package("libnghttp2-14/amd64", required_by=("libcurl3-gnutls/amd64", "libcurl4/amd64")),
    _package("libc6/amd64", required_by=("git/amd64", "libcurl3-gnutls/amd64", "libnghttp2-14/amd64")),
    _package("zlib1g/amd64", required_by=("libc6-dev/amd64",)),
    _package("libc6-dev/amd64", queries=("build-essential", "libc6-dev (>= 2.36)"), required_by=("zlib1g/amd64",)),
)


def test_chain_through_several_levels() -> None:
    chains = why([GIT], "libcurl3-gnutls")
    assert chains == [("query: git", "git/amd64", "libcurl3-gnutls/amd64")]


def test_all_distinct_shortest_chains_from_several_queries_sorted() -> None:
    assert why([GIT], "libnghttp2-14") == [
        ("query: curl", "curl/amd64", "libcurl4/amd64", "libnghttp2-14/amd64"),
        ("query: git", "git/amd64", "libcurl3-gnutls/amd64", "libnghttp2-14/amd64"),
    ]


def test_only_the_shortest_chains_are_given() -> None:
    # libc6 is required by git directly, and also (longer) through libcurl3-gnutls and libnghttp2-14
    assert why([GIT], "libc6", "amd64") == [("query: git", "git/amd64", "libc6/amd64")]


def test_a_queried_package_is_its_own_reason() -> None:
    assert why([GIT], "git") == [("query: git", "git/amd64")]
    assert why([GIT], "libc6-dev") == [
        ("query: build-essential", "libc6-dev/amd64"),
        ("query: libc6-dev (>= 2.36)", "libc6-dev/amd64"),
    ]


def test_cycles_are_harmless() -> None:
    assert why([GIT], "zlib1g") == [
        ("query: build-essential", "libc6-dev/amd64", "zlib1g/amd64"),
        ("query: libc6-dev (>= 2.36)", "libc6-dev/amd64", "zlib1g/amd64"),
    ]
    cycle = _lock(
        _package("a/amd64", queries=("a",), required_by=("c/amd64",)),
        _package("b/amd64", required_by=("a/amd64",)),
        _package("c/amd64", required_by=("b/amd64",)),
    )
    assert why([cycle], "c") == [("query: a", "a/amd64", "b/amd64", "c/amd64")]


def test_each_architecture_and_lock_is_answered() -> None:
    arm = _lock(
        _package("git/arm64", queries=("git {arm64}",)),
        _package("libc6/arm64", required_by=("git/arm64",)),
        source_id="debian/arm",
    )
    assert why([GIT, arm], "libc6") == [
        ("query: git", "git/amd64", "libc6/amd64"),
        ("query: git {arm64}", "git/arm64", "libc6/arm64"),
    ]
    assert why([GIT, arm], "libc6", "arm64") == [("query: git {arm64}", "git/arm64", "libc6/arm64")]


def test_several_versions_of_a_package_merge_into_one_step() -> None:
    lock = _lock(
        _package("docker-ce/amd64", queries=("$Version (>= 5:24)",), version="5:24.0.9"),
        _package("docker-ce/amd64", queries=("$Version (>= 5:24)",), version="5:24.0.10"),
        _package("containerd.io/amd64", required_by=("docker-ce/amd64",)),
    )
    assert why([lock], "containerd.io") == [("query: $Version (>= 5:24)", "docker-ce/amd64", "containerd.io/amd64")]


def test_diamonds_are_bounded() -> None:
    # 2**12 shortest chains through 12 diamonds: the answer is capped, and the first ones in sorted order
    packages = [_package("top/amd64", queries=("top",))]
    previous = "top/amd64"
    for level in range(12):
        left, right, join = f"l{level}/amd64", f"r{level}/amd64", f"j{level}/amd64"
        packages += [_package(left, required_by=(previous,)), _package(right, required_by=(previous,))]
        packages.append(_package(join, required_by=(left, right)))
        previous = join
    chains = why([_lock(*packages)], "j11", limit=5)
    assert len(chains) == 5
    assert chains == sorted(chains)
    assert chains[0][:3] == ("query: top", "top/amd64", "l0/amd64")
    assert all(len(chain) == 2 + 12 * 2 for chain in chains)


def test_missing_package_suggests_close_names() -> None:
    with pytest.raises(LockError, match=r"^libcurl is not in any lock; did you mean libcurl4, curl, libc6\?$"):
        why([GIT], "libcurl")
    with pytest.raises(LockError, match=r"^qwertyuiop is not in any lock$"):
        why([GIT], "qwertyuiop")


def test_missing_architecture_names_the_locked_ones() -> None:
    with pytest.raises(LockError, match=r"^git/arm64 is not in any lock \(git is locked for: amd64\)$"):
        why([GIT], "git", "arm64")


def test_locks_from_the_parsed_lock_cache_give_the_same_chains(tmp_path: Path) -> None:
    arm = _lock(
        _package("git/arm64", queries=("git {arm64}",)),
        _package("libc6/arm64", required_by=("git/arm64",)),
        source_id="debian/arm",
    )
    for lock in (GIT, arm):
        write_lock(lock_path(tmp_path / "locks", lock.source.id), lock)
    read_lock_tables(tmp_path / "locks", tmp_path / "cache")  # cold: read strictly, and cached
    warm = read_lock_tables(tmp_path / "locks", tmp_path / "cache")
    for name in ("libc6", "zlib1g", "libnghttp2-14", "git", "libcurl4"):
        assert why(warm, name) == why([GIT, arm], name)
    assert why(warm, "libc6", "arm64") == [("query: git {arm64}", "git/arm64", "libc6/arm64")]
    with pytest.raises(LockError, match=r"^libcurl is not in any lock; did you mean libcurl4, curl, libc6\?$"):
        why(warm, "libcurl")


def test_format_chains() -> None:
    text = format_chains(why([GIT], "libnghttp2-14"))
    assert text == (
        "query: curl -> curl/amd64 -> libcurl4/amd64 -> libnghttp2-14/amd64\n"
        "query: git -> git/amd64 -> libcurl3-gnutls/amd64 -> libnghttp2-14/amd64"
    )
    assert "no query leads to it" in format_chains([])
