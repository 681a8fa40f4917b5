"""``minimirror verify``: check a published tree the way apt will read it, and report every problem found.

What is checked follows Debian's RepositoryFormat (https://wiki.debian.org/DebianRepository/Format):

* each ``dists/<dist>/InRelease`` and ``Release.gpg`` verifies with the tree's key (``gpgv``, one keyring), and
  the signed content of ``InRelease`` is byte for byte ``Release``;
* every file the ``SHA256`` field of Release lists exists with that size and hash (an uncompressed
  ``Packages`` may be absent when a compressed variant is there, as Debian does), each has its
  ``by-hash/SHA256/<hash>`` copy when ``Acquire-By-Hash: yes``, and every ``by-hash`` file matches its name;
* every ``Packages{,.gz,.xz}`` decompresses and its variants hold the same stanzas (the same text by sha256, else
  the same stanzas parsed); one variant is parsed (deb822) and its pool files checked as its stanzas go by;
* every pool file a stanza names lies inside the tree and has the stanza's ``Size`` and ``SHA256``; a symlink
  anywhere under the tree pointing outside it is a problem; a pool file no index names is a warning;
* every ``<component>/source/Sources{,.gz,.xz}`` parses (RepositoryFormat "Sources Indices"), its variants hold
  the same source packages, and every file of every source package (``Directory`` + each ``Checksums-Sha256``
  line) lies inside the tree with that size and sha256;
* every ``Pre-Depends``/``Depends`` or-group of every package can be satisfied inside its dist, by a real
  package of a matching version or by a Provides (a versioned relation only by a versioned Provides, Debian
  Policy §7.5), on the package's architecture or ``all``; when ``dose-distcheck`` is installed it is asked too.

Cost at scale (``benchmarks/bench_publish.py --fixture-debs``): one walk of the tree, one read of each file, no
``Path`` object nor kept stanza text per pool file, no ``resolve()`` unless the walk met a symlink, and
dose-distcheck running in its own process while the pool is hashed.

:func:`verify_tree` never raises for a problem it can describe: it returns a :class:`VerifyReport`. Tree
discovery (:func:`find_dists`) is shared with ``minimirror serve``, which prints an apt line per dist.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from minimirror.errors import ArchiveError, SignatureError
from minimirror.lock.relations import Alternative, Group, architectures_for, parse_relations, satisfies
from minimirror.package import Package
from minimirror.publish.grouping import DistGrouping
from minimirror.upstream.index import iter_decompressed, iter_packages, parse_provides
from minimirror.upstream.release import IndexEntry, ReleaseFile, parse_release
from minimirror.upstream.signature import dearmor, verify_clearsigned, verify_detached
from minimirror.upstream.source_packages import SourceEntry, parse_sources

__all__ = ["Dist", "Problem", "VerifyReport", "find_dists", "verify_tree"]

log = logging.getLogger(__name__)

KEYRING_NAME = "signing-key.gpg"
_VARIANTS = ("Packages", "Packages.gz", "Packages.xz")
_SOURCES_VARIANTS = ("Sources", "Sources.gz", "Sources.xz")
_DOSE_TIMEOUT = 600
_CHUNK = 1 << 20
_KEPT_FIELDS = ("Pre-Depends", "Depends", "Provides")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the tree: ``path`` (relative to the tree, ``.`` for the tree itself) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_tree` found: problems (exit 1), warnings (informative) and what it checked."""

    root: Path
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    dists: int
    indices: int
    packages: int
    pool_files: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Dist:
    """One published dist: ``<root>/<prefix>/dists/<name>`` (``prefix`` is ``""`` for a single archive)."""

    root: Path
    prefix: str
    name: str

    @property
    def archive_root(self) -> Path:
        return self.root / self.prefix if self.prefix else self.root

    @property
    def path(self) -> Path:
        return self.archive_root / "dists" / self.name


def find_dists(out_dir: Path) -> tuple[Dist, ...]:
    """Every dist of a published tree: ``OUT/<prefix>/dists/<dist>`` or, for a single archive, ``OUT/dists/<dist>``."""
    roots = (
        [""] if (out_dir / "dists").is_dir() else sorted(p.name for p in _subdirs(out_dir) if (p / "dists").is_dir())
    )
    found = []
    for prefix in roots:
        dists_dir = out_dir / prefix / "dists" if prefix else out_dir / "dists"
        for candidate in _subdirs(dists_dir):
            if (candidate / "Release").is_file() or (candidate / "InRelease").is_file():
                found.append(Dist(out_dir, prefix, candidate.name))
    return tuple(found)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())


