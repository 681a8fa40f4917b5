"""The host's APT sources: ``sources.list`` one-line entries and deb822 ``.sources`` files (sources.list(5)).

Pure parsing: :func:`read_apt_sources` reads the files below a root directory (``/`` on a real host, a
temporary tree in tests) and returns the enabled ``deb`` entries, one per (URI, suite), in file order.
:func:`plan_sources` turns them into the sources tree minimirror locks: the prefix is the last path segment of
the URI (``…/debian`` → ``debian``, ``…/debian-security`` → ``debian-security``), the name is the suite.

The distribution's entries are those in the files its installer writes: ``sources.list`` and
``sources.list.d/<ID>.list`` or ``<ID>.sources`` (``ID`` and ``ID_LIKE`` of ``os-release``; ``debian`` and
``ubuntu`` when there is none). Every other entry is **third-party** (a ``docker.list`` beside them, a vendor's
flat ``deb URL ./`` line): its prefix is the name of its file (``docker.list`` → ``docker``; Docker's URI ends in
``…/debian`` like the distribution's), and init links it to the distribution's sources with ``resolve-with``,
since the host's apt resolves them together. A flat entry's source is named ``flat`` (or after its directory,
``deb URL sub/`` → ``sub``) and keeps the dist ``./`` with no component. Two different URIs that would share a
prefix and name get ``-2``, ``-3``... on the prefix, in file order.

The host's pins (:mod:`minimirror.sources.preferences`) that select whole sources become their ``pin-priority``.

Companion suites (``bookworm-updates``, ``bookworm-security``, ``bookworm-proposed-updates``, the old
``bookworm/updates``) get no source of their own: :func:`attach_companions` adds each to the source of its
release suite (``bookworm``), whose source.txt then holds one line a suite, resolved together as apt resolves
the host's lines. Backports (and Ubuntu's ``-proposed``) are opt-in in apt, so they are left out with a reason;
so is a companion whose release suite the host does not list.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from debian.deb822 import Deb822

from minimirror.errors import Diagnostic, DiagnosticsError, UsageError
from minimirror.sources.preferences import (
    PinnedSuite,
    PinRecord,
    plan_pins,
    read_preferences,
    read_release_fields,
)

__all__ = [
    "AptSource",
    "InitResult",
    "PlannedSource",
    "attach_companions",
    "companion_base",
    "distribution_ids",
    "init_from_apt",
    "link_and_pin",
    "plan_sources",
    "read_apt_sources",
    "settings_toml",
    "suites_for_packages",
]

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
    file: str = "sources.list"
    """The file the entry is in, relative to ``etc/apt`` (``sources.list.d/docker.list``)."""


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
    companions: tuple[PlannedSource, ...] = ()
    """The companion suites written as further lines of this source's source.txt (see :func:`attach_companions`)."""
    third_party: bool = False
    """Not from the distribution's own files: resolved with the distribution's sources (``resolve-with``)."""
    resolve_with: tuple[str, ...] = ()
    pin: PinRecord | None = None
    """The host's preferences record whose priority becomes the source's ``pin-priority``."""

    @property
    def source_id(self) -> str:
        return f"{self.prefix}/{self.name}"

    @property
    def flat(self) -> bool:
        """A flat repository (``deb URL ./``): no ``dists/`` tree, no components."""
        return self.dist.endswith("/")

    @property
    def companion_of(self) -> str | None:
        """The release suite this suite is a companion of, ``None`` for a release suite (:func:`companion_base`)."""
        return companion_base(self.dist)


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
        found.extend(replace(entry, file=str(path.relative_to(etc))) for entry in reader(path, problems))
    if problems:
        raise DiagnosticsError(problems)
    return tuple(found)


DEFAULT_DISTRIBUTIONS = ("debian", "ubuntu")


def distribution_ids(apt_root: Path = Path("/")) -> tuple[str, ...]:
    """``ID`` and ``ID_LIKE`` of the host's os-release (``etc/os-release``, else ``usr/lib/os-release``):
    the names of the distribution's own sources files; Debian's and Ubuntu's when there is no os-release."""
    for path in (apt_root / "etc" / "os-release", apt_root / "usr" / "lib" / "os-release"):
        if path.is_file():
            values: dict[str, str] = {}
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip("\"'")
            ids = [values.get("ID", ""), *values.get("ID_LIKE", "").split()]
            return tuple(i for i in ids if i) or DEFAULT_DISTRIBUTIONS
    return DEFAULT_DISTRIBUTIONS


