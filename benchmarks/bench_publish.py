"""``minimirror publish`` beside ``aptly publish snapshot`` of the same packages.

The package set comes from the real Debian index in ``../shared/data/debian-bookworm`` (which has no pool
files): every k-th package of ``main/binary-amd64`` up to ``--packages`` (default 300), each a real ``.deb``
built by ``dpkg-deb`` with its real name and version and a payload of random bytes of its real ``Size``
(capped at ``--max-mib``), in a signed archive locked offline by :func:`minimirror.pipeline.example.write_example`.

Each tool runs in a fresh child process (wall time, peak RSS), unsigned, then signed with one throwaway
Ed25519 key (minimirror: ``sign_key``; aptly: the key imported into a private ``GNUPGHOME``, ``-gpg-key``):

    (a)  minimirror publish: read + hash every .deb, Packages{,.gz,.xz}, Release, by-hash, link the pool
    (b)  aptly repo add + snapshot create + publish snapshot, with a private aptly.conf (rootDir in a temp dir)
    (b') aptly publish snapshot alone (repo add done before, as a long-lived aptly database would have it)

and prints the ratio (a)/(b) (target <= 1.0). Usage::

    python benchmarks/bench_publish.py [--packages 300] [--max-mib 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ChildRun, run_child

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


def run_minimirror(example: Path, work: Path, key: Path | None, repeat: int) -> ChildRun:
    runs = []
    for i in range(repeat):
        out = work / f"public-{'s' if key else 'u'}{i}"
        args = [str(example / "locks"), str(out), str(example / "cache"), *([str(key)] if key else [])]
        runs.append(run_child([sys.executable, "-c", _PUBLISH, *args]))
        shutil.rmtree(out, ignore_errors=True)
    return best(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--max-mib", type=float, default=4.0, help="Cap on one package's size (default 4 MiB).")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        make_example(args.generate_only, args.packages, int(args.max_mib * 2**20))
        return
    if not INDEX.is_file():
        print(f"skipped: {INDEX} is absent (the shared Debian index)")
        return
    if shutil.which("aptly") is None:
        print("skipped: aptly is not installed (apt-get install aptly)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        example = work / "example"
        # in a child: Linux keeps the peak RSS across fork+exec, so ours (the parent's) must stay small
        sizes = ["--packages", str(args.packages), "--max-mib", str(args.max_mib)]
        best([run_child([sys.executable, __file__, *sizes, "--generate-only", str(example)])])
        debs = example / "archive" / "pool"
        size = sum(p.stat().st_size for p in debs.rglob("*.deb"))
        count = sum(1 for _ in debs.rglob("*.deb"))
        secret, fingerprint, home = throwaway_key(work)
        rows = []
        for label, key, sign in (("unsigned", None, None), ("signed", secret, (fingerprint, home))):
            ours = run_minimirror(example, work, key, args.repeat)
            full, alone = run_aptly(work, debs, sign, args.repeat)
            rows.append((label, ours, full, alone))
        print(
            f"{count} packages (names and versions from bookworm main), {size / 2**20:.0f} MiB; best of {args.repeat}"
        )
        print(f"{'measurement':58} {'seconds':>8} {'peak RSS':>9}")
        for label, ours, full, alone in rows:
            for name, run in (
                (f"(a)  minimirror publish, {label}", ours),
                (f"(b)  aptly repo add + snapshot + publish, {label}", full),
                (f"(b') aptly publish snapshot alone, {label}", alone),
            ):
                print(f"{name:58} {run.seconds:8.2f} {run.peak_rss_kib / 1024:6.0f} MiB")
        print()
        for label, ours, full, alone in rows:
            ratios = f"(a)/(b) {ours.seconds / full.seconds:.2f}x (target <= 1.0x)"
            print(f"{label:9} {ratios}   (a)/(b') {ours.seconds / alone.seconds:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