def verify_tree(out_dir: Path, *, keyring: bytes | Path | None = None, dose: bool = True) -> VerifyReport:
    """Check the published tree ``out_dir``; ``keyring`` (armored or binary; default ``OUT/signing-key.gpg``).

    ``dose=False`` skips the dose-distcheck second opinion (about 25 s for Debian main amd64); when it runs, it
    runs beside the hashing of the pool (it is a process of its own, reading the indices the signatures vouch for).
    """
    checker = _Checker(Path(out_dir).resolve(), dose=dose)
    key = checker.load_keyring(keyring)
    dists = find_dists(checker.root)
    if not dists:
        checker.problem(
            checker.root, "no dists/<dist>/Release or InRelease found: not a published tree (or an empty one)"
        )
    checker.walk_tree()
    releases = {dist: release for dist in dists if (release := checker.check_release(dist, key)) is not None}
    groups = checker.universes(releases)
    doses = [checker.start_dose(together, releases) for together in groups]
    try:
        read: dict[Dist, tuple[ReleaseFile, dict[Path, list[Package]]]] = {}
        for dist, release in releases.items():
            read[dist] = (release, checker.check_indices(dist, release))
            checker.check_sources(dist, release)
        for together, running in zip(groups, doses, strict=True):
            checker.check_dependencies(together, read)
            checker.finish_dose(together, releases, running)
    finally:  # interrupted (Ctrl-C): no dose-distcheck left running
        for run in (run for runs in doses for run in runs):
            run.stop()
    checker.check_orphans(dists)
    return checker.report(len(dists))


