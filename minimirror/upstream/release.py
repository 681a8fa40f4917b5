"""The ``Release`` file of an APT archive (Debian RepositoryFormat, "Release files"), parsed once verified.

python-debian's ``Release`` does the deb822 parsing; this module turns it into a typed value and checks what
minimirror relies on: a parsable ``Date`` and ``Valid-Until``, sha256 entries with sizes, and index names that
stay inside ``dists/<dist>/`` (a name with ``..`` or a leading ``/`` is refused, whatever signed it).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from debian.deb822 import Release

from minimirror.errors import ArchiveError

__all__ = ["IndexEntry", "ReleaseFile", "parse_release"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One file a Release vouches for: its path below ``dists/<dist>/``, size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    origin: str
    label: str
    suite: str
    codename: str
    version: str
    date: datetime
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    no_support_for_architecture_all: bool
    files: Mapping[str, IndexEntry] = field(repr=False)
    minimirror: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The ``Minimirror-*`` fields minimirror's own published Release files carry (a group, a pin, expected
    gaps; see ``minimirror.publish.grouping``), by field name."""

    def is_expired(self, now: datetime) -> bool:
        return self.valid_until is not None and now > self.valid_until


def parse_release(content: bytes, *, name: str) -> ReleaseFile:
    """Parse verified Release text. ``name`` (the URL) is named in every error."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{name}: not UTF-8 at byte {exc.start}") from exc
    stanza = Release(text)
    if not stanza:
        raise ArchiveError(f"{name}: empty Release file")
    date_text = stanza.get("Date")
    if not date_text:
        raise ArchiveError(f"{name}: the Release file has no Date field")
    return ReleaseFile(
        origin=stanza.get("Origin", ""),
        label=stanza.get("Label", ""),
        suite=stanza.get("Suite", ""),
        codename=stanza.get("Codename", ""),
        version=stanza.get("Version", ""),
        date=_parse_date(date_text, name, "Date"),
        valid_until=_parse_date(stanza["Valid-Until"], name, "Valid-Until") if stanza.get("Valid-Until") else None,
        architectures=tuple(stanza.get("Architectures", "").split()),
        components=tuple(stanza.get("Components", "").split()),
        acquire_by_hash=stanza.get("Acquire-By-Hash", "no").strip().lower() == "yes",
        no_support_for_architecture_all="Packages" in stanza.get("No-Support-for-Architecture-all", "").split(),
        files=_sha256_entries(stanza, name),
        minimirror={key: str(value) for key, value in stanza.items() if key.lower().startswith("minimirror-")},
    )


def _parse_date(value: str, name: str, field_name: str) -> datetime:
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"{name}: cannot read {field_name} {value.strip()!r} (RFC 2822 expected)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sha256_entries(stanza: Release, name: str) -> dict[str, IndexEntry]:
    entries: dict[str, IndexEntry] = {}
    for item in stanza.get("SHA256", []):
        path, size, digest = item.get("name", ""), item.get("size", ""), item.get("sha256", "").lower()
        if not path or not size.isdigit() or not _SHA256.match(digest):
            raise ArchiveError(f"{name}: malformed SHA256 line for {path or '(no name)'!r}")
        if path.startswith("/") or ".." in path.split("/"):
            raise ArchiveError(f"{name}: refusing index path {path!r} outside the dist directory")
        if path in entries and entries[path].sha256 != digest:
            raise ArchiveError(f"{name}: {path} is listed twice with different hashes")
        entries[path] = IndexEntry(path=path, size=int(size), sha256=digest)
    if not entries:
        raise ArchiveError(f"{name}: the Release file lists no SHA256 hashes (MD5/SHA1 alone are not trusted)")
    return entries
