"""Debian version ordering as minimirror.sources.query uses it, checked against dpkg itself (Debian policy 5.6.12)."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable

import pytest

from minimirror.sources.query import compare_versions

SEED = 20240607
PAIRS = 600

# dpkg reads one pair a line and prints -1, 0 or 1; one shell for all pairs keeps this to a few seconds.
DPKG_LOOP = r"""
while read -r a b; do
    if dpkg --compare-versions "$a" lt "$b"; then echo -1
    elif dpkg --compare-versions "$a" eq "$b"; then echo 0
    else echo 1
    fi
done
"""

KNOWN = [
    ("1:1.0", "2.0", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0", "1.0-0", 0),
    ("1.0", "1.0+b1", -1),
    ("1.0a", "1.0+", -1),
    ("1.0.1", "1.0a", 1),  # letters sort before every non-letter
    ("0:1.0", "1.0", 0),
    ("2.0-1", "10.0-1", -1),
    ("1.0-1ubuntu1", "1.0-1", 1),
    ("1.0-1~bpo12+1", "1.0-1", -1),
    ("1.2.3", "1.2.3", 0),
]


@pytest.mark.parametrize(("left", "right", "expected"), KNOWN)
def test_known_orderings(left: str, right: str, expected: int) -> None:
    assert compare_versions(left, right) == expected
    assert compare_versions(right, left) == -expected


def _part(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _version(rng: random.Random) -> str:
    epoch = f"{rng.randint(0, 3)}:" if rng.random() < 0.25 else ""
    upstream = rng.choice("0123456789") + _part(rng, "0123456789..+~abzAZ", rng.randint(0, 6))
    revision = f"-{_part(rng, '0123456789.+~abz', rng.randint(1, 4))}" if rng.random() < 0.5 else ""
    return epoch + upstream + revision


def _near(rng: random.Random, version: str) -> str:
    """A version a small edit away, so that equal and nearly equal pairs are common."""
    edits: list[Callable[[str], str]] = [
        lambda v: v + "~",
        lambda v: v + "+1",
        lambda v: v + ".0",
        lambda v: v + "0",
        lambda v: v + "a",
        lambda v: "0:" + v if ":" not in v else v.split(":", 1)[1],
        lambda v: v.replace("~", "", 1),
        lambda v: v + "-0" if "-" not in v else v,
        lambda v: v,
    ]
    return rng.choice(edits)(version)


def generated_pairs() -> list[tuple[str, str]]:
    rng = random.Random(SEED)
    pairs = []
    for _ in range(PAIRS):
        left = _version(rng)
        right = _near(rng, left) if rng.random() < 0.5 else _version(rng)
        pairs.append((left, right))
    return pairs


def test_generated_pairs_are_tricky_and_many() -> None:
    pairs = generated_pairs()
    assert len(pairs) >= 500
    text = " ".join(left + right for left, right in pairs)
    assert all(marker in text for marker in (":", "~", "+", ".", "-", "a"))


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is the reference and is not installed")
def test_agrees_with_dpkg_on_generated_pairs() -> None:
    pairs = generated_pairs()
    stdin = "".join(f"{left} {right}\n" for left, right in pairs)
    run = subprocess.run(["sh", "-c", DPKG_LOOP], input=stdin, capture_output=True, text=True, check=True, timeout=120)
    assert run.stderr == "", "dpkg warned: a generated version is not valid, fix the generator"
    expected = [int(line) for line in run.stdout.split()]
    assert len(expected) == len(pairs)
    mismatches = [
        (left, right, want, compare_versions(left, right))
        for (left, right), want in zip(pairs, expected, strict=True)
        if compare_versions(left, right) != want
    ]
    assert mismatches == []
    assert {-1, 0, 1} <= set(expected)  # the generator exercises every outcome
