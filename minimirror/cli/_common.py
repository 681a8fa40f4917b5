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

__all__ = [
    "Invocation",
    "cache_option",
    "err_console",
    "invocation",
    "locks_option",
    "offline_option",
    "out_console",
    "source_filter_option",
    "sources_option",
]

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


def locks_option(func: F) -> F:
    """``--locks DIR``: where ``<prefix>/<name>.lock`` files live; default ``locks/``."""
    return click.option(
        "--locks",
        "locks_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("locks"),
        show_default=True,
        help="The lock tree: locks/<prefix>/<name>.lock.",
    )(func)


def _default_cache() -> Path:
    from minimirror.upstream.cache import default_cache_dir

    return default_cache_dir()


def cache_option(func: F) -> F:
    """``--cache DIR``: verified indices and pool files; default ``$XDG_CACHE_HOME/minimirror``."""
    return click.option(
        "--cache",
        "cache_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=_default_cache,
        show_default="$XDG_CACHE_HOME/minimirror",
        help="The download cache (content-addressed; safe to share between runs).",
    )(func)


def offline_option(func: F) -> F:
    return click.option(
        "--offline", is_flag=True, help="Use only the cache; fail naming what is missing instead of downloading."
    )(func)


def source_filter_option(func: F) -> F:
    return click.option(
        "--source",
        "only",
        multiple=True,
        metavar="PREFIX/NAME",
        help="Only this source (repeatable); default: every source of the tree.",
    )(func)
