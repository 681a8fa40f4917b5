"""The build notebook's library side: one build (fetch, publish, image), a published tree's summary, and the
reproducibility proof (two builds compared file by file and by image manifest digest).

Implements DESIGN.md's "Reproducible means byte-identical": the same locks, key and ``SOURCE_DATE_EPOCH`` give
the same files and the same image digest (OCI image-spec: the manifest digest identifies the image).
``notebooks/build.ipynb`` only calls these functions and displays what they return.

Secrets: the signing key and its passphrase come from the environment only (``$RELEASE_SIGN_KEY_PATH``,
``$RELEASE_SIGN_KEY_PASSPHRASE``; :func:`signing_from_environment`), never from parameters, since papermill
writes parameters into the executed notebook. The passphrase is kept out of every ``repr`` and message.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from minimirror.audit.render import format_size
from minimirror.pipeline.build import BuildConfig, BuildOutcome, SigningChoice, build, signing_from_environment
from minimirror.pipeline.example import Example, write_example

__all__ = [
    "BuildConfig",
    "BuildOutcome",
    "PreparedBuild",
    "Reproducibility",
    "SigningChoice",
    "TreeComparison",
    "TreeFile",
    "TreeSummary",
    "area_of",
    "build",
    "check_reproducibility",
    "compare_trees",
    "prepare_build",
    "rebuild_twice",
    "signing_from_environment",
    "summarize_tree",
]

_CHUNK = 1 << 20
_SHOWN = 10


@dataclass(frozen=True, slots=True)
class PreparedBuild:
    """The notebook's parameters turned into a build; ``example`` is set when the bundled example is used."""

    config: BuildConfig
    example: Example | None

    def describe(self) -> str:
        what = (
            f"the bundled offline example ({self.example.root}; packages {', '.join(self.example.packages)})"
            if self.example is not None
            else f"the locks in {self.config.locks_dir}"
        )
        return f"building {what}\n  cache {self.config.cache_dir}\n  {self.config.signing.describe()}"


def prepare_build(
    locks: str | Path | None,
    out: str | Path | None,
    image: str | Path | None,
    cache: str | Path | None,
    *,
    scratch: Path,
    signing: SigningChoice | None = None,
) -> PreparedBuild:
    """The notebook's parameters (None: a default under ``scratch``) as a :class:`PreparedBuild`.

    ``locks`` None builds the bundled offline example (:func:`minimirror.pipeline.example.write_example`, written to
    ``scratch/example``), whose cache is then the default; ``image`` None writes the OCI layout to
    ``scratch/image``.
    """
    example = write_example(scratch / "example") if locks is None else None
    locks_dir = example.locks_dir if example is not None else Path(locks or ".")
    if cache is not None:
        cache_dir = Path(cache)
    elif example is not None:
        cache_dir = example.cache_dir
    else:
        from minimirror.upstream.cache import default_cache_dir

        cache_dir = default_cache_dir(dict(os.environ))
    config = BuildConfig(
        locks_dir=locks_dir,
        cache_dir=cache_dir,
        out_dir=Path(out) if out is not None else scratch / "public",
        image_path=Path(image) if image is not None else scratch / "image",
        signing=signing if signing is not None else signing_from_environment(),
    )
    return PreparedBuild(config, example)


# --- a tree's summary ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeFile:
    path: str
    size: int


def _files(root: Path) -> Iterator[TreeFile]:
    """Every regular file (and symlink, by its own size) below ``root``, by sorted relative path."""
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(directory) / name
            yield TreeFile(path.relative_to(root).as_posix(), path.lstat().st_size)