class _Checker:
    """Collects problems while walking a tree; every method reports instead of raising."""

    def __init__(self, root: Path, *, dose: bool) -> None:
        self.root = root
        self.dose = dose
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.indices = 0
        self.packages = 0
        self.pool_hashes: dict[str, tuple[int, str] | None] = {}
        """(size, sha256) by normalised path (strings: 20,000 ``Path`` objects cost time and memory)."""
        self.prefix = f"{root}{os.sep}"
        self.symlinks: set[Path] = set()
        """Every symbolic link under the tree (:meth:`walk_tree`): with none, a path built inside the tree is
        inside it without asking the kernel to resolve it."""
        self.files: list[str] = []
        """Every regular file under the tree, for the orphans."""

    def rel(self, path: Path) -> str:
        try:
            return str(path.absolute().relative_to(self.root)) or "."
        except ValueError:
            return str(path)

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.rel(path), message))

    def warning(self, path: Path, message: str) -> None:
        self.warnings.append(Problem(self.rel(path), message))

    def report(self, dists: int) -> VerifyReport:
        return VerifyReport(
            self.root, tuple(self.problems), tuple(self.warnings), dists, self.indices, self.packages,
            len(self.pool_hashes),
        )  # fmt: skip

    # --- keyring and symlinks ----------------------------------------------------------------------------

    def load_keyring(self, keyring: bytes | Path | None) -> bytes | None:
        path = self.root / KEYRING_NAME if keyring is None else keyring
        if isinstance(path, bytes):
            name, data = "--keyring", path
        else:
            try:
                name, data = str(path), Path(path).read_bytes()
            except OSError as exc:
                self.problem(Path(path), f"cannot read the signing key ({exc.strerror}); pass --keyring FILE")
                return None
        try:
            return dearmor(data, name=name)
        except SignatureError as exc:
            self.problem(Path(name), str(exc))
            return None

    def walk_tree(self) -> None:
        """One walk of the tree: every regular file (for :meth:`check_orphans`) and every symlink; a symlink
        that resolves outside the tree would let a server or copy leak other files."""
        pending = [self.root]
        while pending:
            directory = pending.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
            except OSError as exc:
                self.problem(directory, f"cannot read this folder ({exc.strerror})")
                continue
            folders = []
            for entry in entries:  # the entry's type comes with it (d_type): no stat, no Path per file
                if entry.is_symlink():
                    self._check_symlink(Path(entry.path))
                elif entry.is_dir():
                    folders.append(Path(entry.path))
                elif entry.is_file():
                    self.files.append(entry.path)
            pending.extend(reversed(folders))  # depth first, in name order

    def _check_symlink(self, path: Path) -> None:
        self.symlinks.add(path)
        if not _inside(path.resolve(), self.root):
            self.problem(path, f"symlink points outside the tree (to {path.readlink()}); replace it by a copy")
        elif path.is_file():
            self.files.append(str(path))

    # --- one dist ----------------------------------------------------------------------------------------

    def check_release(self, dist: Dist, keyring: bytes | None) -> ReleaseFile | None:
        """The signatures and the files Release lists of one dist; its Release, or None when it cannot be
        trusted or read. (Its indices, pool, sources and dependencies are checked once every dist's Release is
        read, so that dose-distcheck runs meanwhile.)"""
        release_bytes = self.check_signatures(dist, keyring)
        if release_bytes is None:
            return None
        try:
            release = parse_release(release_bytes, name=self.rel(dist.path / "Release"))
        except ArchiveError as exc:
            self.problem(dist.path / "Release", str(exc).split(": ", 1)[-1])
            return None
        self.check_listed_files(dist, release)
        self.check_by_hash_names(dist)
        return release

    def universes(self, releases: Mapping[Dist, ReleaseFile]) -> list[list[Dist]]:
        """The dists whose dependencies are checked together: each group's dists (its signed Release names
        them), every other dist alone."""
        by_path = {self.rel(dist.path): dist for dist in releases}
        together: dict[tuple[str, ...], list[Dist]] = {}
        for dist, release in sorted(releases.items(), key=lambda item: self.rel(item[0].path)):
            group = DistGrouping.read(release.minimirror).group
            absent = [path for path in group if path not in by_path]
            if absent:
                self.problem(dist.path, f"resolved together with {', '.join(absent)}, which is not in the tree")
            together.setdefault(group or (self.rel(dist.path),), []).append(dist)
        return list(together.values())

    def check_signatures(self, dist: Dist, keyring: bytes | None) -> bytes | None:
        """Verify InRelease and Release.gpg; return the Release text to check the rest against."""
        release_path, inrelease_path, gpg_path = (dist.path / n for n in ("Release", "InRelease", "Release.gpg"))
        release = _read(release_path)
        inrelease = _read(inrelease_path)
        if release is None:
            self.problem(release_path, "missing (apt without InRelease support, and Release.gpg, need it)")
        if inrelease is None:
            self.problem(inrelease_path, "missing: apt asks for InRelease first; re-run publish to sign the dist")
        elif keyring is not None:
            self._check_inrelease(inrelease_path, inrelease, release, keyring)
        signature = _read(gpg_path)
        if signature is None:
            self.problem(gpg_path, "missing: the detached signature of Release; re-run publish to sign the dist")
        elif keyring is not None and release is not None:
            self._verify(gpg_path, lambda: verify_detached(release, signature, keyring, name=self.rel(gpg_path)))
        return release

    def _check_inrelease(self, path: Path, inrelease: bytes, release: bytes | None, keyring: bytes) -> None:
        verified = self._verify(path, lambda: verify_clearsigned(inrelease, keyring, name=self.rel(path)).content)
        if verified is not None and release is not None and _normalise(verified) != _normalise(release):
            self.problem(path, "signed content differs from Release: one was changed after signing; re-run publish")

    def _verify(self, path: Path, call: Callable[[], object]) -> bytes | None:
        try:
            result = call()
        except SignatureError as exc:
            self.problem(path, str(exc).split(": ", 1)[-1])
            return None
        return result if isinstance(result, bytes) else b""

    def check_listed_files(self, dist: Dist, release: ReleaseFile) -> None:
        for entry in release.files.values():
            path = dist.path / entry.path
            actual = self.file_digest(path)
            if actual is None:
                if not _compressed_sibling_listed(entry.path, release.files, dist.path):
                    self.problem(path, "listed in Release but missing")
                continue
            self._compare(path, actual, entry.size, entry.sha256, "Release says")
            if release.acquire_by_hash:
                self._check_by_hash_copy(path, entry)

    def _check_by_hash_copy(self, path: Path, entry: IndexEntry) -> None:
        copy = path.parent / "by-hash" / "SHA256" / entry.sha256
        if not copy.is_file():
            self.problem(copy, f"missing by-hash copy of {path.name} (Release says Acquire-By-Hash: yes)")

    def check_by_hash_names(self, dist: Dist) -> None:
        for copy in sorted(dist.path.rglob("by-hash/SHA256/*")):
            digest = self.file_digest(copy)
            if digest is not None and digest[1] != copy.name:
                self.problem(copy, f"content has sha256 {digest[1]}, not the one its name says")

    def _compare(self, path: Path, actual: tuple[int, str], size: int, sha256: str, whose: str) -> None:
        if actual[0] != size:
            self.problem(path, f"size is {actual[0]} bytes, {whose} {size}")
        elif actual[1] != sha256.lower():
            self.problem(path, f"sha256 is {actual[1]}, {whose} {sha256}")

    def file_digest(self, path: Path | str) -> tuple[int, str] | None:
        """(size, sha256) of a regular file inside the tree, memoized; None when absent or escaping."""
        key = os.path.normpath(path)
        if key not in self.pool_hashes:
            self.pool_hashes[key] = _digest(key) if self.inside(key) else None
        return self.pool_hashes[key]

    def inside(self, path: str) -> bool:
        """Whether the normalised ``path`` stays in the tree when followed. The walk found every symlink:
        without any, the path is what it says; else the kernel resolves it."""
        if self.symlinks:
            return _inside(Path(path).resolve(), self.root)
        return path.startswith(self.prefix)

    def is_escaping_symlink(self, path: Path | str) -> bool:
        if not self.symlinks:
            return False
        return Path(path).is_symlink() and not _inside(Path(path).resolve(), self.root)

    # --- indices -----------------------------------------------------------------------------------------

    def check_indices(self, dist: Dist, release: ReleaseFile) -> dict[Path, list[Package]]:
        """Read every Packages variant and check the pool files of its stanzas; return, per
        ``<comp>/binary-<arch>`` directory, its packages with only what the dependency check reads.

        Variants are compared by the sha256 of their decompressed text, streamed: one is parsed, its pool files
        checked as its stanzas go by, and stanza by stanza comparison is left for variants whose text differs."""
        indices: dict[Path, list[Package]] = {}
        for directory in _index_dirs(dist.path, release):
            variants = _present_variants(directory)
            self.indices += len(variants)
            reference: tuple[Path, str, list[Package]] | None = None
            for variant in variants:
                digest = self._text_digest(variant)
                if digest is None:
                    continue
                if reference is None:
                    packages = self._read_checking_pool(dist, variant)
                    reference = (variant, digest, packages) if packages is not None else None
                elif digest != reference[1] and not self._same_stanzas(variant, reference[0]):
                    self.problem(variant, f"holds different stanzas from {reference[0].name}; re-run publish")
            if reference is not None:
                indices[directory] = reference[2]
                self.packages += len(reference[2])
        return indices

    def _read_checking_pool(self, dist: Dist, variant: Path) -> list[Package] | None:
        """The packages of one variant, each pool file checked as its stanza goes by; None (and no pool problem
        kept) when the variant does not parse, so that the next variant is read instead."""
        found: list[Problem] = []
        where = f"{self.rel(dist.path)}"
        archive_root = dist.archive_root
        packages = []
        try:
            for package in iter_packages(variant, name=self.rel(variant)):
                problem = self._pool_problem(archive_root, package)
                if problem is not None:
                    found.append(Problem(self.rel(Path(problem[0])), f"{problem[1]} ({package} in {where})"))
                packages.append(_slim(package))
        except ArchiveError as exc:
            self.problem(variant, str(exc).removeprefix(self.rel(variant)).lstrip(":").strip())
            return None
        self.problems.extend(found)
        return packages

    def _text_digest(self, path: Path) -> str | None:
        """The sha256 of a variant's decompressed text; None (a problem) when it cannot be decompressed."""
        if path.name == "Packages":  # not compressed: its hash is the file's, already taken for Release
            known = self.file_digest(path)
            return known[1] if known is not None else None
        digest = hashlib.sha256()
        try:
            for block in iter_decompressed(path, name=self.rel(path)):
                digest.update(block)
        except ArchiveError as exc:
            self.problem(path, str(exc).removeprefix(self.rel(path)).lstrip(":").strip())
            return None
        return digest.hexdigest()

    def _same_stanzas(self, variant: Path, reference: Path) -> bool:
        """Whether a variant whose text differs still holds the same stanzas as the reference variant (True when
        it cannot be parsed: that is its problem, reported)."""
        other = self._parse(variant)
        return other is None or _stanzas(other) == _stanzas(self._parse(reference) or [])

    def _parse(self, path: Path) -> list[Package] | None:
        try:
            return list(iter_packages(path, name=self.rel(path)))
        except ArchiveError as exc:
            self.problem(path, str(exc).removeprefix(self.rel(path)).lstrip(":").strip())
            return None

    def _pool_problem(self, archive_root: Path, package: Package) -> tuple[Path | str, str] | None:
        filename = package.field("Filename") or ""
        size, sha256 = package.field("Size") or "", (package.field("SHA256") or "").lower()
        if not filename or filename.startswith("/") or ".." in filename.split("/"):
            return archive_root, f"refusing Filename {filename!r}: it must be a relative path inside the tree"
        if not size.isdigit() or len(sha256) != 64:
            return archive_root / filename, "the stanza lacks a valid Size or SHA256"
        path = f"{archive_root}{os.sep}{filename}"
        if self.is_escaping_symlink(path):
            return path, "is a symlink leading outside the tree"
        actual = self.file_digest(path)
        if actual is None:
            return path, "missing from the pool"
        if actual != (int(size), sha256):
            what = "size" if actual[0] != int(size) else "sha256"
            return path, f"{what} differs from the index: the file was changed after publishing"
        return None

    # --- source packages ---------------------------------------------------------------------------------

    def check_sources(self, dist: Dist, release: ReleaseFile) -> None:
        directories = sorted({dist.path / Path(p).parent for p in release.files if Path(p).parent.name == "source"})
        for directory in directories:
            variants = [v for v in (directory / n for n in _SOURCES_VARIANTS) if v.is_file()]
            parsed = [(v, self._parse_sources(v, directory.parent.name)) for v in variants]
            good = [(v, entries) for v, entries in parsed if entries is not None]
            self.indices += len(parsed)
            if not good:
                continue
            reference, entries = good[0]
            for variant, other in good[1:]:
                if other != entries:
                    self.problem(variant, f"holds different source packages from {reference.name}; re-run publish")
            for entry in entries:
                self._check_source_files(dist, entry, directory)

    def _parse_sources(self, path: Path, component: str) -> tuple[SourceEntry, ...] | None:
        try:
            return parse_sources(path, name=self.rel(path), component=component)
        except ArchiveError as exc:
            self.problem(path, str(exc).removeprefix(self.rel(path)).lstrip(":").strip())
            return None

    def _check_source_files(self, dist: Dist, entry: SourceEntry, index: Path) -> None:
        for file in entry.files:
            path = dist.archive_root / entry.directory / file.name
            if self.is_escaping_symlink(path):
                self.problem(path, f"is a symlink leading outside the tree ({entry.name} {entry.version} source)")
                continue
            actual = self.file_digest(path)
            if actual is None:
                self.problem(path, f"missing ({entry.name} {entry.version} source in {self.rel(index)})")
            elif actual != (file.size, file.sha256):
                what = "size" if actual[0] != file.size else "sha256"
                self.problem(path, f"{what} differs from {self.rel(index)}: the file was changed after publishing")

    # --- dependencies ------------------------------------------------------------------------------------

    def check_dependencies(
        self, dists: Sequence[Dist], read: Mapping[Dist, tuple[ReleaseFile, Mapping[Path, Sequence[Package]]]]
    ) -> None:
        """Every Pre-Depends/Depends of every package satisfiable by the packages of ``dists`` (one dist, or a
        group's); a dependency the lock left out on purpose (``missing-dependencies = "skip"``) is a warning."""
        by_arch: dict[str, list[tuple[Path, Package]]] = defaultdict(list)
        expected: set[tuple[str, str]] = set()
        for dist in dists:
            release, indices = read[dist]
            expected |= DistGrouping.read(release.minimirror).missing
            for directory, packages in indices.items():
                arch = directory.name.removeprefix("binary-")
                by_arch[arch].extend((directory, p) for p in packages)
        where = " + ".join(self.rel(dist.path) for dist in dists) if len(dists) > 1 else dists[0].name
        if "all" in by_arch:  # an index for "all" serves every other architecture too
            for arch in [a for a in by_arch if a != "all"]:
                by_arch[arch].extend(by_arch["all"])
        for arch, entries in sorted(by_arch.items()):
            universe = _Universe([p for _, p in entries])
            seen: set[tuple[str, str, str]] = set()
            for directory, package in entries:
                if package.key in seen:
                    continue
                seen.add(package.key)
                for field_name, group in _relations(package):
                    if not universe.satisfiable(group, arch):
                        text = " | ".join(str(a) for a in group)
                        what = f"{package.name} {package.version} ({package.architecture}): {field_name} {text!r}"
                        if (f"{package.name}/{package.architecture}", text) in expected:
                            self.warning(directory, f"{what} is left out on purpose (missing-dependencies = skip)")
                            continue
                        self.problem(
                            directory, f"{what} cannot be satisfied in {where} ({universe.why_not(group, arch)})"
                        )

    def start_dose(self, dists: Sequence[Dist], read: Mapping[Dist, ReleaseFile]) -> list[_DoseRun]:
        """Start the second opinion of dose-distcheck (also checks Conflicts/Breaks), when installed, over the
        indices of ``dists`` together, one process per architecture; :meth:`finish_dose` reads the answers."""
        if not self.dose or shutil.which("dose-distcheck") is None:
            return []
        releases = [read[dist] for dist in dists]
        archs = sorted({a for release in releases for a in release.architectures if a != "all"}) or ["all"]
        runs = []
        for arch in archs:
            files = [
                v
                for dist, release in zip(dists, releases, strict=True)
                for d in _index_dirs(dist.path, release)
                if d.name == f"binary-{arch}"
                for v in _present_variants(d)[:1]
            ]
            if files:
                runs.append(_DoseRun.start(files, arch))
        return runs

    def finish_dose(
        self,
        dists: Sequence[Dist],
        releases: Mapping[Dist, ReleaseFile],
        runs: Sequence[_DoseRun],
    ) -> None:
        """dose-distcheck's findings for ``dists``: a package with a gap left on purpose is a warning."""
        gaps = {node for dist in dists for node, _ in DistGrouping.read(releases[dist].minimirror).missing}
        for run in runs:
            for node, message in run.result():
                report = self.warning if node in gaps else self.problem
                report(dists[0].path, f"dose-distcheck ({run.arch}): {message}")

    # --- orphans -----------------------------------------------------------------------------------------

    def check_orphans(self, dists: Iterable[Dist]) -> None:
        """A regular file under a ``pool`` folder (found by :meth:`walk_tree`) that no index names."""
        referenced = set(self.pool_hashes)
        pools = tuple(sorted({f"{d.archive_root / 'pool'}{os.sep}" for d in dists}))
        for path in sorted(self.files):
            if path not in referenced and path.startswith(pools):
                self.warning(Path(path), "orphan: no Packages index names this pool file")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _normalise(text: bytes) -> bytes:
    """gpgv's output of a clear-signed message may lose the final newline; compare without it."""
    return text.replace(b"\r\n", b"\n").rstrip(b"\n")


