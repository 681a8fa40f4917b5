"""Image layer build vs ``tar --sort=name ... | gzip -n``: the practical single-stream limit.

Generates a mirror-like tree (mostly incompressible .deb-sized files, some compressible index text) of
``--mib`` MiB, then times, each in a fresh child process (wall time, peak RSS from ``os.wait4``):

    (a) minimirror.image.layers.write_layer(scan_tree(tree, "srv"))   tar + gzip -6 + two sha256, one pass
    (b) tar --sort=name --mtime=@0 --owner=0 --group=0 -c | gzip -n   (gzip's default level 6)
    (c) (b) | tee out | sha256sum                                 the same plus one digest, as an image needs

and prints the ratio (a)/(b) (target <= 1.1). Usage::

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

_LAYER = """
import sys
from pathlib import Path
from minimirror.image.layers import scan_tree, write_layer
d = write_layer(scan_tree(Path(sys.argv[1]), "srv"), Path(sys.argv[2]), epoch=0)
print(d.digest, d.size, d.uncompressed_size)
"""


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
        ours = best(
            [run_child([sys.executable, "-c", _LAYER, str(tree), str(work / "layer.tgz")]) for _ in range(args.repeat)]
        )
        tar = f"tar --sort=name --mtime=@0 --owner=0 --group=0 -C {tree} -c . | gzip -n > {work}/tar.tgz"
        plain = best([run_child(["bash", "-o", "pipefail", "-c", tar]) for _ in range(args.repeat)])
        hashed_cmd = f"{tar.rsplit(' > ', 1)[0]} | tee {work}/tar2.tgz | sha256sum"
        hashed = best([run_child(["bash", "-o", "pipefail", "-c", hashed_cmd]) for _ in range(args.repeat)])
        print(f"tree: {size / 2**20:.0f} MiB in {sum(1 for _ in tree.rglob('*'))} paths; best of {args.repeat}")
        print(f"{'measurement':52} {'seconds':>8} {'MiB/s':>7} {'peak RSS':>9}")
        for label, run in (
            ("(a) minimirror write_layer (tar+gzip-6+2 sha256)", ours),
            ("(b) tar --sort=name ... | gzip -n", plain),
            ("(c) tar --sort=name ... | gzip -n | sha256sum", hashed),
        ):
            rate = size / 2**20 / run.seconds
            print(f"{label:52} {run.seconds:8.2f} {rate:7.1f} {run.peak_rss_kib / 1024:6.0f} MiB")
        ours_size, tar_size = (work / "layer.tgz").stat().st_size, (work / "tar.tgz").stat().st_size
        print(f"\n(a)/(b) time ratio  {ours.seconds / plain.seconds:.2f}x   (target <= 1.1x)")
        print(f"(a)/(c) time ratio  {ours.seconds / hashed.seconds:.2f}x")
        print(f"compressed size     ours {ours_size / 2**20:.1f} MiB, tar|gzip {tar_size / 2**20:.1f} MiB")
        print(f"peak RSS of (a): {ours.peak_rss_kib / 1024:.0f} MiB for a {size / 2**20:.0f} MiB tree")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
