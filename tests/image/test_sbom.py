"""The SPDX 2.3 SBOM of a mirror's locks: document shape, every package with checksum and purl, determinism."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

from minimirror.image.sbom import locks_sha256, purl, sbom_bytes, sbom_document
from minimirror.lock.lockfile import Lock, LockedPackage, SourcePin, UpstreamPin, dumps_lock, loads_lock

EPOCH = 1_717_200_000  # 2024-06-01T00:00:00Z
SPDX_ID = re.compile(r"^SPDXRef-[A-Za-z0-9.-]+$")


def package(name: str, version: str, arch: str = "amd64", sha: str = "a") -> LockedPackage:
    filename = f"pool/main/{name[0]}/{name}/{name}_{version.rsplit(':', maxsplit=1)[-1]}_{arch}.deb"
    return LockedPackage(name, version, arch, "main", filename, 1234, sha * 64, name, version, queries=(name,))


def lock(source_id: str, origin: str, packages: tuple[LockedPackage, ...]) -> Lock:
    source = SourcePin(
        source_id, "http://archive.example/debian", "http://archive.example/key.asc", "bookworm", ("main",),
        ("amd64",), "0" * 64, tuple(p.name for p in packages),
    )  # fmt: skip
    date = datetime(2024, 6, 1, tzinfo=UTC)
    upstream = UpstreamPin(
        "InRelease", "1" * 64, date, None, origin, origin, "stable", "bookworm", "12.5", ("F" * 40,), ()
    )
    return Lock(source, upstream, packages)


LOCKS = (
    lock("debian/bookworm", "Debian", (package("curl", "7.88.1-10", sha="b"), package("libc6", "2.36-9", sha="c"))),
    lock("docker/bookworm", "Docker", (package("containerd.io", "1:1.6.28+dfsg~1", sha="d"),)),
)


def test_document_shape_is_spdx_2_3() -> None:
    doc = sbom_document(LOCKS, created=EPOCH, name="minimirror test")
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT" and doc["name"] == "minimirror test"
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", doc["documentNamespace"]
    )
    assert doc["creationInfo"]["created"] == "2024-06-01T00:00:00Z"
    assert doc["creationInfo"]["creators"][0].startswith("Tool: minimirror-")
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) == 3 and all(SPDX_ID.match(i) for i in ids)
    assert doc["relationships"] == [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": i} for i in ids
    ]
    required = {"SPDXID", "name", "versionInfo", "downloadLocation", "filesAnalyzed", "checksums", "externalRefs"}
    assert all(required <= set(p) for p in doc["packages"])


def test_every_package_with_sha256_and_purl() -> None:
    doc = sbom_document(LOCKS, created=EPOCH)
    by_name = {p["name"]: p for p in doc["packages"]}
    assert sorted(by_name) == ["containerd.io", "curl", "libc6"]
    curl = by_name["curl"]
    assert curl["versionInfo"] == "7.88.1-10"
    assert curl["checksums"] == [{"algorithm": "SHA256", "checksumValue": "b" * 64}]
    assert curl["downloadLocation"] == "http://archive.example/debian/pool/main/c/curl/curl_7.88.1-10_amd64.deb"
    assert curl["externalRefs"] == [
        {
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": "pkg:deb/debian/curl@7.88.1-10?arch=amd64",
        }
    ]
    refs = by_name["containerd.io"]["externalRefs"][0]["referenceLocator"]
    assert refs == "pkg:deb/docker/containerd.io@1%3A1.6.28%2Bdfsg~1?arch=amd64"  # vendor from Origin, encoded


def test_purl_vendor_is_the_lowercased_origin_and_empty_falls_back() -> None:
    pkg = package("bash", "5.2.15-2", arch="all")
    assert purl(lock("a/b", "Ubuntu", (pkg,)), pkg) == "pkg:deb/ubuntu/bash@5.2.15-2?arch=all"
    assert purl(lock("a/b", "", (pkg,)), pkg) == "pkg:deb/debian/bash@5.2.15-2?arch=all"
    assert purl(lock("a/b", "My PPA", (pkg,)), pkg).startswith("pkg:deb/my%20ppa/")


def test_same_bytes_whatever_the_order_and_namespace_follows_the_locks() -> None:
    first = sbom_bytes(LOCKS, created=EPOCH)
    assert sbom_bytes(tuple(reversed(LOCKS)), created=EPOCH) == first
    assert json.loads(first) == sbom_document(LOCKS, created=EPOCH)
    changed = (LOCKS[0], replace(LOCKS[1], packages=(package("containerd.io", "1:1.6.31-1", sha="e"),)))
    namespaces = {json.loads(b)["documentNamespace"] for b in (first, sbom_bytes(changed, created=EPOCH))}
    assert len(namespaces) == 2
    assert locks_sha256(LOCKS) != locks_sha256(changed)


def test_locks_hash_is_over_the_canonical_lock_text() -> None:
    reread = tuple(loads_lock(dumps_lock(one), path=f"{one.source.id}.lock") for one in LOCKS)
    assert locks_sha256(reread) == locks_sha256(LOCKS)


def test_a_package_in_two_sources_is_listed_once() -> None:
    shared = package("tzdata", "2024a-0+deb12u1", arch="all", sha="f")
    locks = (lock("one/bookworm", "Debian", (shared,)), lock("two/bookworm", "Debian", (shared,)))
    assert [p["name"] for p in sbom_document(locks, created=EPOCH)["packages"]] == ["tzdata"]
