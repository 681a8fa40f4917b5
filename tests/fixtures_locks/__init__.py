"""Hand-made lock pairs for the diff and the audit notebook, built in code and committed as files.

Each pair is ``<name>/old`` and ``<name>/new``, lock trees (``<prefix>/<name>.lock``) written by
:func:`minimirror.lock.lockfile.write_lock`. ``tests/test_diff.py`` checks the committed files are exactly what
:func:`write_pairs` writes, so after changing a builder run ``python -m fixtures_locks`` from ``tests/``.

- ``basic``: every kind of package change (added, removed, upgraded, downgraded, rebuilt, moved, several
  versions of one package), routine upstream changes (a new Release, a point release, a new query line), a
  source added and a source removed. The audit notebook's default parameters.
- ``keyrotation``: the upstream signing key replaced and a package rebuilt under the same version, the
  picture of a compromised upstream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from minimirror.lock.lockfile import IndexPin, Lock, LockedPackage, SourcePin, UpstreamPin, lock_path, write_lock

HERE = Path(__file__).parent
KEY_A = "4D64FEC119C2029067D6E791F8D2585B8783D481"
KEY_B = "05AB90340C0C5E797F44A8C6DCA5DD5FCC0AB8A4"
KEY_EVIL = "0123456789ABCDEF0123456789ABCDEF01234567"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pkg(
    name: str,
    version: str,
    *,
    size: int = 1000,
    arch: str = "amd64",
    component: str = "main",
    source: str | None = None,
    queries: Sequence[str] = (),
    required_by: Sequence[str] = (),
    build: str = "",
) -> LockedPackage:
    """A locked package whose sha256 derives from name, version, arch and ``build`` (change it to rebuild)."""
    src = source or name
    plain = version.split(":", 1)[-1]
    return LockedPackage(
        name=name,
        version=version,
        architecture=arch,
        component=component,
        filename=f"pool/{component}/{src[0]}/{src}/{name}_{plain}_{arch}.deb",
        size=size,
        sha256=sha(f"{name} {version} {arch} {build}"),
        source=src,
        source_version=version,
        queries=tuple(queries),
        required_by=tuple(required_by),
    )


def source(source_id: str, queries: Sequence[str], *, components: Sequence[str] = ("main",)) -> SourcePin:
    return SourcePin(
        id=source_id,
        url="http://archive.example/debian/",
        key_url="file:///usr/share/keyrings/archive-example.gpg",
        dist="stable",
        components=tuple(components),
        architectures=("amd64",),
        inputs_sha256=sha("inputs " + " ".join(sorted(queries)) + " ".join(components)),
        queries=tuple(queries),
    )


def upstream(
    day: int, version: str, signed_by: Sequence[str] = (KEY_A,), components: Sequence[str] = ("main",)
) -> UpstreamPin:
    return UpstreamPin(
        release="InRelease",
        release_sha256=sha(f"release {day} {version} {signed_by}"),
        date=datetime(2026, 7, day, 10, 0, 0, tzinfo=UTC),
        valid_until=None,
        origin="Example",
        label="Example",
        suite="stable",
        codename="example",
        version=version,
        signed_by=tuple(signed_by),
        indices=tuple(
            IndexPin(f"{c}/binary-amd64/Packages.xz", c, "amd64", 4000 + day, sha(f"index {c} {day}"))
            for c in components
        ),
    )


def _basic_old() -> tuple[Lock, ...]:
    queries = ("web", "shell", "Name (docker-ce), $Version (% 5:24.*)", "tool")
    stable = Lock(
        source=source("fixture/stable", queries, components=("contrib", "main")),
        upstream=upstream(1, "12.1", components=("contrib", "main")),
        packages=(
            pkg("web", "1.0", size=50_000, source="web-src", queries=["web"]),
            pkg("libssl3", "3.0.1", size=2_000_000, source="openssl", required_by=["web/amd64"]),
            pkg("shell", "5.2", size=1_500_000, queries=["shell"]),
            pkg("libc6", "2.37", size=3_000_000, source="glibc", required_by=["shell/amd64", "web/amd64"]),
            pkg("oldlib", "0.9", size=40_000, required_by=["shell/amd64"]),
            pkg("tool", "2.0-1", size=120_000, queries=["tool"]),
            pkg("tzdata", "2025a-1", size=300_000, arch="all", required_by=["shell/amd64"]),
            *(
                pkg("docker-ce", v, size=20_000_000, component="contrib", queries=[queries[2]])
                for v in ("5:24.0.9-1", "5:24.0.10-1")
            ),
        ),
    )
    gone = Lock(
        source=source("fixture/gone", ("legacy",)),
        upstream=upstream(1, "11.9"),
        packages=(pkg("legacy", "1.0", size=10_000, queries=["legacy"]),),
    )
    return (stable, gone)


def _basic_new() -> tuple[Lock, ...]:
    queries = ("web", "shell", "Name (docker-ce), $Version (% 5:24.*)", "tool", "editor")
    docker_query = queries[2]
    stable = Lock(
        source=source("fixture/stable", queries, components=("contrib", "main")),
        upstream=upstream(8, "12.2", components=("contrib", "main")),
        packages=(
            pkg("web", "1.0", size=50_000, source="web-src", queries=["web"]),
            pkg("libssl3", "3.0.2", size=2_100_000, source="openssl", required_by=["web/amd64"]),
            pkg("shell", "5.2", size=1_500_000, queries=["shell"], build="rebuilt upstream"),
            pkg("libc6", "2.37", size=3_000_000, source="glibc", required_by=["editor/amd64", "shell/amd64"]),
            pkg("tool", "1.9-1", size=110_000, queries=["tool"]),
            pkg("tzdata", "2025a-1", size=300_000, arch="all", component="contrib", required_by=["shell/amd64"]),
            pkg("editor", "9.0", size=1_200_000, source="vim", queries=["editor"]),
            pkg("editor-common", "9.0", size=400_000, arch="all", source="vim", required_by=["editor/amd64"]),
            *(
                pkg("docker-ce", v, size=20_000_000 + 5_000 * i, component="contrib", queries=[docker_query])
                for i, v in enumerate(("5:24.0.10-1", "5:24.0.11-1"))
            ),
        ),
    )
    extra = Lock(
        source=source("fixture/extra", ("extra-tool",)),
        upstream=upstream(8, "1.0"),
        packages=(pkg("extra-tool", "0.1", size=25_000, queries=["extra-tool"]),),
    )
    return (extra, stable)


def _keyrotation() -> tuple[tuple[Lock, ...], tuple[Lock, ...]]:
    packages = (
        pkg("web", "1.0", size=50_000, source="web-src", queries=["web"]),
        pkg("libc6", "2.37", size=3_000_000, source="glibc", required_by=["web/amd64"]),
    )
    old = Lock(source("mirror/main", ("web",)), upstream(1, "12.1", signed_by=(KEY_A, KEY_B)), packages)
    tampered = replace(packages[1], sha256=sha("libc6 tampered"), size=3_000_512)
    new = Lock(source("mirror/main", ("web",)), upstream(2, "12.1", signed_by=(KEY_EVIL,)), (packages[0], tampered))
    return (old,), (new,)


def pairs() -> dict[str, tuple[tuple[Lock, ...], tuple[Lock, ...]]]:
    """Every pair by name: (old locks, new locks), each side sorted by source id as the readers return it."""
    built = {"basic": (_basic_old(), _basic_new()), "keyrotation": _keyrotation()}
    return {name: (_by_id(old), _by_id(new)) for name, (old, new) in built.items()}


def _by_id(locks: Sequence[Lock]) -> tuple[Lock, ...]:
    return tuple(sorted(locks, key=lambda lock: lock.source.id))


def write_pairs(root: Path = HERE) -> list[Path]:
    """Write every pair below ``root`` (``<pair>/old``, ``<pair>/new``); the files written."""
    written = []
    for name, sides in pairs().items():
        for side, locks in zip(("old", "new"), sides, strict=True):
            for lock in locks:
                path = lock_path(root / name / side, lock.source.id)
                write_lock(path, lock)
                written.append(path)
    return sorted(written)
