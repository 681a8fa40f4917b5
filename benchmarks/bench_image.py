"""Packing a mirror's image vs ``cp -r`` of its tree (and ``tar | gzip -n``), side by side in one run.

Generates a mirror-like tree (mostly incompressible .deb-sized files, some compressible index text) of
``--mib`` MiB, then times, each in a fresh child process (wall time, peak RSS from ``os.wait4``):

    (a) the image's repository layers, as ``minimirror image`` writes them: split_repository(scan_tree(...)),
        then write_layers (the pool buckets and the metadata layer, one thread per core), for --compression
        none, gzip (level 1) and zstd (level 3): tar + compression + sha256 of both streams (one if plain)
    (b) cp -r TREE COPY                                        the cost of reading and writing the bytes once
    (d) cp -r TREE COPY && cat every file | sha256sum          (b) plus the one digest any image needs (diff_id)
    (c) tar --sort=name --mtime=@0 --owner=0 --group=0 -c | gzip -n   (gzip -6: the seed's single layer)

and prints the ratios (a)/(b) (target <= 2x for the default, none). Usage::

    python benchmarks/bench_image.py [--mib 300] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ChildRun, run_child

_LAYERS = """
import sys
from pathlib import Path
from minimirror.image.layers import scan_tree
from minimirror.image.oci import write_layers
from minimirror.image.split import split_repository
out = Path(sys.argv[2])
out.mkdir()
layers = split_repository(scan_tree(Path(sys.argv[1]), "srv")).layers
written = write_layers(out, layers, epoch=0, compression=sys.argv[3])
print(len(layers), sum(layer.size for layer in written))
"""
_COMPRESSIONS = ("none", "gzip", "zstd")


def make_tree(root: Path, mib: int, seed: int = 1) -> None:
    """~90 % random bytes in 64 KiB-2 MiB "pool" files, ~10 % repetitive "Packages" text, in a pool/dists tree."""
    rng = random.Random(seed)
    budget = mib << 20
    text_budget = budget // 10
    index = 0
    while budget > text_budget:
        size = min(rng.randint(64 << 10, 2 << 20), budget - text_budget)
        path = root / "pool" / "main" / chr(ord("a") + index % 26) / f"pkg{index}" / f"pkg{index}_1.0_amd64.deb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        budget -= size
        index += 1
    stanza = "Package: pkg{0}\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/main/p/pkg{0}.deb\n\n"
    text = "".join(stanza.format(i) for i in range(text_budget // 90))
    packages = root / "dists" / "stable" / "main" / "binary-amd64" / "Packages"
    packages.parent.mkdir(parents=True)
    packages.write_text(text)


def best(runs: list[ChildRun]) -> ChildRun:
    failed = [run for run in runs if run.returncode != 0]
    if failed:
        raise SystemExit(f"a run failed:\n{failed[0].output}")
    return min(runs, key=lambda run: run.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="Generate the tree here and keep it.")
    parser.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        make_tree(args.generate_only, args.mib)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-image-"))
    tree = args.keep or work / "tree"
    try:
        if not tree.exists():  # in a child: Linux keeps the peak RSS across fork+exec, so ours must stay small
            generated = run_child([sys.executable, __file__, "--mib", str(args.mib), "--generate-only", str(tree)])
            best([generated])
        size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        packed = {}
        for compression in _COMPRESSIONS:
            runs = []
            for i in range(args.repeat):
                argv = [sys.executable, "-c", _LAYERS, str(tree), str(work / f"{compression}{i}"), compression]
                runs.append(run_child(argv))
                shutil.rmtree(work / f"{compression}{i}")
            packed[compression] = best(runs)
        copies = []
        for i in range(args.repeat):
            copies.append(run_child(["cp", "-r", str(tree), str(work / f"copy{i}")]))
            shutil.rmtree(work / f"copy{i}")
        copy = best(copies)
        hashed_copies = []
        for i in range(args.repeat):
            both = f"cp -r {tree} {work}/hashed{i} && find {work}/hashed{i} -type f -print0 | xargs -0 cat | sha256sum"
            hashed_copies.append(run_child(["bash", "-o", "pipefail", "-c", both]))
            shutil.rmtree(work / f"hashed{i}")
        hashed_copy = best(hashed_copies)
        tar = f"tar --sort=name --mtime=@0 --owner=0 --group=0 -C {tree} -c . | gzip -n > {work}/tar.tgz"
        plain = best([run_child(["bash", "-o", "pipefail", "-c", tar]) for _ in range(args.repeat)])
        print(f"tree: {size / 2**20:.0f} MiB in {sum(1 for _ in tree.rglob('*'))} paths; best of {args.repeat}")
        print(f"{'measurement':52} {'seconds':>8} {'MiB/s':>7} {'peak RSS':>9} {'vs cp':>6} {'bytes':>9}")
        rows = [(f"(a) image layers, --compression {c}", run) for c, run in packed.items()]
        rows += [("(b) cp -r", copy), ("(c) tar --sort=name ... | gzip -n (one layer, -6)", plain)]
        rows += [("(d) cp -r, then sha256sum of every byte", hashed_copy)]
        for label, run in rows:
            rate = size / 2**20 / run.seconds
            written = run.output.split()[-1] if label.startswith("(a)") else ""
            mib = f"{int(written) / 2**20:6.0f} MiB" if written.isdigit() else ""
            print(
                f"{label:52} {run.seconds:8.2f} {rate:7.1f} {run.peak_rss_kib / 1024:6.0f} MiB "
                f"{run.seconds / copy.seconds:5.2f}x {mib}"
            )
        layers = packed["none"].output.split()[0]
        print(
            f"\n{layers} layers (pool buckets + metadata); (a, none)/(b) {packed['none'].seconds / copy.seconds:.2f}x"
        )
        print(f"(a, none)/(d) {packed['none'].seconds / hashed_copy.seconds:.2f}x; target: (a, none) <= 2x cp -r")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
