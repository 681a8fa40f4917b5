"""Shared pytest configuration. Fixture archives live in tests/fixtures (importable as ``fixtures``)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

pytest_plugins = ["fixtures.plugin"]

_CACHE_HOME = tempfile.mkdtemp(prefix="minimirror-tests-xdg-cache-")


def pytest_configure(config: pytest.Config) -> None:
    # a command run without --cache (diff and why keep parsed locks there) writes below the session's own
    # folder, never into the user's $XDG_CACHE_HOME/minimirror
    os.environ["XDG_CACHE_HOME"] = _CACHE_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_HOME, ignore_errors=True)
