"""What every command shares: the consoles, the per-invocation options and the shared option decorators.

The library logs and raises; only the CLI prints. Results go to stdout, messages and logs to stderr.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

__all__ = ["Invocation", "err_console", "invocation", "out_console", "sources_option"]

F = TypeVar("F", bound=Callable[..., Any])

# highlight=False: rich would otherwise colour numbers and paths inside package versions and file names.
out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class Invocation:
    """Options given before the command name; stored as the click context object."""

    verbose: int = 0
    quiet: bool = False


def invocation() -> Invocation:
    obj = click.get_current_context().find_root().obj
    return obj if isinstance(obj, Invocation) else Invocation()


def _default_sources() -> Path:
    return Path(os.environ.get("MIRROR_SOURCE_DIR") or "sources")


def sources_option(func: F) -> F:
    """``--sources DIR``: the sources tree; default ``$MIRROR_SOURCE_DIR``, else ``sources/``."""
    return click.option(
        "--sources",
        "sources_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=_default_sources,
        show_default="$MIRROR_SOURCE_DIR, else sources/",
        help="The sources tree: sources/<prefix>/<name>/{source.txt,packages.txt}.",
    )(func)
