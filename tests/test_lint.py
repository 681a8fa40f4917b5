"""The code passes its own linters (ruff's checks and format, mypy --strict), so CI holds every change to the
style the project chose; the linters' versions are pinned in pyproject.toml's ``test`` extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import REPO_ROOT

ROOT = REPO_ROOT
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "minimirror", "tests", "benchmarks"],
        ["ruff", "format", "--check", "minimirror", "tests", "benchmarks"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_the_linters_pass(command: list[str], tmp_path: Path) -> None:
    tool = BIN / command[0]
    if not tool.exists():
        pytest.skip(f"{command[0]} is not installed beside {sys.executable} (pip install -e '.[test]')")
    extra = ["--cache-dir", str(tmp_path / "mypy-cache")] if command[0] == "mypy" else ["--no-cache"]
    result = subprocess.run([str(tool), *command[1:], *extra], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
