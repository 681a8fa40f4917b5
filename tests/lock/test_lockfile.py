"""The lockfile: golden bytes, round trips, order independence, the strict reader's errors, atomic writes."""

from __future__ import annotations

import os
import random
import re
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest
from fixtures import GOLDEN as GOLDEN_DIR
from fixtures.collector import note_collector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minimirror.errors import DiskError, LockError
from minimirror.lock.lockfile import (
    IndexPin,
    LeftOutPackage,
    Lock,
    LockedPackage,
    SourcePin,
    UpstreamPin,
    _CheckedPackages,
    _Context,
    _parse_written_shape,
    _Place,
    _read_packages,
    _toml_string,
    dumps_lock,
    loads_lock,
    lock_path,
    read_lock,
    read_lock_source,
    read_locks,
    upstream_pin,
    write_lock,
)
from minimirror.upstream.archive import IndexFile, Snapshot, Upstream
from minimirror.upstream.release import ReleaseFile

T = TypeVar("T")
GOLDEN = GOLDEN_DIR / "example.lock"
H1, H2, H3, H4 = ("1" * 64, "2" * 64, "3" * 64, "4" * 64)
DEBIAN_KEY = "4D64FEC119C2029067D6E791F8D2585B8783D481"
DEBIAN_SECURITY_KEY = "05AB90340C0C5E797F44A8C6DCA5DD5FCC0AB8A4"


def _package(name: str, version: str, arch: str = "amd64", **changes: object) -> LockedPackage:
    source = str(changes.pop("source", name))
    pool = f"pool/{changes.get('component', 'main')}/{source[0]}/{source}"
    package = LockedPackage(
        name=name,
        version=version,
        architecture=arch,
        component="main",
        filename=f"{pool}/{name}_{version.rpartition(':')[2]}_{arch}.deb",
        size=1000,
        sha256=H1,
        source=source,
        source_version=version,
    )
    return replace(package, **changes)  # type: ignore[arg-type]


def example_lock() -> Lock:
    """The lock of tests/golden/example.lock: several levels, two versions, arch all, a long array."""
    queries = ("curl", "git", "python3 (>= 3.11)", "Name (~ ^docker-ce), $Version (% 5:24.*)", "tzdata")
    return Lock(
        source=SourcePin(
            id="debian/bookworm",
            url="http://archive.example/debian/",
            key_url="file:///usr/share/keyrings/debian-archive-keyring.gpg",
            dist="bookworm",
            components=("main", "contrib"),
            architectures=("amd64", "arm64"),
            inputs_sha256=H4,
            queries=queries,
        ),
        upstream=UpstreamPin(
            release="InRelease",
            release_sha256=H2,
            date=datetime(2026, 7, 11, 10, 16, 37, tzinfo=UTC),
            valid_until=datetime(2026, 7, 18, 10, 16, 37, tzinfo=UTC),
            origin="Debian",
            label="Debian",
            suite="oldstable",
            codename="bookworm",
            version="12.15",
            signed_by=(DEBIAN_SECURITY_KEY, DEBIAN_KEY),
            indices=(
                IndexPin("main/binary-arm64/Packages.xz", "main", "arm64", 8700001, H3),
                IndexPin("main/binary-amd64/Packages.xz", "main", "amd64", 8790396, H2),
                IndexPin("contrib/binary-amd64/Packages.xz", "contrib", "amd64", 60412, H1),
            ),
        ),
        packages=(
            _package("libnghttp2-14", "1.52.0-1+deb12u2", source="nghttp2", required_by=("libcurl3-gnutls/amd64",)),
            _package("git", "1:2.39.5-0+deb12u2", queries=("git",)),
            _package("curl", "7.88.1-10+deb12u12", queries=("curl",)),
            _package("libcurl3-gnutls", "7.88.1-10+deb12u12", source="curl", required_by=("git/amd64",)),
            _package("docker-ce", "5:24.0.10-1~debian.12~bookworm", component="contrib", queries=(queries[3],)),
            _package("docker-ce", "5:24.0.9-1~debian.12~bookworm", component="contrib", queries=(queries[3],)),
            _package("tzdata", "2025b-0+deb12u1", "all", queries=("tzdata",), sha256=H3),
            _package(
                "libc6",
                "2.36-9+deb12u10",
                source="glibc",
                required_by=(
                    "curl/amd64",
                    "git/amd64",
                    "libcurl3-gnutls/amd64",
                    "libnghttp2-14/amd64",
                    "docker-ce/amd64",
                ),
            ),
        ),
    )


# --- golden file and round trips ------------------------------------------------------------------------


