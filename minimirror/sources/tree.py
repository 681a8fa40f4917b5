"""The sources tree: what to mirror, from where (the mini-mirror seed's input format, kept as is).

    sources/<prefix>/<name>/source.txt       "source_url source_key_url dist component..." (a line a suite;
                                             a flat repository: "source_url source_key_url ./", no component)
    sources/<prefix>/<name>/packages.txt     one package query a line (aptly's query language), "#" comments
    sources/<prefix>/<name>/aptly.conf       optional: aptly settings (else $APTLY_CONFIG_PATH), see settings
    sources/<prefix>/<name>/minimirror.toml  optional: minimirror's own settings, see settings

``<prefix>`` is the path the source is served from (``http://mirror/<prefix>``), so two sources with the same
dist must live under different prefixes. Directories whose name starts with ``.`` are skipped.

:func:`load_sources` reads and validates the whole tree and raises :class:`SourcesError` (a
:class:`~minimirror.errors.DiagnosticsError`) listing **every** problem of every file, each located at
``file:line:column``; :func:`check_sources` returns the same diagnostics as a list. :func:`normalized_inputs`
gives the canonical text of a source's inputs that the lock hashes: comments, blank lines, CRLF, duplicate
lines and line order do not change it. :func:`write_source` writes a source atomically (import-yaml and
``init`` use it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minimirror.atomic import write_atomically
from minimirror.errors import Diagnostic, DiagnosticsError, QueryError, UsageError
from minimirror.sources.query import Query, parse_query
from minimirror.sources.settings import (
    AptlyConf,
    SourceSettings,
    check_url,
    merge_settings,
    parse_aptly_conf,
    parse_minimirror_toml,
    toml_value_position,
)

__all__ = [
    "APTLY_CONF",
    "MINIMIRROR_TOML",
    "PACKAGES_TXT",
    "SOURCE_TXT",
    "QueryLine",
    "Source",
    "SourceSettings",
    "SourcesError",
    "apply_source_files",
    "check_sources",
    "existing_files",
    "is_flat",
    "load_sources",
    "name_problem",
    "normalized_inputs",
    "render_source",
    "source_directory",
    "split_comment",
    "write_source",
]

SOURCE_TXT = "source.txt"
PACKAGES_TXT = "packages.txt"
APTLY_CONF = "aptly.conf"
MINIMIRROR_TOML = "minimirror.toml"
MANAGED_FILES = (SOURCE_TXT, PACKAGES_TXT, APTLY_CONF, MINIMIRROR_TOML)
INPUTS_FORMAT = 1
"""Version of :func:`normalized_inputs`' text; bumped when its shape changes (every lock goes stale)."""

SOURCE_SCHEMES = ("http", "https", "file")
KEY_SCHEMES = ("http", "https", "file")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+~-]*\Z")
_SOURCE_LINE_HELP = "expected 'source_url source_key_url dist component...'"


@dataclass(frozen=True, slots=True)
class QueryLine:
    """One query of a packages.txt: where it is, the text as written, and the parsed query."""

    path: Path
    line: int
    text: str
    query: Query

    @property
    def canonical(self) -> str:
        """The query in canonical form (``str(query)``): what the lock's input hash covers."""
        return str(self.query)


@dataclass(frozen=True, slots=True)
class Source:
    """One validated source of the tree."""

    prefix: str
    name: str
    directory: Path
    url: str
    key_url: str
    dist: str
    components: tuple[str, ...]
    queries: tuple[QueryLine, ...]
    settings: SourceSettings
    companions: tuple[Suite, ...] = ()
    """Further suites of source.txt (``bookworm-updates``, ``bookworm-security``), resolved together with the
    release suite above as apt resolves several sources.list lines; they are published in its dist."""

    @property
    def suites(self) -> tuple[Suite, ...]:
        """The release suite (url, key_url, dist, components above), then the companions."""
        return (Suite(self.url, self.key_url, self.dist, self.components), *self.companions)

    @property
    def source_id(self) -> str:
        """``<prefix>/<name>``: how locks, logs and the CLI name the source."""
        return f"{self.prefix}/{self.name}"


class SourcesError(DiagnosticsError):
    """Every problem of a sources tree, followed by a one-line summary."""

    def render(self) -> str:
        files = {str(d.path) for d in self.diagnostics}
        count = len(self.diagnostics)
        plural = "s" if count != 1 else ""
        summary = f"{count} problem{plural} in {len(files)} file{'s' if len(files) != 1 else ''}"
        return f"{super().render()}\n{summary}; fix them and run `minimirror sources check` again"


