"""The project's own example: examples/sources locked into locks/, reviewed like code and kept fresh.

The lock was made against the real Debian 12 index (../shared/data, served at the example's placeholder URL);
these checks need no network: a packages.txt edited without re-locking fails here, as `lock --check` does in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minimirror.cli import main
from minimirror.lockfile import read_locks

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--sources", str(ROOT / "examples" / "sources"), "--locks", str(ROOT / "locks")]


def test_the_example_lock_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", "--check", *ARGS]) == 0, capsys.readouterr().err


def test_the_example_lock_holds_every_query_and_explains_its_packages(capsys: pytest.CaptureFixture[str]) -> None:
    (lock,) = read_locks(ROOT / "locks")
    names = {p.name for p in lock.packages}
    for wanted in ("ceph-common", "rbd-nbd", "openssh-server", "curl", "python3", "openvswitch-switch", "lvm2"):
        assert wanted in names
    assert lock.upstream.signed_by and lock.upstream.codename == "bookworm"
    assert main(["why", "--locks", str(ROOT / "locks"), "libssl3"]) == 0
    assert "query: " in capsys.readouterr().out
