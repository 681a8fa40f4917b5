"""Fetch over a link like a WAN's: ``minimirror fetch`` beside aptly, apt and curl, on the same files.

The files are ``bench_fetch.py``'s (random bytes, log-normal sizes like real .debs), in an archive with a real
``Packages`` index and ``Release`` (unsigned: apt is told ``[trusted=yes]``, aptly ``-ignore-signatures``; the
signature check is not what is measured), served by ``_wan.py``: a round-trip time before each response
(``--rtt-ms``, default 40), a bandwidth cap per connection (``--rate-mib``, default 25 MiB/s), bodies sent with
``sendfile`` from a process of its own, on 127.0.0.1. Each run starts cold (empty cache or pool) after an
``os.sync()``, in a child process; the best of ``--repeat``:

    minimirror fetch -j N --per-host N   for each N of --jobs (default 2 4 8 16 32), and with neither (the default)
    aptly mirror update            downloadConcurrency 4 (aptly's default) and 8 (its mirror created before)
    apt-get install --download-only   every package, in a private root (apt-get update before, not timed):
                                   apt's one connection per host, with HTTP pipelining
    curl --parallel --parallel-max N  for N of --curl (default 8 and 50, curl's default); no verification

and prints each one's time, CPU (user + system, child processes included) and the ratio of minimirror's
default to the fastest. Asserts nothing. ``--clients`` picks some of minimirror, aptly, apt and curl; ``--timeline``
has the server log every connection and request and prints, per row, when the connections opened, the first
request, when the largest file was asked for and sent, and the exit (seconds after the child started).

    python benchmarks/bench_fetch_wan.py [--files 300] [--total-mb 150] [--rtt-ms 40] [--rate-mib 25] [--repeat 2]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loopback import AptRoot, ChildRun, byte_compile_minimirror, run_child
from bench_fetch import curl_config, generate, write_synthetic_lock

from minimirror.lock.lockfile import LockedPackage

HERE = Path(__file__).resolve().parent


def write_indices(root: Path, packages: list[LockedPackage]) -> None:
    """``dists/stable/main/binary-amd64/Packages{,.gz}`` and ``dists/stable/Release`` for the generated files."""
    stanzas = []
    for package in packages:
        data = (root / package.filename).read_bytes()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        stanzas.append(
            f"Package: {package.name}\nVersion: {package.version}\nArchitecture: amd64\n"
            f"Maintainer: Bench <bench@example.invalid>\nFilename: {package.filename}\nSize: {package.size}\n"
            f"MD5sum: {md5}\nSHA256: {package.sha256}\nDescription: benchmark file\n"
        )
    text = "\n".join(stanzas).encode()
    indices = {"main/binary-amd64/Packages": text, "main/binary-amd64/Packages.gz": gzip.compress(text, mtime=0)}
    dist = root / "dists" / "stable"
    for name, data in indices.items():
        (dist / name).parent.mkdir(parents=True, exist_ok=True)
        (dist / name).write_bytes(data)
    md5 = "".join(f" {hashlib.md5(d, usedforsecurity=False).hexdigest()} {len(d)} {n}\n" for n, d in indices.items())
    sha = "".join(f" {hashlib.sha256(d).hexdigest()} {len(d)} {n}\n" for n, d in indices.items())
    (dist / "Release").write_text(
        "Origin: Bench\nLabel: Bench\nSuite: stable\nCodename: stable\nDate: Sun, 29 Nov 2026 00:00:00 UTC\n"
        f"Architectures: amd64\nComponents: main\nMD5Sum:\n{md5}SHA256:\n{sha}"
    )


@contextmanager
def wan_served(root: Path, rtt_ms: float, rate_mib: float, log: Path | None = None) -> Iterator[str]:
    """``_wan.py`` serving ``root`` in a child process (its events to ``log``); yields its base URL."""
    argv = [sys.executable, str(HERE / "_wan.py"), str(root), "--rtt-ms", str(rtt_ms), "--rate-mib", str(rate_mib)]
    argv += ["--log", str(log)] if log is not None else []
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def best(runs: list[ChildRun], what: str) -> ChildRun:
    for run in runs:
        if run.returncode != 0:
            raise SystemExit(f"{what} failed ({run.returncode}):\n{run.output[-3000:]}")
    return min(runs, key=lambda run: run.seconds)


def cold(run: Callable[[], ChildRun], reset: Callable[[], None], repeat: int, what: str) -> ChildRun:
    """The best of ``repeat`` runs, each after ``reset`` (an empty cache or pool) and an ``os.sync()``."""
    runs = []
    for _ in range(repeat):
        reset()
        os.sync()
        runs.append(run())
    return best(runs, what)


def removing(path: Path) -> Callable[[], None]:
    return functools.partial(shutil.rmtree, path, ignore_errors=True)


def aptly_runs(work: Path, url: str, concurrency: int, repeat: int, env: dict[str, str]) -> ChildRun:
    """``aptly mirror update`` of a mirror created just before (not timed), in a fresh rootDir each time."""
    config = work / f"aptly-{concurrency}.conf"
    root = work / f"aptly-{concurrency}"
    config.write_text(
        json.dumps({"rootDir": str(root), "downloadConcurrency": concurrency, "architectures": ["amd64"]})
    )
    base = ["aptly", f"-config={config}"]

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        create = [*base, "mirror", "create", "-ignore-signatures", "bench", url, "stable", "main"]
        subprocess.run(create, env=env, check=True, capture_output=True, timeout=300)

    def update() -> ChildRun:
        return run_child([*base, "mirror", "update", "-ignore-signatures", "bench"], env=env)

    try:
        return cold(update, reset, repeat, f"aptly mirror update (downloadConcurrency {concurrency})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def apt_runs(work: Path, url: str, names: list[str], repeat: int) -> ChildRun:
    apt = AptRoot.create(work / "apt", f"deb [trusted=yes] {url} stable main")
    updated = apt.apt_get("update")
    if updated.returncode != 0:
        raise SystemExit(f"apt-get update failed:\n{updated.output}")
    archives = work / "apt" / "var" / "cache" / "apt" / "archives"

    def reset() -> None:
        for deb in archives.glob("*.deb"):
            deb.unlink()

    return cold(
        lambda: apt.apt_get("install", "--download-only", "-y", "--no-install-recommends", *names),
        reset,
        repeat,
        "apt-get install --download-only",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--total-mb", type=int, default=150)
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--rate-mib", type=float, default=25.0)
    parser.add_argument("--jobs", type=int, nargs="*", default=[2, 4, 8, 16, 32])
    parser.add_argument("--curl", type=int, nargs="*", default=[8, 50], help="curl's --parallel-max values.")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--clients", nargs="*", default=list(CLIENTS), choices=CLIENTS)
    parser.add_argument("--timeline", action="store_true", help="Print when each run's requests went out.")
    args = parser.parse_args()
    minimirror = shutil.which("minimirror")
    needed = {"curl": "curl", "aptly": "aptly", "apt": "apt-get"}
    missing = [needed[c] for c in args.clients if c in needed and shutil.which(needed[c]) is None]
    if minimirror is None or missing:
        raise SystemExit(f"needs the minimirror console script and {', '.join(missing) or 'nothing else'} on PATH")
    byte_compile_minimirror()
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
    with tempfile.TemporaryDirectory(prefix="bench-fetch-wan-") as tmp:
        work = Path(tmp)
        packages = generate(work / "archive", args.files, args.total_mb * 1_000_000)
        write_indices(work / "archive", packages)
        total = sum(p.size for p in packages)
        args.log = work / "wan.log" if args.timeline else None
        with wan_served(work / "archive", args.rtt_ms, args.rate_mib, args.log) as url:
            write_synthetic_lock(work / "locks", url, packages)
            args.minimirror, args.env = minimirror, env
            rows = measure(work, url, packages, args)
    report(rows, len(packages), total / 2**20, args)


CLIENTS = ("minimirror", "aptly", "apt", "curl")


@dataclass
class Timed:
    """A run's child, and when (``time.monotonic()``) it was started and ended: the server's log lines between
    the two are its requests."""

    run: ChildRun
    began: float
    ended: float


def timed(run: Callable[[], ChildRun], spans: list[tuple[float, float]]) -> Callable[[], ChildRun]:
    def wrapped() -> ChildRun:
        began = time.monotonic()
        result = run()
        spans.append((began, time.monotonic()))
        return result

    return wrapped


def timeline(log: Path, began: float, ended: float) -> str:
    """One run's course from the server's log: when connections opened, the first request, the largest
    file's request and end, the last byte sent, the exit (seconds after the child was started)."""
    events = []
    for line in log.read_text().splitlines():
        when, what, *rest = line.split()
        if began <= float(when) <= ended:
            events.append((float(when) - began, what, rest))
    accepts = [t for t, what, _ in events if what == "accept"]
    requests = [(t, rest) for t, what, rest in events if what == "request"]
    dones = [(t, rest) for t, what, rest in events if what == "done"]
    if not accepts or not requests or not dones:  # a line is logged when its event ends: none yet, or no run
        return "no requests logged"
    largest = max(requests, key=lambda item: int(item[1][1]))
    largest_done = next((t for t, rest in dones if rest == largest[1]), float("nan"))
    return (
        f"{len(accepts)} connections, first accepted {min(accepts):.2f} s, last {max(accepts):.2f} s; "
        f"first request {requests[0][0]:.2f} s; largest ({int(largest[1][1]) / 1e6:.1f} MB) requested "
        f"{largest[0]:.2f} s, sent {largest_done:.2f} s; last byte {max(t for t, _ in dones):.2f} s; "
        f"exit {ended - began:.2f} s"
    )


