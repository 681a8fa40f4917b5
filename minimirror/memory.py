"""The interpreter's memory management around the big steps of a whole-suite lock: handing freed memory back to
the system, and keeping the cyclic garbage collector from re-reading millions of live objects.

CPython returns the blocks of freed objects to its allocators, not to the system: objects over 512 bytes (a
package's raw stanza) live in glibc's heap, whose free pages stay in the process unless ``malloc_trim(3)`` gives
them back. A lock of a whole suite frees most of what its installability check built before the walk, and most
of the index's parsed values before the lock is written; without a trim the writer's 30 MB text and its strict
re-read stack on top of pages nobody uses (benchmarks/README.md, bench_suite_lock: the cold lock's peak fell from
373 to about 335 MiB in one process). No library in our list exposes it, hence ``ctypes``; where the C library has
no ``malloc_trim`` (musl, macOS) this does nothing.

The cyclic collector runs a full collection whenever the objects made since the last one outnumber a quarter of
those that survived it, and a full collection visits every live container. A lock of a whole suite builds a few
million long-lived, acyclic ones (records, packages, the check's graph, the walk's marks, the lock's values) step
by step, so the collector re-read them all seventeen times: 3.6 s of a 12.5 s lock, for no garbage (nothing it
builds is a cycle; reference counting frees it all). :func:`collector_paused` turns the collector off for such a
step and back on after it (benchmarks/README.md, bench_suite_lock).

A file mapped into memory (the parsed index cache, read lazily through ``mmap``) counts in the process's memory
for every page it touched, as long as the mapping lives: a warm whole-suite lock reads every record once, and
those 55 MB of pages stayed resident through the walk and the writing, above the cold lock's peak. A mapping
registered with :func:`droppable` gives its pages back too (``madvise(MADV_DONTNEED)``): the kernel reads them
again from the file, or its page cache, if they are touched again, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import mmap
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "droppable", "release_freed_memory"]

_MAPPINGS: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()


def droppable(mapping: mmap.mmap) -> mmap.mmap:
    """Register a read-only mapping of a file that is never written in place, whose resident pages
    :func:`release_freed_memory` may drop; returned as given."""
    _MAPPINGS.add(mapping)
    return mapping


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, then as it was (off stays off). Reference counting still
    frees everything that is not a cycle at once; the few cycles made meanwhile wait for the next collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def release_freed_memory() -> None:
    """Return the free pages of the C heap, and the resident pages of the :func:`droppable` mappings, to the system
    (a few milliseconds); a no-op where unsupported."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    advice: int | None = getattr(mmap, "MADV_DONTNEED", None)  # Linux and most Unixes; not Windows
    if advice is None:
        return
    for mapping in list(_MAPPINGS):
        with contextlib.suppress(ValueError, OSError):  # ValueError: closed meanwhile
            mapping.madvise(advice)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim
