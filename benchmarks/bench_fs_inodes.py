"""What the output's filesystem charges for the three things a publish at scale makes, one per package.

A 20,000-package publish makes 20,000 pool folders (``pool/main/b/bench00000/``) and 20,000 hard links into
the cache (a copy, a new file, when the cache is on another filesystem); aptly makes its own pool besides. This
makes ``--count`` folders, then as many empty files, then as many hard links to one file, each in a new folder
below ``--dir`` that is removed after, in ``--repeat`` interleaved rounds, and prints the median wall and system
seconds of each kind and per item. Asserts nothing.

Usage: ``python benchmarks/bench_fs_inodes.py [--count 20000] [--dir /tmp] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

KINDS = ("folder", "empty file", "hard link")


def make(kind: str, count: int, parent: Path, linked: str) -> tuple[float, float]:
    """(wall, system) seconds to make ``count`` items of ``kind`` in a new folder below ``parent``."""
    root = tempfile.mkdtemp(prefix="bench-inodes-", dir=parent)
    try:
        system, start = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
        for i in range(count):
            path = f"{root}/item{i:06d}"
            if kind == "folder":
                os.mkdir(path)  # noqa: PTH102 - strings, as publish makes them
            elif kind == "empty file":
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            else:
                os.link(linked, path)
        return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_stime - system
    finally:
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    with tempfile.NamedTemporaryFile(dir=args.dir) as target:
        for _ in range(args.repeat):
            for kind in KINDS:
                runs[kind].append(make(kind, args.count, args.dir, target.name))
    print(f"{args.count} items in {args.dir}, median of {args.repeat}   wall s   system s   per item")
    for kind, found in runs.items():
        wall = statistics.median(w for w, _ in found)
        system = statistics.median(s for _, s in found)
        print(f"{kind:44} {wall:7.2f} {system:10.2f} {wall / args.count * 1e6:7.0f} µs")


if __name__ == "__main__":
    main()
