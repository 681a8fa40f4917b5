"""Helpers shared by the benchmarks: serve a directory on loopback, run apt in a private root, and
measure a child process's wall time and peak memory. Nothing here reaches the network."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEBIAN_KEYRING",
    "AptRoot",
    "ChildRun",
    "byte_compile_minimirror",
    "run_child",
    "serve_directory",
    "shared_data_dir",
]

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def shared_data_dir() -> Path | None:
    """``../shared/data`` next to the repository, or None when this checkout has no shared data."""
    path = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
    return path if path.is_dir() else None


def byte_compile_minimirror() -> None:
    """Write minimirror's ``.pyc`` files, as ``pip install`` of a wheel does, so that a measured start-up does
    not include compiling the sources (an editable install under ``PYTHONDONTWRITEBYTECODE=1`` would compile
    them on every run)."""
    package = Path(__file__).resolve().parents[1] / "minimirror"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_kib: int
    returncode: int
    output: str
    cpu_seconds: float = 0.0
    """User + system CPU time of the child and of the children it waited for."""


def run_child(argv: Sequence[str], *, env: dict[str, str] | None = None) -> ChildRun:
    """Run a command; wall time and the peak RSS of that one child (``os.wait4``'s rusage, which is what
    ``getrusage(RUSAGE_CHILDREN)`` would report if it were the only child ever waited for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(seconds, int(usage.ru_maxrss), proc.returncode, output, usage.ru_utime + usage.ru_stime)


@dataclass(frozen=True)
class AptRoot:
    """A private apt root: its own sources, lists, cache and an empty dpkg status; nothing of the host's
    configuration is read (``APT_CONFIG`` points at our apt.conf, ``Dir::Etc`` into the root)."""

    root: Path

    @classmethod
    def create(cls, root: Path, source_line: str, *, architecture: str = "amd64") -> AptRoot:
        for sub in (
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "etc/apt/sources.list.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "status").write_text("")
        (root / "etc/apt/sources.list").write_text(source_line + "\n")
        (root / "apt.conf").write_text(
            f'Dir "{root}/";\n'
            f'Dir::State::status "{root}/status";\n'
            'Acquire::Languages "none";\n'
            f'APT::Architecture "{architecture}";\n'
            f'APT::Architectures "{architecture}";\n'
            'APT::Sandbox::User "root";\n'
            'Debug::NoLocking "true";\n'
        )
        return cls(root)

    def env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.root / "apt.conf"), "LC_ALL": "C"}

    def clear_lists(self) -> None:
        lists = self.root / "var/lib/apt/lists"
        for path in lists.iterdir():
            if path.is_file():
                path.unlink()
        for path in (self.root / "var/cache/apt").glob("*.bin"):
            path.unlink()

    def apt_get(self, *args: str) -> ChildRun:
        return run_child(["apt-get", "-q", *args], env=self.env())

    def update_and_simulate(self, queries: Sequence[str]) -> ChildRun:
        """What a lock replaces: ``apt-get update`` from empty lists, then ``install -s`` of ``queries``. Two
        processes: their times add up, the memory is the larger of the two."""
        self.clear_lists()
        update = self.apt_get("update")
        install = self.apt_get("install", "-s", "--no-install-recommends", *queries)
        return ChildRun(
            update.seconds + install.seconds,
            max(update.peak_rss_kib, install.peak_rss_kib),
            update.returncode or install.returncode,
            update.output + install.output,
        )


def best_run(repeat: int, run: Callable[[], ChildRun]) -> ChildRun:
    """The fastest of ``repeat`` runs; a failed run stops the benchmark with its output."""
    return fastest([run() for _ in range(repeat)])


def fastest(runs: Sequence[ChildRun]) -> ChildRun:
    """The fastest of ``runs``; a failed one stops the benchmark with its output."""
    for item in runs:
        if item.returncode != 0:
            raise SystemExit(f"a measured command failed:\n{item.output}")
    return min(runs, key=lambda r: r.seconds)
