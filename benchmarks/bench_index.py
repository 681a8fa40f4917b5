"""Benchmark: reading Debian bookworm main/amd64 ``Packages.xz`` (63,440 stanzas), side by side.

    python benchmarks/bench_index.py [--repeat N]

(a) python-debian ``Packages.iter_paragraphs``   (b) xz decode alone      (c) minimirror cold parse of the .xz
(d) minimirror warm load from the parsed cache   (e) ``apt-get update`` of the same index served on loopback
plus the peak RSS of a child process doing (c). Prints a table and ratios; asserts nothing.
Skips (exit 0) when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import functools
import gc
import hashlib
import lzma
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import DEBIAN_KEYRING, AptRoot, run_child, serve_directory, shared_data_dir

INDEX = "debian-bookworm/dists/bookworm/main/binary-amd64/Packages.xz"
CHILD = (
    "import sys, minimirror.upstream.index as m; "
    "n = sum(1 for _ in m.iter_packages(sys.argv[1])) if sys.argv[2] == 'stream' "
    "else len(list(m.iter_packages(sys.argv[1]))); print(n)"
)


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def python_debian(path: Path) -> int:
    from debian.deb822 import Packages

    with warnings.catch_warnings(), lzma.open(path) as stream:
        warnings.simplefilter("ignore")  # "python3-apt not installed": the pure-Python parser is what we time
        return sum(1 for _ in Packages.iter_paragraphs(stream, use_apt_pkg=False))


def xz_decode(path: Path) -> int:
    return len(lzma.decompress(path.read_bytes()))


def minimirror_parse(path: Path) -> int:
    from minimirror.upstream.index import iter_packages

    return len(list(iter_packages(path)))


def minimirror_parse_decompressed(data: bytes) -> int:
    from minimirror.upstream.index import iter_packages

    return len(list(iter_packages(data)))


def apt_update(data_dir: Path, repeat: int) -> float | None:
    if not DEBIAN_KEYRING.exists():
        print(f"  (e) skipped: {DEBIAN_KEYRING} missing; apt-get install debian-archive-keyring")
        return None
    with tempfile.TemporaryDirectory() as tmp, serve_directory(data_dir / "debian-bookworm") as url:
        root = AptRoot.create(Path(tmp), f"deb [signed-by={DEBIAN_KEYRING}] {url} bookworm main")
        best = None
        for _ in range(repeat):
            root.clear_lists()
            run = root.apt_get("update")
            if run.returncode != 0:
                print(f"  (e) apt-get update failed:\n{run.output}")
                return None
            best = run.seconds if best is None else min(best, run.seconds)
        return best


def end_to_end(data_dir: Path, repeat: int) -> tuple[float, float]:
    """(f) cold and (g) warm index load as ``minimirror lock`` does it: download the InRelease (and, cold, the
    Packages.xz) over loopback, verify with gpgv, check the sha256, parse (cold) or read the parsed cache
    (warm), and build the index."""
    from minimirror.upstream.archive import Upstream, open_snapshot
    from minimirror.upstream.cache import Cache
    from minimirror.upstream.download import Downloader, make_client
    from minimirror.upstream.index import PackageIndex
    from minimirror.upstream.indexcache import load_index_part

    def load(cache: Cache, url: str) -> int:
        upstream = Upstream(f"{url}/", f"file://{DEBIAN_KEYRING}", "bookworm", ("main",), ("amd64",))
        with make_client() as client:
            snapshot = open_snapshot(upstream, downloader=Downloader(client), cache=cache)
        parts = [
            load_index_part(cache.blob_path(i.sha256), i.sha256, cache.parsed_dir, component=i.component)
            for i in snapshot.indices
        ]
        return len(PackageIndex(parts).by_name("bash"))  # what a lock does: look names up, not list them all

    with serve_directory(data_dir / "debian-bookworm") as url:
        cold = warm = float("inf")
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                cache = Cache(Path(tmp))
                cold = min(cold, best_of(1, functools.partial(load, cache, url)))
                warm = min(warm, best_of(1, functools.partial(load, cache, url)))
    return cold, warm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (python-debian runs once)")
    args = parser.parse_args(argv)
    data_dir = shared_data_dir()
    if data_dir is None or not (data_dir / INDEX).exists():
        print("skipped: ../shared/data/" + INDEX + " is absent (see ../shared/data/README.md)")
        return 0
    path = data_dir / INDEX
    memory(path)  # first: a child forked from a big parent counts the parent's pages in its peak RSS
    from minimirror.upstream.indexcache import load_index_cached

    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    plain = lzma.decompress(raw)
    rows: dict[str, float | None] = {}
    rows["(a) python-debian iter_paragraphs"] = best_of(1, lambda: python_debian(path))
    rows["(b) xz decode alone"] = best_of(args.repeat, lambda: xz_decode(path))
    rows["(c) minimirror parse, cold, from .xz"] = best_of(args.repeat, lambda: minimirror_parse(path))
    rows["(c') minimirror parse of decompressed text"] = best_of(
        args.repeat, lambda: minimirror_parse_decompressed(plain)
    )
    with tempfile.TemporaryDirectory() as cache:
        rows["(c'') cold load_index_cached (sha256+parse+write)"] = best_of(
            1, lambda: load_index_cached(raw, sha, cache)
        )
        rows["(d) minimirror warm load from parsed cache"] = best_of(
            args.repeat, lambda: load_index_cached(raw, sha, cache)
        )
    rows["(e) apt-get update on loopback (private root)"] = apt_update(data_dir, args.repeat)
    cold, warm = end_to_end(data_dir, args.repeat)
    rows["(f) minimirror load, cold: download+verify+parse"] = cold
    rows["(g) minimirror load, warm: InRelease+verify+cache"] = warm
    report(rows)
    return 0


def report(rows: dict[str, float | None]) -> None:
    width = max(map(len, rows))
    print(f"\n{'measurement':<{width}}  seconds")
    for label, seconds in rows.items():
        print(f"{label:<{width}}  {'n/a' if seconds is None else f'{seconds:7.3f}'}")
    a, b, c, c1, _, d, e, f, g = rows.values()
    print("\nratios")
    ratio("python-debian / minimirror cold", a, c)
    ratio("python-debian / minimirror parse (no xz)", a, c1)
    ratio("minimirror cold / xz decode", c, b)
    ratio("minimirror cold / warm", c, d)
    ratio("minimirror cold / apt-get update", c, e)
    ratio("minimirror warm / apt-get update", d, e)
    ratio("(f) cold load end to end / apt-get update", f, e)
    print("      target <= 1.0x")
    ratio("(g) warm load end to end / apt-get update", g, e)
    print("      target <= 0.2x")


def ratio(label: str, top: float | None, bottom: float | None) -> None:
    shown = "n/a" if top is None or bottom is None else f"{top / bottom:6.2f}x"
    print(f"  {label:<42} {shown}")


def memory(path: Path) -> None:
    for mode in ("list", "stream"):
        run = run_child([sys.executable, "-c", CHILD, str(path), mode])
        what = "keeps all packages" if mode == "list" else "keeps none (streaming)"
        print(f"peak RSS, child doing the cold parse, {what}: {run.peak_rss_kib / 1024:.0f} MiB ({run.seconds:.2f} s)")
    run = run_child([sys.executable, "-c", "import minimirror.upstream.index"])
    print(f"peak RSS, child that only imports minimirror.upstream.index: {run.peak_rss_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    raise SystemExit(main())
