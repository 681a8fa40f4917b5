"""Convert the seed's later YAML form (``mini-mirror-sources.yaml``) into a sources tree, losslessly.

The YAML is a stream of documents, one per prefix::

    name: debian                       # -> the prefix directory
    url: http://archive.example/debian
    key_url: file:///usr/share/keyrings/debian-archive-keyring.gpg
    components: [main]
    codename: bookworm                 # optional -> minimirror.toml (or code_name, mini-mirror's spelling)
    label: Debian                      # optional -> minimirror.toml
    resolve_with: [debian/bookworm]    # optional -> minimirror.toml's resolve-with (also per subrepo)
    pin_priority: 990                  # optional -> minimirror.toml's pin-priority (also per subrepo)
    missing_dependencies: skip         # optional -> minimirror.toml's missing-dependencies (also per subrepo)
    aptly_config: {...}                # optional, a mapping or a JSON string -> aptly.conf
    subrepos:
      - distribution: bookworm         # -> the source directory AND the dist
        packages:
          - name: curl                 # -> "curl"
          - name: openssh-server
            version: "1:9.2p1-2"       # -> "openssh-server (= 1:9.2p1-2)", epoch kept verbatim
          - name: docker-ce
            version: 20.10.9~3-0~ubuntu-bionic_amd64   # -> "docker-ce (= 20.10.9~3-0~ubuntu-bionic) {amd64}", a note

Every document and subrepo becomes ``<root>/<name>/<distribution>/``. Scalars are taken as written in the
file (``version: 1.10`` stays ``1.10``, never the float ``1.1``). Every problem, including an unknown key, is
reported at ``file:line:column`` before anything is written; an existing source that differs is replaced only
with ``force``. The YAML is read with ``yaml.compose_all`` so every node keeps its position.

The group keys are spelled in the YAML's snake_case and written under minimirror.toml's names; a subrepo's
value replaces its document's. They are validated as minimirror.toml validates them, and ``resolve_with`` may
only name a source of this file or of the tree already there. A version ending in ``_ARCH`` (a Debian version
never holds ``_``; the upstream example copies a package file name's ``VERSION_ARCH``) becomes an architecture
condition, with a note.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
import yaml
from debian._arch_table import DpkgArchTable
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from minimirror.errors import Diagnostic, DiagnosticsError, QueryError
from minimirror.sources.query import parse_query
from minimirror.sources.settings import check_url, parse_minimirror_toml, validate_aptly_mapping
from minimirror.sources.tree import (
    KEY_SCHEMES,
    MINIMIRROR_TOML,
    SOURCE_SCHEMES,
    apply_source_files,
    existing_files,
    name_problem,
    render_source,
    source_directory,
)

__all__ = ["ImportedSource", "PlannedSource", "import_yaml", "is_architecture", "plan_import"]

_NULL = "tag:yaml.org,2002:null"
_GROUP_KEYS = ("resolve_with", "pin_priority", "missing_dependencies")
_DOCUMENT_KEYS = (
    "name", "url", "key_url", "components", "codename", "code_name", "label", "aptly_config", *_GROUP_KEYS, "subrepos"
)  # fmt: skip
_DOCUMENT_REQUIRED = ("name", "url", "key_url", "components", "subrepos")
_SUBREPO_REQUIRED = ("distribution", "packages")
_SUBREPO_KEYS = (*_SUBREPO_REQUIRED, *_GROUP_KEYS)
_TOML_KEYS = {
    "codename": "codename",
    "code_name": "codename",
    "label": "label",
    "resolve_with": "resolve-with",
    "pin_priority": "pin-priority",
    "missing_dependencies": "missing-dependencies",
}
"""YAML key -> minimirror.toml key."""
_PACKAGE_KEYS = ("name", "version")
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*\Z")  # Debian policy 5.6.1; upper case would be a field
_VERSION = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~:-]*(?:_[a-z0-9-]+)?\Z")  # "_ARCH": see _version
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_FIELD = re.compile(r"[^\s#]+\Z")
_ANY = re.compile(r".*\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class PlannedSource:
    """One source the YAML describes: where it goes and the text of each of its files."""

    prefix: str
    name: str
    files: Mapping[str, str]
    packages: int
    line: int
    column: int
    notes: tuple[Diagnostic, ...] = ()
    """What the import changed on the way and says so, located in the YAML (a version's ``_ARCH`` suffix)."""


@dataclass(frozen=True, slots=True)
class ImportedSource:
    """What :func:`import_yaml` did with one source."""

    source_id: str
    directory: Path
    packages: int
    status: Literal["written", "replaced", "unchanged"]
    notes: tuple[Diagnostic, ...] = ()


class _Reader:
    """Reads YAML nodes of one file, collecting located diagnostics instead of stopping."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.split("\n")
        self.diagnostics: list[Diagnostic] = []
        self.notes: list[Diagnostic] = []
        self.claimed: dict[str, int] = {}
        self.links: list[tuple[str, str, Node]] = []
        """(source id, the source its resolve_with names, the node naming it), checked once all are known."""

    def claim(self, source_id: str, node: Node) -> None:
        """Note that ``node`` describes ``source_id``; a second description is an error."""
        first = self.claimed.setdefault(source_id, node.start_mark.line + 1)
        if first != node.start_mark.line + 1:
            self.error(node, f"{source_id} is already described at line {first}")

    def located(self, node: Node, message: str) -> Diagnostic:
        mark = node.start_mark
        text = self.lines[mark.line].rstrip("\r") if mark.line < len(self.lines) else None
        return Diagnostic(message, self.path, mark.line + 1, mark.column + 1, text)

    def error(self, node: Node, message: str) -> None:
        self.diagnostics.append(self.located(node, message))

    def mapping(self, node: Node, what: str, keys: Sequence[str], required: Sequence[str]) -> dict[str, Node] | None:
        """The values of a mapping node by key; unknown, duplicate and missing keys are diagnostics."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping with keys {', '.join(keys)}")
            return None
        found: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else None
            if key is None or key not in keys:
                self.error(key_node, f"unknown key {key!r} in {what}; expected one of: {', '.join(keys)}")
            elif key in found:
                self.error(key_node, f"key {key!r} appears twice in {what}")
            else:
                found[key] = value_node
        for key in required:
            if key not in found:
                self.error(node, f"{what} has no {key!r}")
        return found

    def scalar(self, node: Node, what: str, pattern: re.Pattern[str] = _FIELD) -> str | None:
        """A scalar's text exactly as written (never converted to a number or a boolean)."""
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.error(node, f"{what} must be a single value")
            return None
        if not pattern.match(node.value):
            self.error(node, f"{what} {node.value!r} is not valid here")
            return None
        return str(node.value)

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode) or not node.value:
            self.error(node, f"{what} must be a non-empty list")
            return None
        return list(node.value)