# --- reading files ------------------------------------------------------------------------------------


def _read_lines(path: Path, diagnostics: list[Diagnostic]) -> list[str] | None:
    """The lines of a UTF-8 text file without line endings (CRLF tolerated, BOM dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        diagnostics.append(Diagnostic(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path))
        return None
    except OSError as exc:
        diagnostics.append(Diagnostic(f"cannot read: {exc.strerror}", path))
        return None
    return [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]


def split_comment(line: str) -> str:
    """``line`` without its ``# comment``; a ``#`` inside double or single quotes is not a comment."""
    quote: str | None = None
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif quote is not None:
            escaped = char == "\\"
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:index]
    return line


def _tokens(line: str) -> Iterator[tuple[int, str]]:
    """(1-based column, token) for each whitespace-separated token of ``line``."""
    for match in re.finditer(r"\S+", line):
        yield match.start() + 1, match.group()


# --- source.txt ---------------------------------------------------------------------------------------


def is_flat(dist: str) -> bool:
    """Whether ``dist`` names a flat repository (sources.list(5): a suite ending in ``/``, such as ``./``), whose
    Release and Packages are in that directory, with no ``dists/`` tree and no components."""
    return dist.endswith("/")


@dataclass(frozen=True, slots=True)
class Suite:
    """One line of source.txt: an archive suite, the key that signs it, and the components wanted of it."""

    url: str
    key_url: str
    dist: str
    components: tuple[str, ...]


def _source_line_problems(path: Path, number: int, line: str) -> list[Diagnostic]:
    """Problems of the source line ``line`` (as read, comment included); columns count in ``line``."""
    code = split_comment(line)
    tokens = list(_tokens(code))
    found = ("source URL", "key URL", "dist", "component")
    flat = len(tokens) >= 3 and is_flat(tokens[2][1])
    if flat and len(tokens) > 3:
        message = f"a flat repository ({tokens[2][1]!r}) has no components; remove {tokens[3][1]!r} and what follows"
        return [Diagnostic(message, path, number, tokens[3][0], line)]
    if len(tokens) < len(found) - flat:
        missing = found[len(tokens)]
        column = len(code.rstrip()) + 1  # just after the last field: where the missing one goes
        return [Diagnostic(f"missing {missing}; {_SOURCE_LINE_HELP}", path, number, column, line)]
    problems: list[Diagnostic] = []
    for (column, token), what, schemes in (
        (tokens[0], "source", SOURCE_SCHEMES),
        (tokens[1], "key", KEY_SCHEMES),
    ):
        problem = check_url(token, schemes)
        if problem:
            problems.append(Diagnostic(f"{what} URL {problem}", path, number, column, line))
    seen: set[str] = set()
    for column, component in tokens[3:]:
        if component in seen:
            problems.append(Diagnostic(f"component {component!r} is listed twice", path, number, column, line))
        seen.add(component)
    return problems


def _parse_source_txt(path: Path, diagnostics: list[Diagnostic]) -> tuple[Suite, ...] | None:
    """The suites of source.txt: the release suite first, then its companions (``-updates``, ``-security``)."""
    lines = _read_lines(path, diagnostics)
    if lines is None:
        return None
    content = [(n, line) for n, line in enumerate(lines, start=1) if split_comment(line).strip()]
    if not content:
        diagnostics.append(Diagnostic(f"no source line; {_SOURCE_LINE_HELP}", path, 1, 1, lines[0]))
        return None
    suites: list[Suite] = []
    failed = False
    seen: dict[tuple[str, str], int] = {}
    for number, line in content:
        problems = _source_line_problems(path, number, line)
        diagnostics.extend(problems)
        if problems:
            failed = True
            continue
        url, key_url, dist, *components = split_comment(line).split()
        first = seen.setdefault((url.rstrip("/"), dist), number)
        if first != number:
            column = list(_tokens(split_comment(line)))[2][0]
            message = f"suite {dist!r} of {url} is already on line {first}"
            diagnostics.append(Diagnostic(message, path, number, column, line))
            failed = True
            continue
        suites.append(Suite(url, key_url, dist, tuple(components)))
    return None if failed else tuple(suites)


# --- packages.txt -------------------------------------------------------------------------------------


def _parse_query_line(path: Path, number: int, line: str) -> QueryLine | Diagnostic | None:
    """The query on one line of packages.txt, a located diagnostic, or ``None`` for a blank line."""
    code = split_comment(line)
    text = code.strip()
    if not text:
        return None
    offset = len(code) - len(code.lstrip())
    try:
        return QueryLine(path, number, text, parse_query(text))
    except QueryError as exc:
        return exc.located(path, number, line, offset).diagnostics[0]