def test_dumps_matches_the_golden_file_and_loads_back_equal() -> None:
    text = dumps_lock(example_lock())
    if os.environ.get("MINIMIRROR_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(text.encode())
    assert GOLDEN.read_bytes().decode() == text
    assert loads_lock(text, path=GOLDEN) == example_lock()


def test_golden_file_layout_reads_well() -> None:
    text = GOLDEN.read_text()
    assert text.startswith("# minimirror lock for debian/bookworm.")
    assert "date = 2026-07-11T10:16:37Z\n" in text
    assert "required-by = [\n" in text  # long array: one item a line
    assert 'components = ["contrib", "main"]\n' in text  # short array: one line, sorted
    assert all(len(line) <= 120 for line in text.splitlines())
    names = re.findall(r'^name = "(.*)"\nversion = "(.*)"', text, re.MULTILINE)
    # Debian version order, not string order: 5:24.0.9 before 5:24.0.10
    assert names[1:3] == [
        ("docker-ce", "5:24.0.9-1~debian.12~bookworm"),
        ("docker-ce", "5:24.0.10-1~debian.12~bookworm"),
    ]


def test_the_emitter_writes_what_tomllib_reads() -> None:
    lock = example_lock()
    document = tomllib.loads(dumps_lock(lock))
    assert document["schema"] == 1
    assert document["upstream"]["valid-until"] == datetime(2026, 7, 18, 10, 16, 37, tzinfo=UTC)
    assert [p["name"] for p in document["package"]] == [p.name for p in lock.packages]


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_strings_are_escaped_so_that_tomllib_reads_them_back(value: str) -> None:
    assert tomllib.loads(f"x = {_toml_string(value)}")["x"] == value


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])) | st.sampled_from(['a"b', "a\\b", "\x7f", "é\x1f"]))
def test_a_string_is_written_as_every_escape_table_lookup_wrote_it(value: str) -> None:
    """Only a value holding a character to escape goes through the table: the bytes of every lock stay the same."""
    from minimirror.lock.lockfile import _ESCAPES

    assert _toml_string(value) == '"' + value.translate(_ESCAPES) + '"'


_NAMES = st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,6}", fullmatch=True)
_VERSIONS = st.from_regex(r"([1-9]:)?[0-9]{1,2}(\.[0-9a-z+~]{1,3}){0,2}(-[0-9a-z.+~]{1,4})?", fullmatch=True)
_HEX = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=30)
_QUERY = _TEXT.filter(lambda q: q.strip() != "")
_TIMES = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]),
)


@st.composite
def _packages(draw: st.DrawFn, queries: list[str]) -> tuple[LockedPackage, ...]:
    """Packages whose required-by only names earlier ones, and the first ones selected by queries: valid."""
    keys = draw(
        st.lists(
            st.tuples(_NAMES, _VERSIONS, st.sampled_from(["amd64", "arm64", "all"])),
            max_size=8,
            unique_by=lambda k: (k[0], k[2]),
        )
    )
    packages: list[LockedPackage] = []
    for name, version, arch in keys:
        earlier = sorted({p.node for p in packages})
        required_by = draw(st.lists(st.sampled_from(earlier), max_size=3)) if earlier else []
        selected = draw(st.lists(st.sampled_from(queries), min_size=0 if required_by else 1, max_size=2))
        packages.append(
            LockedPackage(
                name,
                version,
                arch,
                draw(st.sampled_from(["main", "contrib"])),
                f"pool/main/{name}_{version}_{arch}.deb",
                draw(st.integers(0, 2**40)),
                draw(_HEX),
                draw(_NAMES),
                draw(_VERSIONS),
                tuple(selected),
                tuple(required_by),
            )
        )
    return tuple(packages)


@st.composite
def _locks(draw: st.DrawFn) -> Lock:
    queries = draw(st.lists(_QUERY, min_size=1, max_size=6))
    source = SourcePin(
        draw(st.from_regex(r"[a-z0-9_][a-z0-9._+~-]{0,8}/[A-Za-z0-9_][a-z0-9._-]{0,8}", fullmatch=True)),
        "http://archive.example/debian/",
        "file:///k.gpg",
        draw(_NAMES),
        ("contrib", "main"),
        ("amd64", "arm64"),
        draw(_HEX),
        tuple(queries),
    )
    index = st.builds(
        IndexPin,
        st.sampled_from(["main/binary-amd64/Packages.xz", "contrib/binary-all/Packages"]),
        st.sampled_from(["main", "contrib"]),
        st.sampled_from(["amd64", "all"]),
        st.integers(0),
        _HEX,
    )
    upstream = UpstreamPin(
        draw(st.sampled_from(["InRelease", "Release"])),
        draw(_HEX),
        draw(_TIMES),
        draw(st.none() | _TIMES),
        draw(_TEXT),
        draw(_TEXT),
        draw(_TEXT),
        draw(_TEXT),
        draw(_TEXT),
        tuple(draw(st.lists(st.from_regex(r"[0-9A-F]{40}", fullmatch=True), max_size=3))),
        tuple(draw(st.lists(index, max_size=3, unique_by=lambda i: i.path))),
    )
    return Lock(source, upstream, draw(_packages(queries)))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(_locks())
