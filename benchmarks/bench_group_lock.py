"""Locking a group (the real Debian index and three small third-party sources resolved together) beside
locking the Debian source alone, on loopback; apt over the same four lines for reference.

The runs of the Debian source alone and of the group take turns (a load that comes and goes weighs on both).
The third-party sources are small signed archives built by the test helpers (real .debs whose dependencies are
in Debian: libc6, iptables, ca-certificates, python3...), each served on loopback like the Debian index. The
group's queries are the Debian set of ``bench_lock.py`` plus one or two packages of each third-party source.

Cold is an empty cache, warm the cache of the cold run. Each run is a separate process; the table gives the
best wall time of N runs. Prints ratios; asserts nothing. Target: group / Debian alone <= 1.1x.
Usage: ``python benchmarks/bench_group_lock.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _loopback import DEBIAN_KEYRING, AptRoot, ChildRun, byte_compile_minimirror, fastest, run_child, serve_directory
from _loopback import best_run as best
from _loopback import shared_data_dir as _shared

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive, build_archive
from fixtures.gpgkeys import SigningKey, generate_signing_key

DEBIAN_QUERIES = ("curl", "git", "openssh-server", "python3", "vim-tiny")
# what the third-party packages need of Debian: the "same closure" row locks Debian alone with these added, so
# the group's own cost shows apart from the cost of the 37 more Debian packages the group locks
THIRD_PARTY_NEEDS = ("iptables", "ca-certificates", "libseccomp2", "bzip2", "xz-utils", "gnupg", "python3-yaml")
THIRD_PARTY = {
    "docker/bookworm": (
        [
            P("dockerish-ce", "5:27.1.0-1", depends="libc6 (>= 2.34), iptables, ca-certificates, dockerish-cli"),
            P("dockerish-cli", "5:27.1.0-1", depends="libc6 (>= 2.34)"),
            P("containerdish", "1.7.19-1", depends="libc6, libseccomp2"),
        ],
        ("dockerish-ce", "containerdish"),
    ),
    "aptly/release": ([P("aptlyish", "1.5.0", depends="bzip2, xz-utils, gnupg")], ("aptlyish",)),
    "vendor/tools": (
        [P("vtool", "3.1", depends="python3 (>= 3.11), python3-yaml"), P("vtool-doc", "3.1", architecture="all")],
        ("vtool", "vtool-doc"),
    ),
}


@contextmanager
def third_party_archives(work: Path, key: SigningKey) -> Iterator[dict[str, tuple[FixtureArchive, str]]]:
    """Each third-party archive, built and served on loopback: source id -> (archive, URL)."""
    with ExitStack() as stack:
        served = {}
        for source_id, (packages, _) in THIRD_PARTY.items():
            root = work / "archives" / source_id.replace("/", "-")
            archive = build_archive(root, {"main": packages}, dist="bookworm", key=key, origin=source_id.split("/")[0])
            served[source_id] = (archive, stack.enter_context(serve_directory(root)))
        yield served


def write_sources(
    root: Path,
    debian_url: str,
    third: dict[str, tuple[FixtureArchive, str]],
    *,
    group: bool,
    extra: tuple[str, ...] = (),
) -> None:
    debian = root / "debian" / "bookworm"
    debian.mkdir(parents=True)
    (debian / "source.txt").write_text(f"{debian_url}/ file://{DEBIAN_KEYRING} bookworm main\n")
    (debian / "packages.txt").write_text("\n".join((*DEBIAN_QUERIES, *extra)) + "\n")
    if not group:
        return
    for source_id, (archive, url) in third.items():
        directory = root / source_id
        directory.mkdir(parents=True)
        assert archive.key is not None
        (directory / "source.txt").write_text(f"{url}/ file://{archive.key.public_key_asc_path} bookworm main\n")
        (directory / "packages.txt").write_text("\n".join(THIRD_PARTY[source_id][1]) + "\n")
        (directory / "minimirror.toml").write_text('resolve-with = ["debian/bookworm"]\n')


def lock_commands(work: Path, sources: Path) -> tuple[Callable[[], ChildRun], Callable[[], ChildRun]]:
    """A cold and a warm lock of the sources tree, each a fresh process."""
    args = [sys.executable, "-m", "minimirror", "-q", "lock", "--sources", str(sources)]
    args += ["--locks", str(work / "locks"), "--cache", str(work / "cache")]

    def cold() -> ChildRun:
        shutil.rmtree(work / "cache", ignore_errors=True)
        shutil.rmtree(work / "locks", ignore_errors=True)
        return run_child(args)

    def warm() -> ChildRun:
        shutil.rmtree(work / "locks", ignore_errors=True)
        return run_child(args)

    return cold, warm


def interleaved(repeat: int, *runs: Callable[[], ChildRun]) -> list[ChildRun]:
    """The best of ``repeat`` rounds of each run, the runs taking turns within a round, so that a load that
    comes and goes (other work on the machine) weighs on each of them alike."""
    rounds = [[run() for run in runs] for _ in range(repeat)]
    return [fastest(column) for column in zip(*rounds, strict=True)]


def apt_run(work: Path, debian_url: str, third: dict[str, tuple[FixtureArchive, str]], repeat: int) -> ChildRun:
    lines = [f"deb [signed-by={DEBIAN_KEYRING}] {debian_url}/ bookworm main"]
    lines += [
        f"deb [signed-by={a.key.public_key_path if a.key else ''}] {url}/ bookworm main" for a, url in third.values()
    ]
    apt = AptRoot.create(work / "apt", "\n".join(lines))
    queries = [*DEBIAN_QUERIES, *(q for _, wanted in THIRD_PARTY.values() for q in wanted)]
    return best(repeat, lambda: apt.update_and_simulate(queries))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(argv)
    data = _shared()
    if data is None or not (data / "debian-bookworm").is_dir():
        print("skipped: ../shared/data/debian-bookworm is not beside this checkout")
        return 0
    byte_compile_minimirror()
    with tempfile.TemporaryDirectory(prefix="bench-group-") as tmp, serve_directory(data / "debian-bookworm") as url:
        work = Path(tmp)
        key = generate_signing_key(work)
        try:
            with third_party_archives(work, key) as third:
                write_sources(work / "alone", url, third, group=False)
                write_sources(work / "group", url, third, group=True)
                write_sources(work / "same", url, third, group=False, extra=THIRD_PARTY_NEEDS)
                alone_cold, alone_warm = lock_commands(work / "run-alone", work / "alone")
                group_cold, group_warm = lock_commands(work / "run-group", work / "group")
                same_cold, same_warm = lock_commands(work / "run-same", work / "same")
                cold = interleaved(options.repeat, alone_cold, group_cold, same_cold)  # each empties its own cache
                warm = interleaved(options.repeat, alone_warm, group_warm, same_warm)  # each runs on its own cache
                alone, grouped, same = (cold[0], warm[0]), (cold[1], warm[1]), (cold[2], warm[2])
                apt = apt_run(work, url, third, options.repeat)
        finally:
            key.close()
    print(f"Debian queries: {' '.join(DEBIAN_QUERIES)}; 3 third-party sources; best of {options.repeat}")
    print(f"{'':40}{'seconds':>9}{'peak RSS MiB':>14}")
    rows = [
        ("lock debian/bookworm alone, cold", alone[0]),
        ("lock the group of 4 sources, cold", grouped[0]),
        ("lock debian/bookworm alone, warm", alone[1]),
        ("lock the group of 4 sources, warm", grouped[1]),
        ("lock debian alone, same closure, cold", same[0]),
        ("lock debian alone, same closure, warm", same[1]),
        ("apt update + install -s, 4 lines", apt),
    ]
    for label, run in rows:
        print(f"{label:40}{run.seconds:9.3f}{run.peak_rss_kib / 1024:14.0f}")
    print(f"group / alone, cold {grouped[0].seconds / alone[0].seconds:5.2f}x   (target <= 1.1x)")
    print(f"group / alone, warm {grouped[1].seconds / alone[1].seconds:5.2f}x   (target <= 1.1x)")
    print(f"group / same closure alone, cold {grouped[0].seconds / same[0].seconds:5.2f}x   (the group's own cost)")
    print(f"group / same closure alone, warm {grouped[1].seconds / same[1].seconds:5.2f}x")
    print(f"group cold / apt    {grouped[0].seconds / apt.seconds:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
