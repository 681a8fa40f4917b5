"""Changelogs of 100 upgraded packages from a warm cache: ``minimirror diff --changelogs`` beside the dpkg tools.

Builds N real ``.deb`` files with dpkg-deb (tests/fixtures/debs.py): each a ~300 KB incompressible payload
(so decompression costs what it costs in a real package) and a 60-entry changelog naming CVEs, data members
mixed as Debian and Ubuntu ship them (70% xz, 20% zstd, 10% gzip). The old lock pins each package 5 versions
back. The blobs are put in a cache, then:

    (a) ``explain()`` in-process: per source package, re-hash the blob against the lock, stream the data member,
        parse the changelog entries, extract CVEs (what ``--changelogs --offline`` adds to a diff)
    (b) ``minimirror diff OLD NEW --changelogs --offline --format json`` as a child process (start-up included)
    (c) the peer, what a person scripts with dpkg's own tools, as one bash child: per package ``sha256sum``,
        ``dpkg-deb --fsys-tarfile | tar -xO <changelog> | gzip -dc`` and ``dpkg-parsechangelog --since OLD``

Prints a table and ratios; asserts nothing.

    python benchmarks/bench_changelog.py [--packages 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fixture .deb builder

from _loopback import byte_compile_minimirror, run_child
from fixtures.debs import ChangelogEntry, FixturePackage, build_deb, changelog_files, pool_path

from minimirror.audit.diff import diff_locks
from minimirror.audit.explain import ChangelogConfig, explain
from minimirror.lock.lockfile import Lock, LockedPackage, lock_path, write_lock
from minimirror.upstream.cache import Cache

ENTRIES = 60
BACK = 5


def _package(index: int, rng: random.Random) -> FixturePackage:
    name = f"bench{index:03d}"
    entries = [
        ChangelogEntry(
            f"1.{ENTRIES - n}-1",
            [f"* Fix CVE-2024-{1000 + index * 100 + n} in the parser.", "* Refresh patches."]
            if n % 3 == 0
            else ["* New upstream release."],
            urgency=("high", "medium", "low")[n % 3],
        )
        for n in range(ENTRIES)
    ]
    files = changelog_files(name, name, entries)
    files[f"usr/bin/{name}"] = rng.randbytes(300_000)
    compression = "xz" if index % 10 < 7 else "zstd" if index % 10 < 9 else "gzip"
    return FixturePackage(name, entries[0].version, files=files, compression=compression)


def _locked(package: FixturePackage, deb: Path, version: str) -> LockedPackage:
    data = deb.read_bytes()
    return LockedPackage(
        name=package.name,
        version=version,
        architecture="amd64",
        component="main",
        filename=pool_path(package),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        source=package.name,
        source_version=version,
        queries=(package.name,),
    )


def _setup(work: Path, count: int) -> tuple[tuple[Lock, ...], tuple[Lock, ...], list[tuple[Path, str, str]]]:
    from fixtures_locks import source, upstream

    rng = random.Random(14)
    cache = Cache(work / "cache")
    new_packages, old_packages, peer = [], [], []
    for index in range(count):
        package = _package(index, rng)
        deb = build_deb(package, work / "archive")
        new = _locked(package, deb, package.version)
        old_version = f"1.{ENTRIES - BACK}-1"
        cache.put_blob(deb.read_bytes())
        new_packages.append(new)
        old_packages.append(LockedPackage(**{**_fields(new), "version": old_version, "sha256": "0" * 64}))
        peer.append((cache.blob_path(new.sha256), package.name, old_version))
    pin = source("bench/main", [p.name for p in new_packages])
    old = (Lock(source=pin, upstream=upstream(1, "1"), packages=tuple(old_packages)),)
    new = (Lock(source=pin, upstream=upstream(2, "2"), packages=tuple(new_packages)),)
    for side, locks in (("old", old), ("new", new)):
        write_lock(lock_path(work / side, "bench/main"), locks[0])
    return old, new, peer


def _fields(package: LockedPackage) -> dict[str, object]:
    return {name: getattr(package, name) for name in LockedPackage.__dataclass_fields__}


def _peer_script(work: Path, peer: list[tuple[Path, str, str]]) -> Path:
    lines = ["set -e"]
    for deb, name, old in peer:
        doc = f"./usr/share/doc/{name}/changelog.Debian.gz"
        lines.append(f"sha256sum {deb} >/dev/null")
        lines.append(f"dpkg-deb --fsys-tarfile {deb} | tar -xO {doc} | gzip -dc > {work}/cl")
        lines.append(f"dpkg-parsechangelog -l {work}/cl --since {old} --format rfc822 --all >/dev/null")
    script = work / "peer.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    byte_compile_minimirror()
    with tempfile.TemporaryDirectory(prefix="bench-changelog-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        old, new, peer = _setup(work, args.packages)
        print(f"{args.packages} packages built and cached in {time.perf_counter() - started:.1f} s")
        config = ChangelogConfig(work / "cache", offline=True)
        inproc = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            diff = explain(diff_locks(old, new), new, config)
            inproc.append(time.perf_counter() - start)
        logs = diff.changelogs or ()
        assert all(c.status == "read" and len(c.entries) == BACK for c in logs), "benchmark setup is wrong"
        cves = sum(len(c.cves) for c in logs)
        cli = [sys.executable, "-m", "minimirror", "diff", str(work / "old"), str(work / "new")]
        cli += ["--changelogs", "--offline", "--cache", str(work / "cache"), "--format", "json"]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        child = min((run_child(cli, env=env) for _ in range(args.repeat)), key=lambda run: run.seconds)
        assert child.returncode == 0, child.output[-2000:]
        script = _peer_script(work, peer)
        dpkg = min((run_child(["bash", str(script)]) for _ in range(args.repeat)), key=lambda run: run.seconds)
        assert dpkg.returncode == 0, dpkg.output[-2000:]
    best = min(inproc)
    print(f"{len(logs)} changelogs, {sum(len(c.entries) for c in logs)} entries, {cves} CVEs; best of {args.repeat}")
    print("                                              seconds")
    print(f"(a) explain(), in-process, warm cache          {best:7.3f}")
    print(f"(b) minimirror diff --changelogs --offline     {child.seconds:7.3f}")
    print(f"(c) sha256sum + dpkg-deb | tar + parsechangelog {dpkg.seconds:6.3f}")
    print(f"(b) / (c)  {child.seconds / dpkg.seconds:.2f}x")
    verdict = "met" if child.seconds <= 2 else "NOT met"
    print(f"(b) {child.seconds:.2f} s for {args.packages} packages (target <= 2 s: {verdict})")


if __name__ == "__main__":
    main()
