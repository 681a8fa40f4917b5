"""Per-source settings: the aptly.conf keys minimirror honours, and minimirror's own ``minimirror.toml``.

Two files can configure a source ``sources/<prefix>/<name>/``:

``aptly.conf`` (JSON, aptly's own configuration file, https://www.aptly.info/doc/configuration/)
    Read from the source directory, else from the file ``$APTLY_CONFIG_PATH`` names (the seed's global
    default for every source). A per-source file replaces the global one as a whole, as it would for aptly.
    Only the keys in :data:`APTLY_KEYS` matter; aptly's many other keys are ignored, but a key that matters
    and has the wrong type is an error located at ``file:line:col``.

``minimirror.toml`` (TOML)
    minimirror's own settings, all optional, all in one place: the published ``Release`` overrides
    (``origin``, ``label``, ``suite``, ``codename``, ``description``), ``architectures`` (overrides
    aptly.conf), ``allow-expired``, ``fallback-url``, and how the source resolves with others:
    ``resolve-with`` (the ``prefix/name`` of sources used on the same machines: linked sources form a group
    resolved as one apt universe), ``pin-priority`` (apt_preferences(5)'s Pin-Priority for every package of
    the source, default 500) and ``missing-dependencies`` (``"error"``, the default, or ``"skip"``, aptly's
    behaviour: an unsatisfiable dependency is left out, with a warning, and recorded in the lock). Unknown keys
    are errors, so a typo never passes silently.

Architectures default to ``["amd64"]`` when neither file names them: deterministic, never the host's.

Readers here are pure functions of a file's text that return a value and a list of
:class:`~minimirror.errors.Diagnostic`; they never stop at the first problem.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from minimirror.errors import Diagnostic
from minimirror.package import DEFAULT_PIN_PRIORITY

__all__ = [
    "APTLY_KEYS",
    "DEFAULT_ARCHITECTURES",
    "MINIMIRROR_KEYS",
    "MISSING_DEPENDENCIES",
    "AptlyConf",
    "SourceSettings",
    "check_url",
    "merge_settings",
    "parse_aptly_conf",
    "parse_minimirror_toml",
    "toml_value_position",
    "validate_aptly_mapping",
]

DEFAULT_ARCHITECTURES: tuple[str, ...] = ("amd64",)
MISSING_DEPENDENCIES = ("error", "skip")
_SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*\Z")

APTLY_KEYS: Mapping[str, str] = {
    "architectures": "architectures",
    "dependencyFollowRecommends": "follow_recommends",
    "dependencyFollowSuggests": "follow_suggests",
    "dependencyFollowAllVariants": "follow_all_variants",
    "dependencyFollowSource": "follow_source",
    "downloadSourcePackages": "download_source_packages",
    "gpgDisableVerify": "gpg_disable_verify",
}
"""aptly.conf key -> :class:`SourceSettings` attribute, for the keys minimirror honours."""

MINIMIRROR_KEYS: Mapping[str, str] = {
    "origin": "origin",
    "label": "label",
    "suite": "suite",
    "codename": "codename",
    "description": "description",
    "architectures": "architectures",
    "allow-expired": "allow_expired",
    "fallback-url": "fallback_url",
    "resolve-with": "resolve_with",
    "pin-priority": "pin_priority",
    "missing-dependencies": "missing_dependencies",
}
"""minimirror.toml key -> :class:`SourceSettings` attribute. Any other key is an error."""

_ARCH = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """The effective settings of one source, after aptly.conf, minimirror.toml and defaults are merged."""

    architectures: tuple[str, ...] = DEFAULT_ARCHITECTURES
    follow_recommends: bool = False
    follow_suggests: bool = False
    follow_all_variants: bool = False
    follow_source: bool = False
    download_source_packages: bool = False
    gpg_disable_verify: bool = False
    origin: str | None = None
    label: str | None = None
    suite: str | None = None
    codename: str | None = None
    description: str | None = None
    allow_expired: bool = False
    fallback_url: str | None = None
    resolve_with: tuple[str, ...] = ()
    pin_priority: int = DEFAULT_PIN_PRIORITY
    missing_dependencies: str = "error"

    def as_dict(self) -> dict[str, Any]:
        """Every setting by attribute name, lists as lists: the form the lock's input hash covers. The group
        settings appear only when set, so that the input hashes of locks written before them stay the same."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in fields(self)
            if f.name not in _OMITTED_WHEN_DEFAULT or getattr(self, f.name) != f.default
        }


