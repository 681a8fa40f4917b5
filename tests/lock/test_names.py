"""Which names a query can match (``minimirror.lock.names``): the narrowing must never drop a package the query
matches, on fixture indices and on the real Debian 12 index (checked against a scan of every package)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import REPO_ROOT

from minimirror.lock.names import matching_names, name_test
from minimirror.package import Package
from minimirror.sources.query import parse_query
from minimirror.upstream.index import PackageIndex, iter_packages

PACKAGES = [
    Package("nginx", "1.22", "amd64", {"Provides": "httpd", "Priority": "optional"}),
    Package("nginx-light", "1.22", "all", {"Provides": "httpd (= 1.22)"}),
    Package("apache2", "2.4", "amd64", {"Provides": "httpd", "Priority": "optional"}),
    Package("libnginx-mod-http", "1.22", "amd64"),
    Package("python3", "3.11", "amd64"),
    Package("python3-pip", "23.0", "all"),
]


def _index() -> PackageIndex:
    return PackageIndex.build([("main", PACKAGES)])


def _scan(index: PackageIndex, text: str) -> list[Package]:
    query = parse_query(text)
    return [p for p in index if query.matches(p)]


def _narrowed(index: PackageIndex, text: str) -> list[Package]:
    query = parse_query(text)
    names = matching_names(query, index.names(), lambda name: [p.name for p, _ in index.providers(name)])
    return [p for name in names for p in index.by_name(name) if query.matches(p)]


QUERIES = [
    "Name (% nginx*)",
    "Name (~ ^python3)",
    "Name (= apache2)",
    "Package (% *-pip)",
    "httpd",
    "httpd (= 1.22)",
    "nginx_1.22_amd64",
    "Name (% nginx*) | python3",
    "Name (% nginx*), $Architecture (all)",
    "Name (% nginx*) | Priority (optional)",
    "!Name (% nginx*)",
    "$Version (>= 2)",
    "Name",
]


@pytest.mark.parametrize("text", QUERIES)
def test_the_narrowed_names_give_what_a_scan_of_every_package_gives(text: str) -> None:
    index = _index()
    assert _narrowed(index, text) == _scan(index, text)


def test_a_name_pattern_reads_only_the_names_it_matches() -> None:
    index = _index()
    names = matching_names(parse_query("Name (% nginx*)"), index.names(), lambda name: [])
    assert names == ["nginx", "nginx-light"]
    names = matching_names(parse_query("httpd"), index.names(), lambda name: ["apache2", "nginx"])
    assert names == ["apache2", "nginx"]


@pytest.mark.parametrize("text", ["!Name (% nginx*)", "Priority (optional)", "Name", "a | Priority (optional)"])
def test_what_does_not_narrow_by_name_says_so(text: str) -> None:
    assert name_test(parse_query(text), lambda name: []) is None


REAL_INDEX = REPO_ROOT.parent / "shared" / "data" / "debian-bookworm" / "dists/bookworm/main/binary-amd64/Packages.xz"


@pytest.mark.slow
def test_on_debian_12_main_the_narrowed_search_equals_a_full_scan() -> None:
    if not REAL_INDEX.is_file():
        pytest.skip(f"real Debian index not found at {REAL_INDEX} (../shared/data is not beside this checkout)")
    index = PackageIndex.build([("main", iter_packages(Path(REAL_INDEX)))])
    for text in ("Name (% nginx*)", "Name (~ ^python3-.*-doc$)", "mail-transport-agent", "Name (% lib*), Essential"):
        narrowed = _narrowed(index, text)
        assert narrowed == _scan(index, text), text
        assert narrowed, text
