"""Convert the seed's later YAML form (``mini-mirror-sources.yaml``) into a sources tree, losslessly.

The YAML is a stream of documents, one per prefix::

    name: debian                       # -> the prefix directory
    url: http://archive.example/debian
    key_url: file:///usr/share/keyrings/debian-archive-keyring.gpg
    components: [main]
    codename: bookworm                 # optional -> minimirror.toml
    label: Debian                      # optional -> minimirror.toml
    aptly_config: {...}                # optional, a mapping or a JSON string -> aptly.conf
    subrepos:
      - distribution: bookworm         # -> the source directory AND the dist
        packages:
          - name: curl                 # -> "curl"
          - name: openssh-server
            version: "1:9.2p1-2"       # -> "openssh-server (= 1:9.2p1-2)", epoch kept verbatim

Every document and subrepo becomes ``<root>/<name>/<distribution>/``. Scalars are taken as written in the
file (``version: 1.10`` stays ``1.10``, never the float ``1.1``). Every problem, including an unknown key, is
reported at ``file:line:column`` before anything is written; an existing source that differs is replaced only
with ``force``. The YAML is read with ``yaml.compose_all`` so every node keeps its position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from minimirror.errors import Diagnostic, DiagnosticsError, QueryError
from minimirror.sources.query import parse_query
from minimirror.sources.settings import check_url, validate_aptly_mapping
from minimirror.sources.tree import (
    KEY_SCHEMES,
    SOURCE_SCHEMES,
    apply_source_files,
    existing_files,
    name_problem,
    render_source,
    source_directory,
)

__all__ = ["ImportedSource", "PlannedSource", "import_yaml", "plan_import"]

_NULL = "tag:yaml.org,2002:null"
_DOCUMENT_KEYS = ("name", "url", "key_url", "components", "codename", "label", "aptly_config", "subrepos")
_DOCUMENT_REQUIRED = ("name", "url", "key_url", "components", "subrepos")
_SUBREPO_KEYS = ("distribution", "packages")
_PACKAGE_KEYS = ("name", "version")
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*\Z")  # Debian policy 5.6.1; upper case would be a field
_VERSION = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~:-]*\Z")
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


@dataclass(frozen=True, slots=True)
class ImportedSource:
    """What :func:`import_yaml` did with one source."""

    source_id: str
    directory: Path
    packages: int
    status: Literal["written", "replaced", "unchanged"]


class _Reader:
    """Reads YAML nodes of one file, collecting located diagnostics instead of stopping."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.split("\n")
        self.diagnostics: list[Diagnostic] = []
        self.claimed: dict[str, int] = {}

    def claim(self, source_id: str, node: Node) -> None:
        """Note that ``node`` describes ``source_id``; a second description is an error."""
        first = self.claimed.setdefault(source_id, node.start_mark.line + 1)
        if first != node.start_mark.line + 1:
            self.error(node, f"{source_id} is already described at line {first}")

    def error(self, node: Node, message: str) -> None:
        mark = node.start_mark
        text = self.lines[mark.line].rstrip("\r") if mark.line < len(self.lines) else None
        self.diagnostics.append(Diagnostic(message, self.path, mark.line + 1, mark.column + 1, text))

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
    line = f"{name} (= {version})" if version is not None else name
    try:
        parse_query(line)
    except QueryError as exc:
        reader.error(node, f"{line!r} is not a valid package query: {exc.message}")
        return None
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


def _settings_toml(reader: _Reader, fields: Mapping[str, Node]) -> str | None:
    """codename and label, written as minimirror.toml (Release overrides of the published tree)."""
    present = {key: fields[key] for key in ("codename", "label") if key in fields}
    settings = {key: reader.scalar(node, key, _ANY) for key, node in present.items()}
    clean = {key: value for key, value in settings.items() if value is not None}
    return tomli_w.dumps(clean) if clean else None


def _plan_document(reader: _Reader, node: Node) -> list[PlannedSource]:
    fields = reader.mapping(node, "a source document", _DOCUMENT_KEYS, _DOCUMENT_REQUIRED)
    if fields is None or any(key not in fields for key in _DOCUMENT_REQUIRED):
        return []
    before = len(reader.diagnostics)
    prefix = _safe_name(reader, fields["name"], "name")
    url = _url(reader, fields["url"], "url", SOURCE_SCHEMES)
    key_url = _url(reader, fields["key_url"], "key_url", KEY_SCHEMES)
    components = _components(reader, fields["components"])
    settings_toml = _settings_toml(reader, fields)
    aptly_conf = _aptly_config(reader, fields["aptly_config"]) if "aptly_config" in fields else None
    planned: list[PlannedSource] = []
    for subrepo in reader.sequence(fields["subrepos"], "subrepos") or []:
        sub = reader.mapping(subrepo, "a subrepo", _SUBREPO_KEYS, _SUBREPO_KEYS)
        if sub is None or any(key not in sub for key in _SUBREPO_KEYS):
            continue
        dist = _safe_name(reader, sub["distribution"], "distribution")
        if prefix is not None and dist is not None:
            reader.claim(f"{prefix}/{dist}", sub["distribution"])
        packages = _packages(reader, sub["packages"])
        if len(reader.diagnostics) > before:
            continue
        assert prefix and url and key_url and components and dist and packages is not None
        files = render_source(
            url=url,
            key_url=key_url,
            dist=dist,
            components=components,
            packages=packages,
            settings_toml=settings_toml,
            aptly_conf=aptly_conf,
        )
        mark = sub["distribution"].start_mark
        planned.append(PlannedSource(prefix, dist, files, len(packages), mark.line + 1, mark.column + 1))
    return planned


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


def plan_import(path: Path, text: str) -> list[PlannedSource]:
    """Every source the YAML ``text`` describes; raises ``DiagnosticsError`` with every problem in it."""
    documents = _compose(path, text)
    reader = _Reader(path, text)
    if not documents:
        reader.diagnostics.append(Diagnostic("no YAML documents; expected one per prefix", path))
    planned = [source for document in documents for source in _plan_document(reader, document)]
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
    planned = plan_import(path, text)
    reader = _Reader(path, text)
    statuses = [_status(reader, root, source, force=force) for source in planned]
    if reader.diagnostics:
        raise DiagnosticsError(reader.diagnostics)
    results: list[ImportedSource] = []
    for source, status in zip(planned, statuses, strict=True):
        directory = root / source.prefix / source.name
        if status != "unchanged":
            apply_source_files(directory, source.files)
        results.append(ImportedSource(f"{source.prefix}/{source.name}", directory, source.packages, status))
    return tuple(results)
