"""Issue 8.5: the parsers that read untrusted text, under hypothesis, for a fixed budget.

The package query parser (packages.txt, the CLI), the deb822 parsers (a Release, a Packages index, a .deb's
control file) and the lock reader may only ever raise minimirror's own user-facing errors — never an
IndexError, a KeyError or a UnicodeDecodeError — whatever they are given. Inputs are grown from real grammar
pieces and mutated real files, so most of them get past the first line. Each property has ``max_examples`` set,
``deadline=None`` (CI shares 2 cores) and ``derandomize=True``, so a run is the same run every time.
"""

from __future__ import annotations

from collections.abc import Callable

from fixtures import GOLDEN as GOLDEN_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minimirror.errors import MinimirrorError
from minimirror.lock.lockfile import loads_lock
from minimirror.sources.query import parse_query
from minimirror.upstream.debfile import parse_control
from minimirror.upstream.index import iter_packages
from minimirror.upstream.release import parse_release

BUDGET = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXAMPLES: dict[str, int] = {}
"""How many inputs each property saw (the figures in docs/reliability.md)."""

GOLDEN_LOCK = (GOLDEN_DIR / "example.lock").read_text()

QUERY_PIECES = [
    *("nginx", "python3", "lib*-dev", "a", "b", "libc6", "nginx_1.22.1-9_amd64", "Name", "$Source", "$Version"),
    *("Priority", "$Architecture", "$PackageType", "(", ")", "|", ",", "!", " ", "{", "}", "{i386}", "~", "%"),
    *(">=", "<<", "<=", "=", ">>", "<", ">", "1.0", "2:1.0-1~bpo", "^python3-", "#", '"', "\\", ":any", "\t"),
]
RELEASE_FIELDS = [
    *("Origin", "Label", "Suite", "Codename", "Version", "Date", "Valid-Until", "Architectures", "Components"),
    *("Acquire-By-Hash", "No-Support-for-Architecture-all", "SHA256", "MD5Sum", "Description", "X-Odd"),
]
VALUES = [
    *("Sat, 01 Jun 2024 00:00:00 UTC", "Mon, 31 Feb 2024 25:61:00 +9999", "yes", "no", "Packages", "amd64 all"),
    *(" " + "a" * 64 + " 12 main/binary-amd64/Packages", " " + "0" * 64 + " x ../../etc/passwd", "", "\u00e9", "\x00"),
    *("main contrib", " " + "f" * 64 + " 99999999999999999999 /abs", "-1", "2.37", "libc6 (>= 2.36) | musl"),
]
PACKAGES_FIELDS = [
    *("Package", "Version", "Architecture", "Depends", "Pre-Depends", "Provides", "Filename", "Size", "SHA256"),
    *("Source", "Multi-Arch", "Description", "Recommends", "Breaks", "Conflicts", "Essential", "Priority"),
]


def only_our_errors(parse: Callable[[], object], what: str) -> None:
    EXAMPLES[what] = EXAMPLES.get(what, 0) + 1
    try:
        parse()
    except MinimirrorError as exc:
        assert exc.render().strip(), "a user-facing error says something"


def stanza_text(draw: st.DrawFn, names: list[str]) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(names) | st.text(min_size=0, max_size=8))
        value = draw(st.sampled_from(VALUES) | st.text(max_size=40))
        continuation = draw(st.lists(st.sampled_from(VALUES) | st.text(max_size=20), max_size=2))
        lines.append(f"{name}:{value}" + "".join(f"\n {c}" for c in continuation))
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", " ", "#comment", " .", "\r", "no colon here"])))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


@st.composite
def release_texts(draw: st.DrawFn) -> bytes:
    return stanza_text(draw, RELEASE_FIELDS).encode("utf-8", "surrogatepass")


@st.composite
def packages_texts(draw: st.DrawFn) -> bytes:
    stanzas = [stanza_text(draw, PACKAGES_FIELDS) for _ in range(draw(st.integers(1, 4)))]
    return "\n\n".join(stanzas).encode("utf-8", "surrogatepass")


@st.composite
def mutated_locks(draw: st.DrawFn) -> str:
    text = GOLDEN_LOCK
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        insert = draw(
            st.sampled_from(["", '"', "[[package]]\n", "= 1\n", "]", "\\u0000", "..", "x"]) | st.text(max_size=10)
        )
        text = text[:start] + insert + text[end:]
    return text


@BUDGET
@given(st.lists(st.sampled_from(QUERY_PIECES) | st.text(max_size=3), max_size=14).map("".join))
def test_the_query_parser_raises_only_query_errors(text: str) -> None:
    only_our_errors(lambda: parse_query(text), "query")


@BUDGET
@given(release_texts() | st.binary(max_size=200))
def test_the_release_parser_raises_only_archive_errors(content: bytes) -> None:
    only_our_errors(lambda: parse_release(content, name="http://archive.example/dists/x/Release"), "Release")


@BUDGET
@given(packages_texts() | st.binary(max_size=200))
def test_the_packages_parser_raises_only_archive_errors(content: bytes) -> None:
    only_our_errors(lambda: [p.field("Depends") for p in iter_packages(content, name="Packages")], "Packages")


@BUDGET
@given(packages_texts())
def test_the_control_parser_raises_only_integrity_errors(content: bytes) -> None:
    only_our_errors(lambda: parse_control(content.split(b"\n\n")[0], name="x.deb"), "control")


@BUDGET
@given(mutated_locks())
def test_the_lock_reader_raises_only_lock_errors(text: str) -> None:
    only_our_errors(lambda: loads_lock(text, path="locks/fixture/stable.lock"), "lock")


def test_the_golden_lock_reads() -> None:
    """The mutations start from a lock that reads, so they test the checks, not just the TOML parser."""
    assert loads_lock(GOLDEN_LOCK, path="example.lock").packages
