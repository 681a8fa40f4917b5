"""Writing a file so that readers see the old content or the new, never a mix: a temporary file in the same
folder, then a rename (POSIX ``rename(2)`` is atomic within a filesystem). An interrupted write leaves the
previous file whole and no temporary behind (unless the process is killed, when a ``.NAME.*.tmp`` may stay;
nothing reads those).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["fsync_directory", "write_atomically"]


def write_atomically(
    path: Path, data: bytes | str | Sequence[bytes], *, mode: int = 0o644, durable: bool = False
) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8; a sequence of chunks one after the other, so a
    large file need not be joined in memory first) atomically, creating its folder.

    ``mode``: the file's permission bits, set before the first byte is written (pass 0o600 for a secret: it is
    never readable by others, even briefly). Fixed rather than from the umask, which cannot be read without
    changing it for every thread. ``durable``: fsync the file and its folder before returning, for outputs a
    user relies on (locks, keys); caches that are checked when read skip it.
    """
    chunks = [data.encode("utf-8")] if isinstance(data, str) else [data] if isinstance(data, bytes) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.writelines(chunks)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot open a directory, which is then not an error."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
