"""The exception tree of minimirror, and the diagnostic value that locates a user mistake.

Every error a user can cause derives from :class:`MinimirrorError`; the CLI maps it to a one-line
message and an exit code, and shows a traceback only with ``-v``. Third-party exceptions are converted
into these at the edge where they are raised (``raise ... from exc``), never passed through.

    MinimirrorError                 exit 2 unless a subclass says otherwise
    ├── UsageError                  a command line or environment that cannot work
    ├── DiagnosticsError            one or more located mistakes in input files (file:line:col)
    │   └── QueryError              a package query that does not parse
    ├── ArchiveError                an upstream archive that cannot be read or trusted
    │   ├── FetchError              a URL that could not be downloaded (carries the URL)
    │   ├── IntegrityError          a size or sha256 that does not match what was verified
    │   └── SignatureError          a signature that does not verify with the configured key
    ├── ResolveError                a query or dependency that cannot be satisfied (carries the chain)
    ├── LockError                   a lockfile that is missing, stale or malformed
    └── DiskError                   a write the filesystem refused: full, over quota, read-only, not permitted
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ArchiveError",
    "Diagnostic",
    "DiagnosticsError",
    "DiskError",
    "FetchError",
    "IntegrityError",
    "LockError",
    "MinimirrorError",
    "QueryError",
    "ResolveError",
    "SignatureError",
    "UsageError",
]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located mistake: ``path:line:column: message``, with the offending line and a caret.

    ``line`` and ``column`` are 1-based; ``column`` counts characters of ``text`` (the whole line as read,
    without its line ending). ``path`` is ``None`` for text that did not come from a file.
    """

    message: str
    path: Path | str | None = None
    line: int = 1
    column: int = 1
    text: str | None = None

    @property
    def location(self) -> str:
        where = str(self.path) if self.path is not None else "<input>"
        return f"{where}:{self.line}:{self.column}"

    def headline(self) -> str:
        return f"{self.location}: {self.message}"

    def render(self) -> str:
        """The headline, then the offending line and a caret under the column (tabs kept aligned)."""
        if self.text is None:
            return self.headline()
        shown = self.text.rstrip("\r\n")
        prefix = "".join(ch if ch == "\t" else " " for ch in shown[: max(self.column - 1, 0)])
        return f"{self.headline()}\n    {shown}\n    {prefix}^"


class MinimirrorError(Exception):
    """The root of every error minimirror raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2

    def render(self) -> str:
        """The full message for a person: what went wrong, where, and what to do."""
        return str(self)


class UsageError(MinimirrorError):
    """A command line, option or environment variable that cannot work as given."""


class DiagnosticsError(MinimirrorError):
    """One or more located mistakes in input files, all reported together."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        count = len(self.diagnostics)
        first = self.diagnostics[0].headline() if self.diagnostics else "no diagnostics"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(first + more)

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


class QueryError(DiagnosticsError):
    """A package query that does not parse. ``column`` is 1-based in ``query``."""

    def __init__(
        self,
        message: str,
        query: str,
        column: int,
        *,
        path: Path | str | None = None,
        line: int = 1,
        line_text: str | None = None,
        column_offset: int = 0,
    ) -> None:
        self.message = message
        self.query = query
        self.column = column
        diagnostic = Diagnostic(
            message=message,
            path=path,
            line=line,
            column=column + column_offset,
            text=line_text if line_text is not None else query,
        )
        super().__init__([diagnostic])

    def located(self, path: Path | str, line: int, line_text: str, column_offset: int = 0) -> QueryError:
        """The same error placed in a file: ``column_offset`` is where the query starts in ``line_text``."""
        return QueryError(
            self.message,
            self.query,
            self.column,
            path=path,
            line=line,
            line_text=line_text,
            column_offset=column_offset,
        )


class ArchiveError(MinimirrorError):
    """An upstream archive that cannot be read or trusted."""


class FetchError(ArchiveError):
    """A download that failed after retries. Names the URL and what to try."""

    def __init__(self, url: str, reason: str, hint: str = "") -> None:
        self.url = url
        self.reason = reason
        self.hint = hint
        text = f"cannot download {url}: {reason}"
        super().__init__(f"{text}. {hint}" if hint else text)


class IntegrityError(ArchiveError):
    """A file whose size or sha256 differs from the value a verified signature vouches for."""


class SignatureError(ArchiveError):
    """A signature that does not verify with the key configured for the source."""


class ResolveError(MinimirrorError):
    """A query or dependency that cannot be satisfied. ``chain`` leads from the query line to the problem."""

    def __init__(self, message: str, chain: Sequence[str] = (), *, missing: Sequence[str] = ()) -> None:
        self.message = message
        self.chain = tuple(chain)
        self.missing = tuple(missing)
        """Names no package of the resolved sources has or provides: where a hint can look elsewhere."""
        super().__init__(message)

    def with_message(self, message: str) -> ResolveError:
        """The same error (chain, missing names) with another message, e.g. the source id in front."""
        return ResolveError(message, self.chain, missing=self.missing)

    def render(self) -> str:
        if not self.chain:
            return self.message
        steps = "\n".join(f"  {'  ' * depth}-> {step}" for depth, step in enumerate(self.chain))
        return f"{self.message}\n{steps}"


class LockError(MinimirrorError):
    """A lockfile that is missing, stale or malformed."""


class DiskError(MinimirrorError):
    """A write the filesystem refused (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EACCES``), or one refused before it
    started because the free space is short. Carries the path, the errno, and, when known, the bytes the step
    needs there and the bytes free; the step's partial files are gone and its previous output is untouched.
    """

    def __init__(
        self,
        path: Path | str,
        code: int,
        *,
        needed: int | None = None,
        free: int | None = None,
        early: bool = False,
        no_inodes: bool = False,
    ) -> None:
        self.path = Path(path)
        self.code = code
        self.needed = needed
        self.free = free
        self.early = early
        self.no_inodes = no_inodes
        """The filesystem has bytes free but no inode left for a new file or folder."""
        super().__init__(self._message())

    def _message(self) -> str:
        if self.early:
            return (
                f"not enough space for {self.path}: this step needs {_mib(self.needed)}, the filesystem has "
                f"{_mib(self.free)} free; nothing was written. Free some space there (or point the command at "
                "another folder), then run again"
            )
        what = os.strerror(self.code).lower()
        room = ""
        if self.code in (errno.ENOSPC, errno.EDQUOT):
            need = f"this step needs {_mib(self.needed)}" if self.needed is not None else ""
            free = f"{_mib(self.free)} free" if self.free is not None else ""
            free = f"no inode left for a new file, {free}" if self.no_inodes else free
            room = f" ({', '.join(part for part in (need, free) if part)})" if need or free else ""
            fix = "free some space there (or point the command at another folder)"
        elif self.code == errno.EROFS:
            fix = "mount it read-write (or point the command at another folder)"
        else:
            fix = "give this user write access to it (or point the command at another folder)"
        return f"cannot write {self.path}: {what}{room}; partial files were removed, {fix}, then run again"


def _mib(count: int | None) -> str:
    """Sizes in MiB with one decimal, what ``df -m`` users compare against; a small write in bytes or KiB."""
    if count is None:
        return "an unknown amount"
    if count < 1024:
        return f"{count} B"
    return f"{count / 1024:.1f} KiB" if count < 1 << 20 else f"{count / (1 << 20):.1f} MiB"