_OMITTED_WHEN_DEFAULT = frozenset({"resolve_with", "pin_priority", "missing_dependencies"})


@dataclass(frozen=True, slots=True)
class AptlyConf:
    """The honoured keys of one aptly.conf: attribute name -> value, only for keys the file sets."""

    path: Path | None
    values: Mapping[str, Any] = field(default_factory=dict)


def check_url(url: str, schemes: Sequence[str]) -> str | None:
    """``None`` when ``url`` is an absolute URL with one of ``schemes``, else what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{scheme}://" for scheme in schemes)
        return f"{url!r} is not a URL minimirror can read; expected {allowed}"
    if parts.scheme == "file":
        return None if parts.path.startswith("/") else f"{url!r} needs an absolute path (file:///path)"
    return None if parts.netloc else f"{url!r} has no host"


# --- aptly.conf ----------------------------------------------------------------------------------------


def _check_architectures(value: object) -> str | None:
    if not isinstance(value, list) or not value:
        return 'must be a non-empty list of architecture names, e.g. ["amd64", "arm64"]'
    for arch in value:
        if not isinstance(arch, str) or not _ARCH.match(arch):
            return f"{arch!r} is not an architecture name (lower-case letters, digits, '-')"
    return None


def _check_source_ids(value: object) -> str | None:
    if not isinstance(value, list):
        return 'must be a list of source ids, e.g. ["debian/bookworm"]'
    for item in value:
        if not isinstance(item, str) or not _SOURCE_ID.match(item):
            return f"{item!r} is not a source id (prefix/name, as the folders sources/<prefix>/<name>/)"
    return None


def _check_priority(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return None if ok else f"must be an integer (apt's Pin-Priority, e.g. 500 or 990), not {value!r}"


def _check_missing(value: object) -> str | None:
    return None if value in MISSING_DEPENDENCIES else f'must be "error" or "skip", not {value!r}'


def _check_string(value: object) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {value!r}"


def _check_fallback(value: object) -> str | None:
    return _check_string(value) or check_url(str(value), ("http", "https", "file"))


def _check_bool(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {value!r}"


_CHECKS: Mapping[str, Callable[[object], str | None]] = {
    "architectures": _check_architectures,
    "resolve_with": _check_source_ids,
    "pin_priority": _check_priority,
    "missing_dependencies": _check_missing,
    "fallback_url": _check_fallback,
    "allow_expired": _check_bool,
}


def _check_value(attribute: str, value: object) -> str | None:
    """What is wrong with ``value`` for the setting ``attribute``, or ``None``."""
    check = _CHECKS.get(attribute)
    if check is None:
        check = _check_bool if attribute.startswith(("follow_", "download_", "gpg_")) else _check_string
    return check(value)


def _normalize(attribute: str, value: Any) -> Any:
    if attribute == "resolve_with":
        return tuple(sorted(set(value)))
    return tuple(value) if attribute == "architectures" else value


def validate_aptly_mapping(data: Mapping[str, object]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The honoured keys of an aptly.conf mapping, and ``(key, message)`` for each one of the wrong type.

    Pure, so callers that know where keys are (a JSON file, a YAML document) can locate each problem.
    """
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, attribute in APTLY_KEYS.items():
        if key not in data:
            continue
        problem = _check_value(attribute, data[key])
        if problem:
            problems.append((key, f"aptly.conf key {key!r} {problem}"))
        else:
            values[attribute] = _normalize(attribute, data[key])
    return values, problems