def test_random_valid_locks_round_trip(lock: Lock) -> None:
    text = dumps_lock(lock)
    assert loads_lock(text, path="random.lock") == lock
    assert dumps_lock(loads_lock(text, path="random.lock")) == text


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(_locks(), st.randoms(use_true_random=False))
def test_dumping_does_not_depend_on_input_order(lock: Lock, rng: random.Random) -> None:
    def shuffled(items: tuple[T, ...]) -> tuple[T, ...]:
        return tuple(rng.sample(items, len(items)))

    packages = tuple(
        replace(p, queries=shuffled(p.queries), required_by=shuffled(p.required_by)) for p in shuffled(lock.packages)
    )
    indices, signed_by = shuffled(lock.upstream.indices), shuffled(lock.upstream.signed_by)
    upstream = replace(lock.upstream, indices=indices, signed_by=signed_by)
    source = replace(lock.source, queries=shuffled(lock.source.queries), components=("main", "contrib", "main"))
    assert dumps_lock(Lock(source, upstream, packages)) == dumps_lock(lock)


def test_equal_debian_versions_with_different_text_still_sort_deterministically() -> None:
    a = _package("foo", "1.0", queries=("foo",))
    b = _package("foo", "1.00", queries=("foo",))
    lock = example_lock()
    assert dumps_lock(replace(lock, packages=(a, b))) == dumps_lock(replace(lock, packages=(b, a)))


def test_helpers_find_packages() -> None:
    lock = example_lock()
    assert [p.version for p in lock.find("docker-ce")] == [
        "5:24.0.9-1~debian.12~bookworm",
        "5:24.0.10-1~debian.12~bookworm",
    ]
    assert lock.find("docker-ce", "arm64") == ()
    assert lock.by_key()[("curl", "7.88.1-10+deb12u12", "amd64")].queries == ("curl",)
    assert Lock.schema == 1


def test_upstream_pin_is_built_from_a_verified_snapshot() -> None:
    release = ReleaseFile(
        origin="Debian",
        label="Debian",
        suite="oldstable",
        codename="bookworm",
        version="12.15",
        date=datetime(2026, 7, 11, 12, 16, 37, tzinfo=timezone(timedelta(hours=2))),
        valid_until=None,
        architectures=("amd64",),
        components=("main",),
        acquire_by_hash=True,
        no_support_for_architecture_all=True,
        files={},
    )
    upstream = Upstream("http://archive.example/debian", "file:///k.gpg", "bookworm", ("main",), ("amd64",))
    index = IndexFile("main", "amd64", "main/binary-amd64/Packages.xz", 10, H1)
    pin = upstream_pin(Snapshot(upstream, release, "InRelease", H2, (DEBIAN_KEY, DEBIAN_SECURITY_KEY), (index,)))
    assert pin.date == datetime(2026, 7, 11, 10, 16, 37, tzinfo=UTC)
    assert pin.date.tzinfo is UTC
    assert pin.signed_by == (DEBIAN_SECURITY_KEY, DEBIAN_KEY)
    assert pin.indices == (IndexPin("main/binary-amd64/Packages.xz", "main", "amd64", 10, H1),)
    assert (pin.release, pin.release_sha256, pin.codename) == ("InRelease", H2, "bookworm")


# --- the strict reader ----------------------------------------------------------------------------------


def _golden() -> str:
    return dumps_lock(example_lock())


def _mutated(old: str, new: str, *, count: int = 1) -> str:
    text = _golden()
    assert old in text, old
    return text.replace(old, new, count)


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    starts = [m.start() for m in re.finditer(re.escape(needle), text)]
    return text.count("\n", 0, starts[nth]) + 1


def _error(text: str) -> str:
    with pytest.raises(LockError) as caught:
        loads_lock(text, path="locks/debian/bookworm.lock")
    return str(caught.value)


def _assert_located(message: str, line: int, problem: str, column: int | None = None) -> None:
    where = f"locks/debian/bookworm.lock:{line}:" + (f"{column}:" if column is not None else "")
    assert message.startswith(where), message
    assert problem in message, message


def test_syntax_error_names_line_and_column_from_tomllib() -> None:
    text = _mutated("schema = 1", "schema = = 1")
    _assert_located(_error(text), 2, "not valid TOML: Invalid value", column=10)


