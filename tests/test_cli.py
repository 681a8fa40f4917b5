"""The CLI's contract: help, version, exit codes, and clean errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from minimirror import __version__
from minimirror.cli import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_the_global_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--verbose", "--quiet", "--version"):
        assert option in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_console_script_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "minimirror", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(__version__)


def test_a_user_mistake_is_one_clean_line_and_verbose_adds_the_traceback(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"{tmp_path}/no-such-tree"
    assert main(["sources", "check", "--sources", missing]) == 2
    quiet = capsys.readouterr().err
    assert "error:" in quiet and "no-such-tree" in quiet and "Traceback" not in quiet
    assert main(["-v", "sources", "check", "--sources", missing]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_sources_default_comes_from_mirror_source_dir(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MIRROR_SOURCE_DIR", f"{tmp_path}/from-env")
    assert main(["sources", "check"]) == 2
    assert "from-env" in capsys.readouterr().err


def test_every_listed_command_loads_under_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    from minimirror.cli import commands

    assert main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == list(commands.NAMES)
    assert {"lock", "fetch", "publish", "build", "image", "verify"} <= set(listed)
    for name in commands.NAMES:
        command = commands.load(name)
        assert command is not None and command.name == name
    assert commands.load("no-such-command") is None


def test_a_command_imports_only_its_own_module() -> None:
    # What a lock pays for at start-up: the image and publish commands' imports are not among it.
    probe = (
        "import sys; from minimirror.cli import main; main(['why', '--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('minimirror.cli.')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = result.stdout.strip().splitlines()[-1]
    assert "minimirror.cli.lock" in loaded
    assert "minimirror.cli.image" not in loaded and "minimirror.cli.publish" not in loaded


def test_log_records_are_shown_but_rich_logging_is_loaded_only_for_one(tmp_path: Path) -> None:
    # rich.logging costs start-up time (bench_fetch_wan's timeline); a run that logs nothing does not import it.
    probe = (
        "import logging, sys; from minimirror.cli import main; "
        f"main(['-q', 'fetch', '--locks', {str(tmp_path / 'locks')!r}, '--cache', {str(tmp_path / 'cache')!r}]); "
        "print('rich.logging' in sys.modules); "
        "from minimirror.cli import _configure_logging; _configure_logging(0, False); "
        "logging.getLogger('minimirror.test').warning('the blob was damaged'); "
        "print('rich.logging' in sys.modules)"
    )
    (tmp_path / "locks").mkdir()
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
    assert "the blob was damaged" in result.stderr
    assert "WARNING" in result.stderr


def test_the_console_script_is_entry() -> None:
    # entry() (not main) skips the last garbage collection at exit (gc.freeze), which is 35-140 ms of a fetch.
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="minimirror")
    assert script.value == "minimirror.cli:entry"