def _is_distribution_file(file: str, distributions: Sequence[str]) -> bool:
    names = {"sources.list"} | {f"sources.list.d/{d}.{ext}" for d in distributions for ext in ("list", "sources")}
    return file in names


def plan_sources(
    entries: Iterable[AptSource], *, distributions: Sequence[str] = DEFAULT_DISTRIBUTIONS
) -> tuple[PlannedSource, ...]:
    """The sources tree for these entries, sorted by (prefix, name); duplicates of (URI, suite) merged.

    ``distributions`` names the distribution's own sources files (:func:`distribution_ids`); entries from any
    other file are third-party (see the module docstring for how they are named)."""
    planned: dict[tuple[str, str], PlannedSource] = {}
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if (entry.uri.rstrip("/"), entry.suite) in seen:
            continue
        seen.add((entry.uri.rstrip("/"), entry.suite))
        third_party = not _is_distribution_file(entry.file, distributions)
        prefix = _SAFE_NAME.sub("-", Path(entry.file).stem) if third_party else _prefix(entry.uri)
        name = _name(entry.suite)
        key, count = (prefix, name), 1
        while key in planned:  # another URI already has this prefix and name
            count += 1
            key = (f"{prefix}-{count}", name)
        inline = entry.signed_by if entry.signed_by and "BEGIN PGP" in entry.signed_by else None
        planned[key] = PlannedSource(
            prefix=key[0],
            name=name,
            url=entry.uri,
            key_url=_key_url(entry.signed_by) if inline is None else "",
            dist=entry.suite,
            components=() if entry.suite.endswith("/") else entry.components,
            architectures=entry.architectures,
            inline_key=inline,
            third_party=third_party,
        )
    return tuple(planned[key] for key in sorted(planned))


def _name(suite: str) -> str:
    """The source directory of a suite: the suite, or for a flat one (``./``, ``sub/``) ``flat`` or ``sub``."""
    if suite.endswith("/"):
        return _SAFE_NAME.sub("-", suite.strip("./").strip("/")) or "flat"
    return _SAFE_NAME.sub("-", suite)


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


_COMPANIONS = ("-proposed-updates", "-updates", "-security", "/updates")
"""Suffixes of the suites apt takes updates from as readily as from the release suite (-proposed-updates is
checked before -updates, which it also ends with)."""
_OPT_IN = ("-backports-sloppy", "-backports", "-proposed")
"""Suffixes of the suites apt takes a package from only when asked (``NotAutomatic``): backports, and Ubuntu's
``-proposed``. Resolving with them would pull their newer versions in, so init leaves them to the user."""


def companion_base(dist: str) -> str | None:
    """The release suite the companion suite ``dist`` belongs to (``bookworm-security`` → ``bookworm``,
    ``bookworm/updates`` → ``bookworm``); ``None`` when ``dist`` is a release suite."""
    for suffix in (*_COMPANIONS, *_OPT_IN):
        if dist.endswith(suffix) and len(dist) > len(suffix):
            return dist.removesuffix(suffix)
    return None


def suites_for_packages(planned: Sequence[PlannedSource]) -> frozenset[tuple[str, str]]:
    """Which planned sources get a directory and the user's package list: the release suites. Their
    -updates/-security companions join the release suite's source.txt instead (:func:`attach_companions`)."""
    return frozenset((p.prefix, p.name) for p in planned if p.companion_of is None)


