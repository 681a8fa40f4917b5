"""``minimirror.memory``: pages freed by the interpreter, and the touched pages of a droppable file mapping, go back
to the system; the cyclic collector is paused for a step and then is as it was."""

from __future__ import annotations

import gc
import mmap
import subprocess
import sys
from pathlib import Path

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


# In a fresh interpreter: a 48 MiB file mapped read-only and read through (every page resident), then released;
# the mapped file's resident MiB before and after, and whether the bytes read afterwards are still the file's.
_MAPPED_CHILD = """
import mmap, sys, zlib
from minimirror.memory import droppable, release_freed_memory
def file_rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile")) // 1024
with open(sys.argv[1], "rb") as handle:
    view = memoryview(droppable(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)))
first = zlib.crc32(view)
before = file_rss()
release_freed_memory()
after = file_rss()
print(before, after, zlib.crc32(view) == first)
"""


def test_a_droppable_mapping_gives_its_touched_pages_back_and_still_reads_the_file(tmp_path: Path) -> None:
    if not Path("/proc/self/status").is_file() or not hasattr(mmap, "MADV_DONTNEED"):
        pytest.skip("needs Linux's /proc and madvise(MADV_DONTNEED)")
    data = tmp_path / "parsed-index"
    with data.open("wb") as out:
        for block in range(48):
            out.write(bytes([block]) * (1 << 20))
    done = subprocess.run([sys.executable, "-c", _MAPPED_CHILD, str(data)], capture_output=True, text=True, check=True)
    before, after, same = done.stdout.split()
    assert int(before) - int(after) >= 40, f"the mapped file: {before} MiB resident before the release, {after} after"
    assert same == "True"  # dropped pages are read again from the file when touched
