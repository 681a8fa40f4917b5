"""import-yaml: the seed's mini-mirror-sources.yaml becomes a sources tree, losslessly, or nothing is written."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from minimirror.errors import Diagnostic, DiagnosticsError
from minimirror.sources.tree import check_sources, load_sources
from minimirror.sources.yamlimport import import_yaml

EXAMPLE = """\
---
name: debian
url: http://127.0.0.1:8080/debian
key_url: file:///usr/share/keyrings/debian-archive-keyring.gpg
components: [main]
codename: bookworm
subrepos:
  - distribution: bookworm
    packages:
      - name: curl
      - name: openssh-server
        version: "1:9.2p1-2+deb12u3"
---
name: docker
url: http://127.0.0.1:8080/docker
key_url: http://127.0.0.1:8080/docker/gpg
components: [stable]
subrepos:
  - distribution: bookworm
    packages:
      - name: docker-ce
        version: "5:24.0.7-1~debian.12~bookworm"
"""


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mini-mirror-sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[Diagnostic]:
    with pytest.raises(DiagnosticsError) as caught:
        import_yaml(write_yaml(tmp_path, text), tmp_path / "sources")
    assert not (tmp_path / "sources").exists(), "nothing may be written when the YAML has a problem"
    return list(caught.value.diagnostics)


def test_the_example_round_trips_with_pins_and_epochs(tmp_path: Path) -> None:
    root = tmp_path / "sources"
    imported = import_yaml(write_yaml(tmp_path, EXAMPLE), root)
    assert [(s.source_id, s.packages, s.status) for s in imported] == [
        ("debian/bookworm", 2, "written"),
        ("docker/bookworm", 1, "written"),
    ]
    debian = root / "debian" / "bookworm"
    assert (debian / "source.txt").read_text().splitlines()[-1] == (
        "http://127.0.0.1:8080/debian file:///usr/share/keyrings/debian-archive-keyring.gpg bookworm main"
    )
    assert (debian / "packages.txt").read_text() == "curl\nopenssh-server (= 1:9.2p1-2+deb12u3)\n"
    assert tomllib.loads((debian / "minimirror.toml").read_text()) == {"codename": "bookworm"}
    assert not (root / "docker" / "bookworm" / "minimirror.toml").exists()
    assert check_sources(root, environ={}) == []
    loaded = {s.source_id: s for s in load_sources(root, environ={})}
    assert [q.canonical for q in loaded["debian/bookworm"].queries] == ["curl", "openssh-server (= 1:9.2p1-2+deb12u3)"]
    assert [q.canonical for q in loaded["docker/bookworm"].queries] == ["docker-ce (= 5:24.0.7-1~debian.12~bookworm)"]
    docker = loaded["docker/bookworm"]
    assert (docker.url, docker.key_url, docker.dist, docker.components) == (
        "http://127.0.0.1:8080/docker",
        "http://127.0.0.1:8080/docker/gpg",
        "bookworm",
        ("stable",),
    )
    assert loaded["debian/bookworm"].settings.codename == "bookworm"


def test_scalars_are_kept_as_written_and_settings_are_carried(tmp_path: Path) -> None:
    text = """\
name: local
url: file:///srv/archive
key_url: file:///srv/archive/key.gpg
components: main
label: Local archive
aptly_config: {"architectures": ["amd64", "arm64"], "dependencyFollowRecommends": true, "rootDir": "/x"}
subrepos:
  - distribution: jammy
    packages:
      - name: libfoo1
        version: 1.10
      - zlib1g
      - name: bar
        version:
  - distribution: noble
    packages: [{name: baz}]
