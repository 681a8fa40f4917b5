"""Reading ``Phased-Update-Percentage`` from an index stanza the way apt 2.6 reads it (checked against apt in
tests/test_ubuntu.py, which phases real upgrades in a private root)."""

from __future__ import annotations

import logging

import pytest

from minimirror.package import Package
from minimirror.upstream.phasing import phased_update_percentage


def _phased(value: str | None) -> int | None:
    fields = {"Package": "curl"} if value is None else {"Package": "curl", "phased-update-percentage": value}
    return phased_update_percentage(Package("curl", "8.5.0-2ubuntu10.1", "amd64", fields), where="ubuntu/noble")


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("0", 0), ("30", 30), (" 100 ", 100)])
def test_the_percentage_is_read_case_insensitively(value: str | None, expected: int | None) -> None:
    assert _phased(value) == expected


@pytest.mark.parametrize("value", ["150", "abc", "-5", "3.5", ""])
def test_a_value_apt_ignores_is_ignored_with_a_warning(value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="minimirror.upstream.phasing"):
        assert _phased(value) is None
    (record,) = caplog.records
    assert record.getMessage().startswith("ubuntu/noble: curl_8.5.0-2ubuntu10.1_amd64 has Phased-Update-Percentage")
