"""Issue 8.1: every HTTP fault the loopback server can inject, against ``lock`` and ``fetch``.

Each fault either heals through the Downloader's retries or ends in one clean minimirror error naming the URL;
after every run the cache holds only blobs whose sha256 is their name, and nothing partial under a blob name.
An endless body is read by a child process whose peak memory (its own ``VmHWM``) must stay bounded.
(``publish --base/--push`` belong to the image stage, not committed yet: not covered here.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.server import FaultInjector, LoopbackServer
from fixtures.worktree import WorkTree

from minimirror.cli import main
from minimirror.errors import MinimirrorError
from minimirror.lock.lockfile import read_lock
from minimirror.lock.stage import LockConfig, lock
from minimirror.publish.fetch import FetchConfig, fetch
from minimirror.upstream.download import RetryPolicy, make_client

PACKAGES = [
    P("web", "1.0", depends="libssl (>= 3)", files={"usr/share/web/blob": bytes(range(256)) * 400}),
    P("libssl", "3.0.2"),
    P("shell", "5.2", depends="libc"),
    P("libc", "2.37"),
]
FAST = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)
INDEX = "/dists/stable/main/binary-amd64/*"  # by-hash and plain names
POOL = "/pool/*.deb"


@dataclasses.dataclass
class Work(WorkTree):
    """A served, signed fixture archive and a sources tree pointing at it (the layout every issue-8 test uses)."""

    archive: FixtureArchive
    server: LoopbackServer

    @classmethod
    def make(cls, root: Path, archive: FixtureArchive, server: LoopbackServer, packages: str = "web\nshell\n") -> Work:
        assert archive.key is not None
        source = root / "sources" / "fixture" / "stable"
        source.mkdir(parents=True)
        (source / "source.txt").write_text(f"{server.url} file://{archive.key.public_key_asc_path} stable main\n")
        (source / "packages.txt").write_text(packages)
        return cls(root, archive, server)

    @property
    def out(self) -> Path:
        return self.root / "public"

    @property
    def lock_file(self) -> Path:
        return self.locks / "fixture" / "stable.lock"

    def fetch_args(self, *extra: str) -> list[str]:
        return ["fetch", "--locks", str(self.locks), "--cache", str(self.cache), *extra]

    def publish_args(self, key_file: Path, *extra: str) -> list[str]:
        where = ["--locks", str(self.locks), "--cache", str(self.cache), "--out", str(self.out)]
        return ["publish", *where, "--sign-key", str(key_file), *extra]

    def lock_config(self) -> LockConfig:
        return LockConfig(self.sources, self.locks, self.cache)

    def fetch_config(self) -> FetchConfig:
        return FetchConfig(self.locks, self.cache, jobs=2, retry=FAST)


def assert_cache_trustworthy(cache: Path) -> int:
    """Every blob's sha256 is its name; returns how many blobs were checked.

    Blobs are trusted by name only, so a file under another name can only be the temporary file of a download
    still running or killed (``.<sha256>.<random>.part``), which nothing ever reads as a blob."""
    files = [p for p in (cache / "blobs" / "sha256").rglob("*") if p.is_file()] if cache.is_dir() else []
    blobs = [p for p in files if re.fullmatch(r"[0-9a-f]{64}", p.name)]
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"unverified bytes under {blob}"
    for other in set(files) - set(blobs):
        assert other.name.startswith(".") and other.name.endswith(".part"), f"unexpected file {other}"
    return len(blobs)


def write_key(root: Path, key: SigningKey) -> Path:
    path = root / "release.key"
    path.write_text(key.secret_key_armored)
    return path


@pytest.fixture
def work(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Work:
    archive = fixture_archive_factory({"main": PACKAGES})
    return Work.make(tmp_path / "work", archive, http_server(archive.root))


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's Downloader keeps its retry count but does not sleep between tries."""
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt: 0.0)


@pytest.fixture
def other_host(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, other_signing_key: SigningKey
) -> LoopbackServer:
    """Another server whose archive has the same names with other bytes, signed by a key nobody trusts."""
    tampered = [dataclasses.replace(p, description="tampered") for p in PACKAGES]
    archive = fixture_archive_factory({"main": tampered}, root=tmp_path / "other", key=other_signing_key)
    return http_server(archive.root)


# --- faults that heal: the run succeeds through retries --------------------------------------------------

Install = Callable[[FaultInjector, str], object]
HEALING: dict[str, Install] = {
    "503 once": lambda f, p: f.status(p, 503, times=1),
    "502 twice": lambda f, p: f.status(p, 502, times=2),
    "429 once": lambda f, p: f.status(p, 429, times=1),
    "reset": lambda f, p: f.reset(p, times=2),
    "truncated body": lambda f, p: f.truncate(p, after_bytes=100, times=2),
    "Content-Length too long": lambda f, p: f.lie_length(p, 10_000_000, times=1),
    "stall past the timeout": lambda f, p: f.stall(p, 1.5, times=1),
}


@pytest.mark.parametrize("fault", sorted(HEALING))
def test_lock_heals_through_retries(work: Work, fault: str, no_backoff: None) -> None:
    rules = [HEALING[fault](work.server.faults, pattern) for pattern in ("/dists/stable/InRelease", INDEX)]
    with make_client(timeout=0.5) as client:
        report = lock(work.lock_config(), client=client)
    assert report.outcomes[0].packages == 4
    assert assert_cache_trustworthy(work.cache) == 1  # the one index, verified
    assert all(rule.hits for rule in rules), "each fault fired"  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", sorted(HEALING))
def test_fetch_heals_through_retries(work: Work, fault: str) -> None:
    assert main(work.lock_args()) == 0
    rules = [HEALING[fault](work.server.faults, pattern) for pattern in ("/pool/*/web_*", "/pool/*/libc_*")]
    with make_client(timeout=0.5) as client:
        report = fetch(work.fetch_config(), client=client)
    assert all(rule.hits for rule in rules), "each fault fired"  # type: ignore[attr-defined]
    assert report.downloaded == 4 and not report.failures
    assert assert_cache_trustworthy(work.cache) == 4 + 1  # four pool files and the index
    assert not list((work.cache / "partial").glob("*"))


def test_a_server_that_always_stalls_fails_after_the_retries(work: Work) -> None:
    assert main(work.lock_args()) == 0
    work.server.faults.stall("/pool/*/web_*", 0.6, times=None)
    with make_client(timeout=0.2) as client, pytest.raises(MinimirrorError) as caught:
        fetch(work.fetch_config(), client=client)
    assert "ReadTimeout" in caught.value.render() and "web_1.0_amd64.deb" in caught.value.render()
    assert assert_cache_trustworthy(work.cache) == 3 + 1


# --- faults that persist: one clean error naming the URL, nothing unverified kept ------------------------

Persistent = Callable[[FaultInjector, str, str], object]
PERSISTENT: dict[str, tuple[Persistent, str]] = {
    "500 always": (lambda f, p, t: f.status(p, 500, times=None), "HTTP 500"),
    "403": (lambda f, p, t: f.status(p, 403, times=None), "HTTP 403"),
    "reset always": (lambda f, p, t: f.reset(p, times=None), "after 4 attempts"),
    "truncated always": (lambda f, p, t: f.truncate(p, after_bytes=10, times=None), "after 4 attempts"),
    "Content-Length too short": (lambda f, p, t: f.lie_length(p, 7, times=None), "does not match"),
    "redirect to file:": (lambda f, p, t: f.redirect(p, "file:///etc/passwd", times=None), "only http"),
    "redirect to another host": (lambda f, p, t: f.redirect(p, t, times=None), "does not"),
    "endless body": (lambda f, p, t: f.endless(p, limit=80 << 20, times=None), "body"),
}
FETCH_EXPECTED = {"Content-Length too short": "the verified index says", "redirect to another host": "do not match"}
WHERE = {"InRelease": "/dists/stable/InRelease", "index": INDEX}
TARGET = {"InRelease": "/dists/stable/InRelease", "index": "/dists/stable/main/binary-amd64/Packages.xz"}


@pytest.mark.parametrize("where", sorted(WHERE))
@pytest.mark.parametrize("fault", sorted(PERSISTENT))
def test_lock_fails_cleanly_and_keeps_the_previous_lock(
    work: Work,
    other_host: LoopbackServer,
    fault: str,
    where: str,
    no_backoff: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(work.lock_args()) == 0
    before = work.lock_file.read_bytes()
    shutil.rmtree(work.cache)  # everything must come over the faulty wire again
    capsys.readouterr()
    install, expected = PERSISTENT[fault]
    install(work.server.faults, WHERE[where], other_host.url + TARGET[where])
    code = main(work.lock_args())
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "error:" in err
    assert "/dists/stable/" in err, "the message names the URL"
    if where == "index" or fault in ("500 always", "403", "reset always", "redirect to file:"):
        assert expected in err, err
    assert work.lock_file.read_bytes() == before
    assert assert_cache_trustworthy(work.cache) == 0


@pytest.mark.parametrize("fault", sorted(PERSISTENT))
def test_fetch_fails_cleanly_and_stores_nothing_unverified(
    work: Work, other_host: LoopbackServer, fault: str, no_backoff: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(work.lock_args()) == 0
    web = read_lock(work.lock_file).find("web")[0]
    capsys.readouterr()
    install, expected = PERSISTENT[fault]
    expected = FETCH_EXPECTED.get(fault, expected)
    install(work.server.faults, "/" + web.filename, other_host.url + "/" + web.filename)
    code = main(work.fetch_args())
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and web.filename in err and expected in err, err
    assert not (work.cache / "blobs" / "sha256" / web.sha256[:2] / web.sha256).exists()
    assert assert_cache_trustworthy(work.cache) == 3 + 1  # the three other pool files and the index


def test_a_redirect_to_another_host_serving_the_same_bytes_is_accepted(
    work: Work, http_server: ServerFactory, tmp_path: Path
) -> None:
    """What matters is the hash the lock pins, not the host: a mirror redirect with the right bytes is fine."""
    assert main(work.lock_args()) == 0
    mirror = http_server(work.archive.root)
    web = read_lock(work.lock_file).find("web")[0]
    work.server.faults.redirect("/" + web.filename, mirror.url + "/" + web.filename, code=301)
    with make_client(timeout=5) as client:
        assert fetch(work.fetch_config(), client=client).downloaded == 4
    assert mirror.log.paths() == ["/" + web.filename]


# --- memory stays bounded against an endless body ----------------------------------------------------------


_CHILD = """
import sys

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

try:
    if sys.argv[1] == "cli":
        from minimirror.cli import main
        code = main(sys.argv[2:])
    else:  # fetch without the CLI's backoff between retries
        from pathlib import Path
        from minimirror.upstream.download import RetryPolicy
        from minimirror.errors import MinimirrorError
        from minimirror.publish.fetch import FetchConfig, fetch
        try:
            fetch(FetchConfig(Path(sys.argv[2]), Path(sys.argv[3]), retry=RetryPolicy(backoff=0.0)))
            code = 0
        except MinimirrorError as exc:
            print(exc.render(), file=sys.stderr)
            code = 2
finally:
    print(f"VmHWM {peak_kib()}", file=sys.stderr)
sys.exit(code)
"""


def _peak_rss_kib(args: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Run minimirror in a child; its exit code, its peak RSS in KiB and its stderr.

    The peak is the child's own ``VmHWM`` (per address space, so unlike ``ru_maxrss`` it does not include the
    memory of the pytest process the child was forked from)."""
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, check=False)
    err = done.stderr.decode()
    last = err.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("VmHWM "), err
    return done.returncode, int(last.split()[1]), err


@pytest.fixture
def child_env() -> Iterator[dict[str, str]]:
    yield {**os.environ, "NO_PROXY": "*", "no_proxy": "*"}


def test_an_endless_inrelease_is_cut_off_with_bounded_memory(work: Work, child_env: dict[str, str]) -> None:
    rule = work.server.faults.endless("/dists/stable/InRelease", limit=1 << 30, times=None)
    code, peak_kib, err = _peak_rss_kib(["cli", *work.lock_args()], child_env)
    assert code == 2 and "far more than a Release file" in err, err
    print(f"endless InRelease: peak RSS {peak_kib} KiB")  # the figures of docs/reliability.md (pytest -rP)
    assert rule.hits == 1  # refused at once, not retried
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB reading an endless body"
    assert not work.lock_file.exists()


def test_an_endless_pool_file_is_cut_off_at_its_locked_size(work: Work, child_env: dict[str, str]) -> None:
    assert main(work.lock_args()) == 0
    work.server.faults.endless(POOL, limit=1 << 30, times=None)
    code, peak_kib, err = _peak_rss_kib(["fetch", str(work.locks), str(work.cache)], child_env)
    assert code == 2 and "body longer than the verified" in err, err
    print(f"endless pool file: peak RSS {peak_kib} KiB")
    assert peak_kib < 200 * 1024
    assert assert_cache_trustworthy(work.cache) == 1  # the index only: every pool file was refused
    assert all(p.stat().st_size <= 100_000 for p in (work.cache / "partial").glob("*"))