def measure(work: Path, url: str, packages: list[LockedPackage], args: argparse.Namespace) -> dict[str, Timed]:
    """Every client's best cold run (``args.minimirror``: the console script; ``args.env``: no proxies)."""
    minimirror, env = args.minimirror, args.env
    rows: dict[str, Timed] = {}

    def row(label: str, run: Callable[[], ChildRun], reset: Callable[[], None]) -> None:
        spans: list[tuple[float, float]] = []
        result = cold(timed(run, spans), reset, args.repeat, label)
        rows[label] = Timed(result, *_span_of(result, spans))

    fetch = [minimirror, "-q", "fetch", "--locks", str(work / "locks"), "--cache", str(work / "cache")]
    for jobs in [*args.jobs, None] if "minimirror" in args.clients else []:
        argv = fetch if jobs is None else [*fetch, "-j", str(jobs), "--per-host", str(jobs)]
        label = "minimirror fetch (default)" if jobs is None else f"minimirror fetch -j {jobs} --per-host {jobs}"
        row(label, functools.partial(run_child, argv, env=env), removing(work / "cache"))
    for concurrency in (4, 8) if "aptly" in args.clients else ():
        run = aptly_runs(work, url, concurrency, args.repeat, env)
        rows[f"aptly mirror update, downloadConcurrency {concurrency}"] = Timed(run, 0.0, 0.0)
    if "apt" in args.clients:
        run = apt_runs(work, url, [p.name for p in packages], args.repeat)
        rows["apt-get install --download-only (pipelined)"] = Timed(run, 0.0, 0.0)
    config = work / "curl.conf"
    curl_config(config, url, work / "curl-out", packages)
    for parallel in args.curl if "curl" in args.clients else ():
        label = f"curl --parallel --parallel-max {parallel}"
        argv = ["curl", "-sSf", "--parallel", "--parallel-max", str(parallel), "--create-dirs", "-K", str(config)]
        row(label, functools.partial(run_child, argv, env=env), removing(work / "curl-out"))
    if args.log is not None:
        for label, timed_run in rows.items():
            if timed_run.ended:
                print(f"{label}: {timeline(args.log, timed_run.began, timed_run.ended)}")
    return rows


