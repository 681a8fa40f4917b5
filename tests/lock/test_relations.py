"""Relationship fields: parsing into alternatives and Policy 7.1/7.5 satisfaction."""

from __future__ import annotations

import pytest
from debian.deb822 import PkgRelation
from fixtures import REPO_ROOT

from minimirror.lock.relations import Alternative, architectures_for, parse_relations, satisfies
from minimirror.upstream.index import iter_packages


def test_groups_alternatives_qualifiers_and_legacy_operators() -> None:
    assert parse_relations("libc6 (>= 2.34), python3:any | python3-minimal (< 3.12), foo (> 1)") == (
        (Alternative("libc6", ">=", "2.34"),),
        (Alternative("python3", archqual="any"), Alternative("python3-minimal", "<=", "3.12")),
        (Alternative("foo", ">=", "1"),),
    )
    assert str(Alternative("python3", "<<", "3.12", "any")) == "python3:any (<< 3.12)"


@pytest.mark.parametrize(
    ("version", "op", "wanted", "expected"),
    [
        ("1.0", None, None, True),
        (None, ">=", "1.0", False),  # an unversioned Provides never satisfies a versioned relation
        ("1:0.9", ">>", "2.0", True),  # the epoch wins
        ("1.0~rc1", "<<", "1.0", True),
        ("1.0", "=", "1.0-0", True),  # an absent revision compares as "0", as dpkg does
        ("2.36-9", "<=", "2.36-9", True),
        ("not a version!", ">=", "1", False),
    ],
)
def test_satisfies(version: str | None, op: str | None, wanted: str | None, expected: bool) -> None:
    assert satisfies(version, op, wanted) is expected


def test_architectures() -> None:
    assert architectures_for(Alternative("a"), "arm64") == ("arm64", "all")
    assert architectures_for(Alternative("a", archqual="native"), "arm64") == ("arm64", "all")
    assert architectures_for(Alternative("a", archqual="i386"), "amd64") == ("i386",)


def test_equal_groups_are_shared_and_odd_text_parses_as_python_debian_does() -> None:
    first, second = parse_relations("libc6 (>= 2.34), zlib1g"), parse_relations("zlib1g,libc6 (>= 2.34) ")
    assert first[0] is second[1] and first[1] is second[0]
    # a trailing comma and a continuation line, as python-debian reads them (raw text kept when it cannot parse)
    assert parse_relations("a,\n b | c:amd64 (<< 2),") == (
        (Alternative("a"),),
        (Alternative("b"), Alternative("c", "<<", "2", "amd64")),
        (Alternative(""),),
    )


REAL_INDEX = REPO_ROOT.parent / "shared" / "data" / "debian-bookworm" / "dists/bookworm/main/binary-amd64/Packages.xz"
_FIELDS = (
    *("Pre-Depends", "Depends", "Conflicts", "Breaks", "Recommends", "Suggests", "Replaces", "Enhances"),
    "Provides",
)


def _python_debian(text: str) -> tuple[tuple[Alternative, ...], ...]:
    legacy = {"<": "<=", ">": ">="}
    return tuple(
        tuple(
            Alternative(
                item["name"],
                legacy.get(item["version"][0], item["version"][0]) if item["version"] else None,
                item["version"][1] if item["version"] else None,
                item["archqual"],
            )
            for item in group
        )
        for group in PkgRelation.parse_relations(text)
    )


@pytest.mark.slow
def test_every_relation_field_of_debian_12_main_parses_as_python_debian_parses_it() -> None:
    if not REAL_INDEX.is_file():
        pytest.skip(f"real Debian index not found at {REAL_INDEX} (../shared/data is not beside this checkout)")
    checked = 0
    for package in iter_packages(REAL_INDEX):
        for field in _FIELDS:
            text = package.field(field)
            if text:
                assert parse_relations(text) == _python_debian(text), (str(package), field)
                checked += 1
    assert checked > 100_000


@pytest.mark.parametrize(
    "text",
    [
        "libc6 (>= 2.34)",
        "python3:any",
        "foo:amd64 (<<2)",
        "foo ( >= 1.0 )",
        "foo(= 1:2.3-4~b1+c)",
        "foo (> 1), bar (< 2)",  # legacy operators, both ways of reading
        "foo (>> 1) [amd64 !i386]",  # an architecture list: not the plain shape, python-debian reads it
        "foo <!nocheck> <stage1>",  # build restrictions: the same
        "foo [linux-any] <!nocheck>",
        "Foo_Bar",  # not a package name: python-debian keeps the raw text as the name
        "foo (>= )",
        "foo:",
        "foo (~ 1)",
        "\u00a0foo\u2003(>= 1)\u3000",  # Unicode spaces: str.strip and \\s treat them alike on both sides
        "foo\n (>= 1)",
        "",
    ],
)
def test_the_plain_shape_is_read_as_python_debian_reads_it_and_anything_else_by_python_debian(text: str) -> None:
    assert parse_relations(text) == _python_debian(text)


_TRICKY_VERSIONS = (
    "1.0",
    "1.0-0",
    "1:0.9",
    "0:1.0",
    "1.0~rc1",
    "1.0+b1",
    "2.36-9+deb12u10",
    "2.36",
    "1.0a",
    "a1",
    "1.0-",
)


@pytest.mark.parametrize("op", ["<<", "<=", "=", ">=", ">>"])
def test_satisfies_answers_as_the_three_way_comparison_does(op: str) -> None:
    """One comparison per relation (python-debian's operators) gives what -1/0/1 gave, for equal-but-differently
    written versions (``1.0`` and ``1.0-0``), epochs, tildes, and text that is not a version (never satisfied)."""
    from minimirror.sources.query import compare_versions

    meaning = {"<<": lambda o: o < 0, "<=": lambda o: o <= 0, "=": lambda o: o == 0, ">=": lambda o: o >= 0}
    meaning[">>"] = lambda o: o > 0
    for version in _TRICKY_VERSIONS:
        for wanted in _TRICKY_VERSIONS:
            try:
                expected = meaning[op](compare_versions(version, wanted))
            except ValueError:
                expected = False
            assert satisfies(version, op, wanted) is expected, (version, op, wanted)
    assert satisfies("1.0", "~", "1.0") is False  # not a relation operator
