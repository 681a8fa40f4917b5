"""The host's APT preferences (apt_preferences(5)): which pins select a whole source, and with what priority.

``/etc/apt/preferences`` is read first, then ``/etc/apt/preferences.d/*`` in name order (apt's ``BuildPolicy``
order); in ``preferences.d`` only files with no extension or ``.pref`` and a name of letters, digits, ``_``,
``-`` and ``.`` count, as for apt. A record is a stanza of ``Package:``, ``Pin:``, ``Pin-Priority:`` (and
``Explanation:``) fields; for a package version, the first record that matches wins.

minimirror pins whole sources (``pin-priority`` in minimirror.toml), so only records of ``Package: *`` with
``Pin: release ...`` over the fields ``o=`` (Origin), ``l=`` (Label), ``a=`` (archive, the Release's Suite),
``n=`` (Codename) and ``v=`` (Version), or the short form ``Pin: release NAME`` (archive or codename), can be
imported. Per-package pins, ``Pin: version``, ``Pin: origin HOST`` and ``c=``/``b=`` (a part of a source) are
reported as not imported. Values match as apt matches them: a glob (``*``, ``?``), or a ``/regex/``.

A selector is matched against a suite's Release fields when apt has already downloaded them
(``var/lib/apt/lists``, see :func:`lists_file_name`); otherwise, as a documented best effort, ``n=``, ``a=`` and
the short form are matched against the suite as the entry writes it, ``o=`` and ``l=`` against the labels of
the entry's host name (``o=Docker`` selects ``download.docker.example``), case-insensitively, and ``v=``
matches nothing.

The parser is written here because python-debian's deb822 readers keep no line numbers, and every problem
must be located at ``file:line:column``, as apt's own parser rejects them (no ``Package``, no ``Pin``, an
unknown pin type, a priority that is missing, zero or not an integer).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from debian.deb822 import Release

from minimirror.errors import Diagnostic, DiagnosticsError
from minimirror.package import DEFAULT_PIN_PRIORITY

__all__ = [
    "PinPlan",
    "PinRecord",
    "PinnedSuite",
    "ReleaseFields",
    "Selector",
    "lists_file_name",
    "matches",
    "parse_preferences",
    "plan_pins",
    "read_preferences",
    "read_release_fields",
    "selector",
]

_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*):(.*)\Z")
_PARTS_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_PIN_TYPES = ("release", "version", "origin")
_KNOWN_KEYS = ("o", "l", "a", "n", "v", "c", "b")


@dataclass(frozen=True, slots=True)
class PinRecord:
    """One record of a preferences file: where it starts, and its fields as written."""

    path: Path
    line: int
    package: str
    pin: str
    priority: int

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        return f"{self.location} (Package: {self.package}; Pin: {self.pin}; Pin-Priority: {self.priority})"


@dataclass(frozen=True, slots=True)
class ReleaseFields:
    """The Release fields a release pin compares (apt's Origin, Label, Suite as archive, Codename, Version)."""

    origin: str = ""
    label: str = ""
    archive: str = ""
    codename: str = ""
    version: str = ""


Selector = tuple[tuple[str, str], ...]
"""A release pin as (key, value) pairs; the short form ``Pin: release NAME`` is the key ``"a|n"``."""


# --- parsing ------------------------------------------------------------------------------------------


def _record(path: Path, lines: Sequence[str], stanza: list[tuple[int, str, str, int]]) -> PinRecord | Diagnostic:
    """A record from its (line, field, value, value column) entries, or the first problem apt would report."""
    fields = {name.lower(): (number, value, column) for number, name, value, column in reversed(stanza)}
    first = stanza[0][0]

    def problem(number: int, column: int, message: str) -> Diagnostic:
        return Diagnostic(message, path, number, column, lines[number - 1])

    if "package" not in fields:
        return problem(first, 1, "a preferences record needs a 'Package:' field (e.g. 'Package: *')")
    if "pin" not in fields:
        return problem(first, 1, "a preferences record needs a 'Pin:' field (e.g. 'Pin: release o=Debian')")
    number, pin, column = fields["pin"]
    pin_type = pin.split(None, 1)[0] if pin else ""
    if pin_type not in _PIN_TYPES:
        return problem(number, column, f"unknown pin type {pin_type!r}; expected release, version or origin")
    if "pin-priority" not in fields:
        return problem(first, 1, "a preferences record needs a 'Pin-Priority:' field (e.g. 'Pin-Priority: 990')")
    number, text, column = fields["pin-priority"]
    if not re.fullmatch(r"[+-]?[0-9]+", text) or int(text) == 0:
        return problem(number, column, f"Pin-Priority must be a non-zero integer, not {text!r}")
    return PinRecord(path, first, fields["package"][1], pin, int(text))


def parse_preferences(path: Path, text: str) -> tuple[tuple[PinRecord, ...], list[Diagnostic]]:
    """The records of one preferences file, and a located diagnostic for each record apt would reject."""
    lines = [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]
    records: list[PinRecord] = []
    diagnostics: list[Diagnostic] = []
    stanza: list[tuple[int, str, str, int]] = []
    for number, line in enumerate([*lines, ""], start=1):
        if line.startswith("#"):
            continue
        if line.strip() and line[0] in " \t" and stanza:  # a continuation line (Explanation: text)
            continue
        if not line.strip():
            if stanza:
                result = _record(path, lines, stanza)
                if isinstance(result, PinRecord):
                    records.append(result)
                else:
                    diagnostics.append(result)
            stanza = []
            continue
        match = _FIELD.match(line)
        if match is None:
            message = "expected 'Field: value' (Package, Pin, Pin-Priority or Explanation)"
            diagnostics.append(Diagnostic(message, path, number, 1, line))
            continue
        value = match.group(2)
        column = match.end(1) + 2 + len(value) - len(value.lstrip())
        stanza.append((number, match.group(1), value.strip(), column))
    return tuple(records), diagnostics


def _preference_files(apt_root: Path) -> list[Path]:
    etc = apt_root / "etc" / "apt"
    files = [etc / "preferences"] if (etc / "preferences").is_file() else []
    parts = etc / "preferences.d"
    if parts.is_dir():
        files += sorted(
            p
            for p in parts.iterdir()
            if p.is_file() and _PARTS_NAME.match(p.name) and ("." not in p.name or p.suffix == ".pref")
        )
    return files


def read_preferences(apt_root: Path = Path("/")) -> tuple[PinRecord, ...]:
    """Every record of the host's preferences, in apt's order; raises ``DiagnosticsError`` with every problem."""
    records: list[PinRecord] = []
    diagnostics: list[Diagnostic] = []
    for path in _preference_files(apt_root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            diagnostics.append(Diagnostic(f"cannot read the APT preferences file: {exc}", path))
            continue
        found, problems = parse_preferences(path, text)
        records.extend(found)
        diagnostics.extend(problems)
    if diagnostics:
        raise DiagnosticsError(diagnostics)
    return tuple(records)


# --- which records select a whole source --------------------------------------------------------------


_PER_PACKAGE = "a per-package pin; minimirror pins whole sources (pin-priority in minimirror.toml)"
_NOT_RELEASE = {
    "version": "a pin by version; minimirror pins whole sources by release",
    "origin": "a pin by origin host; minimirror pins whole sources by release (o=, l=, a=, n=, v=)",
}


def selector(record: PinRecord) -> Selector | str:
    """The release selector of a record that pins whole sources, or why it cannot be imported."""
    pin_type, _, data = record.pin.partition(" ")
    reason = _NOT_RELEASE.get(pin_type) if record.package == "*" else _PER_PACKAGE
    return reason if reason is not None else _release_selector(data.strip())


def _release_selector(data: str) -> Selector | str:
    """``Pin: release DATA`` as apt's pkgVersionMatch reads it, or why it selects less than whole sources."""
    if data in ("", "*"):
        return (("*", "*"),)
    if "=" not in data:  # apt's short form: a version when it starts with a digit, else archive or codename
        return (("v", data),) if data[0].isdigit() else (("a|n", data),)
    pairs = tuple((key.strip(), value.strip()) for key, _, value in (f.partition("=") for f in data.split(",")))
    for key, _ in pairs:
        if key in ("c", "b"):
            return f"'{key}=' selects part of a source; minimirror pins whole sources"
        if key not in _KNOWN_KEYS:
            return f"unknown release field {key!r}"
    return pairs


def _expression_matches(expression: str, value: str) -> bool:
    """apt's ExpressionMatches: ``/regex/`` (case-insensitive), else a glob."""
    if len(expression) > 1 and expression.startswith("/") and expression.endswith("/"):
        try:
            return re.search(expression[1:-1], value, re.IGNORECASE) is not None
        except re.error:
            return False
    return fnmatch.fnmatchcase(value, expression)


def _host_labels(uri: str) -> tuple[str, ...]:
    return tuple((urlsplit(uri).hostname or "").split("."))


def matches(selected: Selector, *, uri: str, suite: str, fields: ReleaseFields | None) -> bool:
    """Whether every pair of ``selected`` matches the suite ``suite`` of ``uri``: against its Release fields
    when known, else by the best effort the module docstring describes."""
    for key, value in selected:
        if key == "*":
            continue
        if fields is not None:
            candidates = {
                "o": (fields.origin,),
                "l": (fields.label,),
                "a": (fields.archive,),
                "n": (fields.codename,),
                "v": (fields.version,),
                "a|n": (fields.archive, fields.codename),
            }[key]
            if not any(_expression_matches(value, candidate) for candidate in candidates if candidate):
                return False
        elif key in ("a", "n", "a|n"):
            if not _expression_matches(value, suite):
                return False
        elif key in ("o", "l"):
            if not any(_expression_matches(value.lower(), label.lower()) for label in _host_labels(uri)):
                return False
        else:  # v= needs the Release file
            return False
    return True


# --- the Release files apt already has ----------------------------------------------------------------

_QUOTED = set('\\|{}[]<>"^~_=!@#$%*')


def lists_file_name(uri: str, suite: str, kind: str = "InRelease") -> str:
    """The name apt gives the ``kind`` file of ``suite`` of ``uri`` in ``Dir::State::Lists`` (apt's
    ``URItoFileName`` of ``debReleaseIndex::MetaIndexURI``: no scheme or credentials, unsafe bytes as ``%xx``,
    ``/`` as ``_``)."""
    base = uri if uri.endswith("/") else f"{uri}/"
    if suite == "/":
        full = base + kind
    elif suite.endswith("/"):
        full = base + suite + kind
    else:
        full = f"{base}dists/{suite}/{kind}"
    parts = urlsplit(full)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path if parts.path.startswith("/") else f"/{parts.path}"
    text = host + path
    quoted = "".join(
        f"%{ord(char):02x}" if char in _QUOTED or ord(char) <= 0x20 or ord(char) >= 0x7F else char for char in text
    )
    return quoted.replace("/", "_")


def read_release_fields(lists_dir: Path, uri: str, suite: str) -> ReleaseFields | None:
    """The Release fields of ``suite`` of ``uri`` from apt's lists directory, ``None`` when apt has none.

    Read without verifying the signature: apt verified it when it downloaded the file, and the fields only
    choose a priority here.
    """
    for kind in ("InRelease", "Release"):
        path = lists_dir / lists_file_name(uri, suite, kind)
        if path.is_file():
            stanza: Mapping[str, str] = Release(path.read_text(encoding="utf-8", errors="replace"))
            return ReleaseFields(
                origin=stanza.get("Origin", ""),
                label=stanza.get("Label", ""),
                archive=stanza.get("Suite", ""),
                codename=stanza.get("Codename", ""),
                version=stanza.get("Version", ""),
            )
    return None


# --- which source takes which priority ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PinnedSuite:
    """One line of a source, as a release pin sees it: its URI, suite, and Release fields when apt has them."""

    uri: str
    suite: str
    fields: ReleaseFields | None


@dataclass(frozen=True, slots=True)
class PinPlan:
    """The record whose priority each pinned source takes, and every record not imported, with why."""

    pins: Mapping[str, PinRecord]
    not_imported: tuple[tuple[PinRecord, str], ...]


def _first_match(selectors: Mapping[int, Selector], suite: PinnedSuite, matched: set[int]) -> int | None:
    """The index of the record apt applies to ``suite`` (the first that matches); notes every match."""
    first: int | None = None
    for index, selected in selectors.items():
        if matches(selected, uri=suite.uri, suite=suite.suite, fields=suite.fields):
            matched.add(index)
            first = index if first is None else first
    return first


def plan_pins(records: Sequence[PinRecord], sources: Mapping[str, Sequence[PinnedSuite]]) -> PinPlan:
    """Which whole-source pin each source (source id -> its lines) takes, as apt would apply ``records``.

    A source takes a record's priority when the records apt applies to its lines give them all one priority (a
    line no record selects has apt's default, 500). When they differ (``n=bookworm`` selects the release line
    but not ``bookworm-updates``), minimirror cannot say it with one ``pin-priority``: those records are not
    imported for that source, and the reason says so.
    """
    selectors: dict[int, Selector] = {}
    reasons: dict[int, list[str]] = {}
    for index, record in enumerate(records):
        selected = selector(record)
        if isinstance(selected, str):
            reasons[index] = [selected]
        else:
            selectors[index] = selected
    matched: set[int] = set()
    imported: set[int] = set()
    pins: dict[str, PinRecord] = {}
    for source_id in sorted(sources):
        chosen = [_first_match(selectors, suite, matched) for suite in sources[source_id]]
        effective = {DEFAULT_PIN_PRIORITY if i is None else records[i].priority for i in chosen}
        applied = sorted({i for i in chosen if i is not None})
        if not applied:
            continue
        if len(effective) == 1:
            pins[source_id] = records[applied[0]]
            imported.update(applied)
            continue
        for index in applied:
            reason = (
                f"selects only some lines of {source_id}, which would then need several priorities; "
                "minimirror pins whole sources"
            )
            reasons.setdefault(index, []).append(reason)
    for index in selectors:
        if index in imported or index in reasons:
            continue
        if index in matched:
            reasons[index] = ["an earlier record wins on every line it selects (apt applies the first match)"]
        else:
            reasons[index] = ["selects none of the host's entries that init writes as sources"]
    not_imported = tuple((records[index], reason) for index in sorted(reasons) for reason in reasons[index])
    return PinPlan(pins, not_imported)
