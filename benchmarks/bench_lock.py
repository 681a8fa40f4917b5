"""``minimirror lock`` beside apt and aptly on the real Debian index, served on loopback.

For the query set ``curl git openssh-server python3 vim-tiny``:

* minimirror cold: empty cache (download InRelease + Packages.xz, verify, decompress, parse, resolve, write);
* minimirror warm: the same with the cache from the cold run (only the InRelease is downloaded);
* apt: ``apt-get update`` + ``apt-get install -s`` in a private root with empty lists (what a lock replaces);
* aptly: ``aptly mirror create -filter ... -filter-with-deps`` + ``aptly mirror update`` in a private root
  directory, up to its download queue (the pool is not on loopback, so its downloads fail at once).

Each is a separate process; the table gives the best wall time of N runs and the peak RSS of that process.
Prints ratios; asserts nothing. Usage: ``python benchmarks/bench_lock.py [--repeat N] [--queries "a b"]``
(``--queries "podman buildah skopeo"`` is a set with a tie between providers that only apt's cache order breaks).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _loopback import (
    DEBIAN_KEYRING,
    AptRoot,
    ChildRun,
    byte_compile_minimirror,
    run_child,
    serve_directory,
    shared_data_dir,
)
from _loopback import (
    best_run as best,
)

QUERIES = ("curl", "git", "openssh-server", "python3", "vim-tiny")


def minimirror_runs(work: Path, url: str, repeat: int, queries: tuple[str, ...]) -> tuple[ChildRun, ChildRun]:
    source = work / "sources" / "debian" / "bookworm"
    source.mkdir(parents=True)
    (source / "source.txt").write_text(f"{url}/ file://{DEBIAN_KEYRING} bookworm main\n")
    (source / "packages.txt").write_text("\n".join(queries) + "\n")
    # the snapshot has no Valid-Until, so no allow-expired is needed
    args = [sys.executable, "-m", "minimirror", "-q", "lock", "--sources", str(work / "sources")]

    def cold() -> ChildRun:
        shutil.rmtree(work / "cache", ignore_errors=True)
        shutil.rmtree(work / "locks", ignore_errors=True)
        return run_child([*args, "--locks", str(work / "locks"), "--cache", str(work / "cache")])

    def warm() -> ChildRun:
        shutil.rmtree(work / "locks", ignore_errors=True)
        return run_child([*args, "--locks", str(work / "locks"), "--cache", str(work / "cache")])

    return best(repeat, cold), best(repeat, warm)


def apt_run(work: Path, url: str, repeat: int, queries: tuple[str, ...]) -> ChildRun:
    apt = AptRoot.create(work / "apt", f"deb [signed-by={DEBIAN_KEYRING}] {url}/ bookworm main")
    return best(repeat, lambda: apt.update_and_simulate(queries))


def aptly_run(work: Path, url: str, repeat: int, queries: tuple[str, ...]) -> ChildRun | None:
    aptly = shutil.which("aptly")
    if aptly is None:
        return None
    query = " | ".join(queries)

    def run() -> ChildRun:
        root = work / "aptly"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        config = root / "aptly.conf"
        config.write_text(json.dumps({"rootDir": str(root), "architectures": ["amd64"], "downloadConcurrency": 4}))
        base = [aptly, f"-config={config}"]
        create = run_child(
            [*base, "mirror", "create", f"-keyring={DEBIAN_KEYRING}", "-architectures=amd64",
             f"-filter={query}", "-filter-with-deps", "bookworm", f"{url}/", "bookworm", "main"]
        )  # fmt: skip
        update = run_until(
            [*base, "mirror", "update", f"-keyring={DEBIAN_KEYRING}", "-max-tries=1", "bookworm"], "Download queue:"
        )
        return ChildRun(
            create.seconds + update.seconds,
            max(create.peak_rss_kib, update.peak_rss_kib),
            create.returncode or update.returncode,
            create.output + update.output,
        )

    return best(repeat, run)


def run_until(argv: list[str], marker: str) -> ChildRun:
    """Run ``argv`` until a line containing ``marker`` appears: wall time to that line, and the peak RSS so far
    (``VmHWM``), then stop it. aptly prints "Download queue:" once it knows what to fetch: that is where its
    work comparable to a lock ends (the rest is downloading .debs, which a lock does not do)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output, found, peak = [], False, 0
    for line in proc.stdout:
        output.append(line)
        if marker in line:
            found = True
            peak = _peak_rss_kib(proc.pid)
            break
    seconds = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return ChildRun(seconds, peak, 0 if found else 1, "".join(output))


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", default=" ".join(QUERIES), help="the packages.txt lines, space-separated")
    options = parser.parse_args(argv)
    queries = tuple(options.queries.split())
    data = shared_data_dir()
    if data is None or not (data / "debian-bookworm").is_dir():
        print("skipped: ../shared/data/debian-bookworm is not beside this checkout")
        return 0
    if not DEBIAN_KEYRING.is_file():
        print(f"skipped: {DEBIAN_KEYRING} is missing (apt-get install debian-archive-keyring)")
        return 0
    byte_compile_minimirror()
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as tmp, serve_directory(data / "debian-bookworm") as url:
        work = Path(tmp)
        cold, warm = minimirror_runs(work, url, options.repeat, queries)
        apt = apt_run(work, url, options.repeat, queries)
        aptly = aptly_run(work, url, options.repeat, queries)
    rows = [("minimirror lock, cold", cold), ("minimirror lock, warm", warm), ("apt update + install -s", apt)]
    if aptly is not None:
        rows.append(("aptly mirror create + update", aptly))
    print(f"query set: {' '.join(queries)}; best of {options.repeat}")
    print(f"{'':34}{'seconds':>9}{'peak RSS MiB':>14}")
    for label, run in rows:
        print(f"{label:34}{run.seconds:9.3f}{run.peak_rss_kib / 1024:14.0f}")
    print(f"cold / apt   {cold.seconds / apt.seconds:5.2f}x   (target <= 1.0x)")
    print(f"warm / apt   {warm.seconds / apt.seconds:5.2f}x   (target <= 0.3x)")
    if aptly is not None:
        print(f"peak memory, cold / aptly {cold.peak_rss_kib / aptly.peak_rss_kib:5.2f}x   (target < 1.0x)")
        print(f"cold / aptly {cold.seconds / aptly.seconds:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
