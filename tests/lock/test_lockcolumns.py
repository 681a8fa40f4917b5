"""The column reader: what it gives is what the strict reader gives (the same lock, or the same error, named
``file:line:column``), on random, damaged and hand-edited locks, with and without a memo of another lock."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lockfile import _golden, _locks, _mutated, example_lock

from minimirror.cli import main
from minimirror.errors import LockError
from minimirror.lock import lockcolumns
from minimirror.lock.lockcolumns import ReadMemo, loads_lock_table
from minimirror.lock.lockfile import LeftOutPackage, Lock, _version, dumps_lock, loads_lock, write_lock
from minimirror.lock.locktable import PACKAGE_COLUMNS, LockTable

PATH = "locks/debian/bookworm.lock"


def _columns_read(text: str, memo: ReadMemo | None = None) -> LockTable:
    """The column reader's own answer (no fallback to the strict reader): raises when it does not decide."""
    return lockcolumns._read(text, PATH, memo if memo is not None else ReadMemo(), keep=memo is not None)


def _primed(text: str | None = None) -> ReadMemo:
    memo = ReadMemo()
    _columns_read(text if text is not None else _golden(), memo)
    assert memo.tables
    return memo


def _in_packages(old: str, new: str) -> str:
    """The example with ``old`` replaced once in its [[package]] tables (in the header when not there)."""
    text = _golden()
    at = text.index("[[package]]")
    if old not in text[at:]:
        return _mutated(old, new)
    return text[:at] + text[at:].replace(old, new, 1)


def _assert_as_strict(text: str, memo: ReadMemo | None = None) -> LockTable | None:
    """``loads_lock_table`` gives what ``loads_lock`` gives: an equal table, or the same error."""
    try:
        expected = LockTable.of(loads_lock(text, path=PATH))
    except LockError as exc:
        with pytest.raises(LockError) as caught:
            loads_lock_table(text, path=PATH, memo=memo)
        assert str(caught.value) == str(exc)
        return None
    table = loads_lock_table(text, path=PATH, memo=memo)
    assert table.head == expected.head
    for name in PACKAGE_COLUMNS:
        assert table.columns[name] == expected.columns[name], name
    assert table.lock() == expected.lock()
    return table


def test_the_example_lock_is_read_into_columns_equal_to_the_strict_read() -> None:
    table = _columns_read(_golden())  # decided by the column reader itself, not its fallback
    assert table.lock() == example_lock() == loads_lock(_golden(), path=PATH)
    assert _assert_as_strict(_golden()) is not None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_locks())
def test_random_locks_read_into_columns_as_the_strict_reader_reads_them(lock: Lock) -> None:
    text = dumps_lock(lock)
    _assert_as_strict(text)
    if lock.packages and "\\" not in text[text.index("[[package]]") :]:
        assert _columns_read(text).lock() == lock  # the writer's shape without escapes: read as columns
    _assert_as_strict(text, _primed())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_locks_are_refused_as_the_strict_reader_refuses_them(data: st.DataObject) -> None:
    text = _golden()
    start = data.draw(st.integers(text.index("[[package]]") - 200, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(st.text(alphabet='[]{}="., \n-0123456789abcz#\\/:', max_size=12))
    damaged = text[:start] + insert + text[end:]
    _assert_as_strict(damaged)
    _assert_as_strict(damaged, _primed())  # every table but the damaged one is in the memo


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('version = "7.88.1-10+deb12u12"', 'version = "7.88.1:10"', "is not a Debian version"),
        ('version = "7.88.1-10+deb12u12"', 'version = "1:"', "is not a Debian version"),
        ('name = "curl"', 'name = "-curl"', "is not a package name"),
        ('["libcurl3-gnutls/amd64"]', '["libcurl3-gnutls amd64"]', "is not '<name>/<architecture>'"),
        ('["libcurl3-gnutls/amd64"]', '["libcurl3-gnutls/s390x"]', "which is not a package of this lock"),
        ('queries = ["curl"]', 'queries = [" "]', "a query is never empty"),
        ('filename = "pool/main/c/curl/curl', 'filename = "pool/../c/curl/curl', "contains '..'"),
        ('filename = "pool/main/c/curl/curl', 'filename = "main/c/curl/curl', "does not start with 'pool/'"),
        ("size = 1000", "size = -1000", "size must not be negative"),
        ("size = 1000", f"size = 1{'0' * 5000}", "an integer of more than 4300 digits"),
        ('queries = ["curl"]', "queries = []", "queries and required-by are both empty"),
        ('component = "main"', 'component = "non-free"', "component 'non-free' is not one of the source's"),
        ('architecture = "amd64"', 'architecture = "s390x"', "architecture 's390x' is not one of the source's"),
        ('component = "main"', 'component = "main"\ncompanion = ""', "companion: '' is not a name without spaces"),
        ('sha256 = "1111', 'sha256 = "A111', "is not a sha256"),
        ('version = "5:24.0.9-1~debian.12~bookworm"', 'version = "5:24.0.10-1~debian.12~bookworm"', "locked twice"),
        ('architectures = ["amd64", "arm64"]', 'architectures = ["arm64"]', "is not one of the source's"),
        ('components = ["contrib", "main"]', 'components = ["main"]', "is not one of the source's"),
    ],
)
def test_what_the_strict_reader_refuses_the_column_reader_refuses_with_its_message(
    old: str, new: str, problem: str
) -> None:
    changed = _in_packages(old, new)
    with pytest.raises(LockError, match=re.escape(problem)) as caught:
        loads_lock(changed, path=PATH)
    assert re.match(rf"{re.escape(PATH)}:\d+:\d+: ", str(caught.value))
    _assert_as_strict(changed)
    _assert_as_strict(changed, _primed())  # a table the memo passed is still checked against its own lock