"""
    root = tmp_path / "sources"
    import_yaml(write_yaml(tmp_path, text), root)
    assert (root / "local/jammy/packages.txt").read_text() == "libfoo1 (= 1.10)\nzlib1g\nbar\n"
    conf = json.loads((root / "local/noble/aptly.conf").read_text())
    assert conf == {"architectures": ["amd64", "arm64"], "dependencyFollowRecommends": True, "rootDir": "/x"}
    jammy, noble = load_sources(root, environ={})
    assert (jammy.settings.label, jammy.settings.architectures) == ("Local archive", ("amd64", "arm64"))
    assert noble.settings.follow_recommends is True
    assert noble.components == ("main",)


def test_aptly_config_may_be_a_json_string(tmp_path: Path) -> None:
    text = EXAMPLE.replace("codename: bookworm\n", "aptly_config: '{\"gpgDisableVerify\": true}'\n")
    import_yaml(write_yaml(tmp_path, text), tmp_path / "sources")
    (debian, _) = load_sources(tmp_path / "sources", environ={})
    assert debian.settings.gpg_disable_verify is True


def test_an_unknown_key_is_located_at_the_key(tmp_path: Path) -> None:
    text = EXAMPLE.replace("      - name: curl\n", "      - name: curl\n        verison: 7.88\n")
    (problem,) = problems(tmp_path, text)
    assert problem.render() == (
        f"{tmp_path / 'mini-mirror-sources.yaml'}:11:9: unknown key 'verison' in a package; "
        "expected one of: name, version\n"
        "            verison: 7.88\n"
        "            ^"
    )


def test_every_problem_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
name: debian
url: ftp://archive.example/debian
key_url: file:///k
components: [main, main]
distro: bookworm
subrepos:
  - distribution: bookworm
    packages:
      - name: Curl
      - name: vim
        version: ">= 2"
---
name: ../etc
key_url: file:///k
components: [main]
subrepos: []
---
name: other
url: http://archive.example/debian
key_url: file:///k
components: [main]
aptly_config: {architectures: amd64}
subrepos:
  - distribution: trixie
    packages: [curl]
  - distribution: trixie
    packages: [wget]
"""
    found = [(d.line, d.column, d.message) for d in problems(tmp_path, text)]
    assert found == [
        (5, 1, "unknown key 'distro' in a source document; expected one of: name, url, key_url, components, "
               "codename, code_name, label, aptly_config, resolve_with, pin_priority, missing_dependencies, subrepos"),
        (2, 6, "url: 'ftp://archive.example/debian' is not a URL minimirror can read; "
               "expected http://, https://, file://"),
        (4, 13, "components lists a component twice"),
        (9, 15, "package name 'Curl' is not valid here"),
        (11, 18, "version '>= 2' is not valid here"),
        (13, 1, "a source document has no 'url'"),
        (22, 31, "aptly.conf key 'architectures' must be a non-empty list of architecture names, "
                 "e.g. [\"amd64\", \"arm64\"]"),
        (26, 19, "other/trixie is already described at line 24"),
    ]  # fmt: skip


def test_unsafe_names_are_refused_before_writing(tmp_path: Path) -> None:
    text = EXAMPLE.replace("name: docker\n", "name: ../docker\n")
    (problem,) = problems(tmp_path, text)
    assert (problem.line, problem.column) == (14, 7)
    assert problem.message.startswith("name '../docker' may only use letters, digits and . _ + ~ -")
    assert problem.message.endswith("(it names a directory)")


def test_yaml_syntax_errors_are_located(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "name: debian\ncomponents: [main\nurl: x\n")
    assert problem.path == tmp_path / "mini-mirror-sources.yaml"
    assert problem.line == 3
    assert problem.message.startswith("not valid YAML:")


def test_an_empty_file_has_no_documents(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "# nothing\n")
    assert problem.message == "no YAML documents; expected one per prefix"


def test_existing_sources_are_kept_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "sources"
    path = write_yaml(tmp_path, EXAMPLE)
    import_yaml(path, root)
    assert [s.status for s in import_yaml(path, root)] == ["unchanged", "unchanged"]

    write_yaml(tmp_path, EXAMPLE.replace("      - name: curl\n", "      - name: wget\n"))
    with pytest.raises(DiagnosticsError) as caught:
        import_yaml(path, root)
    (problem,) = caught.value.diagnostics
    assert (problem.line, problem.column) == (8, 19)
    assert problem.message == (
        f"{root / 'debian/bookworm'} already exists and differs from this subrepo; pass --force to replace it"
    )
    assert (root / "debian/bookworm/packages.txt").read_text().startswith("curl\n")

    assert [s.status for s in import_yaml(path, root, force=True)] == ["replaced", "unchanged"]
    assert (root / "debian/bookworm/packages.txt").read_text().startswith("wget\n")


# --- groups, and the upstream mini-mirror's spellings -----------------------------------------------------

GROUPS = """\
name: debian
url: http://127.0.0.1:8080/debian
key_url: file:///usr/share/keyrings/debian-archive-keyring.gpg
components: [main]
subrepos:
  - distribution: bookworm
    packages: [curl]
---
name: docker
url: http://127.0.0.1:8080/docker
key_url: http://127.0.0.1:8080/docker/gpg
components: [stable]
code_name: bionic
label: Docker CE
resolve_with: [debian/bookworm]
pin_priority: 990
subrepos:
  - distribution: bookworm
    packages:
      - name: docker-ce
        version: 20.10.9~3-0~ubuntu-bionic_amd64
  - distribution: bullseye
    resolve_with: debian/bookworm
    missing_dependencies: skip
    packages: [{name: containerd.io, version: 1.6.9-1_arm64}]
"""


