"""``minimirror.memory.release_freed_memory``: pages freed by the interpreter go back to the system."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from minimirror import memory

# In a fresh interpreter: 60,000 blocks of 1.5 KB (over pymalloc's 512 bytes, so in the C heap), all freed but
# every 50th, which pins the heap's top so it cannot shrink by itself; RSS before and after the release.
_CHILD = """
from minimirror.memory import release_freed_memory
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) // 1024
blocks = [bytes([n % 251]) * 1500 for n in range(60_000)]
kept = blocks[::50]
del blocks
before = rss()
release_freed_memory()
print(before, rss())
"""


def test_freed_pages_of_the_c_heap_go_back_to_the_system() -> None:
    if memory._malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim")
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    before, after = map(int, done.stdout.split())
    assert before - after >= 40, f"RSS {before} MiB before the release, {after} MiB after"


def test_it_trims_the_whole_heap_and_does_nothing_where_there_is_no_malloc_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    memory.release_freed_memory()
    assert calls == [0]  # pad 0: keep nothing spare at the heap's top
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)  # musl, macOS
    memory.release_freed_memory()
    assert calls == [0]


def test_collector_paused_turns_the_cyclic_collector_off_and_back_as_it_was() -> None:
    assert gc.isenabled()
    with memory.collector_paused():
        assert not gc.isenabled()
        with memory.collector_paused():  # nested: the inner one leaves it off for the outer
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), memory.collector_paused():
        raise RuntimeError("a failed step")
    assert gc.isenabled()  # back on after an error too
    gc.disable()
    try:
        with memory.collector_paused():
            pass
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()
