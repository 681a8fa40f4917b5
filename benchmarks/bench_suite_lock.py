"""A whole-suite lock (``Name (% *)``: every package of Debian 12 main, amd64) beside the 5-package lock and aptly.

All on the real index in ``../shared/data/debian-bookworm``, served on loopback, each command a child process of
this one (wall time and peak RSS from ``os.wait4``):

* the 5-package lock, cold (``curl git openssh-server python3 vim-tiny``, as ``bench_lock.py``): the yardstick;
* aptly resolving the same 5 packages (``mirror create -filter-with-deps`` + ``mirror update`` up to its download
  queue): the memory yardstick;
* the whole-suite lock, cold (empty cache) and warm (parsed index cached);
* on the whole-suite lock: reading it (``read_lock``, strict; and through the parsed-lock cache, warm),
  ``lock --check``, ``diff`` against a copy with 1 package in 500 rebuilt (new sha256), ``why libc6`` (``diff``
  and ``why`` cold: the parsed-lock cache emptied before each run; warm: it holds both locks), and
  ``search --offline 'Name (% nginx*)'`` (warm: the cache is full).

The lock rows give the best of ``--repeat`` runs. The reading rows run ``--repeat`` times each, interleaved (one
run of every row, then the next round), and give the median; with ``--baseline REV`` every reading row also runs
minimirror as committed at REV (``git archive``, so nothing is checked out), interleaved with the current code in
the same rounds, and the ratio is printed beside it. ``--baseline`` also runs the two cold locks (5 packages, whole
suite) that way, REV and the current code taking turns, and says whether the whole-suite locks the two wrote are
byte for byte the same.

Prints a table and the ratios against the targets of issue 15; asserts nothing.
Usage: ``python benchmarks/bench_suite_lock.py [--repeat N] [--baseline REV] [--reading-only]``
(``--reading-only``: make the whole-suite lock once, unmeasured, and give only the reading rows).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from _loopback import DEBIAN_KEYRING, ChildRun, byte_compile_minimirror, run_child, serve_directory, shared_data_dir
from bench_lock import QUERIES, aptly_run, best

SUITE_QUERY = "Name (% *)"
REPO = Path(__file__).resolve().parents[1]


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

    Line by line, so that this process stays small: a child's peak RSS (``os.wait4``) counts the pages it was
    forked with, so every row measured after a 30 MB text was split in here read at least this process's size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with lock.open(encoding="utf-8", newline="") as lines, target.open("w", encoding="utf-8", newline="") as out:
        for number, line in enumerate(lines):
            rebuilt = line.startswith("sha256 = ") and number > 40 and (count := count + 1) % 500 == 0
            out.write(f'sha256 = "{"e" * 64}"\n' if rebuilt else line)


class Side:
    """One version of minimirror: its source folder, run with ``python -P`` and ``PYTHONPATH`` pointing at it (so
    neither the working directory nor the installed package decides which code runs)."""

    def __init__(self, name: str, root: Path, cache_home: Path) -> None:
        self.name, self.root = name, root
        # a command given no --cache (the baseline's `why`) uses $XDG_CACHE_HOME/minimirror: the benchmark's own
        self.env = {**os.environ, "PYTHONPATH": str(root), "XDG_CACHE_HOME": str(cache_home)}

    def run(self, args: Sequence[str], *, before: Callable[[], None] | None = None) -> ChildRun:
        if before is not None:
            before()
        found = run_child([sys.executable, "-P", *args], env=self.env)
        if found.returncode != 0:
            raise SystemExit(f"{self.name}: {' '.join(args)} failed:\n{found.output[-2000:]}")
        return found


def _baseline(rev: str, work: Path, cache_home: Path) -> Side:
    """minimirror as committed at ``rev``, unpacked with ``git archive`` and byte-compiled."""
    root = work / "baseline"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "minimirror"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root)], check=True, stdout=subprocess.DEVNULL)
    return Side(f"baseline {rev}", root, cache_home)


class Row:
    """One interleaved row: the arguments per side (None: the side does not run it), what to do before a run, and
    what to do after one (given the side's name)."""

    def __init__(
        self,
        label: str,
        current: Sequence[str],
        baseline: Sequence[str] | None = None,
        before: Callable[[], None] | None = None,
        after: Callable[[str], None] | None = None,
    ) -> None:
        self.label, self.current, self.baseline, self.before, self.after = label, current, baseline, before, after
        self.runs: dict[str, list[ChildRun]] = {}


def _lock_rows(small: Path, suite: Path, digests: dict[str, set[str]]) -> list[Row]:
    """The two cold locks as interleaved rows (``--baseline``); each side's whole-suite lock digest is noted."""

    def args(root: Path) -> list[str]:
        return ["-m", "minimirror", "-q", "lock", "--sources", str(root / "sources"), "--locks", str(root / "locks"),
                "--cache", str(root / "cache")]  # fmt: skip

    def empty(root: Path) -> Callable[[], None]:
        def run() -> None:
            shutil.rmtree(root / "cache", ignore_errors=True)
            shutil.rmtree(root / "locks", ignore_errors=True)

        return run

    def note(side: str) -> None:
        lock = suite / "locks" / "debian" / "bookworm.lock"
        digests.setdefault(side, set()).add(hashlib.sha256(lock.read_bytes()).hexdigest())

    return [
        Row("5-package lock, cold", args(small), args(small), before=empty(small)),
        Row("whole-suite lock, cold", args(suite), args(suite), before=empty(suite), after=note),
    ]


def _median(runs: Sequence[ChildRun]) -> ChildRun:
    middle = statistics.median_low([run.seconds for run in runs])
    return next(run for run in runs if run.seconds == middle)


def _reading_rows(suite: Path, lock: Path, other: Path, cache: Path) -> list[Row]:
    locks = suite / "locks"
    mm = ["-m", "minimirror", "-q"]
    read = f"from minimirror.lock.lockfile import read_lock; read_lock({str(lock)!r})"
    cached = (
        "from pathlib import Path; from minimirror.lock.lockcache import read_lock_table; "
        f"read_lock_table({str(lock)!r}, Path({str(cache)!r})).lock()"
    )
    check = [*mm, "lock", "--check", "--sources", str(suite / "sources"), "--locks", str(locks)]
    diff = [*mm, "diff", str(lock), str(other), "--cache", str(cache)]
    why = [*mm, "why", "libc6", "--locks", str(locks)]
    search = [*mm, "search", "--offline", "--sources", str(suite / "sources"), "--cache", str(suite / "cache"),
              "Name (% nginx*)"]  # fmt: skip

    def empty() -> None:
        shutil.rmtree(cache / "parsed-locks", ignore_errors=True)
        shutil.rmtree(cache / "minimirror" / "parsed-locks", ignore_errors=True)  # $XDG_CACHE_HOME's (see Side)

    return [
        Row("read_lock of the whole-suite lock", ["-c", read], ["-c", read]),
        Row("lock --check", check, check),
        Row("diff of two whole-suite locks, cold", diff, diff, before=empty),
        Row("diff of two whole-suite locks, warm", diff),
        Row("read_lock_table(...).lock(), warm cache", ["-c", cached]),
        Row("why libc6, cold", [*why, "--cache", str(cache)], why, before=empty),
        Row("why libc6, warm", [*why, "--cache", str(cache)]),
        Row("search --offline 'Name (% nginx*)'", search),
    ]


def _measure(rows: Sequence[Row], sides: Sequence[Side], repeat: int) -> None:
    """Every row on every side, once per round, ``repeat`` rounds: the load hits both sides alike. The current
    code runs last in each row, so that a cold row leaves the parsed-lock cache filled for the warm row after it
    (the baseline has no such cache)."""
    for _ in range(repeat):
        for row in rows:
            for side in reversed(sides):
                args = row.current if side is sides[0] else row.baseline
                if args is not None:
                    row.runs.setdefault(side.name, []).append(side.run(args, before=row.before))
                    if row.after is not None:
                        row.after(side.name)


def _print_reading(rows: Sequence[Row], sides: Sequence[Side]) -> None:
    names = "".join(f"{side.name[:22]:>22}  " for side in sides)
    print(f"\nmedian of the rounds{'':28}{names}{'   ratio' if len(sides) > 1 else ''}")
    print(f"{'':48}" + "".join(f"{'s':>8}{'cpu s':>7}{'MiB':>7}  " for _ in sides))
    for row in rows:
        cells, found = [], []
        for side in sides:
            runs = row.runs.get(side.name)
            if runs:
                run = _median(runs)
                found.append(run)
                cells.append(f"{run.seconds:8.2f}{run.cpu_seconds:7.2f}{run.peak_rss_kib / 1024:7.0f}  ")
            else:
                cells.append(f"{'-':>8}{'':16}")
        ratio = f"{found[0].seconds / found[1].seconds:7.2f}x" if len(found) == 2 else ""
        print(f"{row.label:48}{''.join(cells)}{ratio}")


def _targets(rows: Sequence[Row], current: str) -> None:
    seconds = {row.label: _median(row.runs[current]).seconds for row in rows if current in row.runs}
    for label, target in (
        ("read_lock of the whole-suite lock", 2.0),
        ("lock --check", 2.0),
        ("diff of two whole-suite locks, cold", 2.0),
        ("diff of two whole-suite locks, warm", 2.0),
        ("why libc6, warm", 0.5),
        ("search --offline 'Name (% nginx*)'", 0.5),
    ):
        verdict = "met" if seconds[label] <= target else "NOT met"
        print(f"{label:44}{seconds[label]:6.2f} s / target {target} s = {seconds[label] / target:4.2f}  {verdict}")


def _print_locks(rows: Sequence[tuple[str, ChildRun]], repeat: int) -> None:
    if not rows:
        return
    print(f"\nbest of {repeat}{'':27}{'seconds':>9}{'peak RSS MiB':>14}")
    for label, run in rows:
        print(f"{label:44}{run.seconds:9.2f}{run.peak_rss_kib / 1024:14.0f}")
    found = dict(rows)
    small_cold, suite_cold = found["5-package lock, cold"], found["whole-suite lock, cold"]
    print(f"whole-suite cold / 5-package cold    {suite_cold.seconds / small_cold.seconds:6.2f}x  (target <= 10x)")
    if "aptly, 5 packages (mirror create+update)" in found:
        ratio = suite_cold.peak_rss_kib / found["aptly, 5 packages (mirror create+update)"].peak_rss_kib
        print(f"whole-suite peak RSS / aptly's (5)   {ratio:6.2f}x  (target <= 1.0x)")


def _print_turns(rows: Sequence[Row], sides: Sequence[Side], digests: Mapping[str, set[str]]) -> None:
    if not rows:
        return
    print("\ncold locks, the two sides taking turns:", end="")
    _print_reading(rows, sides)
    same = len({digest for found in digests.values() for digest in found}) == 1
    print(f"whole-suite locks of both sides byte for byte the same: {'yes' if same else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline", metavar="REV", help="also run the cold locks and the reading rows as of REV")
    parser.add_argument("--reading-only", action="store_true", help="skip the lock rows (the lock is made once)")
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
        lock = suite / "locks" / "debian" / "bookworm.lock"
        if options.reading_only:
            made = _lock(suite, cold=True)()  # also fills the cache search --offline reads
            if made.returncode != 0:
                raise SystemExit(f"the whole-suite lock failed:\n{made.output[-2000:]}")
        else:
            rows.append(("5-package lock, cold", best(options.repeat, _lock(small, cold=True))))
            aptly = aptly_run(work, url, options.repeat, QUERIES)
            if aptly is not None:
                rows.append(("aptly, 5 packages (mirror create+update)", aptly))
            rows.append(("whole-suite lock, cold", best(options.repeat, _lock(suite, cold=True))))
            rows.append(("whole-suite lock, warm", best(options.repeat, _lock(suite, cold=False))))
        cache = work / "review-cache"
        sides = [Side("current", REPO, cache)]
        if options.baseline:
            sides.append(_baseline(options.baseline, work, cache))
        locking: list[Row] = []
        digests: dict[str, set[str]] = {}
        if options.baseline and not options.reading_only:  # the current code runs last: its lock stays for the rows
            locking = _lock_rows(small, suite, digests)
            _measure(locking, sides, options.repeat)
        other = work / "other" / "debian" / "bookworm.lock"
        _rebuilt_copy(lock, other)
        reading = _reading_rows(suite, lock, other, cache)
        _measure(reading, sides, options.repeat)
        size = lock.stat().st_size
        entries = sorted((cache / "parsed-locks").iterdir())
        entry_size = entries[0].stat().st_size if entries else 0
    print(f"whole-suite lock: {size / 2**20:.1f} MiB; its parsed-lock cache entry: {entry_size / 2**20:.1f} MiB")
    _print_locks(rows, options.repeat)
    _print_turns(locking, sides, digests)
    _print_reading(reading, sides)
    print()
    _targets(reading, sides[0].name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