def _digest(path: str) -> tuple[int, str] | None:
    """(size, sha256) of a regular file; None when absent or not a regular file. One open, one fstat: no
    separate stat first."""
    try:
        stream = open(path, "rb")  # noqa: PTH123, SIM115 (a string path: no Path per pool file; closed below)
    except OSError:
        return None
    with stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        digest = hashlib.sha256()
        size = 0
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _compressed_sibling_listed(name: str, files: Mapping[str, IndexEntry], dist_dir: Path) -> bool:
    """Debian lists the uncompressed index even when only its .gz/.xz are shipped."""
    return any(f"{name}{ext}" in files and (dist_dir / f"{name}{ext}").is_file() for ext in (".gz", ".xz"))


def _index_dirs(dist_dir: Path, release: ReleaseFile) -> list[Path]:
    names = {
        Path(p).parent for p in release.files if Path(p).name in _VARIANTS and Path(p).parent.name.startswith("binary-")
    }
    return sorted(dist_dir / n for n in names)


def _present_variants(directory: Path) -> list[Path]:
    return [directory / v for v in _VARIANTS if (directory / v).is_file()]


def _slim(package: Package) -> Package:
    """The package with only the fields the dependency check reads: the stanza's text is not kept."""
    fields = {name: value for name in _KEPT_FIELDS if (value := package.field(name))}
    return Package(package.name, package.version, package.architecture, fields)


