"""``minimirror publish`` beside ``aptly publish snapshot`` of the same packages, and ``minimirror verify``.

Two package sets. ``--fixture-debs N`` (issue 15.2, at scale): N small real ``.deb`` files made by the test
suite's own helpers (``tests/fixtures/debs.py``, ``dpkg-deb``; ``tests/fixtures/archive.py`` for the signed
archive), generated here at benchmark time and never committed, locked against the archive served on loopback
and primed into the cache. Otherwise the package set comes from the real Debian index in
``../shared/data/debian-bookworm`` (which has no pool
files): every k-th package of ``main/binary-amd64`` up to ``--packages`` (default 300), each a real ``.deb``
built by ``dpkg-deb`` with its real name and version and a payload of random bytes of its real ``Size``
(capped at ``--max-mib``), in a signed archive locked offline by :func:`minimirror.pipeline.example.write_example`.

Each tool runs in a fresh child process (wall time, peak RSS), unsigned, then signed with one throwaway
Ed25519 key (minimirror: ``sign_key``; aptly: the key imported into a private ``GNUPGHOME``, ``-gpg-key``):

    (a)  minimirror publish: read + hash every .deb, Packages{,.gz,.xz}, Release, by-hash, link the pool
    (b)  aptly repo add + snapshot create + publish snapshot, with a private aptly.conf (rootDir in a temp dir)
    (b') aptly publish snapshot alone (repo add done before, as a long-lived aptly database would have it)
    (c)  minimirror publish, signed, onto the same disk as (a) from a copy of the cache on another filesystem
         (``--copy-dir``, default /dev/shm): every pool file copied where (a) hard-links it
    (v)  ``minimirror verify`` of the signed tree (every signature, index, pool file; dose-distcheck)

and prints the ratios (a)/(b) (target <= 1.0, and <= 0.5 at 20,000 packages) and (v)/(a) (target <= 1.0).

``--baseline REV`` measures instead, in ``--repeat`` interleaved rounds (the order turned around each round, so
that the load and the page cache favour no side), the signed (b) beside the signed (a) of minimirror as
committed at REV (``git archive``, nothing checked out) and of the current code, and prints the medians (wall,
CPU, peak RSS) and the ratios of the medians. Usage::

    python benchmarks/bench_publish.py [--packages 300] [--max-mib 4] [--repeat 3]
    python benchmarks/bench_publish.py --fixture-debs 20000 [--repeat 1]
    python benchmarks/bench_publish.py --fixture-debs 20000 --keep DIR --baseline REV --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ChildRun, run_child, serve_directory

TESTS = Path(__file__).resolve().parents[1] / "tests"

INDEX = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "debian-bookworm"
    / "dists"
    / "bookworm"
    / "main"
    / "binary-amd64"
    / "Packages.xz"
)

_VERIFY = """
import sys
from pathlib import Path
from minimirror.publish.verify import verify_tree
verify_tree(Path(sys.argv[1]), keyring=Path(sys.argv[1]) / "signing-key.gpg")
"""

_PUBLISH = """
import sys
from pathlib import Path
from minimirror.publish.repository import PublishConfig, publish
key = Path(sys.argv[4]) if len(sys.argv) > 4 else None
publish(PublishConfig(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), key))
"""


def choose(count: int, max_bytes: int, seed: int = 1) -> list[tuple[str, str, int]]:
    """(name, version, size) of ``count`` packages spread over the index, sizes capped at ``max_bytes``."""
    from minimirror.upstream.index import iter_packages

    packages = sorted({p.name: p for p in iter_packages(INDEX)}.values(), key=lambda p: p.name)
    step = max(1, len(packages) // count)
    chosen = packages[::step][:count]
    rng = random.Random(seed)
    return [(p.name, p.version, min(int(p.field("Size") or rng.randint(1, 1 << 20)), max_bytes)) for p in chosen]


def make_example(root: Path, count: int, max_bytes: int) -> None:
    """The archive, its lock and the primed cache under ``root`` (see :mod:`minimirror.pipeline.example`)."""
    from minimirror.pipeline.example import ExamplePackage, write_example

    rng = random.Random(2)
    packages = [
        ExamplePackage(name, version, files=((f"usr/share/{name}/payload", rng.randbytes(size)),))
        for name, version, size in choose(count, max_bytes)
    ]
    write_example(root, packages=packages)


def make_fixture(root: Path, count: int, seed: int = 3) -> None:
    """``count`` small real .debs (1-8 KiB of random payload each) built by the test helpers in two processes,
    a signed archive of them, its lock (against the archive on loopback) and a cache holding every .deb:
    the layout :func:`make_example` makes, so the rest of the benchmark is the same."""
    sys.path.insert(0, str(TESTS))
    from concurrent.futures import ProcessPoolExecutor

    from fixtures.archive import build_archive
    from fixtures.debs import FixturePackage
    from fixtures.gpgkeys import generate_signing_key

    from minimirror.lock.stage import LockConfig, lock
    from minimirror.upstream.cache import Cache

    rng = random.Random(seed)
    packages = [
        FixturePackage(
            f"bench{i:05d}", "1.0-1", files={f"usr/share/bench{i:05d}/data": rng.randbytes(rng.randint(1024, 8192))}
        )
        for i in range(count)
    ]
    debs = root / "debs"
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_build_one, packages, [debs] * count, chunksize=64))
    key = generate_signing_key(root)
    try:
        archive = build_archive(root / "archive", {"main": packages}, key=key, deb_cache=debs)
        source = root / "sources" / "bench" / "stable"
        source.mkdir(parents=True)
        (source / "packages.txt").write_text("Name (% *)\n")
        with serve_directory(archive.root) as url:
            (source / "source.txt").write_text(f"{url} file://{key.public_key_asc_path} stable main\n")
            lock(LockConfig(root / "sources", root / "locks", root / "cache"))
        cache = Cache(root / "cache")
        for deb in sorted((archive.root / "pool").rglob("*.deb")):
            cache.put_blob(deb.read_bytes())
    finally:
        key.close()
    shutil.rmtree(debs)


def _build_one(package: object, out: Path) -> None:
    from fixtures.debs import build_deb

    build_deb(package, out / "unused", cache_dir=out)  # type: ignore[arg-type]


def throwaway_key(work: Path) -> tuple[Path, str, Path]:
    """(armored secret key file, fingerprint, GNUPGHOME holding it) for both tools."""
    from minimirror.publish.sign import generate_key

    key = generate_key("bench publish key")
    secret = work / "key.asc"
    secret.write_bytes(key.secret_armored)
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", str(secret)], check=True, capture_output=True)
    return secret, key.fingerprint, home


def aptly_config(work: Path, name: str) -> Path:
    config = work / f"{name}.conf"
    settings = {"rootDir": str(work / name), "architectures": ["amd64"], "gpgProvider": "gpg", "downloadConcurrency": 1}
    config.write_text(json.dumps(settings))
    return config


def aptly_script(config: Path, debs: Path, sign: tuple[str, Path] | None, *, publish_only: bool) -> list[str]:
    base = f"aptly -config={config}"
    signing = "-skip-signing" if sign is None else f"-gpg-key={sign[0]} -batch"
    steps = [
        f"{base} repo create -distribution=stable -component=main bench",
        f"{base} repo add -remove-files=false bench {debs}",
        f"{base} snapshot create snap from repo bench",
    ]
    publish = f"{base} publish snapshot -distribution=stable {signing} snap"
    if publish_only:
        return ["bash", "-eo", "pipefail", "-c", f"{publish} > /dev/null"]
    return ["bash", "-eo", "pipefail", "-c", " && ".join(f"{s} > /dev/null" for s in [*steps, publish])]


def best(runs: list[ChildRun]) -> ChildRun:
    failed = [run for run in runs if run.returncode != 0]
    if failed:
        raise SystemExit(f"a run failed:\n{failed[0].output}")
    return min(runs, key=lambda run: run.seconds)


def run_aptly(work: Path, debs: Path, sign: tuple[str, Path] | None, repeat: int) -> tuple[ChildRun, ChildRun]:
    """(repo add + snapshot + publish, publish alone): best of ``repeat``, each in a fresh rootDir."""
    env = {**os.environ, **({"GNUPGHOME": str(sign[1])} if sign else {})}
    full, alone = [], []
    for i in range(repeat):
        config = aptly_config(work, f"aptly-{'s' if sign else 'u'}{i}")
        full.append(run_child(aptly_script(config, debs, sign, publish_only=False), env=env))
        drop = ["aptly", f"-config={config}", "publish", "drop", "stable"]
        subprocess.run(drop, capture_output=True, check=True, timeout=600)
        alone.append(run_child(aptly_script(config, debs, sign, publish_only=True), env=env))
        shutil.rmtree(work / config.stem, ignore_errors=True)
    return best(full), best(alone)


def run_minimirror(
    example: Path, work: Path, key: Path | None, repeat: int, *, verify: bool = False
) -> tuple[ChildRun, ChildRun | None]:
    """(publish, verify of the last tree when ``verify``): best of ``repeat``, each into a new ``work/public-*``."""
    runs, checks = [], []
    for i in range(repeat):
        out = work / f"public-{'s' if key else 'u'}{i}"
        args = [str(example / "locks"), str(out), str(example / "cache"), *([str(key)] if key else [])]
        runs.append(run_child([sys.executable, "-c", _PUBLISH, *args]))
        if verify and runs[-1].returncode == 0:
            checks.append(run_child([sys.executable, "-c", _VERIFY, str(out)]))
        shutil.rmtree(out, ignore_errors=True)
    return best(runs), best(checks) if checks else None


@dataclass(frozen=True)
class Row:
    label: str
    ours: ChildRun
    full: ChildRun
    alone: ChildRun
    checked: ChildRun | None


def measure(example: Path, work: Path, repeat: int) -> list[Row]:
    """(a), (b), (b') unsigned then signed, and (v) of the signed tree."""
    debs = example / "archive" / "pool"
    secret, fingerprint, home = throwaway_key(work)
    rows = []
    for label, key, sign in (("unsigned", None, None), ("signed", secret, (fingerprint, home))):
        ours, checked = run_minimirror(example, work, key, repeat, verify=key is not None)
        full, alone = run_aptly(work, debs, sign, repeat)
        rows.append(Row(label, ours, full, alone, checked))
    return rows


def measure_copies(example: Path, work: Path, elsewhere: Path, repeat: int) -> ChildRun | None:
    """(c): the signed publish onto the same disk as (a), from a copy of the cache on another filesystem
    (``elsewhere``), so every pool file is copied where (a) links it."""
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == work.stat().st_dev:
        return None
    folder = Path(tempfile.mkdtemp(prefix="bench-publish-", dir=elsewhere))
    try:
        shutil.copytree(example / "cache", folder / "cache")
        (folder / "locks").symlink_to(example / "locks")
        return run_minimirror(folder, work, work / "key.asc", repeat)[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(rows: list[Row], copied: ChildRun | None, elsewhere: Path) -> None:
    print(f"{'measurement':58} {'seconds':>8} {'peak RSS':>9}")
    for row in rows:
        named = [
            (f"(a)  minimirror publish, {row.label}", row.ours),
            (f"(b)  aptly repo add + snapshot + publish, {row.label}", row.full),
            (f"(b') aptly publish snapshot alone, {row.label}", row.alone),
        ]
        if row.checked is not None:
            named.append((f"(v)  minimirror verify of (a), {row.label}", row.checked))
        if copied is not None and row.label == "signed":
            named.append((f"(c)  minimirror publish, signed, cache in {elsewhere}", copied))
        for name, run in named:
            print(f"{name:58} {run.seconds:8.2f} {run.peak_rss_kib / 1024:6.0f} MiB")
    print()
    for row in rows:
        ratios = f"(a)/(b) {row.ours.seconds / row.full.seconds:.2f}x (target <= 0.5x)"
        verified = f"   (v)/(a) {row.checked.seconds / row.ours.seconds:.2f}x (target <= 1.0x)" if row.checked else ""
        print(f"{row.label:9} {ratios}   (a)/(b') {row.ours.seconds / row.alone.seconds:.2f}x{verified}")
    if copied is not None:
        print(f"signed    (c)/(a) {copied.seconds / rows[-1].ours.seconds:.2f}x (copies / hard links)")


_PUBLISH_FROM = (
    "import sys\nsys.path.insert(0, sys.argv.pop())\nimport minimirror\n"
    "assert minimirror.__file__.startswith(sys.path[0]), minimirror.__file__\n" + _PUBLISH
)


def baseline_tree(rev: str, work: Path) -> Path:
    """minimirror as committed at ``rev``, unpacked with ``git archive`` and byte-compiled."""
    root = work / "baseline"
    root.mkdir()
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "minimirror"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root)], check=True, stdout=subprocess.DEVNULL)
    return root