def test_syntax_error_at_the_end_of_the_file() -> None:
    message = _error(_golden() + "broken = [\n")
    _assert_located(message, _golden().count("\n") + 2, "not valid TOML")
    assert "at the end of the file" in message


def test_newer_schema_asks_to_upgrade() -> None:
    message = _error(_mutated("schema = 1", 'schema = 2\nsomething-new = "x"'))
    _assert_located(message, 2, "this minimirror reads schema 1; upgrade minimirror", column=10)
    assert "unknown schema 2" in message


def test_schema_zero_is_unknown_without_asking_to_upgrade() -> None:
    message = _error(_mutated("schema = 1", "schema = 0"))
    _assert_located(message, 2, "unknown schema 0: this minimirror reads schema 1", column=10)
    assert "upgrade" not in message


def test_missing_schema() -> None:
    _assert_located(_error(_mutated("schema = 1\n", "")), 1, "no 'schema = 1' line")


def test_schema_must_be_an_integer() -> None:
    _assert_located(_error(_mutated("schema = 1", 'schema = "1"')), 2, "schema must be an integer, not a string")


@pytest.mark.parametrize(
    ("old", "new", "needle", "problem"),
    [
        ('name = "curl"', 'name = "curl"\ncolour = "blue"', "colour", "[[package]] #1 has an unknown field 'colour'"),
        ("[source]", "[source]\nmirror = true", "mirror = true", "[source] has an unknown field 'mirror'"),
        ("schema = 1", "schema = 1\nextra = 1", "extra", "unknown top-level field 'extra'"),
        ("size = 1000", 'size = "1000"', 'size = "1000"', "[[package]] #1 size must be an integer, not a string"),
        ("size = 1000", "size = true", "size = true", "size must be an integer, not a boolean"),
        ("size = 1000", "size = -5", "size = -5", "size must not be negative (got -5)"),
        ("size = 8790396", "size = -1", "size = -1", "[[upstream.index]] #2 size must not be negative"),
        (f'sha256 = "{H1}"', f'sha256 = "{"A" * 64}"', 'sha256 = "AAA', "is not a sha256 (64 lowercase hex digits)"),
        (f'sha256 = "{H1}"', 'sha256 = "abc"', 'sha256 = "abc"', "[[upstream.index]] #1 sha256: 'abc' is not a sha256"),
        (f'inputs-sha256 = "{H4}"', 'inputs-sha256 = "x"', "inputs-sha256", "[source] inputs-sha256: 'x' is not a sha"),
        (DEBIAN_KEY, DEBIAN_KEY[:-1], "signed-by", "is not a key fingerprint (40 uppercase hex digits)"),
        (DEBIAN_KEY, DEBIAN_KEY.lower(), "signed-by", "is not a key fingerprint"),
        ('queries = ["curl"]', "queries = [1]", "queries = [1]", "queries must be a string, not an integer"),
        ('queries = ["curl"]', 'queries = "curl"', 'queries = "curl"', "queries must be an array of strings"),
        ("date = 2026-07-11T10:16:37Z", "date = 2026-07-11T10:16:37", "date =", "not a datetime in another zone"),
        ("date = 2026-07-11T10:16:37Z", "date = 2026-07-11T12:16:37+02:00", "date =", "date must be a UTC datetime"),
        (
            "date = 2026-07-11T10:16:37Z",
            'date = "2026-07-11"',
            "date =",
            "UTC datetime such as 2026-07-11T10:16:37Z, not a string",
        ),
        ('release = "InRelease"', 'release = "Release.gpg"', "release =", "is not 'InRelease' or 'Release'"),
        ('name = "curl"', 'name = "cu rl"', 'name = "cu rl"', "'cu rl' is not a package name"),
        ('version = "7.88.1-10+deb12u12"', 'version = "a:b"', 'version = "a:b"', "'a:b' is not a Debian version"),
        ('url = "http://archive.example/debian/"', 'url = "ftp://x/"', "url =", "is not an http://, https:// or file:"),
        ('id = "debian/bookworm"', 'id = "../etc"', "id =", "is not a source id"),
        (
            'component = "main"',
            'component = "non-free"',
            'component = "non-free"',
            "[[upstream.index]] #2 component 'non-free' is not one of the source's: contrib, main",
        ),
        ('architecture = "amd64"', 'architecture = "s390x"', "s390x", "architecture 's390x' is not one of"),
        (
            'required-by = ["git/amd64"]',
            'required-by = ["gti/amd64"]',
            'required-by = ["gti',
            "required-by names 'gti/amd64', which is not a package of this lock",
        ),
        (
            'path = "main/binary-amd64/Packages.xz"',
            'path = "../../../etc/x"',
            'path = "../',
            "#2 path: '../../../etc/x' contains '..'",
        ),
    ],
)
def test_semantic_errors_name_the_line_and_the_problem(old: str, new: str, needle: str, problem: str) -> None:
    text = _mutated(old, new)
    _assert_located(_error(text), _line_of(text, needle), problem)