def _stanzas(packages: Iterable[Package]) -> list[str]:
    return [("\n".join(f"{k}: {v}" for k, v in p.fields.items())) for p in packages]


# --- relation satisfaction (Debian Policy §7.1, §7.5) ------------------------------------------------------


def _relations(package: Package) -> Iterator[tuple[str, Group]]:
    for field_name in ("Pre-Depends", "Depends"):
        text = package.field(field_name)
        if text:
            for group in parse_relations(text):
                yield field_name, group


class _Universe:
    """The packages of one dist and architecture, looked up by name and by what they provide."""

    def __init__(self, packages: Iterable[Package]) -> None:
        self.real: dict[str, list[Package]] = defaultdict(list)
        self.provided: dict[str, list[tuple[Package, str | None]]] = defaultdict(list)
        for package in packages:
            self.real[package.name].append(package)
            for name, version in parse_provides(package.field("Provides") or ""):
                self.provided[name].append((package, version))

    def satisfiable(self, group: Group, arch: str) -> bool:
        return any(self._satisfies(alternative, arch) for alternative in group)

    def _satisfies(self, alternative: Alternative, arch: str) -> bool:
        arches = architectures_for(alternative, arch)
        op, wanted = alternative.op, alternative.version
        real = self.real.get(alternative.name, ())
        if any(p.architecture in arches and satisfies(p.version, op, wanted) for p in real):
            return True
        provided = self.provided.get(alternative.name, ())
        return any(p.architecture in arches and satisfies(v, op, wanted) for p, v in provided)

    def why_not(self, group: Group, arch: str) -> str:
        reasons = []
        for alternative in group:
            name = alternative.name
            if name not in self.real and name not in self.provided:
                reasons.append(f"no package {name}")
            else:
                versions = sorted({p.version for p in self.real.get(name, ())})
                reasons.append(f"{name} has only {', '.join(versions) or 'unversioned providers'} for {arch}")
        return "; ".join(reasons)


