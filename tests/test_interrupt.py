"""Issue 8.3: ``kill -9`` at random points of ``lock``, ``fetch`` and ``publish``, many times in a row.

Each command runs in a child process that is killed after a delay drawn (fixed seed) over the command's measured
run time; the next attempt starts from whatever the killed one left. After every kill the previous output is
intact (the lock is the old or the new one, whole; the published tree is the old or the new one, whole; every
blob in the cache has its name's sha256), and a final uninterrupted run completes and verifies.
(``image`` is the colleague's stage, not committed yet: not covered here.)
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_faults import Work, assert_cache_trustworthy, write_key

from minimirror.cli import main
from minimirror.lock.lockfile import read_lock

KILLS = 20
"""Interruptions per command (the figure in docs/reliability.md)."""
SEED = 8
BLOB = random.Random(SEED).randbytes(400_000)  # incompressible: a pool file that takes many reads
OLD = [
    P("web", "1.0", depends="libc, bigdata"),
    P("bigdata", "1.0", architecture="all", files={"usr/share/big/blob": BLOB}),
    P("libc", "2.36"),
    P("shell", "5.2", depends="libc"),
]
NEW = [*OLD, P("libc", "2.37"), P("web", "1.1", depends="libc (>= 2.37), bigdata")]


@dataclasses.dataclass(frozen=True)
class Tally:
    """What the kills hit: ``killed`` runs died by SIGKILL, ``finished`` ones were done before the signal;
    ``mid_write`` counts the killed runs that had already changed something on disk (a kill during write)."""

    killed: int
    finished: int
    mid_write: int


def _env(tmpdir: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "MINIMIRROR_LOCK_TIMEOUT": "30"}
    return {**env, "TMPDIR": str(tmpdir)} if tmpdir is not None else env


def _run(args: list[str], tmpdir: Path | None = None) -> float:
    """Run ``minimirror ARGS`` to completion in a child; its duration."""
    start = time.monotonic()
    command = [sys.executable, "-m", "minimirror", *args]
    done = subprocess.run(command, env=_env(tmpdir), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return time.monotonic() - start


def kill_repeatedly(
    args: list[str],
    duration: float,
    check: Callable[[], None],
    *,
    seed: int,
    watch: Path,
    reset: Callable[[], None],
    tmpdir: Path | None = None,
) -> Tally:
    """Start ``minimirror ARGS`` KILLS times, SIGKILL each at a random point of ``duration``, check after each.

    ``reset`` puts back the state before the command (a finished run would leave later ones nothing to do);
    ``watch`` is the folder whose files (names and sizes) show whether a killed run had started writing."""
    rng = random.Random(seed)
    killed = finished = mid_write = 0
    for _ in range(KILLS):
        reset()
        before = _listing(watch)
        child = subprocess.Popen(
            [sys.executable, "-m", "minimirror", *args],
            env=_env(tmpdir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.5, 1.05) * duration)  # earlier, the child is still importing Python
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        _, err = child.communicate(timeout=60)
        assert child.returncode in (0, -signal.SIGKILL), err.decode()
        killed += child.returncode == -signal.SIGKILL
        finished += child.returncode == 0
        mid_write += child.returncode == -signal.SIGKILL and _listing(watch) != before
        check()
    return Tally(killed, finished, mid_write)


def _listing(folder: Path) -> set[tuple[str, int]]:
    return {(str(p), p.stat().st_size) for p in folder.rglob("*") if p.is_file() and p.name != ".minimirror.lock"}


def stop_gnupg_homes(tmpdir: Path) -> int:
    """A publish killed while signing cannot stop its gpg-agent or remove its home (with the imported key);
    do it for it, the way minimirror does (``gpgconf --kill``). Returns how many homes were left."""
    homes = sorted(tmpdir.glob("mm-gpg-*"))
    for home in homes:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    return len(homes)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def work(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, signing_key: SigningKey
) -> Work:
    archive = fixture_archive_factory({"main": OLD}, root=tmp_path / "archive")
    done = Work.make(tmp_path / "work", archive, http_server(archive.root), packages="web\nshell\n")
    assert main(done.lock_args()) == 0
    write_key(done.root, signing_key)
    return done


def upgrade_upstream(work: Work, fixture_archive_factory: ArchiveFactory) -> None:
    fixture_archive_factory({"main": NEW}, root=work.archive.root)


def test_lock_survives_kill_9_and_a_rerun_completes(
    work: Work, fixture_archive_factory: ArchiveFactory, tmp_path: Path
) -> None:
    old = work.lock_file.read_bytes()
    upgrade_upstream(work, fixture_archive_factory)
    probe = tmp_path / "probe"
    shutil.copytree(work.root, probe)
    probe_work = dataclasses.replace(work, root=probe)
    duration = _run(probe_work.lock_args("--upgrade"))
    new = probe_work.lock_file.read_bytes()
    assert new != old

    def check() -> None:
        assert work.lock_file.read_bytes() in (old, new), "the lock is the old or the new one, whole"
        read_lock(work.lock_file)
        assert_cache_trustworthy(work.cache)

    def reset() -> None:  # the old lock, and a cold cache: every run has everything to do
        if work.lock_file.read_bytes() != old:
            work.lock_file.write_bytes(old)
        shutil.rmtree(work.cache, ignore_errors=True)

    tally = kill_repeatedly(work.lock_args("--upgrade"), duration, check, seed=SEED, watch=work.root, reset=reset)
    print(f"lock: {tally} over {duration:.2f} s runs")  # the figures of docs/reliability.md (pytest -rP)
    assert tally.killed >= KILLS // 2, tally
    _run(work.lock_args("--upgrade"))
    assert work.lock_file.read_bytes() == new
    assert main(work.lock_args("--check")) == 0


def test_fetch_survives_kill_9_and_a_rerun_completes(work: Work, tmp_path: Path) -> None:
    work.server.faults.stall("/pool/*", 0.2, times=None)  # a slow mirror: kills land mid-download too
    probe = tmp_path / "probe"
    shutil.copytree(work.root, probe)
    duration = _run(dataclasses.replace(work, root=probe).fetch_args())

    pool = [work.cache / "blobs" / "sha256" / p.sha256[:2] / p.sha256 for p in read_lock(work.lock_file).packages]

    def reset() -> None:  # once every pool file is in, start over (partial files stay: resuming is tested too)
        if all(blob.exists() for blob in pool):
            for blob in pool:
                blob.unlink()

    tally = kill_repeatedly(
        work.fetch_args(),
        duration,
        lambda: assert_cache_trustworthy(work.cache),
        seed=SEED + 1,
        watch=work.cache,
        reset=reset,
    )
    print(f"fetch: {tally} over {duration:.2f} s runs")
    assert tally.killed >= KILLS // 2, tally
    work.server.faults.clear()
    _run(work.fetch_args())
    lock = read_lock(work.lock_file)
    assert assert_cache_trustworthy(work.cache) == len(lock.packages) + 1
    assert not list((work.cache / "partial").glob("*"))


def test_publish_survives_kill_9_and_a_rerun_completes(
    work: Work, fixture_archive_factory: ArchiveFactory, tmp_path: Path
) -> None:
    key = work.root / "release.key"
    assert main(work.fetch_args()) == 0
    assert main(work.publish_args(key, "--no-fetch")) == 0
    old = tree(work.out)
    upgrade_upstream(work, fixture_archive_factory)
    assert main(work.lock_args("--upgrade")) == 0
    assert main(work.fetch_args()) == 0
    probe_out = tmp_path / "probe-public"
    probe_args = work.publish_args(key, "--no-fetch")
    probe_args[probe_args.index("--out") + 1] = str(probe_out)
    # The quicker of two runs (the second publishes over a tree, as the killed runs do): a slow first probe
    # would put the kills after most runs had finished.
    duration = min(_run(probe_args), _run(probe_args))
    new = tree(probe_out)
    assert new != old

    def check() -> None:
        if work.out.exists():
            assert tree(work.out) in (old, new), "the published tree is the old or the new one, whole"
        else:  # killed between the two renames of the fallback swap: the previous tree waits beside it
            olds = sorted(work.out.parent.glob("public.old-*"))
            assert olds and tree(olds[0]) == old

    saved = tmp_path / "saved-public"
    shutil.copytree(work.out, saved)

    def reset() -> None:  # the old tree again once a run has replaced it
        if work.out.exists() and tree(work.out) != old:
            shutil.rmtree(work.out)
            shutil.copytree(saved, work.out)

    tmpdir = tmp_path / "tmp"  # where the children's GnuPG homes go
    tmpdir.mkdir()
    args = work.publish_args(key, "--no-fetch")
    try:
        tally = kill_repeatedly(args, duration, check, seed=SEED + 2, watch=work.root, reset=reset, tmpdir=tmpdir)
        _run(args, tmpdir)
    finally:
        left = stop_gnupg_homes(tmpdir)
    print(f"publish: {tally} over {duration:.2f} s runs; {left} GnuPG homes left by kills while signing")
    assert tally.killed >= KILLS // 2, tally
    assert tree(work.out) == new
    assert not [p for p in work.out.parent.iterdir() if p.name.startswith(("public.new-", "public.old-"))]
    assert main(["verify", str(work.out), "--keyring", str(work.out / "signing-key.gpg"), "--no-dose"]) == 0