def test_index_must_be_an_array_of_tables() -> None:
    text = _golden()
    text = text[: text.index("[[upstream.index]]")].replace("[upstream]\n", "[upstream]\nindex = 3\n")
    _assert_located(_error(text), _line_of(text, "index = 3"), "[upstream] index must be an array of tables", column=9)


def test_value_errors_point_at_the_value_column() -> None:
    text = _mutated("size = 1000", "size = -5")
    _assert_located(_error(text), _line_of(text, "size = -5"), "negative", column=8)


def test_missing_field_points_at_the_table_header() -> None:
    text = _mutated(f'sha256 = "{H1}"\nsource = "curl"', 'source = "curl"')
    message = _error(text)
    curl = text.index('name = "curl"')
    header_line = text.count("\n", 0, curl)  # the line before name = "curl"
    _assert_located(message, header_line, "[[package]] #1 is missing the field 'sha256'", column=1)


def test_missing_table() -> None:
    text = _golden()
    start, end = text.index("[source]"), text.index("[upstream]")
    _assert_located(_error(text[:start] + text[end:]), 1, "is missing the field 'source'")


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("/etc/cron.d/evil", "is an absolute path"),
        ("pool/../../../etc/cron.d/evil", "contains '..'"),
        ("pool/main/..", "contains '..'"),
        ("pool\\\\main\\\\evil.deb", "backslash"),
        ("pool/main/a\\u0000.deb", "control character"),
        ("pool/main/a\\n.deb", "control character"),
        ("dists/bookworm/Release", "does not start with 'pool/'"),
        ("pool//evil.deb", "not a plain relative file path"),
        ("pool/./evil.deb", "not a plain relative file path"),
        ("pool/main/", "not a plain relative file path"),
        ("", "not a plain relative file path"),
        ("pool", "does not start with 'pool/'"),
    ],
)
def test_path_traversal_filenames_are_refused(filename: str, problem: str) -> None:
    old = 'filename = "pool/main/c/curl/curl_7.88.1-10+deb12u12_amd64.deb"'
    text = _mutated(old, f'filename = "{filename}"')
    _assert_located(_error(text), _line_of(text, "filename = ", 0), "[[package]] #1 filename: ")
    assert problem in _error(text)


def test_dots_inside_a_file_name_are_not_traversal() -> None:
    old = 'filename = "pool/main/c/curl/curl_7.88.1-10+deb12u12_amd64.deb"'
    lock = loads_lock(_mutated(old, 'filename = "pool/main/c/curl/curl..odd_amd64.deb"'), path="x.lock")
    assert lock.find("curl")[0].filename == "pool/main/c/curl/curl..odd_amd64.deb"


def test_duplicate_package_is_refused_naming_both_lines() -> None:
    text = _golden()
    block = text[text.index("[[package]]") : text.index("[[package]]", text.index("[[package]]") + 1)]
    text = text + "\n" + block.rstrip("\n") + "\n"
    message = _error(text)
    first, second = _line_of(text, block.splitlines()[1], 0), _line_of(text, block.splitlines()[1], 1)
    _assert_located(message, second, f"curl 7.88.1-10+deb12u12 amd64 is locked twice (first at line {first - 1})")


def test_duplicate_index_path_is_refused() -> None:
    text = _mutated('path = "main/binary-arm64/Packages.xz"', 'path = "main/binary-amd64/Packages.xz"')
    _assert_located(_error(text), _line_of(text, 'path = "main/binary-amd64', 1), "is listed twice")


def test_a_package_needs_a_reason() -> None:
    text = _mutated('queries = ["curl"]\nrequired-by = []', "queries = []\nrequired-by = []")
    _assert_located(_error(text), _line_of(text, 'name = "curl"') - 1, "queries and required-by are both empty")


def test_a_required_by_cycle_without_a_query_is_refused() -> None:
    lock = example_lock()
    a = _package("a", "1", required_by=("b/amd64",))
    b = _package("b", "1", required_by=("a/amd64",))
    text = dumps_lock(replace(lock, packages=(*lock.packages, a, b)))
    _assert_located(_error(text), _line_of(text, 'name = "a"') - 1, "a/amd64 is not reachable from any query")


def test_inline_tables_are_read_with_an_approximate_location() -> None:
    hostile = _mutated("schema = 1", 'schema = 1\npackage = [{name = "x"}]')
    start = hostile.index("[[package]]")
    message = _error(hostile[:start])
    _assert_located(message, 3, "[[package]] #1 is missing the field 'version'")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_locks_never_raise_anything_but_lock_error(data: st.DataObject) -> None:
    text = _golden()
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(st.text(alphabet='[]{}="., \n-0123456789abcz#\\', max_size=12))
    damaged = text[:start] + insert + text[end:]
    try:
        loads_lock(damaged, path="x.lock")
    except LockError as exc:
        assert re.match(r"x\.lock:\d+:\d+: ", str(exc)), str(exc)