def _skip_ws(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _top_level_positions(text: str) -> dict[str, int]:
    """Offsets of each top-level key's value in a JSON object already known to be valid."""
    decoder = json.JSONDecoder()
    positions: dict[str, int] = {}
    index = _skip_ws(text, 0) + 1  # past "{"
    while True:
        index = _skip_ws(text, index)
        if text[index] != '"':  # "}" of an empty object
            return positions
        key, index = decoder.raw_decode(text, index)
        index = _skip_ws(text, _skip_ws(text, index) + 1)  # past ":"
        positions[key] = index
        _, index = decoder.raw_decode(text, index)
        index = _skip_ws(text, index)
        if text[index] != ",":
            return positions
        index += 1


def _diagnostic_at(path: Path, text: str, offset: int, message: str) -> Diagnostic:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line_text = text[start : end if end != -1 else len(text)].rstrip("\r")
    return Diagnostic(message, path, line, offset - start + 1, line_text)


def _line_text(text: str, line: int) -> str | None:
    lines = text.split("\n")
    return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else None


def parse_aptly_conf(path: Path, text: str) -> tuple[AptlyConf, list[Diagnostic]]:
    """Read the honoured keys of an aptly.conf; JSON and type errors are located diagnostics."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"aptly.conf is not valid JSON: {exc.msg}"
        return AptlyConf(path), [Diagnostic(message, path, exc.lineno, exc.colno, _line_text(text, exc.lineno))]
    if not isinstance(data, dict):
        return AptlyConf(path), [
            Diagnostic("aptly.conf must be a JSON object ({...})", path, 1, 1, _line_text(text, 1))
        ]
    values, problems = validate_aptly_mapping(data)
    if not problems:
        return AptlyConf(path, values), []
    positions = _top_level_positions(text)
    return AptlyConf(path, values), [
        _diagnostic_at(path, text, positions.get(key, 0), message) for key, message in problems
    ]


# --- minimirror.toml -----------------------------------------------------------------------------------


def _toml_key_position(text: str, key: str) -> tuple[int, int]:
    """1-based (line, column) of ``key = ...`` or ``[key]`` in TOML text; (1, 1) when not found."""
    quoted = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    pattern = re.compile(rf"^(\s*)(?:{quoted}\s*=|\[\[?\s*{quoted})")
    for number, line in enumerate(text.split("\n"), start=1):
        match = pattern.match(line)
        if match:
            return number, len(match.group(1)) + 1
    return 1, 1


def toml_value_position(text: str, key: str, value: str) -> tuple[int, int]:
    """1-based (line, column) of the string ``value`` written after ``key = `` (in a one- or multi-line
    array); the key's own position when the value is not found."""
    line, column = _toml_key_position(text, key)
    lines = text.split("\n")
    for number in range(line - 1, len(lines)):
        for quote in ('"', "'"):
            found = lines[number].find(f"{quote}{value}{quote}")
            if found != -1:
                return number + 1, found + 1
        if number > line - 1 and re.match(r"\s*[A-Za-z0-9_\"'-]+\s*=", lines[number]):
            break  # the next key: the value was not written as a plain string
    return line, column


def _toml_decode_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> Diagnostic:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    reason = _TOML_POSITION.sub("", message).strip()
    return Diagnostic(f"minimirror.toml is not valid TOML: {reason}", path, line, column, _line_text(text, line))


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(MINIMIRROR_KEYS), n=1)
    return f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(MINIMIRROR_KEYS)}"


def parse_minimirror_toml(path: Path, text: str) -> tuple[dict[str, Any], list[Diagnostic]]:
    """The settings a minimirror.toml sets (attribute name -> value); unknown keys are diagnostics."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return {}, [_toml_decode_error(path, text, exc)]
    values: dict[str, Any] = {}
    diagnostics: list[Diagnostic] = []
    for key, value in data.items():
        attribute = MINIMIRROR_KEYS.get(key)
        if attribute is None:
            problem: str | None = f"unknown key {key!r} in minimirror.toml; {_suggest(key)}"
        else:
            problem = _check_value(attribute, value)
            problem = f"minimirror.toml key {key!r} {problem}" if problem else None
        if problem:
            line, column = _toml_key_position(text, key)
            diagnostics.append(Diagnostic(problem, path, line, column, _line_text(text, line)))
        elif attribute is not None:
            values[attribute] = _normalize(attribute, value)
    return values, diagnostics


def merge_settings(aptly: AptlyConf | None, own: Mapping[str, Any]) -> SourceSettings:
    """aptly.conf values, then minimirror.toml values over them, then defaults for the rest."""
    merged: dict[str, Any] = dict(aptly.values) if aptly is not None else {}
    merged.update(own)
    return SourceSettings(**merged)
