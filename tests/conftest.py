"""Shared pytest configuration. Fixture archives live in tests/fixtures (importable as ``fixtures``)."""

from __future__ import annotations

pytest_plugins = ["fixtures.plugin"]