# --- one document -------------------------------------------------------------------------------------


def _url(reader: _Reader, node: Node, what: str, schemes: Sequence[str]) -> str | None:
    url = reader.scalar(node, what)
    problem = check_url(url, schemes) if url is not None else None
    if problem:
        reader.error(node, f"{what}: {problem}")
        return None
    return url


def _safe_name(reader: _Reader, node: Node, what: str) -> str | None:
    value = reader.scalar(node, what, _ANY)
    problem = name_problem(value) if value is not None else None
    if problem:
        reader.error(node, f"{what} {problem} (it names a directory)")
        return None
    return value


def _components(reader: _Reader, node: Node) -> list[str] | None:
    if isinstance(node, ScalarNode) and node.tag != _NULL:
        items: list[Node] = [node]  # a single component written without brackets
    else:
        items = reader.sequence(node, "components") or []
    values = [reader.scalar(item, "component") for item in items]
    clean = [value for value in values if value is not None]
    if len(clean) != len(set(clean)):
        reader.error(node, "components lists a component twice")
        return None
    return clean if clean and len(clean) == len(values) else None


def _package_line(reader: _Reader, node: Node) -> str | None:
    """``name`` or ``name (= version)`` for one entry of ``packages``, checked by the query parser."""
    if isinstance(node, ScalarNode):
        name, version = reader.scalar(node, "package name", _PACKAGE_NAME), None
    else:
        fields = reader.mapping(node, "a package", _PACKAGE_KEYS, ("name",))
        if fields is None or "name" not in fields:
            return None
        name = reader.scalar(fields["name"], "package name", _PACKAGE_NAME)
        version_node = fields.get("version")
        version = None
        if version_node is not None and version_node.tag != _NULL:
            version = reader.scalar(version_node, "version", _VERSION)
            if version is None:
                return None
    if name is None:
        return None
    line = name if version is None else _versioned(reader, node, name, version)
    if line is None:
        return None
    try:
        parse_query(line)
    except QueryError as exc:
        reader.error(node, f"{line!r} is not a valid package query: {exc.message}")
        return None
    return line