def test_group_keys_and_code_name_become_minimirror_toml_and_arch_suffixes_a_condition_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minimirror.cli import main
    from minimirror.sources.groups import source_groups

    path, root = write_yaml(tmp_path, GROUPS), tmp_path / "sources"
    assert main(["-q", "sources", "import-yaml", str(path), "--sources", str(root)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:20:9: note: version '20.10.9~3-0~ubuntu-bionic_amd64' ends in an architecture: wrote "
        "'docker-ce (= 20.10.9~3-0~ubuntu-bionic) {amd64}'",
        f"{path}:25:16: note: version '1.6.9-1_arm64' ends in an architecture: wrote "
        "'containerd.io (= 1.6.9-1) {arm64}'",
    ]
    assert (root / "docker/bookworm/packages.txt").read_text() == "docker-ce (= 20.10.9~3-0~ubuntu-bionic) {amd64}\n"
    assert tomllib.loads((root / "docker/bookworm/minimirror.toml").read_text()) == {
        "codename": "bionic",
        "label": "Docker CE",
        "resolve-with": ["debian/bookworm"],
        "pin-priority": 990,
    }
    loaded = {source.source_id: source for source in load_sources(root, environ={})}
    bullseye = loaded["docker/bullseye"].settings
    assert (bullseye.resolve_with, bullseye.pin_priority, bullseye.missing_dependencies) == (
        ("debian/bookworm",),
        990,
        "skip",
    )
    (group,) = source_groups(loaded.values())
    assert group.ids == ("debian/bookworm", "docker/bookworm", "docker/bullseye")
    assert main(["sources", "check", "--sources", str(root)]) == 0


def test_resolve_with_may_name_a_source_already_in_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "sources"
    import_yaml(write_yaml(tmp_path, EXAMPLE), root)
    docker_only = EXAMPLE.split("---\n")[2].replace("subrepos:", "resolve_with: [debian/bookworm]\nsubrepos:")
    imported = import_yaml(write_yaml(tmp_path, docker_only), root, force=True)
    assert [(s.source_id, s.status) for s in imported] == [("docker/bookworm", "replaced")]
    assert check_sources(root, environ={}) == []


def test_group_keys_are_checked_as_minimirror_toml_checks_them(tmp_path: Path) -> None:
    text = (
        GROUPS.replace("code_name: bionic\n", "code_name: bionic\ncodename: bionic\n")
        .replace("pin_priority: 990", "pin_priority: high")
        .replace("    missing_dependencies: skip", "    missing_dependencies: ignore")
        .replace(
            "    resolve_with: debian/bookworm", "    resolve_with: [debian/bookworm, debian/sid, docker/bullseye]"
        )
        .replace("1.6.9-1_arm64", "1.6.9-1_bionic")
    )
    found = [(d.line, d.column, d.message) for d in problems(tmp_path, text)]
    assert found == [
        (13, 12, "code_name and codename mean the same; keep one of them"),
        (17, 15, "pin_priority must be an integer (apt's Pin-Priority, e.g. 500 or 990), not 'high'"),
        (25, 27, "missing_dependencies must be \"error\" or \"skip\", not 'ignore'"),
        (26, 16, "version '1.6.9-1_bionic' is not valid here: 'bionic' after '_' is not a Debian architecture"),
    ]  # fmt: skip
    fixed = text.replace("codename: bionic\n", "").replace("pin_priority: high", "pin_priority: 990")
    fixed = fixed.replace("ignore", "skip").replace("1.6.9-1_bionic", "1.6.9-1")
    found = [(d.line, d.column, d.message) for d in problems(tmp_path, fixed)]
    assert found == [
        (23, 19, "resolve_with of docker/bullseye names 'debian/sid', which is neither in this file nor in the tree "
                 "(there are: debian/bookworm, docker/bookworm)"),
        (23, 19, "resolve_with of docker/bullseye names 'docker/bullseye', the source itself"),
    ]  # fmt: skip
    bad_id = GROUPS.replace("resolve_with: [debian/bookworm]", "resolve_with: [bookworm]")
    ((line, column, message),) = [(d.line, d.column, d.message) for d in problems(tmp_path, bad_id)]
    assert (line, column) == (15, 15)
    assert message == (
        "resolve_with 'bookworm' is not a source id (prefix/name, as the folders sources/<prefix>/<name>/)"
    )
