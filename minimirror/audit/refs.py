"""Where the two sides of a diff come from: a lock file, a lock directory, or ``git:REF[:PATH]``.

The locks are read with the strict reader of lockfile schema 1 (``docs/lockfile.md``), so a bad lock is named
``file:line:column`` whatever it came from. A git reference reads the locks as committed at REF, through
git's plumbing (``git rev-parse``, ``git ls-tree``, ``git cat-file``; see git-ls-tree(1)): the working tree
is never touched, so ``minimirror diff git:origin/main locks`` works in the middle of a review.

Forms of a reference (the text given on the command line):

- ``path/to/x.lock``: that one lock;
- ``path/to/locks``: every ``<prefix>/<name>.lock`` below the directory;
- ``git:REF``: the ``locks/`` directory of the repository's root as committed at REF (a branch, tag, commit,
  ``HEAD~1``...); ``git:REF:PATH`` names another directory or one lock file, relative to the root.
  A PATH that does not exist at REF gives no locks (the base branch of the pull request that adds the
  first lock has none), with a warning.

Planning is pure (:func:`parse_ref`, :func:`lock_paths`); only :func:`read_lock_ref` runs git or reads files.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from minimirror.errors import LockError, UsageError
from minimirror.lock.lockcache import load_lock_table, read_lock_table, read_lock_tables
from minimirror.lock.lockcolumns import ReadMemo
from minimirror.lock.lockfile import Lock
from minimirror.lock.locktable import LockTable

__all__ = ["GitRef", "LocalRef", "LockRef", "lock_paths", "parse_ref", "read_lock_ref", "read_lock_tables_ref"]

logger = logging.getLogger(__name__)

GIT_PREFIX = "git:"
DEFAULT_GIT_PATH = "locks"


@dataclass(frozen=True, slots=True)
class LocalRef:
    """A lock file or a lock directory on disk."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True, slots=True)
class GitRef:
    """Locks as committed at ``rev`` under ``path`` (relative to the repository's root)."""

    rev: str
    path: str = DEFAULT_GIT_PATH

    def __str__(self) -> str:
        return f"{GIT_PREFIX}{self.rev}:{self.path}"


LockRef = LocalRef | GitRef


def parse_ref(text: str) -> LockRef:
    """The reference ``text`` names (see the module docstring). Raises :class:`UsageError` when malformed."""
    if not text.startswith(GIT_PREFIX):
        if not text:
            raise UsageError("an empty lock reference: give a lock file, a lock directory or git:REF")
        return LocalRef(Path(text))
    rev, _, path = text[len(GIT_PREFIX) :].partition(":")
    if not rev or rev.startswith("-"):
        raise UsageError(f"{text!r}: git:REF needs a revision (e.g. git:HEAD~1, git:origin/main, git:v1.2:locks)")
    clean = PurePosixPath(path.strip("/") or DEFAULT_GIT_PATH)
    if clean.is_absolute() or ".." in clean.parts:
        raise UsageError(f"{text!r}: the path after REF: is relative to the repository's root, without '..'")
    return GitRef(rev, str(clean))


def lock_paths(listing: str, path: str) -> dict[str, str]:
    """From ``git ls-tree -r -z --full-tree`` output: ``{file path: blob id}`` of the locks ``path`` names,
    either the one file ``path`` or the ``<prefix>/<name>.lock`` files directly below it."""
    found = {}
    for record in filter(None, listing.split("\0")):
        meta, _, name = record.partition("\t")
        kind, blob = meta.split()[1:3]
        relative = PurePosixPath(name).relative_to(path) if name != path and name.startswith(path + "/") else None
        is_lock_in_dir = relative is not None and len(relative.parts) == 2 and relative.suffix == ".lock"
        hidden = relative is not None and any(part.startswith(".") for part in relative.parts)
        if kind == "blob" and (name == path or (is_lock_in_dir and not hidden)):
            found[name] = blob
    return found


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, check=False, timeout=120, encoding="utf-8"
        )
    except FileNotFoundError as exc:
        raise UsageError("git is not installed; install it (apt-get install git) to diff git:REF") from exc
    except UnicodeDecodeError as exc:
        raise LockError(f"git {' '.join(args)} in {repo}: output is not UTF-8 ({exc.reason})") from exc
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()}")
    return done.stdout