@functools.cache
def _architectures() -> DpkgArchTable | None:
    """dpkg's table of Debian architecture names (python-debian reads ``/usr/share/dpkg``); ``None`` without
    dpkg's data, where only the release architectures below are known."""
    try:
        return DpkgArchTable.load_arch_table()
    except OSError:
        return None


_RELEASE_ARCHITECTURES = frozenset(
    {"amd64", "arm64", "armel", "armhf", "i386", "mips64el", "mipsel", "ppc64el", "riscv64", "s390x"}
)


def is_architecture(name: str) -> bool:
    """Whether ``name`` is a Debian architecture name (``amd64``, ``hurd-i386``) or ``all``."""
    table = _architectures()
    if name == "all" or name in _RELEASE_ARCHITECTURES:
        return True
    return table is not None and table.architecture_is_concerned(name, ["any"])


def _versioned(reader: _Reader, node: Node, name: str, version: str) -> str | None:
    """``name (= version)``; a version ending in ``_ARCH`` becomes ``name (= version) {ARCH}``, with a note."""
    if "_" not in version:
        return f"{name} (= {version})"
    bare, arch = version.rsplit("_", 1)
    if not is_architecture(arch):
        reader.error(node, f"version {version!r} is not valid here: {arch!r} after '_' is not a Debian architecture")
        return None
    line = f"{name} (= {bare}) {{{arch}}}"
    reader.notes.append(reader.located(node, f"version {version!r} ends in an architecture: wrote {line!r}"))
    return line


def _packages(reader: _Reader, node: Node) -> list[str] | None:
    items = reader.sequence(node, "packages")
    if items is None:
        return None
    lines = [_package_line(reader, item) for item in items]
    clean = [line for line in lines if line is not None]
    return clean if len(clean) == len(lines) else None


