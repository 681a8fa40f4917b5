"""A whole-suite lock (``Name (% *)``: every package of Debian 12 main, amd64) beside the 5-package lock and aptly.

All on the real index in ``../shared/data/debian-bookworm``, served on loopback, each command a child process of
this one (wall time and peak RSS from ``os.wait4``):

* the 5-package lock, cold (``curl git openssh-server python3 vim-tiny``, as ``bench_lock.py``): the yardstick;
* aptly resolving the same 5 packages (``mirror create -filter-with-deps`` + ``mirror update`` up to its download
  queue): the memory yardstick;
* the whole-suite lock, cold (empty cache) and warm (parsed index cached);
* on the whole-suite lock: reading it (``read_lock``), ``lock --check``, ``diff`` against a copy with 1 package in
  500 rebuilt (new sha256), ``why libc6`` and ``search --offline 'Name (% nginx*)'`` (warm: the cache is full).

Prints a table and the ratios against the targets of issue 15; asserts nothing.
Usage: ``python benchmarks/bench_suite_lock.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _loopback import DEBIAN_KEYRING, ChildRun, byte_compile_minimirror, run_child, serve_directory, shared_data_dir
from bench_lock import QUERIES, aptly_run, best

SUITE_QUERY = "Name (% *)"


def _tree(work: Path, url: str, name: str, queries: tuple[str, ...]) -> Path:
    source = work / name / "sources" / "debian" / "bookworm"
    source.mkdir(parents=True)
    (source / "source.txt").write_text(f"{url}/ file://{DEBIAN_KEYRING} bookworm main\n")
    (source / "packages.txt").write_text("\n".join(queries) + "\n")
    return work / name


def _minimirror(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "minimirror", "-q", *args]


def _lock(root: Path, *, cold: bool) -> Callable[[], ChildRun]:
    def run() -> ChildRun:
        if cold:
            shutil.rmtree(root / "cache", ignore_errors=True)
        shutil.rmtree(root / "locks", ignore_errors=True)
        return run_child(
            _minimirror(root, "lock", "--sources", str(root / "sources"), "--locks", str(root / "locks"), "--cache",
                        str(root / "cache"))
        )  # fmt: skip

    return run


def _rebuilt_copy(lock: Path, target: Path) -> None:
    """The lock with every 500th package given a new sha256: what a diff of two whole-suite locks looks like.

    Streamed line by line: a child forked from this process starts with its pages, and ``wait4``'s peak RSS
    counts them, so a benchmark that held the 30 MB text in memory would add it to every later row."""
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with lock.open(newline="") as lines, target.open("w", newline="") as out:
        for number, line in enumerate(lines):
            rebuilt = line.startswith("sha256 = ") and number > 40
            count += rebuilt
            out.write(f'sha256 = "{"e" * 64}"\n' if rebuilt and count % 500 == 0 else line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None or not (data / "debian-bookworm").is_dir() or not DEBIAN_KEYRING.is_file():
        print("skipped: ../shared/data/debian-bookworm or debian-archive-keyring is missing")
        return 0
    byte_compile_minimirror()
    rows: list[tuple[str, ChildRun]] = []
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp, serve_directory(data / "debian-bookworm") as url:
        work = Path(tmp)
        small, suite = _tree(work, url, "small", QUERIES), _tree(work, url, "suite", (SUITE_QUERY,))
        rows.append(("5-package lock, cold", best(options.repeat, _lock(small, cold=True))))
        aptly = aptly_run(work, url, options.repeat, QUERIES)
        if aptly is not None:
            rows.append(("aptly, 5 packages (mirror create+update)", aptly))
        rows.append(("whole-suite lock, cold", best(options.repeat, _lock(suite, cold=True))))
        rows.append(("whole-suite lock, warm", best(options.repeat, _lock(suite, cold=False))))
        lock = suite / "locks" / "debian" / "bookworm.lock"
        other = work / "other" / "debian" / "bookworm.lock"
        _rebuilt_copy(lock, other)
        read = [sys.executable, "-c", f"from minimirror.lock.lockfile import read_lock; read_lock({str(lock)!r})"]
        check = _minimirror(suite, "lock", "--check", "--sources", str(suite / "sources"), "--locks",
                            str(suite / "locks"))  # fmt: skip
        diff = _minimirror(suite, "diff", str(lock), str(other))
        why = _minimirror(suite, "why", "libc6", "--locks", str(suite / "locks"))
        search = _minimirror(suite, "search", "--offline", "--sources", str(suite / "sources"), "--cache",
                             str(suite / "cache"), "Name (% nginx*)")  # fmt: skip
        for label, command, codes in (
            ("read_lock of the whole-suite lock", read, (0,)),
            ("lock --check", check, (0,)),
            ("diff of two whole-suite locks", diff, (0,)),
            ("why libc6", why, (0,)),
            ("search --offline 'Name (% nginx*)'", search, (0,)),
        ):
            runs = [run_child(command) for _ in range(options.repeat)]
            bad = [r for r in runs if r.returncode not in codes]
            if bad:
                raise SystemExit(f"{label} failed:\n{bad[0].output[-2000:]}")
            rows.append((label, min(runs, key=lambda r: r.seconds)))
        size = lock.stat().st_size
    print(f"best of {options.repeat}; whole-suite lock: {size / 2**20:.1f} MiB")
    print(f"{'':44}{'seconds':>9}{'peak RSS MiB':>14}")
    for label, run in rows:
        print(f"{label:44}{run.seconds:9.2f}{run.peak_rss_kib / 1024:14.0f}")
    found = dict(rows)
    small_cold, suite_cold = found["5-package lock, cold"], found["whole-suite lock, cold"]
    print(f"whole-suite cold / 5-package cold    {suite_cold.seconds / small_cold.seconds:6.2f}x  (target <= 10x)")
    if aptly is not None:
        ratio = suite_cold.peak_rss_kib / aptly.peak_rss_kib
        print(f"whole-suite peak RSS / aptly's (5)   {ratio:6.2f}x  (target <= 1.0x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