def _parse_packages_txt(path: Path, diagnostics: list[Diagnostic]) -> tuple[QueryLine, ...]:
    lines = _read_lines(path, diagnostics)
    if lines is None:
        return ()
    queries: list[QueryLine] = []
    failed = False
    for number, line in enumerate(lines, start=1):
        parsed = _parse_query_line(path, number, line)
        if isinstance(parsed, Diagnostic):
            diagnostics.append(parsed)
            failed = True
        elif parsed is not None:
            queries.append(parsed)
    if not queries and not failed:
        message = "no package queries; write one a line, e.g. 'curl' or 'python3 (>= 3.11)'"
        diagnostics.append(Diagnostic(message, path, 1, 1, lines[0]))
    return tuple(queries)


# --- settings -----------------------------------------------------------------------------------------


def _read_text(path: Path, diagnostics: list[Diagnostic]) -> str | None:
    lines = _read_lines(path, diagnostics)
    return None if lines is None else "\n".join(lines)


def _global_aptly_conf(environ: Mapping[str, str], diagnostics: list[Diagnostic]) -> AptlyConf | None:
    """The aptly.conf ``$APTLY_CONFIG_PATH`` names (relative to the working directory), read once."""
    value = environ.get("APTLY_CONFIG_PATH", "")
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        message = f"$APTLY_CONFIG_PATH names {value!r}, which is not a file; fix or unset the variable"
        diagnostics.append(Diagnostic(message, path))
        return None
    text = _read_text(path, diagnostics)
    if text is None:
        return None
    conf, problems = parse_aptly_conf(path, text)
    diagnostics.extend(problems)
    return conf


def _source_settings(directory: Path, global_conf: AptlyConf | None, diagnostics: list[Diagnostic]) -> SourceSettings:
    aptly = global_conf
    if (directory / APTLY_CONF).is_file():
        text = _read_text(directory / APTLY_CONF, diagnostics)
        if text is not None:
            aptly, problems = parse_aptly_conf(directory / APTLY_CONF, text)
            diagnostics.extend(problems)
    own: dict[str, Any] = {}
    if (directory / MINIMIRROR_TOML).is_file():
        text = _read_text(directory / MINIMIRROR_TOML, diagnostics)
        if text is not None:
            own, problems = parse_minimirror_toml(directory / MINIMIRROR_TOML, text)
            diagnostics.extend(problems)
    return merge_settings(aptly, own)


# --- the tree -----------------------------------------------------------------------------------------


def name_problem(name: str) -> str | None:
    """``None`` when ``name`` is safe as a prefix or source directory name (and URL path), else why not."""
    if not name or set(name) <= {"."}:
        return f"{name!r} is not a usable name"
    if any(char.isspace() for char in name):
        return f"{name!r} contains whitespace"
    if not _SAFE_NAME.match(name):
        return f"{name!r} may only use letters, digits and . _ + ~ - (and not start with . + ~ -)"
    return None


