"""The host's APT preferences: records located like every parser here, and which ones pin whole sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimirror.errors import DiagnosticsError
from minimirror.sources.preferences import (
    PinnedSuite,
    ReleaseFields,
    lists_file_name,
    matches,
    parse_preferences,
    plan_pins,
    read_preferences,
    selector,
)

DOCKER = "https://download.docker.example/linux/debian"
DEBIAN = "http://deb.debian.example/debian"


def _records(text: str, path: Path = Path("/etc/apt/preferences")) -> tuple[object, ...]:
    records, problems = parse_preferences(path, text)
    assert problems == [], [p.render() for p in problems]
    return records


def test_records_keep_their_first_line_fields_and_skip_comments_and_explanations() -> None:
    text = (
        "# pins\n"
        "Explanation: Docker's packages win\n"
        "  even over newer ones\n"
        "Package: *\n"
        "Pin: release o=Docker\n"
        "Pin-Priority: 990\n"
        "\n\n"
        "Package: nodejs\r\n"
        "pin: origin deb.nodesource.example\r\n"
        "Pin-Priority: -10\r\n"
    )
    first, second = _records(text)
    assert str(first) == "/etc/apt/preferences:2 (Package: *; Pin: release o=Docker; Pin-Priority: 990)"
    assert str(second) == (
        "/etc/apt/preferences:9 (Package: nodejs; Pin: origin deb.nodesource.example; Pin-Priority: -10)"
    )


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("Pin: release o=X\nPin-Priority: 5\n", 1, 1,
         "a preferences record needs a 'Package:' field (e.g. 'Package: *')"),
        ("Package: *\nPin-Priority: 5\n", 1, 1,
         "a preferences record needs a 'Pin:' field (e.g. 'Pin: release o=Debian')"),
        ("Package: *\nPin: release o=X\n", 1, 1,
         "a preferences record needs a 'Pin-Priority:' field (e.g. 'Pin-Priority: 990')"),
        ("Package: *\nPin:  releas o=X\nPin-Priority: 5\n", 2, 7,
         "unknown pin type 'releas'; expected release, version or origin"),
        ("Package: *\nPin: release o=X\nPin-Priority: high\n", 3, 15,
         "Pin-Priority must be a non-zero integer, not 'high'"),
        ("Package: *\nPin: release o=X\nPin-Priority: 0\n", 3, 15, "Pin-Priority must be a non-zero integer, not '0'"),
        ("\nPackage *\n", 2, 1, "expected 'Field: value' (Package, Pin, Pin-Priority or Explanation)"),
    ],
    ids=["no-package", "no-pin", "no-priority", "pin-type", "priority-text", "priority-zero", "not-a-field"],
)  # fmt: skip
def test_a_record_apt_rejects_is_located(text: str, line: int, column: int, message: str) -> None:
    path = Path("/etc/apt/preferences.d/docker")
    _, (problem,) = parse_preferences(path, text)
    shown = text.split("\n")[line - 1]
    assert problem.render() == f"{path}:{line}:{column}: {message}\n    {shown}\n    {' ' * (column - 1)}^"


def test_read_preferences_reads_the_file_then_the_parts_apt_reads_in_name_order(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "apt"
    (etc / "preferences.d").mkdir(parents=True)
    record = "Package: *\nPin: release n={}\nPin-Priority: 100\n"
    (etc / "preferences").write_text(record.format("main"))
    for name in ("b.pref", "a", "c.conf", "d~", "e.pref.bak"):  # apt ignores the last three
        (etc / "preferences.d" / name).write_text(record.format(name))
    assert [r.pin for r in read_preferences(tmp_path)] == ["release n=main", "release n=a", "release n=b.pref"]
    (etc / "preferences.d" / "a").write_text("Package: *\nPin: release n=x\n")
    with pytest.raises(DiagnosticsError, match=r"preferences\.d/a:1:1: a preferences record needs a 'Pin-Priority:'"):
        read_preferences(tmp_path)


@pytest.mark.parametrize(
    ("package", "pin", "expected"),
    [
        ("*", "release o=Docker", (("o", "Docker"),)),
        ("*", "release o=Debian,a=stable, n=bookworm,l=Debian",
         (("o", "Debian"), ("a", "stable"), ("n", "bookworm"), ("l", "Debian"))),
        ("*", "release bookworm", (("a|n", "bookworm"),)),
        ("*", "release 12*", (("v", "12*"),)),
        ("*", "release *", (("*", "*"),)),
        ("nodejs", "release o=Docker",
         "a per-package pin; minimirror pins whole sources (pin-priority in minimirror.toml)"),
        ("*", "version 1.2*", "a pin by version; minimirror pins whole sources by release"),
        ("*", "origin deb.nodesource.example",
         "a pin by origin host; minimirror pins whole sources by release (o=, l=, a=, n=, v=)"),
        ("*", "release o=Debian,c=main", "'c=' selects part of a source; minimirror pins whole sources"),
        ("*", "release x=1", "unknown release field 'x'"),
    ],
)  # fmt: skip
def test_only_release_pins_of_every_package_select_whole_sources(package: str, pin: str, expected: object) -> None:
    (record,) = _records(f"Package: {package}\nPin: {pin}\nPin-Priority: 990\n")
    assert selector(record) == expected  # type: ignore[arg-type]


def test_matching_uses_release_fields_when_known_and_the_documented_best_effort_otherwise() -> None:
    fields = ReleaseFields(origin="Docker", label="Docker CE", archive="bookworm", codename="bookworm", version="")
    assert matches((("o", "Docker"),), uri=DOCKER, suite="bookworm", fields=fields)
    assert matches((("l", "Docker*"), ("n", "book*")), uri=DOCKER, suite="bookworm", fields=fields)
    assert matches((("l", "/docker ce/"),), uri=DOCKER, suite="bookworm", fields=fields)  # regex: any case
    assert not matches((("o", "docker"),), uri=DOCKER, suite="bookworm", fields=fields)  # a glob is exact
    assert not matches((("v", "20*"),), uri=DOCKER, suite="bookworm", fields=fields)
    # offline: n=/a= against the suite as written, o=/l= against the host's labels, v= never
    assert matches((("o", "Docker"),), uri=DOCKER, suite="bookworm", fields=None)
    assert not matches((("o", "Debian"),), uri=DOCKER, suite="bookworm", fields=None)  # not in the path
    assert matches((("o", "Debian"), ("n", "bookworm")), uri=DEBIAN, suite="bookworm", fields=None)
    assert not matches((("n", "bookworm"),), uri=DEBIAN, suite="bookworm-updates", fields=None)
    assert matches((("a|n", "bookworm*"),), uri=DEBIAN, suite="bookworm-updates", fields=None)
    assert not matches((("v", "12"),), uri=DEBIAN, suite="bookworm", fields=None)


def test_plan_pins_takes_the_first_record_apt_applies_and_reports_every_other(tmp_path: Path) -> None:
    records = _records(
        "Package: *\nPin: release o=Docker\nPin-Priority: 990\n\n"  # docker
        "Package: *\nPin: release a=bookworm\nPin-Priority: 400\n\n"  # shadowed on docker, half of debian
        "Package: nodejs\nPin: origin deb.nodesource.example\nPin-Priority: 600\n\n"
        "Package: *\nPin: release o=Vendor\nPin-Priority: 100\n"  # selects nothing
    )
    sources = {
        "docker/bookworm": [PinnedSuite(DOCKER, "bookworm", None)],
        "debian/bookworm": [PinnedSuite(DEBIAN, "bookworm", None), PinnedSuite(DEBIAN, "bookworm-updates", None)],
    }
    plan = plan_pins(records, sources)  # type: ignore[arg-type]
    assert {source: record.priority for source, record in plan.pins.items()} == {"docker/bookworm": 990}
    assert [(record.line, reason) for record, reason in plan.not_imported] == [
        (5, "selects only some lines of debian/bookworm, which would then need several priorities; "
            "minimirror pins whole sources"),
        (9, "a per-package pin; minimirror pins whole sources (pin-priority in minimirror.toml)"),
        (13, "selects none of the host's entries that init writes as sources"),
    ]  # fmt: skip
    explicit_default = _records("Package: *\nPin: release n=bookworm\nPin-Priority: 500\n")
    plan = plan_pins(explicit_default, sources)  # type: ignore[arg-type]
    assert plan.not_imported == ()  # 500 on one line and apt's default 500 on the other: one priority


@pytest.mark.parametrize(
    ("uri", "suite", "name"),
    [
        ("http://deb.debian.example/debian", "bookworm", "deb.debian.example_debian_dists_bookworm_InRelease"),
        ("http://127.0.0.1:8080/debian/", "bookworm-updates", "127.0.0.1:8080_debian_dists_bookworm-updates_InRelease"),
        ("https://user:pw@vendor.example/apt", "./", "vendor.example_apt_._InRelease"),
        ("https://vendor.example/my_repo", "sub/", "vendor.example_my%5frepo_sub_InRelease"),
    ],
)  # fmt: skip
def test_lists_file_name_is_apts_name_for_the_release_file(uri: str, suite: str, name: str) -> None:
    assert lists_file_name(uri, suite) == name