@pytest.mark.parametrize(
    ("old", "where"),
    [
        ("size = 1000", "[[package]]"),  # a package table in the writer's shape
        ("size = 8790396", "[[upstream.index]]"),  # the header, which tomllib reads
        ("size = 1000\n", "tomllib"),  # a shape only tomllib reads (a comment after a value)
    ],
)
def test_an_integer_too_long_to_convert_is_a_lock_error(old: str, where: str) -> None:
    digits = "1" + "0" * 5000
    new = f"size = {digits} # a comment\n" if where == "tomllib" else f"size = {digits}"
    text = _mutated(old, new)
    line = _line_of(text, digits)
    _assert_located(_error(text), line, "not valid TOML: an integer of more than 4300 digits", column=8)


def test_deep_nesting_is_a_lock_error() -> None:
    _assert_located(_error("schema = " + "[" * 100_000 + "]" * 100_000), 1, "nested too deeply")


# --- files ----------------------------------------------------------------------------------------------


def test_read_lock_errors_for_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no such lock; run `minimirror lock`"):
        read_lock(tmp_path / "absent.lock")
    path = tmp_path / "bad.lock"
    path.write_bytes(b"schema = 1\n# caf\xe9\n")
    with pytest.raises(LockError, match=r"bad\.lock:2:6: not UTF-8"):
        read_lock(path)


def test_lock_path_and_read_locks(tmp_path: Path) -> None:
    lock = example_lock()
    other = replace(lock, source=replace(lock.source, id="debian/a-first"))
    assert lock_path(tmp_path, "debian/bookworm") == tmp_path / "debian" / "bookworm.lock"
    assert write_lock(lock_path(tmp_path, "debian/bookworm"), lock)
    assert write_lock(lock_path(tmp_path, "debian/a-first"), other)
    (tmp_path / "README.md").write_text("not a lock")
    assert read_locks(tmp_path) == (other, lock)
    assert read_lock(tmp_path / "debian" / "bookworm.lock") == lock


@pytest.mark.parametrize("source_id", ["../x", "a/b/c", "a", "/a/b", "a/.."])
def test_lock_path_refuses_unsafe_ids(tmp_path: Path, source_id: str) -> None:
    with pytest.raises(LockError, match="no lock path for source id"):
        lock_path(tmp_path, source_id)


def test_read_locks_refuses_a_lock_in_another_sources_place(tmp_path: Path) -> None:
    write_lock(tmp_path / "ubuntu" / "jammy.lock", example_lock())
    text = (tmp_path / "ubuntu" / "jammy.lock").read_text()
    with pytest.raises(LockError) as caught:
        read_locks(tmp_path)
    _assert_located_at(str(caught.value), tmp_path / "ubuntu" / "jammy.lock", _line_of(text, "id = "))
    assert "does not match the file's place (expected 'ubuntu/jammy')" in str(caught.value)


def _assert_located_at(message: str, path: Path, line: int) -> None:
    assert message.startswith(f"{path}:{line}:"), message