def measure_against(example: Path, work: Path, rev: str, repeat: int) -> dict[str, list[ChildRun]]:
    """``repeat`` rounds of (b) signed, (a) signed at ``rev`` and (a) signed now; the order reversed each round."""
    current = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(current / "minimirror")], check=True)
    trees = {f"(a) at {rev}": baseline_tree(rev, work), "(a) now": current}
    secret, fingerprint, home = throwaway_key(work)
    debs = example / "archive" / "pool"
    runs: dict[str, list[ChildRun]] = {"(b) aptly": [], **{name: [] for name in trees}}
    for round_ in range(repeat):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            if name == "(b) aptly":
                config = aptly_config(work, f"aptly-ab{round_}")
                script = aptly_script(config, debs, (fingerprint, home), publish_only=False)
                runs[name].append(run_child(script, env={**os.environ, "GNUPGHOME": str(home)}))
                shutil.rmtree(work / config.stem, ignore_errors=True)
                continue
            out = work / "public-ab"
            args = [str(example / "locks"), str(out), str(example / "cache"), str(secret), str(trees[name])]
            runs[name].append(run_child([sys.executable, "-P", "-c", _PUBLISH_FROM, *args]))
            shutil.rmtree(out, ignore_errors=True)
        for name, found in runs.items():
            if found[-1].returncode != 0:
                raise SystemExit(f"{name} failed:\n{found[-1].output[-2000:]}")
    return runs


