"""The hot loop of :mod:`minimirror.upstream.index`: deb822 stanzas of a ``Packages`` file, bytes in, packages out.

Format: deb822 (``man 5 deb822``; Debian Policy §5.1) as the Debian RepositoryFormat uses it for binary
``Packages`` indices: stanzas separated by blank lines, ``Name: value`` lines, continuation lines starting
with a space or a tab, field names case-insensitive, UTF-8. CRLF line endings are tolerated.

Why written by hand: python-debian's parser is general (comments, GPG armour, any encoding, ordered
case-insensitive dicts) and goes line by line in pure Python, so it spends ~50 µs per stanza. Here the
work per stanza is a handful of C-level ``bytes`` operations: the text is cut at ``\\n\\n`` with
``bytes.split``, the three identity fields are found with ``bytes.find``, and every line is validated at
once per multi-megabyte block by one regular expression over the block (not one match per line). The rest
of the stanza stays raw bytes until someone reads ``Package.fields`` (:class:`StanzaFields`).

What is checked eagerly, for every stanza: UTF-8 (``bytes.isascii`` first, so only blocks with non-ASCII
bytes pay for a decode), every non-continuation line has a colon and a field name, no whitespace-only
line, no continuation line opening a stanza, stanza and field sizes, and Package/Version/Architecture
present once, single-line and free of whitespace. Other duplicate field names are found when a stanza is
parsed in full (its ``fields`` are read), and reported the same way, with the index name and line.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Iterable, Iterator, Mapping

from minimirror.errors import ArchiveError
from minimirror.package import Package

__all__ = [
    "MAX_FIELD_BYTES",
    "MAX_STANZA_BYTES",
    "IndexFormatError",
    "Record",
    "StanzaFields",
    "iter_stanza_packages",
    "iter_stanza_records",
    "parse_stanza",
    "record_package",
]

MAX_FIELD_BYTES = 1 << 20
"""A field longer than this is refused (Debian's largest, a Provides list, is under 80 KiB)."""

MAX_STANZA_BYTES = 16 << 20
"""A stanza (text without a blank line) longer than this is refused, which bounds the read buffer."""

# A bad line, searched for over a whole block prefixed with b"\n\n" and ending with b"\n": a line that is
# neither a field (no colon) nor a continuation, a whitespace-only line, a line opening with a colon (no
# field name), or a continuation line right after a blank line. Possessive quantifiers: no backtracking.
_BAD_LINE = re.compile(rb"\n(?:[^ \t:\n][^:\n]*+\n|[ \t]++\n|:|\n[ \t])")
_SPACE = (32, 9)  # b" ", b"\t" as bytes items


class IndexFormatError(ArchiveError):
    """A ``Packages`` index that is not well-formed deb822: names the index, the line and the problem."""

    def __init__(self, index: str, line: int, problem: str) -> None:
        self.index = index
        self.line = line
        self.problem = problem
        super().__init__(f"{index}:{line}: {problem}")


class StanzaFields(Mapping[str, str]):
    """The fields of one stanza, parsed from its raw text on first access; read-only.

    Lookups with the canonical spelling (``"Depends"``) of a field not yet parsed are answered from the
    raw text without parsing the rest; anything else parses the whole stanza once and keeps the dict.
    Keys keep the spelling of the index; :meth:`minimirror.package.Package.field` folds case.
    """

    __slots__ = ("_parsed", "index", "line", "raw")

    def __init__(self, raw: bytes, index: str, line: int) -> None:
        self.raw = raw
        self.index = index
        self.line = line
        self._parsed: dict[str, str] | None = None

    def _fields(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = parse_stanza(self.raw, self.index, self.line)
        return self._parsed

    def __getitem__(self, key: str) -> str:
        return self._fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """``Mapping.get`` (exact key), answered from the raw text when that is unambiguous."""
        if self._parsed is None:
            value = quick_field(self.raw, key)
            if value is not None:
                return value
            if key.lower().encode() not in self.raw.lower():
                return default
        return self._fields().get(key, default)

    def lookup(self, name: str) -> str | None:
        """The value of field ``name`` in any letter case (deb822 field names are case-insensitive),
        without parsing the stanza when the name occurs at most once in its canonical spelling."""
        if self._parsed is None:
            value = quick_field(self.raw, name)
            if value is not None:
                return value
            if _needles(name)[2] not in self.raw.lower():
                return None
        folded = name.casefold()
        return next((v for k, v in self._fields().items() if k.casefold() == folded), None)

    def text(self) -> str:
        """The stanza as the index wrote it (LF line endings, no trailing blank line)."""
        return self.raw.decode()

    def __repr__(self) -> str:
        return f"StanzaFields({self.index}:{self.line})"


def quick_field(raw: bytes, name: str) -> str | None:
    """The value of a single-line field spelled exactly ``name``, found without parsing the stanza.

    ``None`` when it is absent in that spelling, continues on further lines, or appears twice: the caller
    then parses the stanza in full, which is case-insensitive and reports duplicates. Written flat, with the
    searched bytes made once per name: a whole-suite lock asks 800,000 times.
    """
    needle, first, _ = _needles(name)
    if raw.startswith(first):
        start = len(first)
    else:
        found = raw.find(needle)
        if found < 0:
            return None
        start = found + len(needle)
    end = raw.find(b"\n", start)
    if end < 0:
        end = len(raw)
    elif end + 1 < len(raw) and raw[end + 1] in _SPACE:
        return None
    if raw.find(needle, end) >= 0:
        return None
    return raw[start:end].strip().decode()


@functools.lru_cache(maxsize=1024)  # field names are a few dozen; a query naming odd ones cannot grow it unbounded
def _needles(name: str) -> tuple[bytes, bytes, bytes]:
    """``b"\\nName:"``, ``b"Name:"`` (the stanza's first line) and the lower-case name, for field ``name``."""
    encoded = name.encode()
    return b"\n" + encoded + b":", encoded + b":", name.lower().encode()


def parse_stanza(raw: bytes, index: str, line: int) -> dict[str, str]:
    """Every field of one stanza, values as python-debian gives them (first line stripped, continuation
    lines kept verbatim after a ``\\n``). Raises :class:`IndexFormatError` naming the line at fault."""
    text = _decode(raw, index, line)
    fields: dict[str, str] = {}
    seen: dict[str, int] = {}
    name = ""
    for number, current in enumerate(text.split("\n"), start=line):
        if current[:1] in (" ", "\t"):
            if not name:
                raise IndexFormatError(index, number, "continuation line before any field")
            fields[name] += "\n" + current
            continue
        name = _field_name(current, index, number)
        folded = name.casefold()
        if folded in seen:
            raise IndexFormatError(index, number, f"duplicate field {name!r} (first on line {seen[folded]})")
        seen[folded] = number
        fields[name] = current[len(name) + 1 :].strip()
    _check_sizes(fields, index, line)
    return fields


def _field_name(current: str, index: str, number: int) -> str:
    colon = current.find(":")
    if colon < 0:
        raise IndexFormatError(index, number, f"line has no colon (expected 'Field: value'): {current[:60]!r}")
    name = current[:colon]
    if not name or name != name.strip() or " " in name or "\t" in name or name[0] in "#-":
        raise IndexFormatError(index, number, f"invalid field name {name[:60]!r}")
    return name


def _check_sizes(fields: Mapping[str, str], index: str, line: int) -> None:
    for name, value in fields.items():
        if len(value) > MAX_FIELD_BYTES:
            raise IndexFormatError(
                index, line, f"field {name!r} is {len(value)} bytes, over the {MAX_FIELD_BYTES}-byte limit"
            )


def _decode(raw: bytes, index: str, line: int) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        where = line + raw.count(b"\n", 0, exc.start)
        raise IndexFormatError(index, where, f"not UTF-8: byte {raw[exc.start]:#04x}") from exc


Record = tuple[str, str, str, int, bytes]
"""A stanza as the parser leaves it: (name, version, architecture, first line number, raw bytes). Cheaper than a
:class:`Package` with its lazy fields, so the parsed-form cache and the index keep records and make packages
only for what is looked up."""


def record_package(record: Record, index: str) -> Package:
    name, version, architecture, line, raw = record
    return Package(name, version, architecture, StanzaFields(raw, index, line))


def iter_stanza_packages(blocks: Iterable[bytes], index: str) -> Iterator[Package]:
    """Packages from decompressed ``blocks`` of a Packages file, in file order, one block at a time."""
    return (record_package(record, index) for record in iter_stanza_records(blocks, index))


def iter_stanza_records(blocks: Iterable[bytes], index: str) -> Iterator[Record]:
    """Records from decompressed ``blocks`` of a Packages file, in file order, one block at a time."""
    tail = b""
    line = 1  # the line number of the first line of ``tail``
    held_cr = b""
    for block in blocks:
        data, held_cr = _normalise_newlines(held_cr + block)
        data, line = _skip_blank_lines(tail + data, line)
        cut = _last_blank_line(data)
        if cut < 0:
            tail = data
            _check_pending(tail, index, line)
            continue
        yield from _block_records(data[: cut + 1], index, line)
        tail, line = _skip_blank_lines(data[cut + 2 :], line + data.count(b"\n", 0, cut + 2))
    tail = (tail + held_cr).rstrip(b"\n")
    if tail:
        yield from _block_records(tail + b"\n", index, line)


def _skip_blank_lines(data: bytes, line: int) -> tuple[bytes, int]:
    if data[:1] != b"\n":
        return data, line
    stripped = data.lstrip(b"\n")
    return stripped, line + len(data) - len(stripped)


def _last_blank_line(data: bytes) -> int:
    """Where the last run of blank lines starts: the cut leaves no newline at the end of a stanza."""
    cut = data.rfind(b"\n\n")
    while cut > 0 and data[cut - 1] == 10:
        cut -= 1
    return cut


def _normalise_newlines(data: bytes) -> tuple[bytes, bytes]:
    """CRLF to LF; a CR ending the block is held back in case its LF starts the next one."""
    if b"\r" not in data:
        return data, b""
    held = b"\r" if data.endswith(b"\r") else b""
    return data[: len(data) - len(held)].replace(b"\r\n", b"\n"), held


def _check_pending(tail: bytes, index: str, line: int) -> None:
    if len(tail) > MAX_STANZA_BYTES:
        raise IndexFormatError(index, line, f"stanza longer than {MAX_STANZA_BYTES} bytes (no blank line)")


def _block_records(block: bytes, index: str, line: int) -> list[Record]:
    """Records of a block of whole stanzas starting at ``line`` and ending with one b"\\n".

    The cyclic garbage collector is paused for the block: the loop allocates only acyclic objects, and
    letting it run every 700 allocations costs a third of the parse time. Blocks are a few MiB, so a
    pause lasts milliseconds; the previous state is restored.
    """
    _validate_block(block, index, line)
    if b"\n\n\n" in block:  # extra blank lines: rare, so the loop below need not look for them
        return _block_records_loose(block, index, line)
    records: list[Record] = []
    append, hot = records.append, _record  # local names: this loop runs once per stanza
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for raw in block[:-1].split(b"\n\n"):
            if not raw.isascii():
                _decode(raw, index, line)
            append(hot(raw, index, line))
            line += raw.count(b"\n") + 2
    finally:
        if was_enabled:
            gc.enable()
    return records


def _block_records_loose(block: bytes, index: str, line: int) -> list[Record]:
    """Like :func:`_block_records`, for a block where stanzas are separated by several blank lines."""
    records: list[Record] = []
    for raw in block[:-1].split(b"\n\n"):
        stripped = raw.lstrip(b"\n")
        line += len(raw) - len(stripped)
        if stripped:
            _decode(stripped, index, line)
            records.append(_record(stripped, index, line))
        line += stripped.count(b"\n") + 2
    return records


def _validate_block(block: bytes, index: str, line: int) -> None:
    framed = b"\n\n" + block
    bad = _BAD_LINE.search(framed)
    if bad is None:
        return
    at = bad.start() + (2 if bad.group().startswith(b"\n\n") else 1)
    number = line + framed.count(b"\n", 0, at) - 2
    text = framed[at : framed.find(b"\n", at)].decode(errors="replace")  # the line may not be UTF-8 either
    raise IndexFormatError(index, number, _bad_line_problem(text))


def _bad_line_problem(text: str) -> str:
    if text.startswith(":"):
        return f"field with an empty name: {text[:60]!r}"
    if not text.strip():
        return "whitespace-only line (an empty line inside a value is written ' .')"
    if text[0] in " \t":
        return f"continuation line opens a stanza: {text[:60]!r}"
    return f"line has no colon (expected 'Field: value'): {text[:60]!r}"


def _record(raw: bytes, index: str, line: int) -> Record:
    """The hot path, written out flat because it runs once per stanza (63,440 times for Debian main).

    Three ``find``s locate the identity fields (three more make sure none is repeated). A stanza where
    one is missing, repeated, folded onto further lines, spelled unusually or holding whitespace, or big
    enough to hide an oversized field, goes to the full parser, which accepts it (e.g. ``version:`` in
    lower case) or says what is wrong. ``raw`` never ends
    with a newline, so ``raw[end + 1]`` after a found ``\\n`` exists.
    """
    find = raw.find
    name_at = 8 if raw.startswith(b"Package:") else find(b"\nPackage:") + 9 or -1
    version_at = find(b"\nVersion:") + 9
    arch_at = find(b"\nArchitecture:") + 14
    if name_at == 7 or version_at == 8 or arch_at == 13 or len(raw) > MAX_FIELD_BYTES:
        return _record_slow(raw, index, line)
    size = len(raw)
    name_end, version_end, arch_end = find(b"\n", name_at), find(b"\n", version_at), find(b"\n", arch_at)
    if (
        (name_end >= 0 and (raw[name_end + 1] in _SPACE or find(b"\nPackage:", name_end) >= 0))
        or (version_end >= 0 and (raw[version_end + 1] in _SPACE or find(b"\nVersion:", version_end) >= 0))
        or (arch_end >= 0 and (raw[arch_end + 1] in _SPACE or find(b"\nArchitecture:", arch_end) >= 0))
    ):
        return _record_slow(raw, index, line)
    name = raw[name_at : name_end if name_end >= 0 else size].strip()
    version = raw[version_at : version_end if version_end >= 0 else size].strip()
    arch = raw[arch_at : arch_end if arch_end >= 0 else size].strip()
    joined = b" ".join((name, version, arch))
    if not (name and version and arch) or joined.count(b" ") != 2 or b"\t" in joined:
        return _record_slow(raw, index, line)
    return (name.decode(), version.decode(), arch.decode(), line, raw)


def _record_slow(raw: bytes, index: str, line: int) -> Record:
    """Any stanza the hot path declined: parse it whole, then check the identity fields one by one."""
    fields = StanzaFields(raw, index, line)
    folded = {key.casefold(): value for key, value in fields.items()}
    identity = [_identity_value(folded, key, index, line) for key in ("package", "version", "architecture")]
    return (identity[0], identity[1], identity[2], line, raw)


def _identity_value(folded: Mapping[str, str], key: str, index: str, line: int) -> str:
    value = folded.get(key)
    label = key.capitalize()
    if not value:
        raise IndexFormatError(index, line, f"stanza has no {label} field (or it is empty)")
    if any(ch.isspace() for ch in value):
        raise IndexFormatError(index, line, f"{label} {value[:60]!r} contains whitespace")
    return value