def _without(component_or_arch: str) -> str:
    """The example with its [source] (and its indices) no longer having ``contrib``, or ``amd64``: a head that
    passes, and [[package]] tables byte for byte the example's that are now wrong."""
    text = _golden()
    if component_or_arch == "contrib":
        text = text.replace('components = ["contrib", "main"]', 'components = ["main"]')
        return text.replace('component = "contrib"\narchitecture = "amd64"\nsize = 60412', 'component = "main"\n'
                            'architecture = "amd64"\nsize = 60412')  # fmt: skip
    text = text.replace('architectures = ["amd64", "arm64"]', 'architectures = ["arm64"]')
    for component, arch in (("contrib", "arm64"), ("main", "all")):  # the indices of amd64 are now of another
        text = text.replace(f'component = "{component}"\narchitecture = "amd64"\nsize = ',
                            f'component = "{component}"\narchitecture = "{arch}"\nsize = ')  # fmt: skip
    return text


@pytest.mark.parametrize(
    ("dropped", "problem"),
    [
        ("contrib", "[[package]] #2 component 'contrib' is not one of the source's: main"),
        ("amd64", "[[package]] #1 architecture 'amd64' is not one of the source's: all, arm64"),
    ],
)
def test_a_table_the_memo_holds_is_checked_against_the_head_of_its_own_lock(dropped: str, problem: str) -> None:
    changed = _without(dropped)
    with pytest.raises(LockError, match=re.escape(problem)):
        loads_lock(changed, path=PATH)
    memo = _primed()
    assert all(row[0] in memo.tables for row in lockcolumns._ROW.findall(changed))  # every table passed before
    _assert_as_strict(changed, memo)


def test_a_memo_reads_the_tables_two_locks_share_once_and_gives_the_same_lock() -> None:
    rebuilt = _in_packages('sha256 = "1111', 'sha256 = "abcd')
    memo = _primed()
    fresh: list[int] = []
    rows = lockcolumns._package_rows
    lockcolumns._package_rows = lambda *args: (found := rows(*args), fresh.append(len(found[1])))[0]  # type: ignore[assignment]
    try:
        table = _assert_as_strict(rebuilt, memo)
    finally:
        lockcolumns._package_rows = rows  # type: ignore[assignment]
    assert fresh == [1]  # only the changed table was matched and checked
    assert table is not None and table.lock() == loads_lock(rebuilt, path=PATH)
    assert set(memo.tables) == {row[0] for row in lockcolumns._ROW.findall(rebuilt)}  # now the last lock's


