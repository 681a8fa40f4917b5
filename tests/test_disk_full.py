"""Issue 15.5: disks fill. ``lock``, ``fetch`` and ``publish`` on a real tmpfs that is full, runs out of inodes
mid-way, or is read-only, through the real CLI in a child process (the image stage: ``tests/image/test_image_disk.py``).

Each run ends with exit status 2 and one ``error:`` line naming the path (and, for a full disk, the space the
step needs), never a traceback; the step's partial files are gone; the previous lock, cache and published tree
are intact; and the same command succeeds once there is room. ``fetch`` and ``publish`` know their sizes from
the locks and refuse before writing anything.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.tmpfs import Tmpfs
from test_faults import Work, assert_cache_trustworthy, write_key

BIG = random.Random(15).randbytes(1_500_000)  # incompressible: the pool is ~1.5 MiB, more than the small disks
PACKAGES = [
    P("web", "1.0", depends="libc, bigdata"),
    P("bigdata", "1.0", architecture="all", files={"usr/share/big/blob": BIG}),
    P("libc", "2.36"),
]


def run(args: list[str]) -> tuple[int, str]:
    """``minimirror ARGS`` in a child: its exit status and stderr."""
    env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-m", "minimirror", *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    return done.returncode, done.stderr


def assert_one_clean_error(status: int, stderr: str, *words: str) -> str:
    assert status == 2, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` and its sha256: a tree compared before and after a failed run."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def no_partials(cache: Path) -> bool:
    return not list((cache / "partial").glob("*")) if (cache / "partial").exists() else True


@pytest.fixture
def work(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Work:
    archive = fixture_archive_factory({"main": PACKAGES})
    return Work.make(tmp_path / "work", archive, http_server(archive.root), packages="web\n")


# --- fetch ------------------------------------------------------------------------------------------------


def fetch_args(work: Work, cache: Path) -> list[str]:
    return ["fetch", "--locks", str(work.locks), "--cache", str(cache)]


def test_fetch_refuses_early_when_the_pool_does_not_fit(work: Work, tmpfs: Tmpfs) -> None:
    cache = tmpfs.path / "cache"
    assert run([*work.lock_args("--cache", str(cache))])[0] == 0  # --cache given twice: the last one counts
    tmpfs.leave_room(extra_bytes=1 << 20)  # 1 MiB free; the pool is 1.5 MiB
    before = snapshot(cache)

    message = assert_one_clean_error(*run(fetch_args(work, cache)), f"not enough space for {cache}", "needs 1.4 MiB")
    assert "nothing was written" in message
    assert snapshot(cache) == before and no_partials(cache)

    tmpfs.remount("size=16m")
    assert run(fetch_args(work, cache))[0] == 0
    assert assert_cache_trustworthy(cache) == 1 + 3  # the index and the three pool files


def test_fetch_that_runs_out_of_room_midway_cleans_up(work: Work, tmpfs: Tmpfs) -> None:
    cache = tmpfs.path / "cache"
    assert run([*work.lock_args("--cache", str(cache))])[0] == 0
    tmpfs.leave_room(extra_inodes=3)  # bytes to spare, but room for three new files or folders only

    message = assert_one_clean_error(*run(fetch_args(work, cache)), "no space left on device", str(cache))
    assert "this step needs 1.4 MiB" in message
    assert assert_cache_trustworthy(cache) >= 1 and no_partials(cache)

    tmpfs.remount("nr_inodes=1000")
    assert run(fetch_args(work, cache))[0] == 0
    assert assert_cache_trustworthy(cache) == 1 + 3 and no_partials(cache)


def test_fetch_into_a_read_only_cache(work: Work, tmpfs: Tmpfs) -> None:
    cache = tmpfs.path / "cache"
    assert run([*work.lock_args("--cache", str(cache))])[0] == 0
    tmpfs.remount("ro")
    assert_one_clean_error(*run(fetch_args(work, cache)), str(cache), "read-only file system")


# --- lock ---------------------------------------------------------------------------------------------------


def test_lock_on_a_full_cache_keeps_the_previous_lock(work: Work, tmpfs: Tmpfs) -> None:
    assert run(work.lock_args())[0] == 0
    previous = work.lock_file.read_bytes()
    (work.sources / "fixture" / "stable" / "packages.txt").write_text("web\nlibc\n")
    cache = tmpfs.path / "cache"
    tmpfs.remount("nr_inodes=6")  # the cache's folders and a file or two, not the index and its parsed form

    assert_one_clean_error(*run(work.lock_args("--cache", str(cache))), "no space left on device", str(cache))
    assert work.lock_file.read_bytes() == previous
    assert no_partials(cache)
    assert_cache_trustworthy(cache)


# --- publish ------------------------------------------------------------------------------------------------


def publish_args(work: Work, key: Path, out: Path) -> list[str]:
    where = ["--locks", str(work.locks), "--cache", str(work.cache), "--out", str(out)]
    return ["publish", *where, "--sign-key", str(key)]


@pytest.fixture
def published(work: Work, tmpfs: Tmpfs) -> tuple[Work, Path, Path]:
    """A signed tree published onto the tmpfs (the cache stays on the test's disk: pool files are copied)."""
    assert work.archive.key is not None
    key = write_key(work.root, work.archive.key)
    assert run(work.lock_args())[0] == 0
    assert run(work.fetch_args())[0] == 0
    out = tmpfs.path / "public"
    assert run(publish_args(work, key, out))[0] == 0
    return work, key, out


def test_publish_refuses_early_and_keeps_the_previous_tree(published: tuple[Work, Path, Path], tmpfs: Tmpfs) -> None:
    work, key, out = published
    before = snapshot(out)
    tmpfs.leave_room(extra_bytes=1 << 20)  # the new tree is written beside the old one: 1.5 MiB more

    message = assert_one_clean_error(*run(publish_args(work, key, out)), f"not enough space for {tmpfs.path}")
    assert "needs 1.4 MiB" in message and "nothing was written" in message
    assert snapshot(out) == before
    assert sorted(p.name for p in tmpfs.path.iterdir() if not p.name.startswith(".")) == ["public"]

    tmpfs.remount("size=16m")
    assert run(publish_args(work, key, out))[0] == 0
    assert snapshot(out) == before  # reproducible: the same tree again


def test_publish_that_runs_out_of_room_midway_keeps_the_previous_tree(
    published: tuple[Work, Path, Path], tmpfs: Tmpfs
) -> None:
    work, key, out = published
    before = snapshot(out)
    tmpfs.leave_room(extra_inodes=6)  # a few folders of the new tree, then ENOSPC

    message = assert_one_clean_error(*run(publish_args(work, key, out)), "no space left on device", "this step needs")
    assert f"{out}.new-" in message  # the file the kernel refused, in the staging tree
    assert snapshot(out) == before
    assert sorted(p.name for p in tmpfs.path.iterdir() if not p.name.startswith(".")) == ["public"]


def test_publish_onto_a_read_only_disk(published: tuple[Work, Path, Path], tmpfs: Tmpfs) -> None:
    work, key, out = published
    before = snapshot(out)
    tmpfs.remount("ro")
    assert_one_clean_error(*run(publish_args(work, key, out)), str(tmpfs.path), "read-only file system")
    assert snapshot(out) == before