def attach_companions(
    planned: Sequence[PlannedSource],
) -> tuple[tuple[PlannedSource, ...], tuple[tuple[PlannedSource, str], ...]]:
    """The release suites of ``planned``, each with its companions attached (sorted by dist, then URL), and the
    companions left out, each with the reason.

    A companion joins the release suite of its base dist (:func:`companion_base`), wherever that is: in the
    companion's own prefix if it is there, else in the prefix signed by the same key, else on the same host,
    else the first in (prefix, name) order (``…/debian-security bookworm-security`` joins ``…/debian bookworm``).
    """
    releases = [p for p in planned if p.companion_of is None]
    attached: dict[tuple[str, str], list[PlannedSource]] = {(p.prefix, p.name): [] for p in releases}
    left_out: list[tuple[PlannedSource, str]] = []
    for plan in planned:
        base = plan.companion_of
        if base is None:
            continue
        if plan.dist.endswith(_OPT_IN):
            what = "-proposed is" if plan.dist.endswith("-proposed") else "backports are"
            reason = (
                f"{what} opt-in in apt (a package is taken from there only when asked for), so it is not resolved "
                f"with {base!r}; add the line to that source.txt by hand if you want it"
            )
            left_out.append((plan, reason))
            continue
        candidates = [release for release in releases if release.dist == base]
        if not candidates:
            reason = f"its release suite {base!r} is not among the host's APT entries; add the line by hand"
            left_out.append((plan, reason))
            continue
        release = min(candidates, key=lambda release: _distance(release, plan))
        attached[(release.prefix, release.name)].append(plan)
    with_companions = tuple(
        replace(release, companions=tuple(sorted(attached[(release.prefix, release.name)], key=_suite_order)))
        for release in releases
    )
    return with_companions, tuple(left_out)


def _distance(release: PlannedSource, companion: PlannedSource) -> tuple[bool, bool, bool, bool]:
    """How far a release suite is from a companion of its dist: distribution and third-party, another prefix,
    another key, another host."""
    return (
        release.third_party != companion.third_party,
        release.prefix != companion.prefix,
        (release.key_url, release.inline_key) != (companion.key_url, companion.inline_key),
        urlsplit(release.url).hostname != urlsplit(companion.url).hostname,
    )


def _suite_order(plan: PlannedSource) -> tuple[str, str]:
    return plan.dist, plan.url


@dataclass(frozen=True, slots=True)
class InitResult:
    """What :func:`init_from_apt` did: the sources written (release suites, their companions attached), and what
    it left out with the reason: sources that exist, companion suites it does not add, and the host's pins it
    does not import."""

    written: tuple[PlannedSource, ...]
    skipped: tuple[tuple[PlannedSource, str], ...]
    not_imported: tuple[tuple[PinRecord, str], ...] = ()


def link_and_pin(
    releases: Sequence[PlannedSource], records: Sequence[PinRecord], *, lists_dir: Path
) -> tuple[tuple[PlannedSource, ...], tuple[tuple[PinRecord, str], ...]]:
    """``releases`` with ``resolve-with`` and pins set, and the preferences records not imported, with why.

    Each third-party source resolves with every distribution source (the host's apt has all their lines at
    once); each source takes the priority of the whole-source pin that apt applies to all of its lines
    (:func:`minimirror.sources.preferences.plan_pins`), matched against the Release files in ``lists_dir`` when
    apt has them.
    """
    distribution = tuple(sorted(p.source_id for p in releases if not p.third_party))
    lines = {
        plan.source_id: [
            PinnedSuite(suite.url, suite.dist, read_release_fields(lists_dir, suite.url, suite.dist))
            for suite in (plan, *plan.companions)
        ]
        for plan in releases
    }
    pins = plan_pins(records, lines)
    linked = tuple(
        replace(
            plan,
            resolve_with=distribution if plan.third_party else (),
            pin=pins.pins.get(plan.source_id),
        )
        for plan in releases
    )
    return linked, pins.not_imported


def settings_toml(plan: PlannedSource) -> str | None:
    """The minimirror.toml of a planned source: its ``resolve-with`` and ``pin-priority``, if any."""
    lines: list[str] = []
    if plan.resolve_with:
        lines.append("# Used on the same machines as the distribution: resolved together with it.")
        lines.append("resolve-with = [" + ", ".join(f'"{source_id}"' for source_id in plan.resolve_with) + "]")
    if plan.pin is not None:
        lines.append(f"# From the host's APT preferences, {plan.pin.location}: Pin: {plan.pin.pin}")
        lines.append(f"pin-priority = {plan.pin.priority}")
    return "\n".join(lines) + "\n" if lines else None


