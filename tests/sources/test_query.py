"""Tests for minimirror.sources.query: aptly's query language, matched against hand-made Packages stanzas."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minimirror.errors import QueryError
from minimirror.package import Package
from minimirror.sources.query import (
    And,
    Condition,
    FieldTerm,
    Not,
    Operator,
    Or,
    PackageTerm,
    Query,
    ReferenceTerm,
    names_hint,
    parse_query,
    selects_all_versions,
)


def stanza(name: str, version: str, architecture: str = "amd64", **extra: str) -> Package:
    """A Package whose fields hold the identity plus ``extra`` (underscores in keys become dashes)."""
    fields = {"Package": name, "Version": version, "Architecture": architecture}
    fields.update({key.replace("_", "-"): value for key, value in extra.items()})
    return Package(name, version, architecture, fields)


NGINX = stanza(
    "nginx",
    "1.22.1-9",
    Section="httpd",
    Priority="optional",
    Maintainer="Debian Nginx Maintainers <pkg-nginx-maintainers@lists.alioth.debian.org>",
    Filename="pool/main/n/nginx/nginx_1.22.1-9_amd64.deb",
)
NGINX_CORE = stanza("nginx-core", "1.22.1-9", Source="nginx", Provides="httpd, httpd-cgi, nginx-abi-1.22.1-7")
LIBFOO = stanza("libfoo1", "1.2-1+b1", "arm64", Source="foo (1.2-1)", Priority="required")
SIX = stanza("python3-six", "1.16.0-4", "all", Section="python", Multi_Arch="foreign")
EPOCH = stanza("epochy", "1:1.0")
TILDE = stanza("tilde", "1.0~rc1")
PROVIDER = stanza("libbar-provider", "3.0", Provides="libbar (= 1.2), virtual-bar")
UDEB = stanza("netcfg", "1.187", Filename="pool/main/n/netcfg/netcfg_1.187_amd64.udeb")
DECLARED_UDEB = stanza("di-utils", "1.0", **{"Package-Type": "udeb"})
SOURCE = stanza("nginx", "1.22.1-9", "source", Directory="pool/main/n/nginx")
WEIRD = stanza("weird name", "1.0")
COMMA = stanza("a,b", "1.0")

MATCHES: list[tuple[str, Package, bool]] = [
    # plain names and relations
    ("nginx", NGINX, True),
    ("nginx", NGINX_CORE, False),
    ("nginx-core", NGINX_CORE, True),
    ("nginx (= 1.22.1-9)", NGINX, True),
    ("nginx (= 1.22.1)", NGINX, False),
    ("nginx (>= 1.22)", NGINX, True),
    ("nginx (>> 1.22.1-9)", NGINX, False),
    ("nginx (<< 1.22.1-10)", NGINX, True),
    ("nginx (<= 1.22.1-9)", NGINX, True),
    ("nginx (<< 1.22.1-9)", NGINX, False),
    ("nginx(>= 1)", NGINX, True),
    ("nginx(>=1.0)", NGINX, True),
    ("nginx (1.22.1-9)", NGINX, True),
    # legacy < and > are <= and >= (Debian policy 7.1)
    ("nginx (< 1.22.1-9)", NGINX, True),
    ("nginx (> 1.22.1-9)", NGINX, True),
    ("nginx (> 1.22.1-10)", NGINX, False),
    # epochs and tildes
    ("epochy (>> 2.0)", EPOCH, True),
    ("epochy (= 1.0)", EPOCH, False),
    ("epochy (= 1:1.0)", EPOCH, True),
    ("tilde (<< 1.0)", TILDE, True),
    ("tilde (>> 1.0~beta1)", TILDE, True),
    ("tilde (>= 1.0)", TILDE, False),
    # architectures; 'all' matches every architecture asked for
    ("nginx {amd64}", NGINX, True),
    ("nginx {arm64}", NGINX, False),
    ("python3-six {arm64}", SIX, True),
    ("python3-six {source}", SIX, False),
    ("nginx (>= 1.0) {amd64}", NGINX, True),
    ("nginx(>= 1.0){arm64}", NGINX, False),
    ("$Architecture (amd64)", SIX, True),
    ("$Architecture (= all)", NGINX, False),
    ("$Architecture (% arm*)", LIBFOO, True),
    # Provides (Debian policy 7.5)
    ("httpd", NGINX_CORE, True),
    ("httpd (>= 1.0)", NGINX_CORE, False),
    ("libbar", PROVIDER, True),
    ("libbar (= 1.2)", PROVIDER, True),
    ("libbar (>= 1.0)", PROVIDER, True),
    ("libbar (>> 1.2)", PROVIDER, False),
    ("virtual-bar (>= 0)", PROVIDER, False),
    ("virtual-bar {amd64}", PROVIDER, True),
    ("libba", PROVIDER, False),
    # precedence: '|' lowest, then ',', then '!'
    ("nginx | tilde, epochy", NGINX, True),
    ("nginx | tilde, epochy", TILDE, False),
    ("(nginx | tilde), epochy", NGINX, False),
    ("nginx, !nginx | tilde", TILDE, True),
    ("!nginx", NGINX, False),
    ("!nginx", TILDE, True),
    ("!!nginx", NGINX, True),
    ("!(nginx | tilde)", EPOCH, True),
    ("!(nginx | tilde)", TILDE, False),
    ("nginx, $Architecture (amd64), Priority (optional)", NGINX, True),
    # references
    ("nginx_1.22.1-9_amd64", NGINX, True),
    ("nginx_1.22.1-9_arm64", NGINX, False),
    ("epochy_1:1.0_amd64", EPOCH, True),
    ("tilde_1.0~rc1_amd64", TILDE, True),
    ("nginx_1.22.1-09_amd64", NGINX, False),
    # field queries
    ("Priority (optional)", NGINX, True),
    ("Priority (= required)", NGINX, False),
    ("priority (optional)", NGINX, False),
    ("PRIORITY (optional)", NGINX, True),
    ("Section", NGINX, True),
    ("Section", EPOCH, False),
    ("multi-arch", SIX, False),
    ("Multi-arch (foreign)", SIX, True),
    ("Maintainer (~ alioth)", NGINX, True),
    ("Maintainer (~ ^alioth)", NGINX, False),
    ("Name (~ ^python3-)", SIX, True),
    ('Name (~ "^python3-.*")', SIX, True),
    ("Name (~ ^python3-)", NGINX, False),
    ("Name (nginx)", NGINX, True),
    ("Name (% nginx*)", NGINX_CORE, True),
    ("Name (% ngin?)", NGINX, True),
    ("Name (% ngin?)", NGINX_CORE, False),
    ("Name (% *core)", NGINX_CORE, True),
    ("$Version (>= 1.22)", NGINX, True),
    ("$Version (% 1.22*)", NGINX, True),
    ("$Version (~ 1\\.22)", NGINX, True),
    ("$Version (~ 1\\.22)", stanza("x", "1x22"), False),
    ("$Version (= 1.0-0)", stanza("x", "1.0"), True),
    ("Version (= 1.0-0)", stanza("x", "1.0"), True),
    ("Filename (= 1.0-0)", stanza("x", "1.0", Filename="1.0"), False),
    ("Installed-Size (>= 900)", stanza("x", "1", Installed_Size="1000"), True),
    ("Installed-Size (>= 900)", stanza("x", "1", Installed_Size="not a number!"), False),
    ("$Source (nginx)", NGINX_CORE, True),
    ("$Source (nginx)", NGINX, True),
    ("$source (foo)", LIBFOO, True),
    ("$SourceVersion (= 1.2-1)", LIBFOO, True),
    ("$SourceVersion (>> 1.2-1)", LIBFOO, False),
    ("$Version (>> 1.2-1)", LIBFOO, True),
    ("$PackageType (deb)", NGINX, True),
    ("$PackageType (deb)", EPOCH, True),
    ("$PackageType (udeb)", UDEB, True),
    ("$PackageType (udeb)", DECLARED_UDEB, True),
    ("$PackageType (source)", SOURCE, True),
    ("$PackageType (deb)", SOURCE, False),
    # quoting and escapes
    ('"weird name"', WEIRD, True),
    ("'weird name' (= 1.0)", WEIRD, True),
    ('"a,b"', COMMA, True),
    ('"a\\,b"', COMMA, True),
    ('Maintainer (~ "Nginx Maintainers")', NGINX, True),
    ('Maintainer (~ "Nginx \\"Maintainers")', NGINX, False),
    ("Name (~ 'nginx|tilde')", TILDE, True),
]


@pytest.mark.parametrize(("text", "package", "expected"), MATCHES)
def test_matches(text: str, package: Package, expected: bool) -> None:
    assert parse_query(text).matches(package) is expected


def test_the_table_is_big_enough() -> None:
    assert len(MATCHES) >= 60


def test_precedence_builds_the_expected_tree() -> None:
    a, b, c = PackageTerm("a"), PackageTerm("b"), PackageTerm("c")
    assert parse_query("a | b, c") == Or((a, And((b, c))))
    assert parse_query("!a, b") == And((Not(a), b))
    assert parse_query("(a | b), c") == And((Or((a, b)), c))
    assert parse_query("a, (b, c)") == And((a, b, c))


def test_terms_are_classified_as_aptly_does() -> None:
    assert parse_query("nginx_1.0_amd64") == ReferenceTerm("nginx", "1.0", "amd64")
    assert parse_query("x_1_amd64 (>= 1)") == PackageTerm("x_1_amd64", Condition(">=", "1"))
    assert parse_query("Priority") == FieldTerm("Priority")
    assert parse_query("$VERSION (> 1)") == FieldTerm("$Version", Condition(">=", "1"))
    assert parse_query("nginx (< 1) {all}") == PackageTerm("nginx", Condition("<=", "1"), "all")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("nginx(>1)", "nginx (>= 1)"),
        ('Name (% "*#*")', 'Name (% "*#*")'),  # an unquoted # would start a comment in packages.txt
        ("  a|b  ,c ", "a | b, c"),
        ("(a | b) | (c)", "a | b | c"),
        ("!(a, b) | !(c | d)", "!(a, b) | !(c | d)"),
        ("$source(nginx)", "$Source (= nginx)"),
        ("installed-size", "installed-size"),
        ("INSTALLED-SIZE (>= 1)", "Installed-Size (>= 1)"),
        ("'weird name'", '"weird name"'),
        ("Name (~ '^a(b|c)$')", 'Name (~ "^a(b|c)$")'),
        ("'x\\\\y'", "x\\y"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_query(text)) == canonical


ERRORS: list[tuple[str, int, str]] = [
    ("", 1, "empty query"),
    ("   ", 1, "empty query"),
    ("(nginx | tilde", 1, "unclosed '('"),
    ("a, (b, (c)", 4, "unclosed '('"),
    ("nginx (>= 1.0", 7, "unclosed '('"),
    ("nginx {amd64", 7, "unclosed '{'"),
    ("nginx (=> 1.0)", 8, "unknown operator '=>'"),
    ("nginx (== 1.0)", 8, "unknown operator '=='"),
    ("nginx (!= 1.0)", 8, "to exclude a version write '!name (= version)'"),
    ("nginx tilde", 7, "unexpected word 'tilde' at the end of the query"),
    ("nginx)", 6, "unexpected ')'"),
    ("Name (~ [a-)", 9, "invalid regular expression '[a-'"),
    ("nginx (~ 'a(')", 10, "invalid regular expression"),
    ("nginx (>= )", 11, "missing version after '>='"),
    ("nginx ()", 8, "missing version in '('"),
    ("Priority (= )", 13, "missing value after '='"),
    ("nginx {}", 8, "missing architecture"),
    ("'nginx", 1, "unterminated quote"),
    ('Name (~ "^py)', 9, "unterminated quote"),
    ("a |", 4, "unexpected end of query"),
    ("a,,b", 3, "unexpected ','"),
    ("!", 2, "unexpected end of query"),
    ("$Nope (1)", 1, "unknown special field '$Nope'"),
    ("nginx_1.0_amd64 {amd64}", 17, "reference already names its architecture"),
    ("nginx__amd64", 1, "a part is empty"),
    ("Priority {amd64}", 10, "use $Architecture (= arch)"),
    ("nginx (>= 1_0)", 11, "invalid version '1_0'"),
    ('""', 1, "empty name"),
    ("nginx (>= 1.0 2.0)", 15, "expected ')'"),
]


@pytest.mark.parametrize(("text", "column", "message"), ERRORS)
def test_errors_point_at_the_offending_character(text: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert caught.value.column == column
    assert message in caught.value.message
    assert caught.value.query == text


def test_error_renders_a_caret_under_the_column() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("nginx (>= 1.0")
    assert caught.value.render().splitlines()[1:] == ["    nginx (>= 1.0", "          ^"]


def test_selects_all_versions() -> None:
    assert not selects_all_versions(parse_query("nginx (>= 1.0) {amd64}"))
    assert not selects_all_versions(parse_query("Name (nginx), Priority (optional)"))
    assert selects_all_versions(parse_query("Name (nginx), $Version (% 1.22*)"))
    assert selects_all_versions(parse_query("a | !(b, nginx_1.0_amd64)"))
    assert selects_all_versions(parse_query("$SourceVersion (1.0)"))


def test_names_hint() -> None:
    assert names_hint(parse_query("nginx (>= 1)")) == frozenset({"nginx"})
    assert names_hint(parse_query("nginx | tilde_1_all")) == frozenset({"nginx", "tilde"})
    assert names_hint(parse_query("nginx, Priority (required)")) == frozenset({"nginx"})
    assert names_hint(parse_query("Name (nginx) | Package (= tilde)")) == frozenset({"nginx", "tilde"})
    assert names_hint(parse_query("nginx | Priority (required)")) is None
    assert names_hint(parse_query("!nginx")) is None
    assert names_hint(parse_query("Name (~ nginx)")) is None
    assert names_hint(parse_query("a, b")) == frozenset()


def test_names_hint_is_a_superset_of_what_matches() -> None:
    packages = [NGINX, NGINX_CORE, LIBFOO, SIX, EPOCH, TILDE, PROVIDER, UDEB, WEIRD, COMMA]
    for text, _, _ in MATCHES:
        query = parse_query(text)
        hint = names_hint(query)
        if hint is None:
            continue
        for package in packages:
            if query.matches(package):
                provided = package.field("Provides") or ""
                assert package.name in hint or any(name in provided for name in hint), text


# --- round trip of the canonical form ---------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,8}", fullmatch=True)
VERSIONS = st.from_regex(r"([0-9]:)?[0-9][0-9a-z.+~]{0,5}(-[0-9a-z.+~]{1,4})?", fullmatch=True)
VALUES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
FIELDS = st.sampled_from(["Priority", "Section", "$Source", "$Version", "Name", "$PackageType", "X-Odd"])
VERSION_OPS: list[Operator] = ["<<", "<=", "=", ">=", ">>", "%"]
RELATIONS = st.builds(Condition, st.sampled_from(VERSION_OPS), VERSIONS)


@st.composite
def field_terms(draw: st.DrawFn) -> FieldTerm:
    name = draw(FIELDS)
    if not draw(st.booleans()):
        return FieldTerm(name)
    text_ops: list[Operator] = ["=", "%"]
    op = draw(st.sampled_from(VERSION_OPS if name == "$Version" else text_ops))
    value = draw(VERSIONS if name == "$Version" else VALUES)
    return FieldTerm(name, Condition(op, value))


TERMS: st.SearchStrategy[Query] = st.one_of(
    st.builds(PackageTerm, NAMES, st.none() | RELATIONS, st.none() | NAMES),
    st.builds(ReferenceTerm, NAMES, VERSIONS, NAMES),
    field_terms(),
)


def _combine(kind: type[And] | type[Or], operands: list[Query]) -> Query:
    # Parsing flattens nested operators of one kind, so the generated tree does too.
    flat: list[Query] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, kind) else (operand,))
    return kind(tuple(flat))


QUERIES: st.SearchStrategy[Query] = st.recursive(
    TERMS,
    lambda children: st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda ops: _combine(And, ops)),
        st.lists(children, min_size=2, max_size=3).map(lambda ops: _combine(Or, ops)),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(QUERIES)
def test_canonical_form_round_trips(query: Query) -> None:
    text = str(query)
    reparsed = parse_query(text)
    assert reparsed == query
    assert str(reparsed) == text


TOKENS = st.sampled_from(
    ["a", "b1", "Priority", "$Version", "x_1_all", "(", ")", "{", "}", "|", ",", "!", "<", ">=", "<<",
     "~", "%", "=", "'q w'", '"\\""', "1.0~rc", " ", "Name", "^a.*"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(TOKENS, max_size=10).map("".join))
def test_whatever_parses_prints_a_fixed_point(text: str) -> None:
    try:
        query = parse_query(text)
    except QueryError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    assert str(parse_query(str(query))) == str(query)
    assert parse_query(str(query)) == query
