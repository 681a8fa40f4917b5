"""``minimirror verify``: check a published tree the way apt will read it, and report every problem found.

What is checked follows Debian's RepositoryFormat (https://wiki.debian.org/DebianRepository/Format):

* each ``dists/<dist>/InRelease`` and ``Release.gpg`` verifies with the tree's key (``gpgv``, one keyring), and
  the signed content of ``InRelease`` is byte for byte ``Release``;
* every file the ``SHA256`` field of Release lists exists with that size and hash (an uncompressed
  ``Packages`` may be absent when a compressed variant is there, as Debian does), each has its
  ``by-hash/SHA256/<hash>`` copy when ``Acquire-By-Hash: yes``, and every ``by-hash`` file matches its name;
* every ``Packages{,.gz,.xz}`` parses (deb822) and its variants hold the same stanzas;
* every pool file a stanza names lies inside the tree and has the stanza's ``Size`` and ``SHA256``; a symlink
  anywhere under the tree pointing outside it is a problem; a pool file no index names is a warning;
* every ``<component>/source/Sources{,.gz,.xz}`` parses (RepositoryFormat "Sources Indices"), its variants hold
  the same source packages, and every file of every source package (``Directory`` + each ``Checksums-Sha256``
  line) lies inside the tree with that size and sha256;
* every ``Pre-Depends``/``Depends`` or-group of every package can be satisfied inside its dist, by a real
  package of a matching version or by a Provides (a versioned relation only by a versioned Provides, Debian
  Policy §7.5), on the package's architecture or ``all``; when ``dose-distcheck`` is installed it is asked too.

:func:`verify_tree` never raises for a problem it can describe: it returns a :class:`VerifyReport`. Tree
discovery (:func:`find_dists`) is shared with ``minimirror serve``, which prints an apt line per dist.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from minimirror.errors import ArchiveError, SignatureError
from minimirror.lock.relations import Alternative, Group, architectures_for, parse_relations, satisfies
from minimirror.package import Package
from minimirror.publish.grouping import DistGrouping
from minimirror.upstream.index import iter_packages, parse_provides
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

    ``dose=False`` skips the dose-distcheck second opinion (about 25 s for Debian main amd64).
    """
    root = Path(out_dir)
    checker = _Checker(root.resolve(), dose=dose)
    key = checker.load_keyring(keyring)
    dists = find_dists(root)
    if not dists:
        checker.problem(root, "no dists/<dist>/Release or InRelease found: not a published tree (or an empty one)")
    checker.check_symlinks()
    read: dict[Dist, tuple[ReleaseFile, dict[Path, list[Package]]]] = {}
    for dist in dists:
        found = checker.check_dist(dist, key)
        if found is not None:
            read[dist] = found
    for together in checker.universes(read):
        checker.check_dependencies(together, read)
        checker.run_dose(together, read)
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
        self.pool_hashes: dict[Path, tuple[int, str] | None] = {}
        self.escaping: set[Path] = set()

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

    def check_symlinks(self) -> None:
        """A symlink under the tree that resolves outside it would let a server or copy leak other files."""
        for directory, dirnames, filenames in os.walk(self.root):
            for name in sorted([*dirnames, *filenames]):
                path = Path(directory) / name
                if path.is_symlink() and not _inside(path.resolve(), self.root):
                    self.escaping.add(path)
                    self.problem(path, f"symlink points outside the tree (to {path.readlink()}); replace it by a copy")

    # --- one dist ----------------------------------------------------------------------------------------

    def check_dist(self, dist: Dist, keyring: bytes | None) -> tuple[ReleaseFile, dict[Path, list[Package]]] | None:
        """Everything of one dist but its dependencies (checked per group: :meth:`universes`); its Release and
        packages by index directory, or None when the Release cannot be trusted or read."""
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
        indices = self.check_indices(dist, release)
        for packages in indices.values():
            self.check_pool(dist, packages)
        self.check_sources(dist, release)
        return release, indices

    def universes(self, read: Mapping[Dist, tuple[ReleaseFile, Mapping[Path, Sequence[Package]]]]) -> list[list[Dist]]:
        """The dists whose dependencies are checked together: each group's dists (its signed Release names
        them), every other dist alone."""
        by_path = {self.rel(dist.path): dist for dist in read}
        together: dict[tuple[str, ...], list[Dist]] = {}
        for dist, (release, _) in sorted(read.items(), key=lambda item: self.rel(item[0].path)):
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

    def file_digest(self, path: Path) -> tuple[int, str] | None:
        """(size, sha256) of a regular file inside the tree, memoized; None when absent or escaping."""
        if path not in self.pool_hashes:
            self.pool_hashes[path] = _digest(path) if path.is_file() and _inside(path.resolve(), self.root) else None
        return self.pool_hashes[path]

    # --- indices -----------------------------------------------------------------------------------------

    def check_indices(self, dist: Dist, release: ReleaseFile) -> dict[Path, list[Package]]:
        """Parse every Packages variant; return one parsed variant per ``<comp>/binary-<arch>`` directory."""
        indices: dict[Path, list[Package]] = {}
        for directory in _index_dirs(dist.path, release):
            parsed = [(variant, self._parse(variant)) for variant in _present_variants(directory)]
            good = [(variant, packages) for variant, packages in parsed if packages is not None]
            self.indices += len(parsed)
            if not good:
                continue
            reference, packages = good[0]
            for variant, other in good[1:]:
                if _stanzas(other) != _stanzas(packages):
                    self.problem(variant, f"holds different stanzas from {reference.name}; re-run publish")
            indices[directory] = packages
            self.packages += len(packages)
        return indices

    def _parse(self, path: Path) -> list[Package] | None:
        try:
            return list(iter_packages(path, name=self.rel(path)))
        except ArchiveError as exc:
            self.problem(path, str(exc).removeprefix(self.rel(path)).lstrip(":").strip())
            return None

    def check_pool(self, dist: Dist, packages: Sequence[Package]) -> None:
        index = self.rel(dist.path)
        for package in packages:
            problem = self._pool_problem(dist.archive_root, package)
            if problem is not None:
                path, message = problem
                self.problem(path, f"{message} ({package} in {index})")

    def _pool_problem(self, archive_root: Path, package: Package) -> tuple[Path, str] | None:
        filename = package.field("Filename") or ""
        size, sha256 = package.field("Size") or "", (package.field("SHA256") or "").lower()
        if not filename or filename.startswith("/") or ".." in filename.split("/"):
            return archive_root, f"refusing Filename {filename!r}: it must be a relative path inside the tree"
        if not size.isdigit() or len(sha256) != 64:
            return archive_root / filename, "the stanza lacks a valid Size or SHA256"
        path = archive_root / filename
        if path.is_symlink() and not _inside(path.resolve(), self.root):
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
            if path.is_symlink() and not _inside(path.resolve(), self.root):
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

    def run_dose(
        self, dists: Sequence[Dist], read: Mapping[Dist, tuple[ReleaseFile, Mapping[Path, Sequence[Package]]]]
    ) -> None:
        """The second opinion of dose-distcheck (also checks Conflicts/Breaks), when installed, over the indices
        of ``dists`` together; a package with a gap left on purpose is a warning."""
        if not self.dose or shutil.which("dose-distcheck") is None:
            return
        releases = [read[dist][0] for dist in dists]
        gaps = {node for release in releases for node, _ in DistGrouping.read(release.minimirror).missing}
        archs = sorted({a for release in releases for a in release.architectures if a != "all"}) or ["all"]
        for arch in archs:
            files = [
                v
                for dist, release in zip(dists, releases, strict=True)
                for d in _index_dirs(dist.path, release)
                if d.name == f"binary-{arch}"
                for v in _present_variants(d)[:1]
            ]
            if files:
                for node, message in _dose(files, arch):
                    report = self.warning if node in gaps else self.problem
                    report(dists[0].path, f"dose-distcheck ({arch}): {message}")

    # --- orphans -----------------------------------------------------------------------------------------

    def check_orphans(self, dists: Iterable[Dist]) -> None:
        referenced = set(self.pool_hashes)
        for archive_root in sorted({d.archive_root for d in dists}):
            pool = archive_root / "pool"
            for path in sorted(pool.rglob("*")) if pool.is_dir() else []:
                if path.is_file() and path not in referenced and path not in self.escaping:
                    self.warning(path, "orphan: no Packages index names this pool file")


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


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
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


def _dose(files: Sequence[Path], arch: str) -> list[tuple[str, str]]:
    """``(name/arch, line)`` per package dose-distcheck finds not installable (Conflicts and Breaks included)."""
    cmd = ["dose-distcheck", f"--deb-native-arch={arch}", "--failures", "--explain", *(f"deb://{f}" for f in files)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=_DOSE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [("", f"could not run: {exc}")]
    if done.returncode not in (0, 1):
        return [("", f"exited with {done.returncode}: {done.stderr.strip()[:300]}")]
    try:
        data = yaml.safe_load(done.stdout) or {}
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
