"""``minimirror sources check`` and ``minimirror sources import-yaml`` through ``main(argv)``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import REPO_ROOT

from minimirror.cli import main

EXAMPLES = REPO_ROOT / "examples" / "sources"
LINE = "http://127.0.0.1:8080/debian file:///usr/share/keyrings/debian-archive-keyring.gpg bookworm main\n"
YAML = """\
name: debian
url: http://127.0.0.1:8080/debian
key_url: file:///usr/share/keyrings/debian-archive-keyring.gpg
components: [main]
subrepos:
  - distribution: bookworm
    packages:
      - name: curl
      - name: openssh-server
        version: "1:9.2p1-2+deb12u3"
"""


def source(root: Path, source_id: str, source_txt: str = LINE, packages_txt: str = "curl\n") -> None:
    directory = root / source_id
    directory.mkdir(parents=True)
    (directory / "source.txt").write_text(source_txt)
    (directory / "packages.txt").write_text(packages_txt)


@pytest.fixture(autouse=True)
def _no_global_aptly_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APTLY_CONFIG_PATH", raising=False)
    monkeypatch.delenv("MIRROR_SOURCE_DIR", raising=False)


def test_check_passes_on_the_bundled_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "check", "--sources", str(EXAMPLES)]) == 0
    captured = capsys.readouterr()
    assert "debian/bookworm" in captured.out
    assert captured.out.rstrip().endswith("1 source, 13 queries OK")
    assert captured.err == ""


def test_check_reports_every_problem_of_every_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source(tmp_path, "debian/bookworm", packages_txt="curl\n  python3 (>= 3.11\n")
    source(tmp_path, "docker/bookworm", source_txt="http://127.0.0.1:8080/docker file:///k bookworm\n")
    (tmp_path / "docker/bookworm/minimirror.toml").write_text("lable = 'Docker'\n")
    assert main(["sources", "check", "--sources", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    expected = [
        f"{tmp_path}/debian/bookworm/packages.txt:2:11: unclosed '(': add ')' to close the condition\n"
        "      python3 (>= 3.11\n"
        "              ^",
        f"{tmp_path}/docker/bookworm/source.txt:1:48: missing component; "
        "expected 'source_url source_key_url dist component...'\n"
        "    http://127.0.0.1:8080/docker file:///k bookworm\n"
        "                                                   ^",
        f"{tmp_path}/docker/bookworm/minimirror.toml:1:1: unknown key 'lable' in minimirror.toml; "
        "did you mean 'label'?\n"
        "    lable = 'Docker'\n"
        "    ^",
        "3 problems in 3 files; fix them and run `minimirror sources check` again",
    ]
    for block in expected:
        assert block in err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_check_reads_minimirror_source_dir_and_reports_a_missing_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MIRROR_SOURCE_DIR", str(tmp_path / "missing"))
    assert main(["sources", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing'}:1:1: sources directory does not exist" in err
    assert "Traceback" not in err


def test_check_honours_aptly_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source(tmp_path / "src", "debian/bookworm")
    conf = tmp_path / "aptly.conf"
    conf.write_text('{"architectures": ["arm64", "riscv64"]}')
    monkeypatch.setenv("APTLY_CONFIG_PATH", str(conf))
    assert main(["sources", "check", "--sources", str(tmp_path / "src")]) == 0
    assert "arm64 riscv64" in capsys.readouterr().out


def test_import_yaml_writes_a_tree_that_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = tmp_path / "mini-mirror-sources.yaml"
    yaml_file.write_text(YAML)
    root = tmp_path / "sources"
    assert main(["sources", "import-yaml", str(yaml_file), "--sources", str(root)]) == 0
    out = capsys.readouterr().out
    assert "debian/bookworm" in out
    assert "1 source imported, 1 written" in out
    assert (root / "debian/bookworm/packages.txt").read_text() == "curl\nopenssh-server (= 1:9.2p1-2+deb12u3)\n"
    assert main(["sources", "check", "--sources", str(root)]) == 0
    assert "1 source, 2 queries OK" in capsys.readouterr().out


def test_import_yaml_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = tmp_path / "mini-mirror-sources.yaml"
    yaml_file.write_text(YAML)
    root = tmp_path / "sources"
    assert main(["sources", "import-yaml", str(yaml_file), "--sources", str(root)]) == 0
    assert main(["sources", "import-yaml", str(yaml_file), "--sources", str(root)]) == 0
    assert "1 source imported, 0 written" in capsys.readouterr().out

    yaml_file.write_text(YAML.replace("name: curl", "name: wget"))
    assert main(["sources", "import-yaml", str(yaml_file), "--sources", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{yaml_file}:6:19: {root / 'debian/bookworm'} already exists and differs" in err
    assert "pass --force to replace it" in err
    assert main(["sources", "import-yaml", str(yaml_file), "--sources", str(root), "--force"]) == 0
    assert (root / "debian/bookworm/packages.txt").read_text().startswith("wget\n")


def test_import_yaml_errors_are_located_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = tmp_path / "mini-mirror-sources.yaml"
    yaml_file.write_text(YAML.replace("components: [main]", "components: [main]\nsuite: stable"))
    assert main(["sources", "import-yaml", str(yaml_file), "--sources", str(tmp_path / "sources")]) == 2
    err = capsys.readouterr().err
    assert f"{yaml_file}:5:1: unknown key 'suite' in a source document" in err
    assert "    suite: stable\n    ^" in err
    assert "Traceback" not in err
    assert not (tmp_path / "sources").exists()


def test_check_shows_the_groups_with_their_pins_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source(tmp_path, "debian/bookworm")
    source(tmp_path, "docker/bookworm", "http://127.0.0.1:8080/docker file:///k bookworm stable\n", "docker-ce\n")
    source(tmp_path, "vendor/flat", "http://127.0.0.1:8080/vendor file:///k ./\n", "tool\n")
    source(tmp_path, "other/trixie", LINE.replace("bookworm", "trixie"))
    docker_toml = 'resolve-with = ["debian/bookworm"]\npin-priority = 990\n'
    (tmp_path / "docker/bookworm/minimirror.toml").write_text(docker_toml)
    (tmp_path / "vendor/flat/minimirror.toml").write_text(
        'resolve-with = ["docker/bookworm"]\nmissing-dependencies = "skip"\n'
    )
    assert main(["sources", "check", "--sources", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    groups = out[out.index(" group ") :].splitlines()
    rows = [line.split() for line in groups if line.strip() and not set(line.strip()) <= {"─", " "}]
    assert rows == [
        ["group", "resolved", "together", "pin-priority", "missing-dependencies"],
        ["1", "debian/bookworm", "500", "-"],
        ["docker/bookworm", "990", "-"],
        ["vendor/flat", "500", "skip"],
        ["4", "sources", "(3", "resolved", "together", "in", "1", "group),", "4", "queries", "OK"],
    ]
    assert "other/trixie" not in "\n".join(groups)  # a source alone is in no group
    assert main(["-q", "sources", "check", "--sources", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "4 sources (3 resolved together in 1 group), 4 queries OK\n"
