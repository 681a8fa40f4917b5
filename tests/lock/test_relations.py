"""Relationship fields: parsing into alternatives and Policy 7.1/7.5 satisfaction."""

from __future__ import annotations

import pytest

from minimirror.lock.relations import Alternative, architectures_for, parse_relations, satisfies


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
