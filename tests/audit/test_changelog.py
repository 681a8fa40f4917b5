"""Picking changelog entries between two versions, and their CVEs and urgency (minimirror.audit.changelog)."""

from __future__ import annotations

import gzip

import pytest
from fixtures.debs import ChangelogEntry, changelog_text

from minimirror.audit.changelog import changelog_entries, cve_ids, gunzip_text, highest_urgency

OPENSSL = changelog_text(
    "openssl",
    [
        ChangelogEntry("3.0.13-1~deb12u1", ["* Fix CVE-2024-0727 and cve-2023-6237."], "bookworm-security", "high"),
        ChangelogEntry("3.0.12-1", ["* Fix CVE-2023-5678.", "* Fix CVE-2024-0727 (again)."], urgency="medium"),
        ChangelogEntry("3.0.11-1", ["* New upstream release."], urgency="low"),
        ChangelogEntry("3.0.10-1", ["* Fix CVE-2023-2650."], urgency="critical"),
        ChangelogEntry("3.0.9-1", ["* Older."]),
    ],
)


def test_entries_between_old_exclusive_and_new_inclusive_newest_first() -> None:
    entries = changelog_entries(OPENSSL, old="3.0.10-1", new="3.0.13-1~deb12u1")
    assert [e.version for e in entries] == ["3.0.13-1~deb12u1", "3.0.12-1", "3.0.11-1"]
    assert entries[0].distribution == "bookworm-security" and entries[0].urgency == "high"
    assert entries[0].text == "* Fix CVE-2024-0727 and cve-2023-6237."
    # the old version's CVE is not claimed by the upgrade; ids are upper-cased, once each, by year and number
    assert sorted({c for e in entries for c in e.cves}) == ["CVE-2023-5678", "CVE-2023-6237", "CVE-2024-0727"]
    assert highest_urgency(e.urgency for e in entries) == "high"


def test_a_new_package_or_a_rebuild_shows_the_entry_of_its_own_version() -> None:
    assert [e.version for e in changelog_entries(OPENSSL, old="", new="3.0.12-1")] == ["3.0.12-1"]
    assert [e.version for e in changelog_entries(OPENSSL, old="3.0.12-1", new="3.0.12-1")] == ["3.0.12-1"]


def test_an_old_version_missing_from_the_changelog_reads_it_all_down_to_older_versions() -> None:
    versions = [e.version for e in changelog_entries(OPENSSL, old="3.0.9-2", new="3.0.12-1")]
    assert versions == ["3.0.12-1", "3.0.11-1", "3.0.10-1"]


def test_cve_ids_are_sorted_numerically_and_partial_ids_ignored() -> None:
    text = "CVE-2024-10000, CVE-2024-9999, CVE-2023-1234; not CVE-2024-12 nor XCVE-2024-1111x"
    assert cve_ids(text) == ("CVE-2023-1234", "CVE-2024-9999", "CVE-2024-10000")


def test_urgency_ranking_and_unknown_words() -> None:
    assert highest_urgency(["medium", "emergency", "high"]) == "emergency"
    assert highest_urgency(["bogus", "low"]) == "low"
    assert highest_urgency([]) == ""


def test_garbage_gives_no_entries_and_bad_gzip_a_clear_error() -> None:
    assert changelog_entries("not a changelog\n<script>\n", old="1", new="2") == ()
    assert gunzip_text(gzip.compress("é".encode()), name="x.gz") == "é"
    with pytest.raises(ValueError, match=r"x\.gz is not gzip"):
        gunzip_text(b"plain text", name="x.gz")
