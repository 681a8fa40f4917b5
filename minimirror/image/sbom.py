"""An SPDX 2.3 software bill of materials of every package a mirror serves, computed from its locks.

Implements the SPDX 2.3 JSON serialization (spdx.github.io/spdx-spec/v2.3: document creation information,
package information; relationships ``DESCRIBES``) and package URLs as the purl specification writes them for
Debian (``pkg:deb/<vendor>/<name>@<version>?arch=<arch>``, version percent-encoded, vendor the lock's upstream
``Origin`` lowercased).

Pure and deterministic: the same locks give the same bytes. ``created`` is ``SOURCE_DATE_EPOCH``; the
``documentNamespace`` is a name-based UUID (RFC 4122 version 5) of the locks' hash, so it is unique per set of
locks, stable across rebuilds, and names no host.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from minimirror import __version__
from minimirror.lock.lockfile import Lock, LockedPackage, dumps_lock

__all__ = ["SPDX_VERSION", "locks_sha256", "purl", "rfc3339", "sbom_bytes", "sbom_document"]

SPDX_VERSION = "SPDX-2.3"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:minimirror:spdx")  # fixed, so namespaces are stable
_NOT_ID = re.compile(r"[^A-Za-z0-9.-]+")


def rfc3339(epoch: int) -> str:
    """``2024-06-01T00:00:00Z``: the form OCI's ``created`` and SPDX's ``created`` both take."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def locks_sha256(locks: Iterable[Lock]) -> str:
    """sha256 over the locks' canonical text (what ``minimirror lock`` writes), sorted by source id.

    Each lock contributes ``<id> NUL <sha256 of its text> LF``, so the value equals one computed from the
    lock files themselves whenever they are as ``minimirror lock`` wrote them.
    """
    digest = hashlib.sha256()
    for lock in sorted(locks, key=lambda lock: lock.source.id):
        text = dumps_lock(lock).encode()
        digest.update(f"{lock.source.id}\0{hashlib.sha256(text).hexdigest()}\n".encode())
    return digest.hexdigest()


def purl(lock: Lock, package: LockedPackage) -> str:
    """``pkg:deb/<vendor>/<name>@<version>?arch=<arch>`` with every component percent-encoded."""
    vendor = lock.upstream.origin.strip().lower() or "debian"
    parts = (quote(vendor, safe=""), quote(package.name, safe=""), quote(package.version, safe=""))
    return f"pkg:deb/{parts[0]}/{parts[1]}@{parts[2]}?arch={quote(package.architecture, safe='')}"


def _spdx_id(package: LockedPackage) -> str:
    text = f"{package.name}-{package.version}-{package.architecture}-{package.sha256[:12]}"
    return "SPDXRef-Package-deb-" + _NOT_ID.sub("-", text)


def _package(lock: Lock, package: LockedPackage) -> dict[str, Any]:
    return {
        "SPDXID": _spdx_id(package),
        "name": package.name,
        "versionInfo": package.version,
        "packageFileName": package.filename.rsplit("/", 1)[-1],
        "downloadLocation": f"{lock.base_url(package).rstrip('/')}/{package.filename}",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": package.sha256}],
        "sourceInfo": f"built from the source package {package.source} {package.source_version}",
        "supplier": "NOASSERTION",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl(lock, package)}
        ],
    }


def _packages(locks: Sequence[Lock]) -> list[dict[str, Any]]:
    """One SPDX package per distinct .deb (by SPDXID), in (name, version, architecture, sha256) order."""
    found: dict[str, dict[str, Any]] = {}
    for lock in sorted(locks, key=lambda lock: lock.source.id):
        for package in lock.packages:
            found.setdefault(_spdx_id(package), _package(lock, package))
    return sorted(found.values(), key=lambda p: (p["name"], p["SPDXID"]))


def sbom_document(locks: Sequence[Lock], *, created: int, name: str = "minimirror") -> dict[str, Any]:
    """The SPDX 2.3 document (a JSON-ready dict) listing every package of ``locks``."""
    digest = locks_sha256(locks)
    packages = _packages(locks)
    return {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"urn:uuid:{uuid.uuid5(_NAMESPACE, digest)}",
        "creationInfo": {
            "created": rfc3339(created),
            "creators": [f"Tool: minimirror-{__version__}"],
            "comment": f"packages of the locks with sha256 {digest}",
        },
        "packages": packages,
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": p["SPDXID"]}
            for p in packages
        ],
    }


def sbom_bytes(locks: Sequence[Lock], *, created: int, name: str = "minimirror") -> bytes:
    """The document as indented, key-sorted JSON with a final newline (readable, and byte-stable)."""
    document = sbom_document(locks, created=created, name=name)
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
