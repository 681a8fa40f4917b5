"""Why a package changed: the Debian changelog entries between two versions, their CVEs and urgency. Pure.

Implements the changelog part of the audit (``docs/audit.md``, "Changelogs and CVEs"). A binary package ships
its source package's changelog as ``usr/share/doc/<package>/changelog.Debian.gz`` (``changelog.gz`` for a native
package), and a binNMU adds ``changelog.Debian.<arch>.gz`` with the rebuild's own entry (Debian Policy 12.7,
4.4; dh_installchangelogs). :func:`changelog_entries` parses such text with python-debian's
``debian.changelog`` and keeps the entries newer than the old version and not newer than the new one, newest
first (Debian version order, Policy 5.6.12).

:class:`SourceChangelog` is what one source package of a diff gets: its entries, or why there are none
(``unknown``: not in the cache and ``--offline``; ``unreadable``: no changelog, a damaged ``.deb``, a failed
download). CVE identifiers are the ``CVE-YYYY-NNNN...`` names the entries mention (MITRE's CVE ID syntax);
the urgency is the highest of the entries' (``low < medium < high < emergency < critical``, deb-changelog(5)).
"""

from __future__ import annotations

import logging
import re
import textwrap
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from debian.changelog import ChangeBlock, Changelog
from debian.debian_support import version_compare

__all__ = [
    "URGENCIES",
    "ChangelogEntry",
    "ChangelogStatus",
    "SourceChangelog",
    "changelog_entries",
    "cve_ids",
    "gunzip_text",
    "highest_urgency",
]

# python-debian logs every line it tolerates in a non-strict parse; a changelog's old, oddly formatted entries
# are no concern of a lock review, and what matters (no entry at all) is reported in the audit's own output.
logging.getLogger("debian.changelog").setLevel(logging.ERROR)

ChangelogStatus = Literal["read", "unknown", "unreadable"]
URGENCIES = ("low", "medium", "high", "emergency", "critical")
"""deb-changelog(5)'s urgencies, lowest first."""

_CVE = re.compile(r"\bCVE-(\d{4})-(\d{4,7})\b", re.IGNORECASE)
_MAX_TEXT = 32 << 20  # a changelog that inflates past this is refused (a gzip bomb, not a changelog)


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One changelog entry: its version, distribution(s), urgency (lower case, comment dropped) and the change
    lines as written, less their common indentation and the blank lines at either end."""

    version: str
    distribution: str
    urgency: str
    text: str

    @property
    def header(self) -> str:
        return f"({self.version}) {self.distribution}; urgency={self.urgency}"

    @property
    def cves(self) -> tuple[str, ...]:
        return cve_ids(self.text)


@dataclass(frozen=True, slots=True)
class SourceChangelog:
    """The changelog of one source package of a diff, between ``old_version`` (exclusive; empty for a package
    new to the source) and ``new_version`` (inclusive), read from the ``.deb`` named ``package``.

    ``status`` ``read`` has ``entries`` (newest first); ``unknown`` and ``unreadable`` have none and ``note``
    says why. ``security_suite`` is the companion suite (``bookworm-security``) the new package comes from when
    that suite is a security suite, else empty."""

    source: str
    source_package: str
    old_version: str
    new_version: str
    status: ChangelogStatus
    entries: tuple[ChangelogEntry, ...] = ()
    note: str = ""
    package: str = ""
    security_suite: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_package)

    @property
    def cves(self) -> tuple[str, ...]:
        """Every CVE id the entries name, once each, by year and number."""
        return _sorted_cves(cve for entry in self.entries for cve in entry.cves)

    @property
    def urgency(self) -> str:
        """The highest urgency of the entries; empty when there are none."""
        return highest_urgency(entry.urgency for entry in self.entries)

    @property
    def is_security(self) -> bool:
        """A security fix: it names a CVE or comes from a security suite."""
        return bool(self.cves or self.security_suite)

    @property
    def described(self) -> str:
        """What a reader sees for the package's CVEs: the ids, ``none``, ``unknown`` or ``unreadable``."""
        if self.status != "read":
            return self.status
        return ", ".join(self.cves) or "none"


def cve_ids(text: str) -> tuple[str, ...]:
    """The CVE ids in ``text``, upper case, once each, sorted by year then number."""
    return _sorted_cves(f"CVE-{year}-{number}" for year, number in _CVE.findall(text))


def _sorted_cves(ids: Iterable[str]) -> tuple[str, ...]:
    unique = set(ids)
    return tuple(sorted(unique, key=lambda cve: tuple(int(part) for part in cve.split("-")[1:])))


def highest_urgency(urgencies: Iterable[str]) -> str:
    """The highest of ``urgencies`` by :data:`URGENCIES`; an unknown word ranks below ``low``."""
    ranked = sorted(urgencies, key=lambda u: (URGENCIES.index(u) if u in URGENCIES else -1, u))
    return str(ranked[-1]) if ranked else ""


def gunzip_text(data: bytes, *, name: str) -> str:
    """A gzipped changelog as text (UTF-8, undecodable bytes replaced); ValueError when it is not gzip."""
    inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        text = inflate.decompress(data, _MAX_TEXT)
    except zlib.error as exc:
        raise ValueError(f"{name} is not gzip: {exc}") from exc
    if inflate.unconsumed_tail:
        raise ValueError(f"{name} inflates past {_MAX_TEXT >> 20} MiB")
    return text.decode("utf-8", errors="replace")


def changelog_entries(text: str, *, old: str, new: str) -> tuple[ChangelogEntry, ...]:
    """The entries of ``text`` with ``old < version <= new``, newest first; with no such entry (a package new to
    the lock has no ``old``; a rebuild or a downgrade has no version above ``old``), the entry of ``new`` alone
    (else the newest), so every change shows what its package says about itself."""
    parsed = Changelog(_head(text, old), strict=False)
    entries = [_entry(block) for block in parsed if block.version is not None]
    if old:
        between = tuple(e for e in entries if _newer(e.version, old) and not _newer(e.version, new))
        if between:
            return between
    exact = tuple(e for e in entries if version_compare(e.version, new) == 0)
    return exact or tuple(entries[:1])


def _newer(version: str, than: str) -> bool:
    return version_compare(version, than) > 0


def _head(text: str, old: str) -> str:
    """The text up to the entry of ``old`` (kept, so a rebuild still finds its own entry), when ``old`` has an
    entry: a long changelog (glibc's has thousands of entries) is then parsed only as far as it is read."""
    if not old:
        return text
    match = re.search(rf"^\S+ \({re.escape(old)}\)", text, re.MULTILINE)
    if match is None:
        return text
    nxt = re.search(r"^\S+ \(", text[match.end() :], re.MULTILINE)
    return text if nxt is None else text[: match.end() + nxt.start()]


def _entry(block: ChangeBlock) -> ChangelogEntry:
    lines = [line.rstrip() for line in block.changes()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    urgency = (block.urgency or "").split()[0].lower() if block.urgency else ""
    return ChangelogEntry(
        version=str(block.version),
        distribution=block.distributions or "",
        urgency=urgency,
        text=textwrap.dedent("\n".join(lines)),
    )
