"""``minimirror fetch`` beside ``curl --parallel`` on the same files, served on loopback.

Generates ~300 files of random bytes (~300 MB; sizes like real .debs: many small, a few large) under a
temporary directory, writes a synthetic lock naming them (with the lockfile API), serves the directory from a
threaded HTTP server in a child process (so it does not share the GIL with the fetcher), then times:

    (a) minimirror fetch -j N, cold cache (download, verify size + sha256, rename into the blob store)
    (b) curl --parallel --parallel-max N (-Z) of the same URLs (a URL config file; no verification)
    (c) minimirror fetch again, warm cache: no request; every blob re-hashed (the trust check)
    (d) plan_fetch alone on the warm cache: what (c) would cost with a size check only

Prints a table and ratios; asserts nothing. Everything stays on 127.0.0.1.

    python benchmarks/bench_fetch.py [--files 300] [--total-mb 300] [--jobs 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loopback import ChildRun, byte_compile_minimirror, run_child

from minimirror.lock.lockfile import Lock, LockedPackage, SourcePin, UpstreamPin, lock_path, read_locks, write_lock
from minimirror.publish.fetch import plan_fetch
from minimirror.upstream.cache import Cache

_SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from _loopback import serve_directory
with serve_directory(Path(sys.argv[2])) as url:
    print(url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


def sizes(count: int, total: int, rng: random.Random) -> list[int]:
    """Log-normal sizes (median ~100 kB, a long tail of multi-MB files), scaled to ``total`` bytes."""
    raw = [rng.lognormvariate(math.log(100_000), 1.8) for _ in range(count)]
    scale = total / sum(raw)
    return [max(1_000, int(value * scale)) for value in raw]


def generate(root: Path, count: int, total: int) -> list[LockedPackage]:
    rng = random.Random(20261129)
    packages = []
    for number, size in enumerate(sizes(count, total, rng)):
        name = f"pkg{number:04d}"
        filename = f"pool/main/{name[:4]}/{name}/{name}_1.0_amd64.deb"
        data = rng.randbytes(size)
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        (root / filename).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        packages.append(LockedPackage(name, "1.0", "amd64", "main", filename, size, digest, name, "1.0", (name,)))
    return packages


def write_synthetic_lock(locks: Path, url: str, packages: list[LockedPackage]) -> None:
    source = SourcePin(
        id="bench/synthetic",
        url=url,
        key_url=f"{url}/key.asc",
        dist="stable",
        components=("main",),
        architectures=("amd64",),
        inputs_sha256="0" * 64,
        queries=tuple(p.name for p in packages),
    )
    upstream = UpstreamPin(
        release="InRelease",
        release_sha256="0" * 64,
        date=datetime(2026, 11, 29, tzinfo=UTC),
        valid_until=None,
        origin="Bench",
        label="Bench",
        suite="stable",
        codename="stable",
        version="1",
        signed_by=("0" * 40,),
        indices=(),
    )
    write_lock(lock_path(locks, source.id), Lock(source=source, upstream=upstream, packages=tuple(packages)))


@contextmanager
def served(root: Path) -> Iterator[str]:
    """Serve ``root`` from a child process (ThreadingHTTPServer); yields its base URL."""
    here = str(Path(__file__).resolve().parent)
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER, here, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def curl_config(path: Path, url: str, out: Path, packages: list[LockedPackage]) -> None:
    lines = [f'url = "{url}/{p.filename}"\noutput = "{out / p.filename}"' for p in packages]
    path.write_text("\n".join(lines) + "\n")


def timed_runs(
    work: Path, fetch_argv: list[str], curl_argv: list[str], env: dict[str, str], repeat: int
) -> tuple[list[ChildRun], list[ChildRun], list[ChildRun]]:
    """``repeat`` rounds of (a) cold fetch, (c) warm fetch and (b) curl. Each timed run starts after an
    ``os.sync()``: the ~300 MB the previous run wrote are written back then, not during the next run, so both
    tools run in the same conditions whichever ran before."""
    cold, warm, curls = [], [], []
    for _ in range(repeat):
        shutil.rmtree(work / "cache", ignore_errors=True)
        os.sync()
        cold.append(run_child(fetch_argv, env=env))
        os.sync()
        warm.append(run_child(fetch_argv, env=env))
        shutil.rmtree(work / "curl-out", ignore_errors=True)
        os.sync()
        curls.append(run_child(curl_argv, env=env))
    return cold, warm, curls


def best(runs: list[ChildRun], what: str) -> float:
    for run in runs:
        if run.returncode != 0:
            raise SystemExit(f"{what} failed ({run.returncode}):\n{run.output}")
    return min(run.seconds for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--total-mb", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    curl = shutil.which("curl")
    minimirror = shutil.which("minimirror")
    if curl is None or minimirror is None:
        raise SystemExit("needs curl and the minimirror console script on PATH")
    byte_compile_minimirror()  # the measured start-up must not include compiling minimirror's sources
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        packages = generate(work / "archive", args.files, args.total_mb * 1_000_000)
        total = sum(p.size for p in packages)
        print(f"generated {len(packages)} files, {total / 1e6:.0f} MB in {time.perf_counter() - started:.1f}s")
        median = sorted(p.size for p in packages)[len(packages) // 2]
        print(f"largest {max(p.size for p in packages) / 1e6:.1f} MB, median {median / 1e3:.0f} kB")
        with served(work / "archive") as url:
            write_synthetic_lock(work / "locks", url, packages)
            config = work / "curl.conf"
            curl_config(config, url, work / "curl-out", packages)
            env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
            fetch_argv = [
                minimirror,
                "-q",
                "fetch",
                "--locks",
                str(work / "locks"),
                "--cache",
                str(work / "cache"),
                "-j",
                str(args.jobs),
            ]
            curl_argv = [
                curl,
                "-sSf",
                "--parallel",
                "--parallel-max",
                str(args.jobs),
                "--create-dirs",
                "-K",
                str(config),
            ]
            cold, warm, curls = timed_runs(work, fetch_argv, curl_argv, env, args.repeat)
            started = time.perf_counter()
            plan = plan_fetch(read_locks(work / "locks"), Cache(work / "cache"))
            plan_seconds = time.perf_counter() - started
            assert len(plan.reuse) == len(packages)
        rows = {
            f"(a) minimirror fetch -j {args.jobs}, cold cache": best(cold, "minimirror fetch"),
            f"(b) curl --parallel --parallel-max {args.jobs}": best(curls, "curl"),
            "(c) minimirror fetch, warm cache (re-hash all)": best(warm, "minimirror fetch (warm)"),
            "(d) plan_fetch only (stat), warm cache": plan_seconds,
        }
    a, b, c, d = rows.values()
    print(f"\nbest of {args.repeat}; {len(packages)} files, {total / 2**20:.0f} MiB\n")
    print(f"    {'measurement':<50} {'seconds':>8}")
    for label, seconds in rows.items():
        print(f"    {label:<50} {seconds:8.3f}")
    print()
    print(f"    minimirror cold / curl                      {a / b:5.2f}x   (target <= 1.2x)")
    print(f"    minimirror cold throughput                  {total / 2**20 / a:6.0f} MiB/s")
    print(f"    curl throughput                             {total / 2**20 / b:6.0f} MiB/s")
    print(f"    warm (re-hash) / cold                       {c / a:5.2f}x")
    rate = total / 2**20 / max(c - d, 1e-9)
    print(f"    re-hash cost: warm - plan                   {c - d:6.3f} s  ({rate:.0f} MiB/s, startup included)")
    gib = total / 2**30
    for label, runs in (("minimirror cold", cold), ("curl", curls)):
        cpu = min(run.cpu_seconds for run in runs)
        print(f"    CPU per GiB, {label:<30} {cpu / gib:6.2f} s  (user + system, least of {len(runs)})")
    # No peak RSS here: Linux carries this process's high-water mark (it generated the files) into each child
    # across fork and exec, so wait4's figure would be ours, not the fetch's.


if __name__ == "__main__":
    main()
