"""Issue 8.3: two runs on the same cache or output folder are safe — the second waits, or says who holds it.

The lock is :mod:`minimirror.filelock` (``flock``); holders here are real child processes, so the tests see what
a second terminal would: the wait message with the holder's pid, the bound, and the release on ``kill -9``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_faults import Work, assert_cache_trustworthy, write_key

from minimirror.cli import main
from minimirror.errors import UsageError
from minimirror.filelock import FolderBusy, LockWait, cache_lock, holder_pid, wait_from_env
from minimirror.lock.lockfile import read_lock

PACKAGES = [P("web", "1.0", depends="libc"), P("libc", "2.37"), P("shell", "5.2")]
HOLDER = """
import sys, time
from pathlib import Path
from minimirror.filelock import cache_lock, publish_lock
take = cache_lock if sys.argv[1] == "cache" else publish_lock
with take(Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


@contextmanager
def holder(kind: str, folder: Path, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """A child process holding the lock of ``folder`` for ``seconds`` (stopped, by its pid, on exit)."""
    child = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(folder), str(seconds)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"held\n"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()


def test_a_held_cache_makes_the_second_run_wait_then_fail_naming_the_holder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with holder("cache", tmp_path, 30) as child:
        assert holder_pid(tmp_path / ".minimirror.lock") == child.pid
        start = time.monotonic()
        with (
            pytest.raises(FolderBusy) as caught,
            caplog.at_level(logging.INFO, "minimirror"),
            cache_lock(tmp_path, wait=LockWait(timeout=0.5, poll=0.05)),
        ):
            pytest.fail("the lock was taken twice")
        waited = time.monotonic() - start
    assert 0.5 <= waited < 5
    assert caught.value.pid == child.pid
    assert f"pid {child.pid} is still using this cache" in str(caught.value)
    assert "MINIMIRROR_LOCK_TIMEOUT" in str(caught.value)
    assert f"waiting for pid {child.pid}" in caplog.text


def test_the_second_run_gets_the_lock_once_the_first_is_done(tmp_path: Path) -> None:
    with holder("cache", tmp_path, 0.6):
        start = time.monotonic()
        with cache_lock(tmp_path, wait=LockWait(timeout=20, poll=0.05)):
            waited = time.monotonic() - start
            assert holder_pid(tmp_path / ".minimirror.lock") == os.getpid()
    assert 0.2 < waited < 10
    assert holder_pid(tmp_path / ".minimirror.lock") is None, "a finished run leaves no pid behind"


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    with holder("cache", tmp_path, 30) as child:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        start = time.monotonic()
        with cache_lock(tmp_path, wait=LockWait(timeout=10)):
            assert time.monotonic() - start < 1


def test_the_wait_comes_from_the_environment() -> None:
    assert wait_from_env({}) == LockWait()
    assert wait_from_env({"MINIMIRROR_LOCK_TIMEOUT": "2.5"}).timeout == 2.5
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(UsageError, match="MINIMIRROR_LOCK_TIMEOUT"):
            wait_from_env({"MINIMIRROR_LOCK_TIMEOUT": bad})


# --- whole commands ------------------------------------------------------------------------------------------


@pytest.fixture
def work(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, signing_key: SigningKey
) -> Work:
    archive = fixture_archive_factory({"main": PACKAGES})
    done = Work.make(tmp_path / "work", archive, http_server(archive.root))
    assert main(done.lock_args()) == 0
    write_key(done.root, signing_key)
    return done


def _start(args: list[str], **env: str) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "minimirror", *args], env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _finish(child: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = child.communicate(timeout=60)
    return child.returncode, err.decode()


def test_two_concurrent_fetches_on_one_cache_both_succeed_one_after_the_other(work: Work) -> None:
    work.server.faults.stall("/pool/*", 0.4, times=3)  # the first fetch holds the cache for a while
    first = _start(work.fetch_args())
    time.sleep(0.3)
    second = _start(work.fetch_args())
    (code1, err1), (code2, err2) = _finish(first), _finish(second)
    assert (code1, code2) == (0, 0), err1 + err2
    assert f"waiting for pid {first.pid}" in err2, err2
    assert assert_cache_trustworthy(work.cache) == len(read_lock(work.lock_file).packages) + 1


def test_search_waits_for_a_run_that_holds_the_cache(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    search = ["search", "--sources", str(work.sources), "--cache", str(work.cache), "web"]
    with holder("cache", work.cache, 30) as child:
        start = _start(search, MINIMIRROR_LOCK_TIMEOUT="0.3")
        code, err = _finish(start)
    assert code != 0 and f"pid {child.pid} is still using this cache" in err, err
    assert main(search) == 0  # once the holder is gone
    assert "web" in capsys.readouterr().out


def test_two_concurrent_publishes_to_one_folder_give_one_whole_tree(work: Work) -> None:
    assert main(work.fetch_args()) == 0
    key = work.root / "release.key"
    runs = [_start(work.publish_args(key, "--no-fetch")) for _ in range(2)]
    results = [_finish(run) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    assert sum("waiting for pid" in err for _, err in results) <= 1
    assert main(["verify", str(work.out), "--keyring", str(work.out / "signing-key.gpg"), "--no-dose"]) == 0


def test_publish_says_who_holds_the_output_when_it_will_not_wait(
    work: Work, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(work.fetch_args()) == 0
    monkeypatch.setenv("MINIMIRROR_LOCK_TIMEOUT", "0")
    with holder("publish", work.out, 30) as child:
        capsys.readouterr()
        assert main(work.publish_args(work.root / "release.key", "--no-fetch")) == 2
    err = capsys.readouterr().err
    assert f"{work.out}: pid {child.pid} is still using this published tree" in " ".join(err.split()), err
    assert "Traceback" not in err and not work.out.exists()
