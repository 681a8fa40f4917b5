"""Package queries: aptly's query language, parsed into a typed tree that matches :class:`Package` values.

The grammar is aptly's (https://www.aptly.info/doc/feature/query/, and ``query/`` in aptly's sources), so
the ``packages.txt`` files written for mini-mirror keep working::

    query     := and ( '|' and )*              or, lowest precedence
    and       := not ( ',' not )*
    not       := '!' not | primary
    primary   := '(' query ')' | term
    term      := field [ condition ]           a word starting with '$' or an upper-case letter, no '_'
               | name_version_arch             a word with two '_' and nothing after it
               | name [ condition ] [ '{' architecture '}' ]
    condition := '(' [ operator ] value ')'    no operator means '='
    operator  := '<<' | '<=' | '=' | '>=' | '>>' | '<' | '>' | '%' | '~'

``<`` and ``>`` are the deprecated spellings of ``<=`` and ``>=`` (Debian policy 7.1), as in aptly. Versions
compare as Debian policy 5.6.12 orders them, through python-debian. A package-style term also matches a
package that provides the name, with versioned Provides satisfying versioned terms and an unversioned Provides
satisfying only unversioned ones (Debian policy 7.5). A package of Architecture ``all`` matches every
architecture asked for with ``{arch}`` or ``$Architecture (= arch)``.

Decisions beyond aptly, each kept small:

* ``name(>= 1)`` with no space parses (aptly's lexer does not end a word at ``(``; users type it anyway).
* Backslash escapes work inside quotes only, as in aptly; in a bare word a backslash is literal, so a bare
  regex such as ``$Version (~ 1\\.22)`` means what it says.
* ``name_version_arch {arch}`` is an error rather than aptly's confusing "unexpected token".
* The canonical form (``str(query)``) writes every operator, flattens ``a, (b, c)`` to ``a, b, c``, spells
  known field names the way Packages files do, and quotes only words that would not lex back unchanged.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from debian.debian_support import Version

from minimirror.errors import QueryError
from minimirror.package import Package

__all__ = [
    "And",
    "Condition",
    "FieldTerm",
    "Not",
    "Operator",
    "Or",
    "PackageTerm",
    "Query",
    "ReferenceTerm",
    "compare_versions",
    "debian_version",
    "exact_version",
    "names_hint",
    "names_packages",
    "parse_query",
    "selects_all_versions",
]

Operator: TypeAlias = Literal["<<", "<=", "=", ">=", ">>", "%", "~"]

# The legacy one-character forms map to the inclusive relations, as Debian policy 7.1 and aptly's lexer do.
_OPERATORS: dict[str, Operator] = {
    "<<": "<<",
    "<=": "<=",
    "<": "<=",
    "=": "=",
    ">=": ">=",
    ">": ">=",
    ">>": ">>",
    "%": "%",
    "~": "~",
}
_ORDERINGS: dict[Operator, frozenset[int]] = {
    "<<": frozenset({-1}),
    "<=": frozenset({-1, 0}),
    "=": frozenset({0}),
    ">=": frozenset({0, 1}),
    ">>": frozenset({1}),
}
_SPECIAL_FIELDS = ("$Architecture", "$PackageType", "$Source", "$SourceVersion", "$Version")
# Known Packages-file fields get one spelling in the canonical form; unknown ones keep the user's spelling.
_KNOWN_FIELDS = (
    *_SPECIAL_FIELDS,
    "Name",
    "Package",
    "Source",
    "Version",
    "Architecture",
    "Maintainer",
    "Original-Maintainer",
    "Installed-Size",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Enhances",
    "Breaks",
    "Conflicts",
    "Replaces",
    "Provides",
    "Built-Using",
    "Static-Built-Using",
    "Essential",
    "Protected",
    "Priority",
    "Section",
    "Homepage",
    "Description",
    "Description-md5",
    "Tag",
    "Task",
    "Multi-Arch",
    "Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Package-Type",
    "Build-Essential",
    "Important",
    "Origin",
    "Bugs",
    "Go-Import-Path",
    "Ruby-Versions",
    "Lua-Versions",
    "Python-Version",
    "Directory",
)
_FIELD_SPELLING = {name.casefold(): name for name in _KNOWN_FIELDS}
# Fields whose '=' means Debian version equality (so '1.0' equals '1.0-0'), not string equality.
_VERSION_FIELDS = frozenset({"$Version", "$SourceVersion", "Version"})
_PUNCTUATION = frozenset("(){}|,!")
# aptly ends a bare word at whitespace and these, except '(' (so 'name(>= 1)' failed there) and quotes
# (so 'a"b c"' was one word); ending at both lets 'name(>= 1)' parse and makes quoting predictable.
_WORD_END = _PUNCTUATION | {"'", '"'}
_VERSION_CACHE_SIZE = 1 << 17


# --- versions --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_VERSION_CACHE_SIZE)
def debian_version(text: str) -> Version:
    """``text`` as python-debian's ``Version`` (cached: compare two with one operator, one comparison).
    Raises ``ValueError`` for a string that is not a version."""
    return Version(text)


@functools.lru_cache(maxsize=_VERSION_CACHE_SIZE)
def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` sorts before, equal to or after ``right`` (Debian policy 5.6.12).

    Cached twice (parsed versions and results) because the resolver compares the same few query versions
    against tens of thousands of index versions. Raises ``ValueError`` for a string that is not a version.
    """
    a, b = debian_version(left), debian_version(right)
    return -1 if a < b else (1 if a > b else 0)