def _subdirectories(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _required_file(directory: Path, filename: str, diagnostics: list[Diagnostic]) -> Path | None:
    path = directory / filename
    if path.is_file():
        return path
    message = f"missing {filename}; a source directory holds {SOURCE_TXT} and {PACKAGES_TXT}"
    diagnostics.append(Diagnostic(message, path))
    return None


def _load_source(
    prefix_dir: Path, directory: Path, global_conf: AptlyConf | None, diagnostics: list[Diagnostic]
) -> Source | None:
    """One source directory, or ``None`` after appending its problems to ``diagnostics``."""
    before = len(diagnostics)
    problem = name_problem(directory.name)
    if problem:
        diagnostics.append(Diagnostic(f"source directory name {problem}", directory))
    source_txt = _required_file(directory, SOURCE_TXT, diagnostics)
    suites = _parse_source_txt(source_txt, diagnostics) if source_txt else None
    packages_txt = _required_file(directory, PACKAGES_TXT, diagnostics)
    queries = _parse_packages_txt(packages_txt, diagnostics) if packages_txt else ()
    settings = _source_settings(directory, global_conf, diagnostics)
    if suites is None or len(diagnostics) > before:
        return None
    release, *companions = suites
    return Source(
        prefix_dir.name,
        directory.name,
        directory,
        release.url,
        release.key_url,
        release.dist,
        release.components,
        queries,
        settings,
        tuple(companions),
    )


def _misplaced_files(prefix_dir: Path) -> list[Diagnostic]:
    return [
        Diagnostic(f"{filename} belongs in a source directory: {prefix_dir}/<name>/{filename}", path)
        for filename in (SOURCE_TXT, PACKAGES_TXT)
        if (path := prefix_dir / filename).is_file()
    ]


def _duplicate_dists(sources: Sequence[Source]) -> list[Diagnostic]:
    """Two sources of one prefix with one dist would publish over each other's ``dists/<dist>``."""
    diagnostics: list[Diagnostic] = []
    seen: dict[tuple[str, str], Source] = {}
    for source in sources:
        first = seen.setdefault((source.prefix, source.dist), source)
        if first is not source:
            message = (
                f"dist {source.dist!r} is already served by {first.source_id} from prefix {source.prefix!r}; "
                "move one of them to another prefix directory"
            )
            diagnostics.append(_dist_diagnostic(source, message))
    return diagnostics


def _dist_diagnostic(source: Source, message: str) -> Diagnostic:
    path = source.directory / SOURCE_TXT
    for number, line in enumerate(_read_lines(path, []) or [], start=1):
        tokens = list(_tokens(split_comment(line)))
        if len(tokens) >= 3:
            return Diagnostic(message, path, number, tokens[2][0], line)
    return Diagnostic(message, path)


def _unknown_links(sources: Sequence[Source], present: set[str]) -> list[Diagnostic]:
    """``resolve-with`` may only name other sources of this tree."""
    diagnostics: list[Diagnostic] = []
    for source in sources:
        for other in source.settings.resolve_with:
            if other == source.source_id:
                message = f"resolve-with names {other!r}, this source itself; name the sources used beside it"
            elif other not in present:
                known = ", ".join(sorted(present - {source.source_id})) or "none"
                message = f"resolve-with names {other!r}, which is not a source of this tree (it has: {known})"
            else:
                continue
            path = source.directory / MINIMIRROR_TOML
            text = _read_text(path, []) or ""
            line, column = toml_value_position(text, "resolve-with", other)
            diagnostics.append(Diagnostic(message, path, line, column, text.split("\n")[line - 1].rstrip("\r")))
    return diagnostics


def _scan(root: Path, environ: Mapping[str, str]) -> tuple[list[Source], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        hint = "create <prefix>/<name>/source.txt and packages.txt in it, or pass --sources DIR"
        return [], [Diagnostic(f"sources directory {what}; {hint}", root)]
    global_conf = _global_aptly_conf(environ, diagnostics)
    sources: list[Source] = []
    present: set[str] = set()
    for prefix_dir in _subdirectories(root):
        problem = name_problem(prefix_dir.name)
        if problem:
            diagnostics.append(Diagnostic(f"prefix directory name {problem}", prefix_dir))
        diagnostics.extend(_misplaced_files(prefix_dir))
        directories = _subdirectories(prefix_dir)
        if not directories:
            diagnostics.append(Diagnostic("prefix directory has no source directories", prefix_dir))
        for directory in directories:
            present.add(f"{prefix_dir.name}/{directory.name}")
            source = _load_source(prefix_dir, directory, global_conf, diagnostics)
            if source is not None:
                sources.append(source)
    diagnostics.extend(_duplicate_dists(sources))
    diagnostics.extend(_unknown_links(sources, present))
    if not sources and not diagnostics:
        message = "no sources; create <prefix>/<name>/source.txt and packages.txt in it"
        diagnostics.append(Diagnostic(message, root))
    return sources, diagnostics


def load_sources(root: Path, *, environ: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """Every source of the tree at ``root``, sorted by (prefix, name).

    ``environ`` (default ``os.environ``) supplies ``$APTLY_CONFIG_PATH``. Raises :class:`SourcesError`
    with every diagnostic of the whole tree when anything is wrong.
    """
    sources, diagnostics = _scan(root, os.environ if environ is None else environ)
    if diagnostics:
        raise SourcesError(diagnostics)
    return tuple(sorted(sources, key=lambda s: (s.prefix, s.name)))


def check_sources(root: Path, *, environ: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every problem of the tree at ``root``; an empty list when :func:`load_sources` would succeed."""
    return _scan(root, os.environ if environ is None else environ)[1]


# --- normalized inputs --------------------------------------------------------------------------------


def normalized_inputs(source: Source) -> str:
    """The canonical text of everything the lock of ``source`` depends on, for its input hash.

    Covers source.txt (URLs, dist, components in order), the sorted, de-duplicated canonical queries
    (``str(query)``) and the effective settings, wherever they came from. Comments, blank lines, CRLF,
    whitespace, duplicate lines and line order do not change it; the prefix and name (the lock's path) do not
    either.
    """
    document = {
        "format": INPUTS_FORMAT,
        "source": {
            "url": source.url,
            "key_url": source.key_url,
            "dist": source.dist,
            "components": list(source.components),
        },
        "queries": sorted({line.canonical for line in source.queries}),
        "settings": source.settings.as_dict(),
    }
    if source.companions:  # absent without companions, so that single-suite input hashes stay what they were
        document["companions"] = [
            {"url": s.url, "key_url": s.key_url, "dist": s.dist, "components": list(s.components)}
            for s in source.companions
        ]
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# --- writing ------------------------------------------------------------------------------------------


def render_source(
    *,
    url: str,
    key_url: str,
    dist: str,
    components: Sequence[str],
    packages: Sequence[str],
    settings_toml: str | None = None,
    aptly_conf: Mapping[str, Any] | None = None,
    companions: Sequence[Suite] = (),
) -> dict[str, str]:
    """The files of a source directory (file name -> text), without touching the disk.

    ``companions`` become further lines of source.txt after the release suite's, in the order given.
    """
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for suite in (Suite(url, key_url, dist, tuple(components)), *companions):
        fields = [suite.url, suite.key_url, suite.dist, *suite.components]
        if len(fields) < 4 - is_flat(suite.dist) or any(not f or re.search(r"\s|#", f) for f in fields):
            raise UsageError(f"cannot write source line {' '.join(fields)!r}: empty fields or whitespace/#")
        if is_flat(suite.dist) and suite.components:
            raise UsageError(f"cannot write source line {' '.join(fields)!r}: a flat repository has no components")
        if (suite.url.rstrip("/"), suite.dist) in seen:
            raise UsageError(f"cannot write source line {' '.join(fields)!r}: suite {suite.dist!r} is there twice")
        seen.add((suite.url.rstrip("/"), suite.dist))
        lines.append(" ".join(fields) + "\n")
    if any("\n" in p or "\r" in p for p in packages):
        raise UsageError("a package query cannot span lines")
    files = {
        SOURCE_TXT: "# source_url source_key_url dist component...\n" + "".join(lines),
        PACKAGES_TXT: "".join(f"{query}\n" for query in packages),
    }
    if settings_toml is not None:
        files[MINIMIRROR_TOML] = settings_toml if settings_toml.endswith("\n") else settings_toml + "\n"
    if aptly_conf is not None:
        files[APTLY_CONF] = json.dumps(aptly_conf, indent=2, ensure_ascii=False) + "\n"
    return files


def apply_source_files(directory: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` into ``directory`` atomically, one by one; remove managed optional files not given."""
    directory.mkdir(parents=True, exist_ok=True)
    for filename, text in sorted(files.items()):
        write_atomically(directory / filename, text)
    for optional in (APTLY_CONF, MINIMIRROR_TOML):
        if optional not in files:
            (directory / optional).unlink(missing_ok=True)


def source_directory(root: Path, prefix: str, name: str) -> Path:
    """``root/prefix/name``, after checking both names are safe (no ``..``, whitespace or slashes)."""
    for what, value in (("prefix", prefix), ("source name", name)):
        problem = name_problem(value)
        if problem:
            raise UsageError(f"cannot use {what} {problem}")
    return root / prefix / name


def write_source(
    root: Path,
    prefix: str,
    name: str,
    *,
    url: str,
    key_url: str,
    dist: str,
    components: Sequence[str],
    packages: Sequence[str],
    settings_toml: str | None = None,
    aptly_conf: Mapping[str, Any] | None = None,
    companions: Sequence[Suite] = (),
) -> Path:
    """Write ``root/prefix/name/`` (source.txt, packages.txt, optional settings) and return the directory.

    ``companions`` (``bookworm-updates``, ``bookworm-security``) follow the release suite's line in source.txt.

    Each file is written to a temporary file and renamed over the old one. The directory then describes
    exactly this source: an aptly.conf or minimirror.toml that is not given is removed.
    """
    directory = source_directory(root, prefix, name)
    files = render_source(
        url=url,
        key_url=key_url,
        dist=dist,
        components=components,
        packages=packages,
        settings_toml=settings_toml,
        aptly_conf=aptly_conf,
        companions=companions,
    )
    apply_source_files(directory, files)
    return directory


def existing_files(directory: Path) -> dict[str, str]:
    """The managed files present in ``directory`` (file name -> text), to compare with a rendering."""
    return {
        filename: (directory / filename).read_text(encoding="utf-8")
        for filename in MANAGED_FILES
        if (directory / filename).is_file()
    }