def _construct(node: Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _aptly_config(reader: _Reader, node: Node) -> dict[str, Any] | None:
    """aptly_config as a mapping (from YAML or a JSON string); honoured keys are type-checked."""
    key_nodes: dict[str, Node] = {}
    if isinstance(node, ScalarNode) and node.tag != _NULL:
        try:
            data = json.loads(node.value)
        except json.JSONDecodeError as exc:
            reader.error(node, f"aptly_config is not valid JSON: {exc.msg} (line {exc.lineno} of the string)")
            return None
    elif isinstance(node, MappingNode):
        data = _construct(node)
        key_nodes = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
        try:
            json.dumps(data)
        except (TypeError, ValueError):
            reader.error(node, "aptly_config holds a value JSON cannot represent (quote dates and such)")
            return None
    else:
        reader.error(node, "aptly_config must be a mapping or a JSON object string")
        return None
    if not isinstance(data, dict):
        reader.error(node, "aptly_config must be a JSON object")
        return None
    _, problems = validate_aptly_mapping(data)
    for key, message in problems:
        reader.error(key_nodes.get(key, node), message)
    return None if problems else data


def _group_value(reader: _Reader, key: str, node: Node) -> Any:
    """A group key's value, checked as minimirror.toml checks it (one rule, one message); ``None`` if wrong."""
    value: Any
    if key == "resolve_with":
        items = [node] if isinstance(node, ScalarNode) and node.tag != _NULL else reader.sequence(node, key) or []
        value = [reader.scalar(item, "resolve_with entry", _ANY) for item in items]
        if not items or None in value:
            return None
    elif key == "pin_priority":
        text = reader.scalar(node, key, _ANY)
        if text is None:
            return None
        if not _INTEGER.match(text):
            reader.error(node, f"pin_priority must be an integer (apt's Pin-Priority, e.g. 500 or 990), not {text!r}")
            return None
        value = int(text)
    else:
        value = reader.scalar(node, key, _ANY)
    toml_key = _TOML_KEYS[key]
    _, problems = parse_minimirror_toml(Path(MINIMIRROR_TOML), tomli_w.dumps({toml_key: value}))
    for problem in problems:
        reader.error(node, problem.message.replace(f"minimirror.toml key {toml_key!r}", key, 1))
    return None if problems or value is None else value


def _group_settings(reader: _Reader, fields: Mapping[str, Node]) -> dict[str, Any]:
    """resolve_with, pin_priority, missing_dependencies of a document or subrepo, under minimirror.toml's keys."""
    found = {key: _group_value(reader, key, fields[key]) for key in _GROUP_KEYS if key in fields}
    return {_TOML_KEYS[key]: value for key, value in found.items() if value is not None}


def _release_settings(reader: _Reader, fields: Mapping[str, Node]) -> dict[str, Any]:
    """codename (or mini-mirror's code_name) and label: Release overrides of the published tree."""
    if "codename" in fields and "code_name" in fields:
        reader.error(fields["code_name"], "code_name and codename mean the same; keep one of them")
    present = {key: fields[key] for key in ("codename", "code_name", "label") if key in fields}
    settings = {_TOML_KEYS[key]: reader.scalar(node, key, _ANY) for key, node in present.items()}
    return {key: value for key, value in settings.items() if value is not None}


def _settings_toml(settings: Mapping[str, Any]) -> str | None:
    return tomli_w.dumps(dict(settings)) if settings else None


def _plan_document(reader: _Reader, node: Node) -> list[PlannedSource]:
    fields = reader.mapping(node, "a source document", _DOCUMENT_KEYS, _DOCUMENT_REQUIRED)
    if fields is None or any(key not in fields for key in _DOCUMENT_REQUIRED):
        return []
    before = len(reader.diagnostics)
    prefix = _safe_name(reader, fields["name"], "name")
    url = _url(reader, fields["url"], "url", SOURCE_SCHEMES)
    key_url = _url(reader, fields["key_url"], "key_url", KEY_SCHEMES)
    components = _components(reader, fields["components"])
    document_settings = {**_release_settings(reader, fields), **_group_settings(reader, fields)}
    aptly_conf = _aptly_config(reader, fields["aptly_config"]) if "aptly_config" in fields else None
    planned: list[PlannedSource] = []
    for subrepo in reader.sequence(fields["subrepos"], "subrepos") or []:
        sub = reader.mapping(subrepo, "a subrepo", _SUBREPO_KEYS, _SUBREPO_REQUIRED)
        if sub is None or any(key not in sub for key in _SUBREPO_REQUIRED):
            continue
        dist = _safe_name(reader, sub["distribution"], "distribution")
        if prefix is not None and dist is not None:
            reader.claim(f"{prefix}/{dist}", sub["distribution"])
        settings = {**document_settings, **_group_settings(reader, sub)}
        notes = len(reader.notes)
        packages = _packages(reader, sub["packages"])
        if len(reader.diagnostics) > before:
            continue
        assert prefix and url and key_url and components and dist and packages is not None
        link_node = sub.get("resolve_with", fields.get("resolve_with"))
        for target in settings.get("resolve-with", ()):
            assert link_node is not None
            reader.links.append((f"{prefix}/{dist}", target, link_node))
        files = render_source(
            url=url,
            key_url=key_url,
            dist=dist,
            components=components,
            packages=packages,
            settings_toml=_settings_toml(settings),
            aptly_conf=aptly_conf,
        )
        mark = sub["distribution"].start_mark
        planned.append(
            PlannedSource(
                prefix, dist, files, len(packages), mark.line + 1, mark.column + 1, tuple(reader.notes[notes:])
            )
        )
    return planned


def _check_links(reader: _Reader, known: set[str]) -> None:
    """``resolve_with`` may name only another source: of this file, or of the tree already there."""
    for source_id, target, node in reader.links:
        if target == source_id:
            reader.error(node, f"resolve_with of {source_id} names {target!r}, the source itself")
        elif target not in known:
            have = ", ".join(sorted(known - {source_id})) or "none"
            reader.error(
                node,
                f"resolve_with of {source_id} names {target!r}, which is neither in this file nor in the tree "
                f"(there are: {have})",
            )


# --- the file -----------------------------------------------------------------------------------------


def _compose(path: Path, text: str) -> list[Node]:
    try:
        return [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node.tag != _NULL]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        lines = text.split("\n")
        shown = lines[line - 1] if line <= len(lines) else None
        problem = exc.problem or exc.context or "unreadable"
        raise DiagnosticsError([Diagnostic(f"not valid YAML: {problem}", path, line, column, shown)]) from exc
    except yaml.YAMLError as exc:
        raise DiagnosticsError([Diagnostic(f"not valid YAML: {exc}", path)]) from exc


def plan_import(path: Path, text: str, *, existing: Collection[str] = ()) -> list[PlannedSource]:
    """Every source the YAML ``text`` describes; raises ``DiagnosticsError`` with every problem in it.

    ``existing`` holds the ids of the sources already in the tree, which ``resolve_with`` may name too.
    """
    documents = _compose(path, text)
    reader = _Reader(path, text)
    if not documents:
        reader.diagnostics.append(Diagnostic("no YAML documents; expected one per prefix", path))
    planned = [source for document in documents for source in _plan_document(reader, document)]
    _check_links(reader, {f"{p.prefix}/{p.name}" for p in planned} | set(existing))
    if reader.diagnostics:
        raise DiagnosticsError(reader.diagnostics)
    return planned


def _status(
    reader: _Reader, root: Path, source: PlannedSource, *, force: bool
) -> Literal["written", "replaced", "unchanged"]:
    existing = existing_files(source_directory(root, source.prefix, source.name))
    if not existing:
        return "written"
    if existing == dict(source.files):
        return "unchanged"
    if not force:
        directory = root / source.prefix / source.name
        message = f"{directory} already exists and differs from this subrepo; pass --force to replace it"
        line_text = reader.lines[source.line - 1].rstrip("\r")
        reader.diagnostics.append(Diagnostic(message, reader.path, source.line, source.column, line_text))
    return "replaced"


def import_yaml(path: Path, root: Path, *, force: bool = False) -> tuple[ImportedSource, ...]:
    """Write every source of the YAML file ``path`` under ``root``; nothing is written if anything is wrong.

    A source that already exists with the same files is left alone; one that differs is replaced only with
    ``force``. Raises ``DiagnosticsError`` (every problem, at ``file:line:column``).
    """
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnosticsError([Diagnostic(f"cannot read the YAML file: {exc}", path)]) from exc
    existing = {f"{p.parent.name}/{p.name}" for p in root.glob("*/*") if (p / "source.txt").is_file()}
    planned = plan_import(path, text, existing=existing)
    reader = _Reader(path, text)
    statuses = [_status(reader, root, source, force=force) for source in planned]
    if reader.diagnostics:
        raise DiagnosticsError(reader.diagnostics)
    results: list[ImportedSource] = []
    for source, status in zip(planned, statuses, strict=True):
        directory = root / source.prefix / source.name
        if status != "unchanged":
            apply_source_files(directory, source.files)
        source_id = f"{source.prefix}/{source.name}"
        results.append(ImportedSource(source_id, directory, source.packages, status, source.notes))
    return tuple(results)