def init_from_apt(
    sources_dir: Path, *, packages: Sequence[str], apt_root: Path = Path("/"), force: bool = False
) -> InitResult:
    """Write a sources tree for the host's enabled ``deb`` entries (``minimirror init --from-apt``).

    One source per release suite, with ``packages``; its companion suites (-updates, -security, see
    :func:`attach_companions`) are further lines of its source.txt, and the ones left out are reported as
    skipped. Each line has its own key: a Signed-By keyring becomes a ``file://`` key URL; an inline key is
    written next to source.txt; an entry without Signed-By trusts what apt trusts globally (``trusted.gpg`` and
    ``trusted.gpg.d``), gathered into one keyring beside it (see :func:`_key_urls`). Third-party sources get
    ``resolve-with`` and pins their ``pin-priority`` in minimirror.toml (:func:`link_and_pin`).
    Existing sources are kept unless ``force``.
    """
    from minimirror.sources.tree import Suite, existing_files, source_directory, write_source

    entries = read_apt_sources(apt_root)
    planned = plan_sources(entries, distributions=distribution_ids(apt_root))
    if not planned:
        raise UsageError(f"no enabled 'deb' entries in {apt_root / 'etc/apt'}: nothing to mirror")
    releases, skipped_companions = attach_companions(planned)
    lists_dir = apt_root / "var" / "lib" / "apt" / "lists"
    releases, not_imported = link_and_pin(releases, read_preferences(apt_root), lists_dir=lists_dir)
    written: list[PlannedSource] = []
    skipped = list(skipped_companions)
    for plan in releases:
        directory = source_directory(sources_dir, plan.prefix, plan.name)
        if existing_files(directory) and not force:
            skipped.append((plan, "exists (use --force to replace it)"))
            continue
        (key_url, *companion_keys), key_files = _key_urls(directory, (plan, *plan.companions))
        for inline_key, path in key_files.items():  # before source.txt, which must not name a missing key
            _write_key_file(path, inline_key, apt_root)
        write_source(
            sources_dir,
            plan.prefix,
            plan.name,
            url=plan.url,
            key_url=key_url,
            dist=plan.dist,
            components=_components(plan),
            packages=list(packages),
            settings_toml=settings_toml(plan),
            companions=[
                Suite(c.url, key, c.dist, _components(c))
                for c, key in zip(plan.companions, companion_keys, strict=True)
            ],
        )
        written.append(plan)
    return InitResult(tuple(written), tuple(skipped), not_imported)


def _components(plan: PlannedSource) -> tuple[str, ...]:
    """A flat suite has none; a suite the host lists without components gets ``main``."""
    return () if plan.flat else plan.components or ("main",)


def _key_urls(directory: Path, suites: Sequence[PlannedSource]) -> tuple[list[str], dict[str | None, Path]]:
    """The key URL of each suite of a source (the release suite first), and the keyrings to write beside its
    source.txt for the suites whose Signed-By names no file: inline key (``None``: apt's global keyrings) → file.

    One file a distinct key, shared by the suites that use it: ``signing-key.gpg`` for the release suite's and
    for the global keyrings, ``signing-key-<suite>.gpg`` for a companion's own inline key (or for the global
    keyrings when the release suite's inline key has ``signing-key.gpg``).
    """
    files: dict[str | None, Path] = {}
    urls: list[str] = []
    for index, suite in enumerate(suites):
        if suite.key_url:
            urls.append(suite.key_url)
            continue
        if suite.inline_key not in files:
            taken = {path.name for path in files.values()}
            if (index == 0 or suite.inline_key is None) and _KEY_FILE not in taken:
                name = _KEY_FILE
            elif f"signing-key-{suite.name}.gpg" not in taken:
                name = f"signing-key-{suite.name}.gpg"
            else:  # two companions of one name (from two prefixes) with different inline keys
                name = f"signing-key-{suite.name}-{index}.gpg"
            files[suite.inline_key] = directory / name
        urls.append(f"file://{files[suite.inline_key].resolve()}")
    return urls, files


_KEY_FILE = "signing-key.gpg"


def _write_key_file(path: Path, inline_key: str | None, apt_root: Path) -> None:
    from minimirror.atomic import write_atomically
    from minimirror.upstream.signature import dearmor

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