def test_a_refused_lock_leaves_the_memo_as_it_was() -> None:
    memo = _primed()
    before = dict(memo.tables)
    with pytest.raises(LockError):
        loads_lock_table(_mutated('name = "curl"', 'name = "-curl"'), path=PATH, memo=memo)
    assert memo.tables == before


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('name = "curl"', 'name = "cu\\u0072l"'),  # an escape: the strict reader's way
        ('\n\n[[package]]\nname = "docker-ce"', '\n\n\n[[package]]\nname = "docker-ce"'),  # another layout
        ('name = "git"', 'name = "a-git"'),  # out of order: the strict reader sorts
        ('["git/amd64"]', '["other/src:git/amd64"]'),  # names another source: the strict reader's rule
    ],
)
def test_what_the_column_reader_leaves_alone_the_strict_reader_reads(old: str, new: str) -> None:
    changed = _mutated(old, new)
    with pytest.raises(lockcolumns._Refused):
        _columns_read(changed)
    _assert_as_strict(changed)
    _assert_as_strict(changed, _primed())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('\n\n[[package]]\nname = "docker-ce"', '\n[[package]]\nname = "docker-ce"'),  # no blank line
        ('\n\n[[package]]\nname = "docker-ce"', '\nfoo = 1\n\n[[package]]\nname = "docker-ce"'),  # a line between
        ('\n\n[[package]]\nname = "docker-ce"', '\n\n\n\n[[package]]\nname = "docker-ce"'),  # two more
    ],
)
def test_tables_not_laid_out_one_after_the_other_are_the_strict_reader_s(old: str, new: str) -> None:
    changed = _mutated(old, new)
    with pytest.raises(lockcolumns._Refused):
        _columns_read(changed)
    _assert_as_strict(changed)
    _assert_as_strict(changed, _primed())


def test_a_blank_line_more_before_the_first_table_is_part_of_the_header() -> None:
    changed = _mutated('\n\n[[package]]\nname = "curl"', '\n\n\n[[package]]\nname = "curl"')
    assert _columns_read(changed).lock() == example_lock()
    _assert_as_strict(changed, _primed())


@pytest.mark.parametrize("end", ["", "\n", "\n\n", "\n\n\n"])
def test_blank_lines_at_the_end_read_as_the_strict_reader_reads_them(end: str) -> None:
    text = _golden() + end
    for left_out in (False, True):
        if left_out:
            lock = replace(example_lock(), left_out=(LeftOutPackage("broken", "1.0", "all", ("tzdata",), "gone"),))
            written = dumps_lock(lock)
            at = written.index("\n\n[[left-out]]")
            text = written[:at] + end + written[at:]
        _assert_as_strict(text)
        _assert_as_strict(text, _primed())


def test_left_out_packages_are_read_with_the_columns() -> None:
    lock = replace(
        example_lock(), left_out=(LeftOutPackage("broken", "1.0", "all", ("tzdata",), "needs gone, which nothing has"),)
    )
    text = dumps_lock(lock)
    assert _columns_read(text).lock() == lock
    locked = text.replace('name = "broken"\nversion = "1.0"\narchitecture = "all"', 'name = "git"\nversion = '
                          '"1:2.39.5-0+deb12u2"\narchitecture = "amd64"')  # fmt: skip
    assert locked != text
    _assert_as_strict(locked)  # "is also locked as a [[package]]"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789aZ.+~:-_ é", max_size=10))
def test_the_version_expression_is_the_version_check(value: str) -> None:
    plainly = re.fullmatch(lockcolumns._PLAINLY[_version], value) is not None
    assert plainly == (_version(value) is None)


def test_a_cold_diff_of_a_lock_whose_head_refuses_shared_tables_fails_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good" / "debian" / "bookworm.lock", tmp_path / "bad" / "debian" / "bookworm.lock"
    write_lock(good, example_lock())
    bad.parent.mkdir(parents=True)
    bad.write_text(_without("contrib"))
    cache = ["--cache", str(tmp_path / "cache")]
    for old, new in ((good, bad), (bad, good)):  # NEW is read first: then OLD with the memo of NEW's tables
        assert main(["diff", str(old), str(new), *cache]) == 2
        err = capsys.readouterr().err
        assert f"{bad}:" in err and "component 'contrib' is not one of the source's: main" in err, err
        assert "Traceback" not in err
