"""Sources used together: the group settings of minimirror.toml, their diagnostics, and the groups they form."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sources import DEBIAN_LINE, NO_ENV, make_source, only_problem

from minimirror.sources.groups import group_inputs, group_of, source_groups
from minimirror.sources.settings import SourceSettings
from minimirror.sources.tree import load_sources, normalized_inputs

DOCKER_LINE = "http://127.0.0.1:8080/docker http://127.0.0.1:8080/docker/gpg bookworm stable\n"


def test_group_settings_are_read(tmp_path: Path) -> None:
    make_source(tmp_path, "debian/bookworm")
    make_source(
        tmp_path,
        "docker/bookworm",
        DOCKER_LINE,
        "docker-ce\n",
        minimirror_toml='resolve-with = ["debian/bookworm"]\npin-priority = 990\nmissing-dependencies = "skip"\n',
    )
    docker = load_sources(tmp_path, environ=NO_ENV)[1]
    assert docker.settings.resolve_with == ("debian/bookworm",)
    assert (docker.settings.pin_priority, docker.settings.missing_dependencies) == (990, "skip")


def test_default_group_settings_leave_the_input_hash_as_it_was(tmp_path: Path) -> None:
    """Locks written before groups existed stay fresh: the new keys enter the hashed text only when set."""
    assert set(SourceSettings().as_dict()).isdisjoint({"resolve_with", "pin_priority", "missing_dependencies"})
    make_source(tmp_path, "debian/bookworm", minimirror_toml="pin-priority = 500\n")
    make_source(tmp_path, "debian/trixie", DEBIAN_LINE.replace("bookworm main", "trixie main") + "\n")
    first, _ = load_sources(tmp_path, environ=NO_ENV)
    assert "pin_priority" not in normalized_inputs(first)
    (tmp_path / "debian/bookworm/minimirror.toml").write_text("pin-priority = 100\n")
    assert '"pin_priority": 100' in normalized_inputs(load_sources(tmp_path, environ=NO_ENV)[0])


@pytest.mark.parametrize(
    ("toml", "message", "line", "column"),
    [
        ('resolve-with = "debian/bookworm"\n', "must be a list of source ids", 1, 1),
        ('resolve-with = ["debian"]\n', "'debian' is not a source id", 1, 1),
        ('resolve-with = [\n  "debian/bookworm",\n  "ceph/reef",\n]\n', "'ceph/reef', which is not a source", 3, 3),
        ('resolve-with = ["docker/bookworm"]\n', "this source itself", 1, 17),
        ("pin-priority = 'high'\n", "must be an integer", 1, 1),
        ("pin-priority = true\n", "must be an integer", 1, 1),
        ('missing-dependencies = "ignore"\n', 'must be "error" or "skip"', 1, 1),
        ("resolve_with = []\n", "did you mean 'resolve-with'?", 1, 1),
    ],
)
def test_group_settings_mistakes_are_located(tmp_path: Path, toml: str, message: str, line: int, column: int) -> None:
    make_source(tmp_path, "debian/bookworm")
    make_source(tmp_path, "docker/bookworm", DOCKER_LINE, "docker-ce\n", minimirror_toml=toml)
    problem = only_problem(tmp_path)
    assert message in problem.message
    assert problem.path == tmp_path / "docker/bookworm/minimirror.toml"
    assert (problem.line, problem.column) == (line, column)


def test_unknown_source_lists_the_tree(tmp_path: Path) -> None:
    make_source(tmp_path, "debian/bookworm")
    make_source(tmp_path, "docker/bookworm", DOCKER_LINE, "docker-ce\n", minimirror_toml='resolve-with = ["x/y"]\n')
    assert "(it has: debian/bookworm)" in only_problem(tmp_path).message


def test_links_form_groups_in_either_direction_and_transitively(tmp_path: Path) -> None:
    make_source(tmp_path, "debian/bookworm")
    make_source(tmp_path, "debian/trixie", DEBIAN_LINE.replace("bookworm main", "trixie main") + "\n")
    make_source(
        tmp_path, "docker/bookworm", DOCKER_LINE, "docker-ce\n", minimirror_toml='resolve-with = ["debian/bookworm"]\n'
    )
    make_source(tmp_path, "ceph/reef", DOCKER_LINE.replace("docker", "ceph"), "ceph\n")
    make_source(tmp_path, "vendor/tools", DOCKER_LINE.replace("docker", "vendor"), "tool\n",
                minimirror_toml='resolve-with = ["ceph/reef", "docker/bookworm"]\n')  # fmt: skip
    groups = source_groups(load_sources(tmp_path, environ=NO_ENV))
    assert [g.ids for g in groups] == [
        ("ceph/reef", "debian/bookworm", "docker/bookworm", "vendor/tools"),
        ("debian/trixie",),
    ]
    assert [g.linked for g in groups] == [True, False]
    assert group_of(groups, "debian/bookworm") is groups[0]


def test_a_group_member_s_inputs_cover_the_whole_group(tmp_path: Path) -> None:
    """A new query in docker's packages.txt can change what debian locks, so debian's input text changes too."""
    make_source(tmp_path, "debian/bookworm")
    make_source(
        tmp_path, "docker/bookworm", DOCKER_LINE, "docker-ce\n", minimirror_toml='resolve-with = ["debian/bookworm"]\n'
    )
    sources = load_sources(tmp_path, environ=NO_ENV)
    group = source_groups(sources)[0]
    before = group_inputs(group, sources[0])
    (tmp_path / "docker/bookworm/packages.txt").write_text("docker-ce\ncontainerd.io\n")
    sources = load_sources(tmp_path, environ=NO_ENV)
    assert group_inputs(source_groups(sources)[0], sources[0]) != before
    alone = source_groups(sources[:1])[0]
    assert group_inputs(alone, sources[0]) == normalized_inputs(sources[0])
