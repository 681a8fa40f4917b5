"""Handing memory the interpreter has freed back to the system, between the big steps of a whole-suite lock.

CPython returns the blocks of freed objects to its allocators, not to the system: objects over 512 bytes (a
package's raw stanza) live in glibc's heap, whose free pages stay in the process unless ``malloc_trim(3)`` gives
them back. A lock of a whole suite frees most of what its installability check built before the walk, and most
of the index's parsed values before the lock is written; without a trim the writer's 30 MB text and its strict
re-read stack on top of pages nobody uses (benchmarks/README.md, bench_suite_lock: the cold lock's peak fell from
373 to about 335 MiB in one process). No library in our list exposes it, hence ``ctypes``; where the C library has
no ``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_freed_memory"]


def release_freed_memory() -> None:
    """Return the free pages of the C heap to the system (a few milliseconds); a no-op where unsupported."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim
