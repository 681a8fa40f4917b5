"""The host's APT sources: ``sources.list`` one-line entries and deb822 ``.sources`` files (sources.list(5)).

Pure parsing: :func:`read_apt_sources` reads the files below a root directory (``/`` on a real host, a
temporary tree in tests) and returns the enabled ``deb`` entries, one per (URI, suite), in file order.
:func:`plan_sources` turns them into the sources tree minimirror locks: the prefix is the last path segment of
the URI (``…/debian`` → ``debian``, ``…/debian-security`` → ``debian-security``), the name is the suite.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from debian.deb822 import Deb822

from minimirror.errors import Diagnostic, DiagnosticsError, UsageError

__all__ = ["AptSource", "InitResult", "PlannedSource", "init_from_apt", "plan_sources", "read_apt_sources"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True, slots=True)
class AptSource:
    """One enabled ``deb`` entry of the host: a URI, one suite, its components and its key."""

    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None
    architectures: tuple[str, ...]
    origin: str


@dataclass(frozen=True, slots=True)
class PlannedSource:
    """A source as ``init --from-apt`` writes it: ``<prefix>/<name>/source.txt``."""

    prefix: str
    name: str
    url: str
    key_url: str
    dist: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    inline_key: str | None


def read_apt_sources(root: Path = Path("/")) -> tuple[AptSource, ...]:
    """Every enabled ``deb`` entry under ``root``'s ``etc/apt`` (``deb-src`` is not mirrored)."""
    etc = root / "etc" / "apt"
    files = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    parts = etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    found: list[AptSource] = []
    problems: list[Diagnostic] = []
    for path in files:
        reader = _read_deb822 if path.suffix == ".sources" else _read_one_line
        found.extend(reader(path, problems))
    if problems:
        raise DiagnosticsError(problems)
    return tuple(found)


def plan_sources(entries: Iterable[AptSource]) -> tuple[PlannedSource, ...]:
    """The sources tree for these entries, sorted by (prefix, name); duplicates of (URI, suite) merged."""
    planned: dict[tuple[str, str], PlannedSource] = {}
    for entry in entries:
        if entry.suite.endswith("/"):
            continue  # a flat repository (``./``) has no dists/ tree to lock
        prefix = _prefix(entry.uri)
        key = (prefix, entry.suite)
        if key in planned:
            continue
        inline = entry.signed_by if entry.signed_by and "BEGIN PGP" in entry.signed_by else None
        planned[key] = PlannedSource(
            prefix=prefix,
            name=_SAFE_NAME.sub("-", entry.suite),
            url=entry.uri,
            key_url=_key_url(entry.signed_by) if inline is None else "",
            dist=entry.suite,
            components=entry.components,
            architectures=entry.architectures,
            inline_key=inline,
        )
    return tuple(planned[key] for key in sorted(planned))


def _prefix(uri: str) -> str:
    parts = urlsplit(uri)
    segments = [s for s in parts.path.split("/") if s]
    return _SAFE_NAME.sub("-", segments[-1] if segments else parts.hostname or "archive")


def _key_url(signed_by: str | None) -> str:
    """``file://`` of the first Signed-By keyring; empty when apt would trust its global keyrings, which
    minimirror does not do implicitly (the caller asks the user to name the key)."""
    if not signed_by:
        return ""
    first = signed_by.split(",")[0].strip()
    return f"file://{first}" if first.startswith("/") else first


def _read_one_line(path: Path, problems: list[Diagnostic]) -> Iterable[AptSource]:
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            words = shlex.split(line.replace("[", " [ ", 1).replace("]", " ] ", 1))
        except ValueError as exc:
            problems.append(Diagnostic(str(exc), path, number, 1, raw))
            continue
        options: dict[str, str] = {}
        if len(words) > 1 and words[1] == "[":
            end = words.index("]") if "]" in words else len(words)
            options = dict(w.split("=", 1) for w in words[2:end] if "=" in w)
            words = [words[0], *words[end + 1 :]]
        if words[0] != "deb":
            continue
        if len(words) < 3:
            problems.append(Diagnostic("expected: deb [options] URI suite [component...]", path, number, 1, raw))
            continue
        yield AptSource(
            uri=words[1],
            suite=words[2],
            components=tuple(words[3:]),
            signed_by=options.get("signed-by"),
            architectures=tuple(options.get("arch", "").split(",")) if options.get("arch") else (),
            origin=f"{path}:{number}",
        )


def _read_deb822(path: Path, problems: list[Diagnostic]) -> Iterable[AptSource]:
    text = path.read_text(encoding="utf-8", errors="replace")
    for stanza in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        if stanza.get("Enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in stanza.get("Types", "").split():
            continue
        uris, suites = stanza.get("URIs", "").split(), stanza.get("Suites", "").split()
        if not uris or not suites:
            problems.append(Diagnostic("a .sources stanza needs URIs and Suites", path, 1, 1, None))
            continue
        signed_by = stanza.get("Signed-By")
        yield from (
            AptSource(
                uri=uri,
                suite=suite,
                components=tuple(stanza.get("Components", "").split()),
                signed_by=_signed_by(signed_by),
                architectures=tuple(stanza.get("Architectures", "").split()),
                origin=str(path),
            )
            for uri in uris
            for suite in suites
        )


def _signed_by(value: str | None) -> str | None:
    """A path list stays as it is; an inline key (deb822 folded lines, ``.`` for blank) is unfolded."""
    if value is None or "BEGIN PGP" not in value:
        return value.strip() if value else None
    lines = [line.strip() for line in value.strip().splitlines()]
    return "\n".join("" if line == "." else line for line in lines) + "\n"


def suites_for_packages(planned: Sequence[PlannedSource]) -> frozenset[tuple[str, str]]:
    """Which sources get the user's package list: the release suites, not their -updates/-security/-backports
    companions, since each source is resolved on its own and a companion alone cannot satisfy dependencies."""
    companions = ("-updates", "-security", "-backports", "-proposed-updates", "/updates")
    return frozenset((p.prefix, p.name) for p in planned if not p.dist.endswith(companions))


@dataclass(frozen=True, slots=True)
class InitResult:
    written: tuple[PlannedSource, ...]
    skipped: tuple[tuple[PlannedSource, str], ...]


def init_from_apt(
    sources_dir: Path, *, packages: Sequence[str], apt_root: Path = Path("/"), force: bool = False
) -> InitResult:
    """Write a sources tree for the host's enabled ``deb`` entries (``minimirror init --from-apt``).

    ``packages`` go into the release suites (see :func:`suites_for_packages`); companion suites (-updates,
    -security, -backports) are reported as skipped. A Signed-By keyring becomes a ``file://`` key URL; an
    inline key is written next to source.txt; an entry without Signed-By trusts what apt trusts globally
    (``trusted.gpg`` and ``trusted.gpg.d``), gathered into one keyring beside it.
    Existing sources are kept unless ``force``.
    """
    from minimirror.sources import existing_files, source_directory, write_source

    planned = plan_sources(read_apt_sources(apt_root))
    if not planned:
        raise UsageError(f"no enabled 'deb' entries in {apt_root / 'etc/apt'}: nothing to mirror")
    with_packages = suites_for_packages(planned)
    written: list[PlannedSource] = []
    skipped: list[tuple[PlannedSource, str]] = []
    for plan in planned:
        directory = source_directory(sources_dir, plan.prefix, plan.name)
        if (plan.prefix, plan.name) not in with_packages:
            # Each source resolves on its own, and an -updates/-security suite alone cannot satisfy
            # dependencies; until sources can be resolved together, such suites are left to the user.
            skipped.append((plan, "a companion suite: add it by hand with the packages it should update"))
            continue
        wanted = list(packages)
        key_url = plan.key_url or f"file://{(directory / _KEY_FILE).resolve()}"
        if existing_files(directory) and not force:
            skipped.append((plan, "exists (use --force to replace it)"))
            continue
        write_source(
            sources_dir,
            plan.prefix,
            plan.name,
            url=plan.url,
            key_url=key_url,
            dist=plan.dist,
            components=plan.components or ("main",),
            packages=wanted,
        )
        if not plan.key_url:
            _write_key_file(directory / _KEY_FILE, plan.inline_key, apt_root)
        written.append(plan)
    return InitResult(tuple(written), tuple(skipped))


_KEY_FILE = "signing-key.gpg"


def _write_key_file(path: Path, inline_key: str | None, apt_root: Path) -> None:
    from minimirror.atomic import write_atomically
    from minimirror.signature import dearmor

    if inline_key is not None:
        write_atomically(path, dearmor(inline_key.encode(), name=str(path)))
        return
    trusted = apt_root / "etc" / "apt"
    keyrings = [trusted / "trusted.gpg"] if (trusted / "trusted.gpg").is_file() else []
    parts = trusted / "trusted.gpg.d"
    if parts.is_dir():
        keyrings += sorted(p for p in parts.iterdir() if p.suffix in (".gpg", ".asc") and p.is_file())
    if not keyrings:
        raise UsageError(
            f"{path.parent}: the APT entry has no Signed-By and apt trusts no global keyring here; "
            "add the archive key's file:// or https:// URL to source.txt by hand"
        )
    # Binary OpenPGP keyrings concatenate into one keyring that gpgv reads whole.
    write_atomically(path, b"".join(dearmor(p.read_bytes(), name=str(p)) for p in keyrings))