def report_against(runs: dict[str, list[ChildRun]]) -> None:
    medians = {name: statistics.median(r.seconds for r in found) for name, found in runs.items()}
    title = f"median of {len(runs['(b) aptly'])} rounds, signed"
    print(f"{title:40} {'seconds':>8} {'cpu s':>7} {'peak RSS':>9}")
    for name, found in runs.items():
        cpu = statistics.median(r.cpu_seconds for r in found)
        rss = statistics.median(r.peak_rss_kib for r in found) / 1024
        each = " ".join(f"{r.seconds:.2f}" for r in found)
        print(f"{name:40} {medians[name]:8.2f} {cpu:7.2f} {rss:6.0f} MiB   ({each})")
    aptly = medians["(b) aptly"]
    for name in list(runs)[1:]:
        print(f"{name}/(b) {medians[name] / aptly:.2f}x (target <= 0.5x)")
    first, second = list(runs)[1:]
    print(f"{second}/{first} {medians[second] / medians[first]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--max-mib", type=float, default=4.0, help="Cap on one package's size (default 4 MiB).")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fixture-debs", type=int, default=0, help="N small .debs made by the test helpers.")
    parser.add_argument("--copy-dir", type=Path, default=Path("/dev/shm"), help="Another filesystem, for (c).")
    parser.add_argument("--keep", type=Path, default=None, help="Generate the packages here once, reuse them after.")
    parser.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", default=None, help="Signed (a) at this git revision beside (a) now and (b).")
    args = parser.parse_args()
    if args.generate_only:
        if args.fixture_debs:
            make_fixture(args.generate_only, args.fixture_debs)
        else:
            make_example(args.generate_only, args.packages, int(args.max_mib * 2**20))
        return
    if not INDEX.is_file() and not args.fixture_debs:
        print(f"skipped: {INDEX} is absent (the shared Debian index)")
        return
    if shutil.which("aptly") is None:
        print("skipped: aptly is not installed (apt-get install aptly)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        example = args.keep or work / "example"
        # in a child: Linux keeps the peak RSS across fork+exec, so ours (the parent's) must stay small
        sizes = ["--packages", str(args.packages), "--max-mib", str(args.max_mib)]
        sizes += ["--fixture-debs", str(args.fixture_debs)]
        generate = [sys.executable, __file__, *sizes, "--generate-only", str(example)]
        generated = best([run_child(generate)]) if not (example / "locks").is_dir() else ChildRun(0, 0, 0, "")
        debs = list((example / "archive" / "pool").rglob("*.deb"))
        if args.baseline:
            print(f"{len(debs)} packages in {example}")
            report_against(measure_against(example, work, args.baseline, args.repeat))
            return
        rows = measure(example, work, args.repeat)
        copied = measure_copies(example, work, args.copy_dir, args.repeat)
        what = "names and versions from bookworm main"
        if args.fixture_debs:
            what = f"small .debs by tests/fixtures/debs.py, made in {generated.seconds:.0f} s"
        mib = sum(p.stat().st_size for p in debs) / 2**20
        print(f"{len(debs)} packages ({what}), {mib:.0f} MiB; best of {args.repeat}")
        report(rows, copied, args.copy_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