def test_read_locks_needs_the_directory(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no locks directory"):
        read_locks(tmp_path / "locks")


def test_write_lock_does_not_rewrite_identical_content(tmp_path: Path) -> None:
    path = tmp_path / "debian" / "bookworm.lock"
    assert write_lock(path, example_lock()) is True
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_lock(path, example_lock()) is False
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert path.read_bytes() == GOLDEN.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_lock_rewrites_a_file_of_the_same_size_that_differs(tmp_path: Path) -> None:
    """The old file is compared a piece at a time: a change anywhere, even at the end, with the size unchanged
    (a hand edit of one character), is written over."""
    path = tmp_path / "debian" / "bookworm.lock"
    golden = GOLDEN.read_bytes()
    for where in (0, len(golden) // 2, len(golden) - 2):
        edited = bytearray(golden)
        edited[where] = ord("#") if edited[where] != ord("#") else ord("%")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(edited))
        assert write_lock(path, example_lock()) is True
        assert path.read_bytes() == golden
    path.write_bytes(golden + b"\n")  # longer: the size decides at once
    assert write_lock(path, example_lock()) is True
    assert path.read_bytes() == golden


def test_write_lock_failure_leaves_the_old_file_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bookworm.lock"
    write_lock(path, example_lock())
    before = path.read_bytes()
    lock = example_lock()
    changed = replace(lock, packages=tuple(replace(p, size=2000) if p.name == "curl" else p for p in lock.packages))

    for errno, error, message in (
        (28, DiskError, r"cannot write .*bookworm.lock: no space left on device \(this step needs"),
        (5, LockError, "cannot write the lock: Input/output error"),
    ):

        def failing_replace(src: object, dst: object, errno: int = errno) -> None:
            raise OSError(errno, os.strerror(errno))

        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(error, match=message):
            write_lock(path, changed)
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm.lock"]  # no temporary file left behind
    monkeypatch.undo()
    assert write_lock(path, changed) is True
    assert read_lock(path) == changed


def test_write_lock_never_writes_what_the_reader_refuses(tmp_path: Path) -> None:
    path = tmp_path / "bookworm.lock"
    evil = replace(example_lock(), packages=(_package("x", "1", filename="pool/../../x.deb", queries=("git",)),))
    with pytest.raises(LockError, match=r"contains '\.\.'"):
        write_lock(path, evil)
    assert not path.exists()


def test_a_phased_update_keeps_its_percentage_and_the_reader_checks_its_range() -> None:
    phased = replace(example_lock(), packages=(_package("curl", "8.5.0-2ubuntu10.1", queries=("curl",)),))
    lock = replace(phased, packages=(replace(phased.packages[0], phased_update_percentage=30),))
    text = dumps_lock(lock)
    assert f'sha256 = "{H1}"\nphased-update-percentage = 30\nsource = "curl"\n' in text
    assert loads_lock(text, path="locks/debian/bookworm.lock") == lock
    assert "phased-update-percentage" not in dumps_lock(phased)  # a fully phased update: no field at all
    for wrong in ("101", "-1"):
        broken = text.replace("phased-update-percentage = 30", f"phased-update-percentage = {wrong}")
        problem = f"[[package]] #1 phased-update-percentage must be 0 to 100 (got {wrong})"
        _assert_located(_error(broken), _line_of(broken, "phased-update-percentage"), problem)


# --- the fast path for the writer's own shape -----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_locks())
def test_the_written_shape_reads_as_tomllib_reads_it(lock: Lock) -> None:
    text = dumps_lock(lock)
    fast = _parse_written_shape(text)
    if lock.packages and "\\" not in text[text.index("[[package]]") :]:
        assert fast is not None  # the writer's shape without escapes: read here
    assert fast is None or fast == tomllib.loads(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_locks())
def test_package_tables_read_whole_give_what_the_line_reader_gives(lock: Lock) -> None:
    text = dumps_lock(lock)
    checked = _parse_written_shape(text, checked_packages=True)
    lines = _parse_written_shape(text)
    if checked is None or lines is None:
        return
    if lock.packages and "\\" not in text[text.index("[[package]]") :]:
        assert isinstance(checked["package"], _CheckedPackages)  # the writer's shape without escapes: read whole
    top = _Place(_Context("x.lock", text), "", 0, "")
    assert _read_packages(checked, top) == _read_packages(lines, top) == list(lock.packages)


def test_a_run_of_whole_tables_that_stops_early_leaves_every_table_to_the_line_reader() -> None:
    text = _mutated('\n\n[[package]]\nname = "docker-ce"', '\n\n\n[[package]]\nname = "docker-ce"')
    document = _parse_written_shape(text, checked_packages=True)
    assert document is not None and not isinstance(document["package"], _CheckedPackages)
    assert loads_lock(text, path="x.lock") == example_lock()


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('version = "7.88.1-10+deb12u12"', 'version = "7.88.1:10"', "is not a Debian version"),
        ('name = "curl"', 'name = "-curl"', "is not a package name"),
        ('["libcurl3-gnutls/amd64"]', '["libcurl3-gnutls amd64"]', "is not '<name>/<architecture>'"),
        ('queries = ["curl"]', 'queries = [" "]', "a query is never empty"),
        ('filename = "pool/main/c/curl/curl', 'filename = "pool/../c/curl/curl', "contains '..'"),
        ("size = 1000", "size = -1000", "size must not be negative"),
        ('queries = ["curl"]', "queries = []", "queries and required-by are both empty"),
    ],
)
def test_a_package_table_the_whole_table_reader_refuses_is_reported_by_the_general_path(
    old: str, new: str, problem: str
) -> None:
    changed = _mutated(old, new)
    document = _parse_written_shape(changed, checked_packages=True)
    assert document is None or not isinstance(document["package"], _CheckedPackages)
    at = '[[package]]\nname = "curl"' if "both empty" in problem else new  # that error names the table
    _assert_located(_error(changed), _line_of(changed, at), problem)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('name = "curl"', 'name = "cu\\u0072l"'),  # an escape
        ('name = "curl"', 'name = "curl" # a comment'),
        ('name = "curl"', 'name  =  "curl"'),
        ('name = "curl"', 'name = "curl"\nname = "curl"'),  # given twice: tomllib's error
        ("size = 1000", "size = 0x3e8"),
        ("size = 1000", "size = 01000"),
        ('queries = ["curl"]', 'queries = ["curl",]'),
        ("[[package]]", "[package]"),
    ],
)
def test_anything_else_goes_to_tomllib(old: str, new: str) -> None:
    text = _golden()
    at = text.index("[[package]]")
    changed = text[:at] + text[at:].replace(old, new, 1)
    assert changed != text
    assert _parse_written_shape(changed) is None