def _resolve_commit(repo: Path, ref: GitRef) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref.rev}^{{commit}}").strip()
    except UsageError as exc:
        raise UsageError(
            f"{ref}: {ref.rev!r} is not a commit of the git repository {repo} "
            "(check the name; in CI fetch the base branch first, e.g. `git fetch origin main`)"
        ) from exc


def _check_place(lock: LockTable, name: str, text: str) -> None:
    """As :func:`~minimirror.lock.lockfile.read_locks`: a lock in a directory must sit at its source id's place."""
    expected = "/".join(PurePosixPath(name).parts[-2:]).removesuffix(".lock")
    if lock.source.id != expected:
        line = next((n for n, row in enumerate(text.splitlines(), 1) if row.startswith("id ")), 1)
        raise LockError(f"{name}:{line}:1: id {lock.source.id!r} does not match the file's place ({expected!r})")


def _read_git(ref: GitRef, repo: Path, cache_dir: Path | None, memo: ReadMemo | None) -> tuple[LockTable, ...]:
    commit = _resolve_commit(repo, ref)
    listing = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit, "--", ref.path)
    paths = lock_paths(listing, ref.path)
    if not paths:
        logger.warning("%s: no locks at %s in commit %s; comparing with no locks", ref, ref.path, commit[:12])
    locks = []
    for name, blob in sorted(paths.items()):
        text = _git(repo, "cat-file", "blob", blob)
        where = f"{GIT_PREFIX}{ref.rev}:{name}"
        lock = load_lock_table(text.encode("utf-8"), path=where, cache_dir=cache_dir, memo=memo)
        if name != ref.path:
            _check_place(lock, f"{GIT_PREFIX}{ref.rev}:{name}", text)
        locks.append(lock)
    return tuple(sorted(locks, key=lambda lock: lock.source.id))


def _read_local(ref: LocalRef, cache_dir: Path | None, memo: ReadMemo | None) -> tuple[LockTable, ...]:
    if ref.path.is_dir():
        return read_lock_tables(ref.path, cache_dir, memo=memo)
    if ref.path.is_file():
        return (read_lock_table(ref.path, cache_dir, memo=memo),)
    raise LockError(f"{ref.path}: no such lock file or directory (give a .lock file, a locks directory or git:REF)")


def read_lock_ref(text: str, *, repo: Path | None = None) -> tuple[Lock, ...]:
    """The locks ``text`` names, sorted by source id. ``repo`` is the git repository for ``git:REF``
    (default: the current directory's). Raises :class:`LockError` or :class:`UsageError` naming the cause."""
    return tuple(table.lock() for table in read_lock_tables_ref(text, repo=repo))


def read_lock_tables_ref(
    text: str, *, repo: Path | None = None, cache_dir: Path | None = None, memo: ReadMemo | None = None
) -> tuple[LockTable, ...]:
    """As :func:`read_lock_ref`, as :class:`~minimirror.lock.locktable.LockTable` (what ``diff_locks`` and ``why``
    take), each lock through the parsed-lock cache in ``cache_dir`` (:mod:`minimirror.lock.lockcache`) when
    given, else read strictly. ``memo``, given to the reading of both sides of a diff, reads what they share once
    (:class:`~minimirror.lock.lockcolumns.ReadMemo`)."""
    ref = parse_ref(text)
    if isinstance(ref, GitRef):
        return _read_git(ref, repo if repo is not None else Path.cwd(), cache_dir, memo)
    return _read_local(ref, cache_dir, memo)
