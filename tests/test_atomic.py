"""Atomic writes: the old content or the new, never a mix, with the mode set before any byte is written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from minimirror.atomic import write_atomically


def test_replaces_content_with_fixed_modes_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "file"
    old = os.umask(0o077)
    try:
        write_atomically(target, "first\n")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        write_atomically(target, b"secret", mode=0o600, durable=True)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"secret" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["file"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "lock"
    write_atomically(target, "old\n")

    def broken(self: Path, other: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", broken)
    with pytest.raises(OSError, match="No space left"):  # the caller's disk_errors turns it into one message
        write_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lock"]