def _span_of(result: ChildRun, spans: list[tuple[float, float]]) -> tuple[float, float]:
    """The span of the run ``cold`` kept (the fastest): the one whose length is closest to its seconds."""
    return min(spans, key=lambda span: abs((span[1] - span[0]) - result.seconds))


def report(rows: dict[str, Timed], files: int, mib: float, args: argparse.Namespace) -> None:
    link = f"{args.rtt_ms:.0f} ms round trip, {args.rate_mib:.0f} MiB/s per connection"
    print(f"\n{files} files, {mib:.0f} MiB; link: {link}; best of {args.repeat}\n")
    print(f"    {'client':<52} {'seconds':>8} {'MiB/s':>7} {'CPU s':>7}")
    for label, timed_run in rows.items():
        run = timed_run.run
        print(f"    {label:<52} {run.seconds:8.2f} {mib / run.seconds:7.0f} {run.cpu_seconds:7.2f}")
    others = {label: t.run for label, t in rows.items() if not label.startswith("minimirror")}
    ours = rows.get("minimirror fetch (default)")
    if ours is None or not others:
        return
    for title, pool in (("fastest other", others), ("fastest at <= 16 connections", _polite(others))):
        if pool:
            label, fastest = min(pool.items(), key=lambda item: item[1].seconds)
            ratio = ours.run.seconds / fastest.seconds
            print(f"    minimirror (default) / {title} ({label}): {ratio:.2f}x  (target <= 1.0x)")


def _polite(rows: dict[str, ChildRun]) -> dict[str, ChildRun]:
    """The other clients' rows at 16 connections or fewer (minimirror's default)."""
    return {label: run for label, run in rows.items() if _connections(label) <= 16}


def _connections(label: str) -> int:
    """How many connections a row's client opens: the number its label ends with (apt: one per host)."""
    last = label.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 1


if __name__ == "__main__":
    main()
