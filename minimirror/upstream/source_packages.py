"""Source package indices (``Sources``) and ``.dsc`` files, read as hostile input.

Formats: Debian RepositoryFormat, "Sources Indices" (wiki.debian.org/DebianRepository/Format#A.22Sources.22_Indices),
and dsc(5). A ``Sources`` index is deb822 (``man 5 deb822``): one stanza per source package whose ``Package`` is
the source name, with ``Version``, ``Directory`` (relative to the archive root) and the files of the package
listed as ``sha256 size name`` lines of ``Checksums-Sha256`` (``Files`` has the same lines with md5).

Why not the fast Packages parser's record path (:mod:`minimirror.upstream._stanzas`): it keys every stanza on
Package/Version/Architecture and refuses an Architecture with spaces, which is what a Sources stanza has
(``Architecture: any all``). Sources indices are small (Debian's main is ~35k stanzas), so the stanzas are cut at
blank lines here and each is parsed by :func:`minimirror.upstream._stanzas.parse_stanza`, which keeps the same checks
and errors (UTF-8, malformed lines, duplicate fields, field sizes, index name and line number). python-debian's
``Sources`` parser would accept what ``parse_stanza`` refuses (duplicate fields, non-UTF-8 replaced silently).

Every file name is checked so it cannot leave its directory (no ``/``, no ``..``, no control character or NUL),
and every ``Directory`` so it stays under ``pool/``: the fetcher and publisher join them into paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from minimirror.errors import ArchiveError, IntegrityError
from minimirror.upstream._stanzas import IndexFormatError, parse_stanza
from minimirror.upstream.index import iter_decompressed

__all__ = [
    "SourceEntry",
    "SourceFile",
    "SourcesIndex",
    "directory_problem",
    "dsc_fields",
    "file_name_problem",
    "parse_checksums",
    "parse_sources",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file of a source package (the ``.dsc``, tarballs, ...): its bare name, size and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One stanza of a Sources index: the source package, where its files are, and what they are."""

    name: str
    version: str
    component: str
    directory: str
    files: tuple[SourceFile, ...]
    companion: str | None = None
    """The companion suite whose Sources listed it; None for the release suite."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @property
    def dsc(self) -> SourceFile | None:
        """The ``.dsc`` among the files (exactly one for a well-formed stanza)."""
        return next((f for f in self.files if f.name.endswith(".dsc")), None)


def file_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a source package's file name (it becomes ``<Directory>/<name>``), or None."""
    if not name or name in (".", ".."):
        return f"{name!r} is not a file name"
    if "/" in name or "\\" in name:
        return f"{name!r} contains a path separator"
    if ".." in name.split("/"):
        return f"{name!r} contains '..'"  # pragma: no cover - a '/' is refused first
    if _CONTROL.search(name):
        return f"{name!r} contains a NUL or a control character"
    return None


def directory_problem(directory: str) -> str | None:
    """Why ``directory`` cannot be a ``Directory`` (it must be a plain relative path under ``pool/``), or None."""
    if _CONTROL.search(directory) or "\\" in directory:
        return f"{directory!r} contains a backslash, NUL or control character"
    if directory.startswith("/"):
        return f"{directory!r} is an absolute path"
    parts = directory.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"{directory!r} has an empty, '.' or '..' part"
    if parts[0] != "pool" or len(parts) < 2:
        return f"{directory!r} is not below 'pool/'"
    return None


def parse_checksums(value: str, *, where: str) -> tuple[SourceFile, ...]:
    """The ``sha256 size name`` lines of a ``Checksums-Sha256`` field, each checked; sorted by name."""
    files: dict[str, SourceFile] = {}
    for line in (text.strip() for text in value.split("\n")):
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or not _SHA256.fullmatch(parts[0].lower()) or not parts[1].isdigit():
            raise ArchiveError(f"{where}: Checksums-Sha256 line {line[:80]!r} is not 'sha256 size name'")
        sha256, size, name = parts[0].lower(), int(parts[1]), parts[2]
        problem = file_name_problem(name)
        if problem is not None:
            raise ArchiveError(f"{where}: refusing the file name {problem}; the index is broken or hostile")
        if name in files:
            raise ArchiveError(f"{where}: the file {name!r} is listed twice in Checksums-Sha256")
        files[name] = SourceFile(name, size, sha256)
    return tuple(files[name] for name in sorted(files))