def area_of(path: str) -> str:
    """The part of a published tree a file belongs to: ``<prefix>/pool``, ``<prefix>/dists/<dist>``, or the
    file itself at the top (the exported public key)."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "dists":
        return "/".join(parts[:3])
    if len(parts) >= 2:
        return "/".join(parts[:2])
    return path


@dataclass(frozen=True, slots=True)
class TreeSummary:
    root: Path
    files: tuple[TreeFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def by_area(self) -> list[dict[str, object]]:
        """One row per :func:`area_of`, sorted: files, bytes and a human size (a DataFrame's records)."""
        areas: dict[str, list[int]] = {}
        for item in self.files:
            areas.setdefault(area_of(item.path), []).append(item.size)
        return [
            {"area": area, "files": len(sizes), "bytes": sum(sizes), "size": format_size(sum(sizes))}
            for area, sizes in sorted(areas.items())
        ]

    def line(self) -> str:
        return f"{self.root}: {len(self.files)} files, {format_size(self.total_bytes)} ({self.total_bytes} bytes)"


def summarize_tree(root: Path) -> TreeSummary:
    return TreeSummary(root, tuple(_files(root)))


# --- comparing two builds --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeComparison:
    """Two trees compared byte for byte: the paths in both, and those missing from one or with other bytes."""

    compared: int
    only_first: tuple[str, ...] = ()
    only_second: tuple[str, ...] = ()
    different: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not (self.only_first or self.only_second or self.different)


def _same_bytes(first: Path, second: Path) -> bool:
    if first.is_symlink() or second.is_symlink():
        return first.is_symlink() and second.is_symlink() and first.readlink() == second.readlink()
    if first.stat().st_size != second.stat().st_size:
        return False
    with first.open("rb") as a, second.open("rb") as b:
        while True:
            block = a.read(_CHUNK)
            if block != b.read(_CHUNK):
                return False
            if not block:
                return True


def compare_trees(first: Path, second: Path) -> TreeComparison:
    """Compare every file of two trees (or two files) by path and bytes."""
    if first.is_file() and second.is_file():
        return TreeComparison(1, different=() if _same_bytes(first, second) else (first.name,))
    a = {f.path for f in _files(first)}
    b = {f.path for f in _files(second)}
    common = sorted(a & b)
    return TreeComparison(
        compared=len(common),
        only_first=tuple(sorted(a - b)),
        only_second=tuple(sorted(b - a)),
        different=tuple(p for p in common if not _same_bytes(first / p, second / p)),
    )


@dataclass(frozen=True, slots=True)
class Reproducibility:
    """The proof: the published trees, the images and the manifest digests of two builds."""

    trees: TreeComparison
    images: TreeComparison | None
    digests: tuple[str | None, str | None]

    @property
    def identical(self) -> bool:
        same_images = self.images is None or self.images.identical
        return self.trees.identical and same_images and self.digests[0] == self.digests[1]

    def verdict(self) -> str:
        """``IDENTICAL: ...`` or ``DIFFERENT: ...`` naming (up to ten of) the paths that differ."""
        if self.identical:
            image = f", image manifest {self.digests[0]} both times" if self.digests[0] else ""
            files = self.trees.compared + (self.images.compared if self.images else 0)
            return f"IDENTICAL: {files} files byte for byte{image}"
        problems = [*_problems("published tree", self.trees)]
        if self.images is not None:
            problems += _problems("image", self.images)
        if self.digests[0] != self.digests[1]:
            problems.append(f"image manifest digests differ: {self.digests[0]} vs {self.digests[1]}")
        return "DIFFERENT: " + "; ".join(problems)


def _problems(what: str, comparison: TreeComparison) -> list[str]:
    out = []
    for label, paths in (
        ("only in the first", comparison.only_first),
        ("only in the second", comparison.only_second),
        ("different bytes", comparison.different),
    ):
        if paths:
            more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
            out.append(f"{what}: {label}: {', '.join(paths[:_SHOWN])}{more}")
    return out


def check_reproducibility(first: BuildOutcome, second: BuildOutcome) -> Reproducibility:
    """Compare two builds' published trees, images (when both have one) and manifest digests."""
    images = None
    if first.image is not None and second.image is not None:
        images = compare_trees(first.image.path, second.image.path)
    digests = (
        first.image.manifest_digest if first.image else None,
        second.image.manifest_digest if second.image else None,
    )
    return Reproducibility(compare_trees(first.published.out_dir, second.published.out_dir), images, digests)


def rebuild_twice(config: BuildConfig, *, client: httpx.Client | None = None) -> Reproducibility:
    """Build ``config`` twice more, into two new temporary directories (sharing its now warm cache), and compare."""
    with tempfile.TemporaryDirectory(prefix="mm-repro-") as tmp:
        roots: Sequence[Path] = (Path(tmp) / "first", Path(tmp) / "second")
        first, second = (build(config.elsewhere(root), client=client) for root in roots)
        return check_reproducibility(first, second)
