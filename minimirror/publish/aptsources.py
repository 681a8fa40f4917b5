"""What a node needs to use a published mirror exactly as it was locked: its apt sources and preferences.

``minimirror apt-sources OUT --url URL`` writes a deb822 ``.sources`` file (sources.list(5), "DEB822-STYLE
FORMAT") with one stanza per published dist, the mirror's public key inline in ``Signed-By`` (a node needs no
other file), and ``deb-src`` where the dist has Sources indices. With ``--preferences FILE`` it writes the
apt_preferences(5) stanzas that give each pinned source's packages the ``pin-priority`` they were locked with:
a group of sources resolved together is only reproduced on the node when apt sees the same lines and the
same pins.

Stanzas are in the order the lock resolved the sources (source id order; dist path order without ``--locks``):
apt breaks some ties by the order its cache met package names, which follows the order of the lines.

A pin selects a dist by its Release fields (``Pin: release o=,l=,a=,n=``): the four together must tell the
dist apart from every other dist of the mirror, or the pin would reach packages it was not meant for; when
they do not, the error says to set a distinct ``label`` in that source's minimirror.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minimirror.errors import ArchiveError, UsageError
from minimirror.lock.lockfile import Lock
from minimirror.publish.grouping import DistGrouping, dist_path
from minimirror.publish.verify import Dist, find_dists
from minimirror.upstream.release import ReleaseFile, parse_release

__all__ = ["AptSetup", "PublishedSource", "apt_setup", "read_published"]

KEY_FILE = "signing-key.asc"


@dataclass(frozen=True, slots=True)
class PublishedSource:
    """One published dist as a node sees it."""

    path: str
    """``<prefix>/dists/<dist>``, relative to OUT."""
    prefix: str
    dist: str
    components: tuple[str, ...]
    deb_src: bool
    release: ReleaseFile

    @property
    def grouping(self) -> DistGrouping:
        return DistGrouping.read(self.release.minimirror)

    @property
    def pin_selector(self) -> str:
        r = self.release
        return f"o={r.origin},l={r.label},a={r.suite},n={r.codename}"


@dataclass(frozen=True, slots=True)
class AptSetup:
    sources: str
    """The deb822 ``.sources`` text."""
    preferences: str
    """The apt_preferences(5) text; empty when no source is pinned."""


def read_published(out_dir: Path) -> tuple[PublishedSource, ...]:
    """Every dist of the published tree, in dist path order; a tree with none is a :class:`UsageError`."""
    found = []
    for dist in find_dists(out_dir):
        found.append(_published(out_dir, dist))
    if not found:
        raise UsageError(f"{out_dir} has no dists/<dist>/Release: publish the mirror first (minimirror publish)")
    return tuple(found)


def _published(out_dir: Path, dist: Dist) -> PublishedSource:
    path = dist.path / "Release"
    try:
        release = parse_release(path.read_bytes(), name=str(path))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    except ArchiveError as exc:
        raise UsageError(f"{exc}; is {out_dir} a tree minimirror published?") from exc
    relative = str(path.parent.relative_to(out_dir))
    deb_src = any(name.split("/")[1:2] == ["source"] for name in release.files)
    return PublishedSource(relative, dist.prefix, dist.name, release.components, deb_src, release)


def apt_setup(out_dir: Path, url: str, *, locks: Sequence[Lock] | None = None) -> AptSetup:
    """The sources and preferences for a node that reaches OUT at ``url``; with ``locks``, only their dists,
    in their (source id) order, each of which must be published."""
    published = read_published(out_dir)
    chosen = _in_lock_order(published, locks) if locks is not None else published
    key = _key_lines(out_dir)
    stanzas = [_stanza(source, url, key) for source in chosen]
    header = f"# {len(chosen)} dist(s) of the minimirror at {url.rstrip('/')}; written by `minimirror apt-sources`\n"
    return AptSetup(header + "\n".join(stanzas), _preferences(chosen, published))


def _in_lock_order(published: Sequence[PublishedSource], locks: Sequence[Lock]) -> list[PublishedSource]:
    by_path = {source.path: source for source in published}
    chosen = []
    for lock in sorted(locks, key=lambda lk: lk.source.id):
        path = dist_path(lock)
        if path not in by_path:
            raise UsageError(f"{lock.source.id} is locked but {path} is not in the published tree; publish it first")
        chosen.append(by_path[path])
    return chosen


def _key_lines(out_dir: Path) -> list[str] | None:
    """The armored public key as deb822 continuation lines (an empty line becomes ``.``); None if unsigned."""
    path = out_dir / KEY_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the mirror's key {path}: {exc}") from exc
    return [f" {line}" if line.strip() else " ." for line in text.strip().splitlines()]


def _stanza(source: PublishedSource, url: str, key: list[str] | None) -> str:
    base = f"{url.rstrip('/')}/{source.prefix}" if source.prefix else url.rstrip("/")
    lines = [
        f"# {source.path}" + (f", resolved with {', '.join(source.grouping.group)}" if source.grouping.group else ""),
        "Types: deb deb-src" if source.deb_src else "Types: deb",
        f"URIs: {base}/",
        f"Suites: {source.dist}",
        f"Components: {' '.join(source.components)}",
    ]
    if key is None:  # an unsigned tree (publish --no-sign): apt must be told to trust it
        lines.append("Trusted: yes")
    else:
        lines += ["Signed-By:", *key]
    return "\n".join(lines) + "\n"


def _preferences(chosen: Sequence[PublishedSource], published: Sequence[PublishedSource]) -> str:
    stanzas = []
    for source in chosen:
        priority = source.grouping.pin_priority
        if priority == DistGrouping().pin_priority:
            continue
        _check_selector(source, published)
        stanzas.append(
            f"Explanation: minimirror: {source.path} was locked with Pin-Priority {priority}\n"
            f"Package: *\nPin: release {source.pin_selector}\nPin-Priority: {priority}\n"
        )
    return "\n".join(stanzas)


def _check_selector(source: PublishedSource, published: Sequence[PublishedSource]) -> None:
    r = source.release
    if any("," in value or not value.strip() for value in (r.origin, r.label, r.suite, r.codename)):
        raise UsageError(
            f"{source.path}: its Release's Origin, Label, Suite or Codename is empty or has a comma, so apt "
            "cannot pin it by release; set label (and origin) in the source's minimirror.toml and publish again"
        )
    twins = [
        other.path for other in published if other.path != source.path and other.pin_selector == source.pin_selector
    ]
    if twins:
        raise UsageError(
            f"{source.path} is pinned, but {', '.join(twins)} has the same Origin, Label, Suite and Codename "
            f"({source.pin_selector}), so the pin would reach it too; set a distinct label in the "
            "source's minimirror.toml and publish again"
        )