def test_a_left_out_package_is_listed_and_read_back() -> None:
    lock = replace(
        example_lock(),
        left_out=(LeftOutPackage("broken", "1.0", "all", ("tzdata",), "needs gone, which nothing satisfies"),),
    )
    text = dumps_lock(lock)
    assert '\n[[left-out]]\nname = "broken"\nversion = "1.0"\narchitecture = "all"\nqueries = ["tzdata"]\n' in text
    assert loads_lock(text, path="x.lock") == lock
    locked = text.replace(
        'name = "broken"\nversion = "1.0"\narchitecture = "all"',
        'name = "tzdata"\nversion = "2025b-0+deb12u1"\narchitecture = "all"',
    )
    with pytest.raises(LockError, match="tzdata 2025b-0\\+deb12u1 all is also locked as a \\[\\[package\\]\\]"):
        loads_lock(locked, path="x.lock")
    assert loads_lock(dumps_lock(example_lock()), path="x.lock").left_out == ()


def test_the_source_table_is_read_alone_and_as_strictly(tmp_path: Path) -> None:
    path = tmp_path / "bookworm.lock"
    path.write_text(_golden())
    assert read_lock_source(path) == example_lock().source
    path.write_text(_mutated('inputs-sha256 = "', 'inputs-sha256 = "x'))
    with pytest.raises(LockError, match=r"bookworm.lock:\d+:\d+: \[source\] inputs-sha256: .* is not a sha256"):
        read_lock_source(path)


def test_values_many_tables_repeat_are_read_as_one_object_each() -> None:
    """A whole suite's lock repeats the same required-by names and architectures in tens of thousands of tables;
    the reader keeps one string for each (what keeps reading a whole-suite lock at ~170 MiB, not ~190)."""
    lock = read_lock(GOLDEN)
    items = [item for package in lock.packages for item in package.required_by]
    git = [item for item in items if item == "git/amd64"]
    assert len(git) == 2 and git[0] is git[1]
    architectures = {id(package.architecture) for package in lock.packages if package.architecture == "amd64"}
    assert len(architectures) == 1


def test_write_lock_writes_and_compares_the_utf8_a_piece_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer encodes the text a piece at a time as it compares and writes it (never a whole-suite lock's
    30 MB of bytes beside its text): with pieces of 7 characters, many end next to or between multi-byte
    characters, and the file is still the text's UTF-8, recognised as unchanged, and rewritten on a change."""
    from minimirror.lock import lockfile

    monkeypatch.setattr(lockfile, "_PIECE", 7)
    lock = example_lock()
    queries = (*lock.source.queries, "Name (~ ^pâté-ünïcødé-€-𝄞)")
    lock = replace(lock, source=replace(lock.source, queries=queries))
    expected = dumps_lock(lock).encode("utf-8")
    assert len(expected) > len(dumps_lock(lock))  # multi-byte characters, so byte and character offsets differ
    path = tmp_path / "debian" / "bookworm.lock"
    assert write_lock(path, lock) is True
    assert path.read_bytes() == expected
    assert write_lock(path, lock) is False
    path.write_bytes(expected.replace("€".encode(), b"$$$"))  # same size, other bytes
    assert write_lock(path, lock) is True
    assert path.read_bytes() == expected


def test_both_strict_readers_run_with_the_cyclic_collector_paused_and_leave_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a whole-suite lock builds a million acyclic values; the collector's passes over them were a tenth of
    the read (benchmarks/README.md). Spies on each reader's package step note whether the collector was on."""
    import gc

    from minimirror.lock import lockcolumns, lockfile

    seen: dict[str, bool] = {}
    note_collector(monkeypatch, lockfile, "_read_packages", seen)
    note_collector(monkeypatch, lockcolumns, "_read", seen)
    text = dumps_lock(example_lock())
    assert gc.isenabled()
    assert lockfile.loads_lock(text, path="x.lock") == example_lock()
    assert lockcolumns.loads_lock_table(text, path="x.lock").head == replace(example_lock(), packages=())
    assert seen == {"_read_packages": False, "_read": False}
    assert gc.isenabled()
