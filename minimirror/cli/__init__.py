"""The ``minimirror`` command: parse arguments, call one library function, format its result.

One handler maps :class:`~minimirror.errors.MinimirrorError` to a message and an exit code; a traceback is
shown only with ``-v``. ``main(argv)`` returns the exit code, so tests call it directly.
"""

from __future__ import annotations

import gc
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from minimirror import __version__
from minimirror.atomic import disk_errors
from minimirror.cli import commands
from minimirror.cli._common import Invocation, err_console
from minimirror.errors import MinimirrorError

__all__ = ["cli", "entry", "main"]


def _report(exc: MinimirrorError, *, verbose: int) -> None:
    if verbose:
        err_console.print("".join(traceback.format_exception(exc)), markup=False, highlight=False, end="")
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(exc.render(), markup=False)


class _Group(click.Group):
    """A group that turns minimirror's own errors into one clean message and an exit code, and imports a
    command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(commands.NAMES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return commands.load(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            # The backstop for a write no stage guards itself (a key, a sources tree): still one message.
            with disk_errors(Path()):
                return super().invoke(ctx)
        except MinimirrorError as exc:
            obj = ctx.find_root().obj
            _report(exc, verbose=obj.verbose if isinstance(obj, Invocation) else 0)
            ctx.exit(exc.exit_code)


class _RichOnFirstRecord(logging.Handler):
    """A rich handler made when the first record arrives: ``rich.logging`` (its text layout) takes 12 ms to
    import on a quiet machine and several times that on a loaded one, which a run that logs nothing (``fetch -q``
    on a good network) need not wait for before its first request (benchmarks/README.md, bench_fetch_wan)."""

    def __init__(self, *, show_path: bool) -> None:
        super().__init__()
        self._show_path = show_path
        self._rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.logging import RichHandler

            self._rich = RichHandler(console=err_console, show_time=False, show_path=self._show_path, markup=False)
        self._rich.handle(record)


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = _RichOnFirstRecord(show_path=verbose >= 2)
    root = logging.getLogger("minimirror")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="minimirror")
@click.option("-v", "--verbose", count=True, help="More detail; -v shows tracebacks, -vv debug logs.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """minimirror: lock, review and build offline APT mirrors that people can trust."""
    ctx.obj = Invocation(verbose=verbose, quiet=quiet)
    _configure_logging(verbose, quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    The logging set up for this run is undone afterwards, so that callers (tests, notebooks) keep theirs.
    """
    logger = logging.getLogger("minimirror")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return _run(argv)
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])  # setLevel, not assignment: it clears the loggers' level caches
        logger.propagate = saved[2]


def _run(argv: Sequence[str] | None) -> int:
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of calling sys.exit.
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="minimirror", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    return result if isinstance(result, int) else 0


def entry() -> None:
    """The console script.

    The interpreter's last garbage collection, at exit, walks every object the run made or imported (httpx,
    rich, click): 35-140 ms after a fetch was done, a tenth of a fetch over a WAN-like link
    (benchmarks/README.md, bench_fetch_wan). ``gc.freeze()`` leaves those objects to the operating system;
    modules are still torn down, files closed and ``atexit`` handlers run, only cycles left unreachable at exit
    are not collected (Python does not promise to finalize those either)."""
    code = main()
    gc.freeze()
    sys.exit(code)