def _compare_or_none(left: str, right: str) -> int | None:
    try:
        return compare_versions(left, right)
    except ValueError:
        return None  # a field value that is not a version satisfies no version relation


# --- AST --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """``(op value)``: the operator is canonical (legacy ``<``/``>`` already mapped); regexes and globs are
    compiled at construction so that matching many packages never recompiles them."""

    op: Operator
    value: str
    _pattern: re.Pattern[str] | None = dataclasses.field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        pattern = None
        if self.op == "~":
            pattern = re.compile(self.value)
        elif self.op == "%":
            pattern = re.compile(fnmatch.translate(self.value))
        object.__setattr__(self, "_pattern", pattern)

    def test(self, value: str, *, as_version: bool) -> bool:
        """Whether ``value`` satisfies the condition; ``as_version`` makes '=' compare Debian versions."""
        if self._pattern is not None:
            # aptly's regexp is an unanchored search; its glob must match the whole value.
            found = self._pattern.search(value) if self.op == "~" else self._pattern.match(value)
            return found is not None
        if self.op == "=" and not as_version:
            return value == self.value
        return _compare_or_none(value, self.value) in _ORDERINGS[self.op]

    def __str__(self) -> str:
        return f"({self.op} {_render_word(self.value)})"


@dataclass(frozen=True, slots=True)
class PackageTerm:
    """``name``, ``name (op version)``, ``name {arch}``: a dependency-like term, matched by the package of
    that name or by one that provides it (Debian policy 7.5)."""

    name: str
    relation: Condition | None = None
    architecture: str | None = None

    def matches(self, package: Package) -> bool:
        if self.architecture is not None and not _architecture_matches(package, self.architecture):
            return False
        if package.name == self.name and self._accepts(package.version):
            return True
        return self._provided_by(package)

    def _accepts(self, version: str | None) -> bool:
        if self.relation is None:
            return True
        # An unversioned Provides never satisfies a versioned term (policy 7.5).
        return version is not None and self.relation.test(version, as_version=True)

    def _provided_by(self, package: Package) -> bool:
        provides = package.field("Provides")
        # The substring test skips the relation parser for nearly every package in an index.
        if not provides or self.name not in provides:
            return False
        return any(name == self.name and self._accepts(version) for name, version in _provides(provides))

    def __str__(self) -> str:
        text = _render_word(self.name)
        if self.relation is not None:
            text += f" {self.relation}"
        if self.architecture is not None:
            text += f" {{{_render_word(self.architecture)}}}"
        return text


@dataclass(frozen=True, slots=True)
class ReferenceTerm:
    """``name_version_arch``: exactly one package, compared as strings as aptly does."""

    name: str
    version: str
    architecture: str

    def matches(self, package: Package) -> bool:
        return (package.name, package.version, package.architecture) == (
            self.name,
            self.version,
            self.architecture,
        )

    def __str__(self) -> str:
        return _render_word(f"{self.name}_{self.version}_{self.architecture}")


@dataclass(frozen=True, slots=True)
class FieldTerm:
    """``Field``, ``Field (op value)``: a stanza field or a ``$`` special field. ``field`` is in canonical
    spelling (see :func:`parse_query`); no condition means "the field is present and not empty"."""

    field: str
    condition: Condition | None = None
    _read: Callable[[Package], str | None] = dataclasses.field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_read", _field_reader(self.field))

    def matches(self, package: Package) -> bool:
        condition = self.condition
        if self.field == "$Architecture" and condition is not None and condition.op == "=":
            return _architecture_matches(package, condition.value)
        value = self._read(package)
        if value is None:
            return False
        if condition is None:
            return value != ""
        return condition.test(value, as_version=self.field in _VERSION_FIELDS)

    def __str__(self) -> str:
        name = _render_word(self.field)
        return name if self.condition is None else f"{name} {self.condition}"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Query

    def matches(self, package: Package) -> bool:
        return not self.operand.matches(package)

    def __str__(self) -> str:
        return f"!{_render_operand(self.operand, (And, Or))}"


@dataclass(frozen=True, slots=True)
class And:
    """Two or more operands, flattened (``a, (b, c)`` is ``And((a, b, c))``)."""

    operands: tuple[Query, ...]

    def matches(self, package: Package) -> bool:
        return all(operand.matches(package) for operand in self.operands)

    def __str__(self) -> str:
        return ", ".join(_render_operand(operand, (Or,)) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    """Two or more operands, flattened."""

    operands: tuple[Query, ...]

    def matches(self, package: Package) -> bool:
        return any(operand.matches(package) for operand in self.operands)

    def __str__(self) -> str:
        return " | ".join(str(operand) for operand in self.operands)


Query: TypeAlias = Or | And | Not | PackageTerm | ReferenceTerm | FieldTerm


def _render_operand(operand: Query, needs_parentheses: tuple[type, ...]) -> str:
    return f"({operand})" if isinstance(operand, needs_parentheses) else str(operand)


def _render_word(word: str) -> str:
    """The word bare when it lexes back as itself, else double-quoted with ``\\`` and ``"`` escaped.

    ``#`` is quoted too: packages.txt treats an unquoted ``#`` as the start of a comment."""
    if word and word[0] not in "<>=%~" and not any(ch.isspace() or ch in _WORD_END or ch == "#" for ch in word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# --- matching helpers -------------------------------------------------------------------------------------


def _architecture_matches(package: Package, architecture: str) -> bool:
    # aptly's MatchesArchitecture: 'all' packages match every binary architecture, never 'source'.
    if package.architecture == "all" and architecture != "source":
        return True
    return package.architecture == architecture


@functools.lru_cache(maxsize=4096)
def _provides(field_value: str) -> tuple[tuple[str, str | None], ...]:
    """(name, version or None) for each entry of a Provides field; only '=' is allowed there (policy 7.5)."""
    from debian.deb822 import PkgRelation

    provided = []
    for alternatives in PkgRelation.parse_relations(field_value):
        for relation in alternatives:
            constraint = relation.get("version")
            version = constraint[1] if constraint and constraint[0] == "=" else None
            provided.append((str(relation["name"]), version))
    return tuple(provided)


def _package_type(package: Package) -> str:
    """'deb', 'udeb' or 'source': a declared Package-Type wins, then the file name, then the stanza shape."""
    declared = package.field("Package-Type")
    if declared:
        return declared
    filename = package.field("Filename")
    if filename is not None:
        return "udeb" if filename.endswith(".udeb") else "deb"
    if package.architecture == "source" or package.field("Directory") is not None:
        return "source"
    return "deb"


_IDENTITY_READERS: dict[str, Callable[[Package], str | None]] = {
    "$Source": lambda package: package.source_name,
    "$SourceVersion": lambda package: package.source_version,
    "$Version": lambda package: package.version,
    "Version": lambda package: package.version,
    "$Architecture": lambda package: package.architecture,
    "Architecture": lambda package: package.architecture,
    "$PackageType": _package_type,
    "Name": lambda package: package.name,  # aptly maps 'Name' to the package name
    "Package": lambda package: package.name,
}


def _field_reader(name: str) -> Callable[[Package], str | None]:
    reader = _IDENTITY_READERS.get(name)
    if reader is not None:
        return reader
    return lambda package: package.field(name)


# --- lexer ------------------------------------------------------------------------------------------------

_TokenKind: TypeAlias = Literal["(", ")", "{", "}", "|", ",", "!", "op", "word", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _TokenKind
    text: str  # the unescaped word, the operator as typed, or the punctuation character
    start: int  # 0-based index into the query; columns are start + 1


class _Lexer:
    """aptly's lexer, run lazily so that errors come out in the order they appear in the query."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def tokens(self) -> Iterator[_Token]:
        while True:
            token = self._next()
            yield token
            if token.kind == "end":
                return

    def _next(self) -> _Token:
        text = self.text
        while self.pos < len(text) and text[self.pos].isspace():
            self.pos += 1
        start = self.pos
        if start == len(text):
            return _Token("end", "", start)
        char = text[start]
        if char in _PUNCTUATION:
            self.pos += 1
            return _Token(char, char, start)  # type: ignore[arg-type]  # char is one of the kinds
        if char in "<>=":
            return self._take("op", lambda ch: ch in "<>=")
        if char in "%~":
            self.pos += 1
            return _Token("op", char, start)
        if char in "'\"":
            return self._quoted(char)
        return self._take("word", lambda ch: not ch.isspace() and ch not in _WORD_END)

    def _take(self, kind: _TokenKind, keep: Callable[[str], bool]) -> _Token:
        start = self.pos
        while self.pos < len(self.text) and keep(self.text[self.pos]):
            self.pos += 1
        return _Token(kind, self.text[start : self.pos], start)

    def _quoted(self, quote: str) -> _Token:
        start = self.pos
        chars: list[str] = []
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return _Token("word", "".join(chars), start)
            if char == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
                char = self.text[self.pos]
            chars.append(char)
            self.pos += 1
        raise QueryError(f"unterminated quote {quote}: add a closing {quote}", query=self.text, column=start + 1)


# --- parser -----------------------------------------------------------------------------------------------
# Hand-written recursive descent: no maintained Python library implements aptly's grammar, and a parser
# generator would be a dependency larger than the grammar while giving worse column-precise messages.


def parse_query(text: str) -> Query:
    """Parse one aptly query. Raises :class:`QueryError` with a 1-based column at the offending character.

    A word is a field when it starts with ``$`` or an upper-case letter and has no ``_`` (aptly's rule):
    field names are case-insensitive (``$source`` is ``$Source``; ``NAME`` is ``Name``, the package name).
    """
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _Lexer(text).tokens()
        self.token = next(self.tokens)

    def parse(self) -> Query:
        if self.at("end"):
            raise QueryError("empty query: write a package name such as 'nginx'", query=self.text, column=1)
        query = self.parse_or()
        if not self.at("end"):
            raise self.unexpected("at the end of the query; join terms with ',' (and) or '|' (or)")
        return query

    def at(self, *kinds: str) -> bool:
        # A method rather than inline comparisons: mypy would keep a narrowed self.token across advance().
        return self.token.kind in kinds

    def advance(self) -> _Token:
        token = self.token
        self.token = next(self.tokens)
        return token

    def error(self, message: str, token: _Token) -> QueryError:
        return QueryError(message, query=self.text, column=token.start + 1)

    def unexpected(self, where: str) -> QueryError:
        return self.error(f"unexpected {_describe(self.token)} {where}", self.token)

    def expect_close(self, opener: _Token, closer: str, what: str) -> None:
        if self.at("end"):
            raise self.error(f"unclosed {opener.text!r}: add {closer!r} to close {what}", opener)
        if self.token.kind != closer:
            raise self.unexpected(f"in {what}: expected {closer!r}")
        self.advance()

    def parse_or(self) -> Query:
        operands = [self.parse_and()]
        while self.at("|"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(_flatten(Or, operands))

    def parse_and(self) -> Query:
        operands = [self.parse_not()]
        while self.at(","):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else And(_flatten(And, operands))

    def parse_not(self) -> Query:
        if self.at("!"):
            self.advance()
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Query:
        if self.at("("):
            opener = self.advance()
            query = self.parse_or()
            self.expect_close(opener, ")", "the group")
            return query
        if self.at("word"):
            return self.parse_term(self.advance())
        raise self.unexpected("where a package name, field or '(' was expected")

    def parse_term(self, word: _Token) -> Query:
        if not word.text:
            raise self.error("empty name: a package name or field cannot be ''", word)
        if _is_field_name(word.text):
            return self.parse_field(word)
        if not self.at("(") and (reference := _split_reference(word.text)) is not None:
            if self.at("{"):
                raise self.error("a name_version_arch reference already names its architecture", self.token)
            return self.checked_reference(word, *reference)
        relation = self.parse_condition("version", versioned=True) if self.at("(") else None
        architecture = self.parse_architecture() if self.at("{") else None
        return PackageTerm(word.text, relation, architecture)

    def checked_reference(self, word: _Token, name: str, version: str, architecture: str) -> ReferenceTerm:
        if not (name and version and architecture):
            raise self.error(f"{word.text!r} is not a name_version_arch reference: a part is empty", word)
        return ReferenceTerm(name, version, architecture)

    def parse_field(self, word: _Token) -> FieldTerm:
        name = _canonical_field(word.text)
        if name is None:
            known = ", ".join(_SPECIAL_FIELDS)
            raise self.error(f"unknown special field {word.text!r}; known: {known}", word)
        condition = None
        if self.at("("):
            condition = self.parse_condition("value", versioned=name in ("$Version", "$SourceVersion"))
        if self.at("{"):
            raise self.error("{architecture} applies to package names; use $Architecture (= arch)", self.token)
        return FieldTerm(name, condition)

    def parse_condition(self, noun: str, *, versioned: bool) -> Condition:
        opener = self.advance()
        op: Operator = "="
        after = f"in {opener.text!r}"
        if self.at("op", "!"):
            op = self.parse_operator()
            after = f"after {op!r}"
        if not self.at("word"):
            if self.at("end"):
                self.expect_close(opener, ")", "the condition")
            raise self.error(f"missing {noun} {after}", self.token)
        value = self.advance()
        self.expect_close(opener, ")", "the condition")
        return self.build_condition(op, value, versioned=versioned)

    def parse_operator(self) -> Operator:
        token = self.advance()
        typed = token.text
        if token.kind == "!" and self.at("op") and self.token.start == token.start + 1:
            typed += self.token.text  # report '!=' whole
        op = _OPERATORS.get(typed) if token.kind == "op" else None
        if op is None:
            known = " ".join(_OPERATORS)
            negate = "; to exclude a version write '!name (= version)'" if typed.startswith("!") else ""
            raise self.error(f"unknown operator {typed!r}; use one of {known}{negate}", token)
        return op

    def build_condition(self, op: Operator, value: _Token, *, versioned: bool) -> Condition:
        if versioned and op in _ORDERINGS:
            try:
                debian_version(value.text)
            except ValueError:
                message = f"invalid version {value.text!r}: expected [epoch:]upstream[-revision]"
                raise self.error(message, value) from None
        try:
            return Condition(op, value.text)
        except re.error as exc:
            raise self.error(f"invalid regular expression {value.text!r}: {exc}", value) from exc

    def parse_architecture(self) -> str:
        opener = self.advance()
        if not self.at("word") or not self.token.text:
            if self.at("end"):
                self.expect_close(opener, "}", "the architecture")
            raise self.error("missing architecture, e.g. {amd64}", self.token)
        architecture = self.advance().text
        self.expect_close(opener, "}", "the architecture")
        return architecture


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of query"
    if token.kind == "word":
        return f"word {_render_word(token.text)!r}"
    return repr(token.text)


def _flatten(kind: type[And] | type[Or], operands: list[Query]) -> tuple[Query, ...]:
    flat: list[Query] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, kind) else (operand,))
    return tuple(flat)


def _is_field_name(word: str) -> bool:
    return word.startswith("$") or (word[0].isupper() and "_" not in word)


def _canonical_field(word: str) -> str | None:
    """The canonical spelling; ``None`` for an unknown ``$`` field. Unknown plain fields stay as typed."""
    spelled = _FIELD_SPELLING.get(word.casefold())
    if spelled is None and word.startswith("$"):
        return None
    return spelled or word


def _split_reference(word: str) -> tuple[str, str, str] | None:
    # aptly's parsePackageRef: the name ends at the first '_', the architecture starts after the last.
    name, underscore, rest = word.partition("_")
    version, underscore2, architecture = rest.rpartition("_")
    if not (underscore and underscore2):
        return None
    return name, version, architecture


# --- helpers for the resolver -----------------------------------------------------------------------------


def _walk(query: Query) -> Iterator[Query]:
    yield query
    if isinstance(query, And | Or):
        for operand in query.operands:
            yield from _walk(operand)
    elif isinstance(query, Not):
        yield from _walk(query.operand)


def selects_all_versions(query: Query) -> bool:
    """Whether the resolver keeps every version the query matches rather than only the newest.

    The rule (DESIGN.md, "Resolution"): a query that mentions versions by field (``$Version``,
    ``$SourceVersion`` or ``Version``, with any operator, anywhere in the tree, negated or not) or names a
    ``name_version_arch`` reference selects every version it matches, since that is how a user asks for
    several. Anything else is package-style, and the resolver takes the newest matching version, as apt would.
    """
    return any(
        isinstance(node, ReferenceTerm) or (isinstance(node, FieldTerm) and node.field in _VERSION_FIELDS)
        for node in _walk(query)
    )


def names_packages(query: Query) -> bool:
    """Whether the query names its packages (``nginx``, ``nginx (>= 1)``, ``nginx_1.22.1-9_amd64``, ``a | b``)
    rather than selecting them by a pattern or a field (``Name (% *)``, ``Priority (optional)``, ``!nginx``).

    The resolver holds the two to different standards: a named package that cannot be installed is an error, while
    a selection locks what it matches that can be installed and lists the rest (DESIGN.md, "Resolution").
    """
    return not any(isinstance(node, FieldTerm | Not) for node in _walk(query))


def exact_version(query: Query) -> tuple[str, str] | None:
    """``(name, version)`` when the query is the package-style ``name (= version)``, else None."""
    if isinstance(query, PackageTerm) and query.relation is not None and query.relation.op == "=":
        return query.name, query.relation.value
    return None


def names_hint(query: Query) -> frozenset[str] | None:
    """The names a matching package must have or provide, so the caller can look them up in an index of
    package names *and* provided names instead of scanning; ``None`` when the query can match any name.

    ``PackageTerm`` names itself (a provider matches too, hence the provided-names index); a reference and
    ``Name (= x)`` / ``Package (= x)`` name one package. ``,`` intersects what its operands know, ``|`` needs
    every operand to know, and ``!`` knows nothing.
    """
    if isinstance(query, PackageTerm | ReferenceTerm):
        return frozenset({query.name})
    if isinstance(query, FieldTerm):
        return _field_names_hint(query)
    if isinstance(query, And):
        known = [hint for hint in map(names_hint, query.operands) if hint is not None]
        return functools.reduce(frozenset.intersection, known) if known else None
    if isinstance(query, Or):
        return _union_or_none([names_hint(operand) for operand in query.operands])
    return None


def _field_names_hint(term: FieldTerm) -> frozenset[str] | None:
    condition = term.condition
    if condition is None or condition.op != "=" or term.field not in ("Name", "Package"):
        return None
    return frozenset({condition.value})


def _union_or_none(hints: list[frozenset[str] | None]) -> frozenset[str] | None:
    names: set[str] = set()
    for hint in hints:
        if hint is None:
            return None
        names |= hint
    return frozenset(names)