# --- dose-distcheck --------------------------------------------------------------------------------------


class _DoseRun:
    """One dose-distcheck process, started at once and read when its answer is wanted, so that it runs while
    the pool is hashed (it reads the indices only)."""

    def __init__(
        self,
        arch: str,
        process: subprocess.Popen[str] | None,
        error: str = "",
        outputs: tuple[IO[str], IO[str]] | None = None,
    ) -> None:
        self.arch = arch
        self.process = process
        self.error = error
        self.outputs = outputs

    @classmethod
    def start(cls, files: Sequence[Path], arch: str) -> _DoseRun:
        cmd = ["dose-distcheck", f"--deb-native-arch={arch}", "--failures", "--explain", *(f"deb://{f}" for f in files)]
        # Its answers go to files, not pipes: a long report must not stall it until someone reads the pipe.
        stdout, stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by result)
        try:
            process = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True)
        except OSError as exc:
            stdout.close()
            stderr.close()
            return cls(arch, None, f"could not run: {exc}")
        return cls(arch, process, outputs=(stdout, stderr))

    def stop(self) -> None:
        """Kill the process if it still runs and close its output files (a no-op after :meth:`result`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for output in self.outputs or ():
            output.close()

    def result(self) -> list[tuple[str, str]]:
        """``(name/arch, line)`` per package dose-distcheck finds not installable (Conflicts and Breaks included)."""
        if self.process is None or self.outputs is None:
            return [("", self.error)]
        try:
            self.process.wait(timeout=_DOSE_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            return [("", f"could not run: {exc}")]
        finally:
            texts = []
            for output in self.outputs:
                output.seek(0)
                texts.append(output.read())
                output.close()
        return _dose_report(self.process.returncode, *texts)


def _dose_report(returncode: int, stdout: str, stderr: str) -> list[tuple[str, str]]:
    if returncode not in (0, 1):
        return [("", f"exited with {returncode}: {stderr.strip()[:300]}")]
    try:
        data = yaml.safe_load(stdout) or {}
    except yaml.YAMLError as exc:
        return [("", f"unreadable output: {exc}")]
    return [
        (f"{entry.get('package')}/{entry.get('architecture')}", _dose_line(entry)) for entry in data.get("report") or []
    ]


def _dose_line(entry: Mapping[str, Any]) -> str:
    what = f"{entry.get('package')} {entry.get('version')} ({entry.get('architecture')})"
    details = []
    for reason in entry.get("reasons") or []:
        if "missing" in reason:
            details.append(f"missing {reason['missing']['pkg'].get('unsat-dependency')}")
        elif "conflict" in reason:
            conflict = reason["conflict"]
            pkgs = [conflict.get(k, {}).get("package") for k in ("pkg1", "pkg2")]
            details.append(f"conflict between {pkgs[0]} and {pkgs[1]}")
    return f"{what} is not installable: {'; '.join(details) or 'see dose-distcheck --explain'}"