def _entry(fields: Mapping[str, str], component: str, where: str) -> SourceEntry:
    folded = {key.casefold(): value for key, value in fields.items()}
    name, version, directory = (folded.get(key, "").strip() for key in ("package", "version", "directory"))
    if not name or not version or not directory:
        raise ArchiveError(f"{where}: a Sources stanza needs Package, Version and Directory")
    problem = directory_problem(directory)
    if problem is not None:
        raise ArchiveError(f"{where}: {name} {version}: refusing Directory {problem}; the index is broken or hostile")
    files = parse_checksums(folded.get("checksums-sha256", ""), where=f"{where}: {name} {version}")
    if sum(f.name.endswith(".dsc") for f in files) != 1:
        raise ArchiveError(f"{where}: {name} {version}: Checksums-Sha256 must list exactly one .dsc")
    return SourceEntry(name, version, component, directory, files)


def _stanzas(blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(first line number, raw stanza) of deb822 text given in blocks; blank lines separate stanzas."""
    text = b"".join(blocks).replace(b"\r\n", b"\n")
    line = 1
    for chunk in text.split(b"\n\n"):
        stripped = chunk.lstrip(b"\n")
        start = line + (len(chunk) - len(stripped))
        line += chunk.count(b"\n") + 2
        if stripped.strip():
            yield start, stripped.rstrip(b"\n")


def parse_sources(data: bytes | Path, *, name: str, component: str) -> tuple[SourceEntry, ...]:
    """Every source package of one Sources index (xz, gzip or plain, told by magic bytes), in file order."""
    entries = []
    for line, raw in _stanzas(iter_decompressed(data, name=name)):
        fields = parse_stanza(raw, name, line)
        entries.append(_entry(fields, component, f"{name}:{line}"))
    return tuple(entries)


class SourcesIndex:
    """The source packages of a source's components, by (name, version); the first component wins a tie."""

    def __init__(self, entries: Iterable[SourceEntry]) -> None:
        self._by_key: dict[tuple[str, str], list[SourceEntry]] = {}
        for entry in entries:
            self._by_key.setdefault(entry.key, []).append(entry)

    def __len__(self) -> int:
        return len(self._by_key)

    def find(
        self, name: str, version: str, *, component: str | None = None, companion: str | None = None
    ) -> SourceEntry | None:
        """The source package ``name`` at ``version``, preferably in ``companion``'s suite (None: the release
        suite) and in ``component``, else wherever it is first listed; None when absent."""
        found = self._by_key.get((name, version), [])
        ranked = sorted(found, key=lambda entry: (entry.companion != companion, entry.component != component))
        return ranked[0] if ranked else None


# --- .dsc files ------------------------------------------------------------------------------------------

_ARMOR_START = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_START = b"-----BEGIN PGP SIGNATURE-----"


def _unarmored(data: bytes, name: str) -> bytes:
    """The text of a possibly clear-signed ``.dsc`` (RFC 4880 §7): armor headers and signature dropped,
    dash-escapes undone. The signature is not checked: the ``.dsc``'s sha256 comes from a verified index."""
    if not data.lstrip().startswith(_ARMOR_START):
        return data
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    try:
        start = lines.index(b"") + 1
        end = next(i for i, line in enumerate(lines) if line.startswith(_SIGNATURE_START))
    except (ValueError, StopIteration) as exc:
        raise IntegrityError(f"{name}: a clear-signed .dsc without a body or signature") from exc
    return b"\n".join(line[2:] if line.startswith(b"- ") else line for line in lines[start:end]).strip(b"\n")


def dsc_fields(data: bytes, *, name: str) -> dict[str, str]:
    """The fields of a ``.dsc`` in file order (values as deb822 gives them: continuation lines kept)."""
    text = _unarmored(data, name).strip(b"\n")
    try:
        fields = parse_stanza(text, name, 1)
    except IndexFormatError as exc:
        raise IntegrityError(f"{name}: not a valid .dsc: {exc.problem} (line {exc.line})") from exc
    if not any(key.casefold() == "source" for key in fields):
        raise IntegrityError(f"{name}: not a valid .dsc: no Source field")
    return fields
