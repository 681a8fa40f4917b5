"""Where a whole-suite lock (``Name (% *)``, Debian 12 main amd64) spends its time and memory, step by step.

One lock, in this process, on the real index in ``../shared/data/debian-bookworm`` served on loopback; each step is
timed where it returns, with the process's resident memory then and its peak so far (``VmRSS``, ``VmHWM``), and the
cyclic collector's passes and their time (``gc.callbacks``). The steps:

    open_source         verify the InRelease, download, decompress and parse the index (cold) or map its cache (warm)
    installable check   which selected packages no system can install (lock/installable.py)
    walk                apt's marking walk (lock/resolve.py)
    build lock values   the lock's values from the resolution (lock/stage.py)
    dumps_lock          the lock's text
    loads_lock          the writer's strict re-read of that text ("a lock the reader would refuse is never written")
    write_lock          dumps, re-read, compare with the old file, write

The code measured is whichever ``minimirror`` this interpreter imports: run it with ``PYTHONPATH=<a git archive of
REV>`` and ``python -P`` to trace another version. Asserts nothing; prints a table.
Usage: ``python benchmarks/trace_suite_lock.py [--warm] [--lock-copy PATH]``
(``--warm``: lock once first, unmeasured, in a child process, so the traced lock reads the parsed index cache).
"""

from __future__ import annotations

import argparse
import functools
import gc
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _loopback import DEBIAN_KEYRING, serve_directory, shared_data_dir

_STEPS: list[tuple[str, str, str]] = [  # (module, attribute, label)
    ("minimirror.lock.stage", "open_source", "open_source"),
    ("minimirror.lock.resolve", "uninstallable", "installable check"),
    ("minimirror.lock.resolve", "_Walk.run", "walk"),
    ("minimirror.lock.stage", "_build_lock", "build lock values"),
    ("minimirror.lock.lockfile", "dumps_lock", "dumps_lock"),
    ("minimirror.lock.lockfile", "loads_lock", "loads_lock"),
    ("minimirror.lock.stage", "write_lock", "write_lock"),
]


def _status() -> dict[str, int]:
    with Path("/proc/self/status").open() as status:
        return {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status if line.startswith("Vm")}


class _Collector:
    """The cyclic collector's passes per generation, and their time."""

    def __init__(self) -> None:
        self.passes, self.seconds, self._start = [0, 0, 0], [0.0, 0.0, 0.0], 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        generation = info["generation"]
        self.passes[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._start


def _traced(label: str, real: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real)
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = real(*args, **kwargs)
        memory = _status()
        seconds = time.perf_counter() - start
        print(f"{label:22}{seconds:8.2f}{memory['VmRSS']:9}{memory['VmHWM']:9}", flush=True)
        return result

    return run


def _install_traces() -> None:
    import importlib

    for module_name, attribute, label in _STEPS:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _traced(label, getattr(owner, name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", action="store_true", help="trace a lock that reads the parsed index cache")
    parser.add_argument("--lock-copy", type=Path, help="copy the lock written here (to cmp two versions' locks)")
    options = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None or not (data / "debian-bookworm").is_dir() or not DEBIAN_KEYRING.is_file():
        print("skipped: ../shared/data/debian-bookworm or debian-archive-keyring is missing")
        return 0
    from minimirror.lock import stage

    with tempfile.TemporaryDirectory(prefix="trace-suite-") as tmp, serve_directory(data / "debian-bookworm") as url:
        root = Path(tmp)
        source = root / "sources" / "debian" / "bookworm"
        source.mkdir(parents=True)
        (source / "source.txt").write_text(f"{url}/ file://{DEBIAN_KEYRING} bookworm main\n")
        (source / "packages.txt").write_text("Name (% *)\n")
        config = stage.LockConfig(root / "sources", root / "locks", root / "cache")
        if options.warm:  # in a child, so that this process's memory is the traced lock's alone
            dirs = ["--sources", str(root / "sources"), "--locks", str(root / "locks"), "--cache", str(root / "cache")]
            subprocess.run([sys.executable, "-P", "-m", "minimirror", "-q", "lock", *dirs], check=True)
            shutil.rmtree(root / "locks")
        _install_traces()
        collector = _Collector()
        gc.callbacks.append(collector)
        print(f"{'step':22}{'seconds':>8}{'RSS MiB':>9}{'peak MiB':>9}")
        start = time.perf_counter()
        stage.lock(config)
        seconds = time.perf_counter() - start
        gc.callbacks.remove(collector)
        if options.lock_copy is not None:
            shutil.copyfile(root / "locks" / "debian" / "bookworm.lock", options.lock_copy)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{'the whole lock':22}{seconds:8.2f}{'':9}{peak:9}")
    passes = zip(collector.passes, collector.seconds, strict=True)
    listed = ", ".join(
        f"{count} of generation {generation} ({spent:.2f} s)" for generation, (count, spent) in enumerate(passes)
    )
    print(f"cyclic collector passes: {listed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
