"""``minimirror lock`` (and ``--check``), ``search`` and ``why``: the commands of the lock stage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.table import Table

from minimirror.cli._common import (
    cache_option,
    err_console,
    invocation,
    locks_option,
    offline_option,
    out_console,
    source_filter_option,
    sources_option,
)

if TYPE_CHECKING:
    from minimirror.lock.stage import LockConfig

__all__ = ["lock", "search", "why"]


def _config(
    sources_dir: Path,
    locks_dir: Path,
    cache_dir: Path,
    *,
    offline: bool = False,
    only: tuple[str, ...] = (),
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
) -> LockConfig:
    from minimirror.lock.stage import LockConfig

    return LockConfig(
        sources_dir=sources_dir,
        locks_dir=locks_dir,
        cache_dir=cache_dir,
        offline=offline,
        only=only,
        upgrade=upgrade,
        upgrade_packages=upgrade_packages,
    )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


@click.command("lock")
@sources_option
@locks_option
@cache_option
@offline_option
@source_filter_option
@click.option("--check", is_flag=True, help="Exit 1 naming every lock that is missing or stale; change nothing.")
@click.option("--upgrade", is_flag=True, help="Re-resolve everything to the newest versions.")
@click.option(
    "--upgrade-package",
    "upgrade_packages",
    multiple=True,
    metavar="NAME",
    help="Let this package (binary or source name) and what it needs move to newer versions (repeatable).",
)
def lock(
    sources_dir: Path,
    locks_dir: Path,
    cache_dir: Path,
    offline: bool,
    only: tuple[str, ...],
    check: bool,
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
) -> None:
    """Resolve every source's queries into locks/<prefix>/<name>.lock.

    Conservative: locked versions stay while they still satisfy everything, unless --upgrade or
    --upgrade-package says otherwise. A lock is rewritten only when its content changes.
    """
    from minimirror.lock import stage as locking

    config = _config(
        sources_dir,
        locks_dir,
        cache_dir,
        offline=offline,
        only=only,
        upgrade=upgrade,
        upgrade_packages=upgrade_packages,
    )
    if check:
        stale = locking.check_locks(config)
        for item in stale:
            err_console.print(f"stale: {item.path}: {item.reason}", markup=False)
        if stale:
            click.get_current_context().exit(1)
        if not invocation().quiet:
            out_console.print("every lock is up to date")
        return
    report = locking.lock(config)
    if invocation().quiet:
        return
    table = Table(box=box.SIMPLE_HEAD)
    for header in ("source", "packages", "size", "upstream date", "lock"):
        table.add_column(header, overflow="fold")
    for outcome in report.outcomes:
        table.add_row(
            outcome.source_id,
            str(outcome.packages),
            _size(outcome.total_size),
            f"{outcome.upstream_date:%Y-%m-%d %H:%M} UTC",
            "written" if outcome.changed else "unchanged",
        )
    out_console.print(table)
    for outcome in report.outcomes:
        if outcome.left_out:
            out_console.print(
                f"{outcome.source_id}: {len(outcome.left_out)} packages the queries match cannot be installed "
                "and are left out (listed in the lock as [[left-out]]):",
                markup=False,
            )
        for dropped in outcome.left_out:
            line = f"  {dropped.name} {dropped.version} {dropped.architecture}: {dropped.reason}"
            out_console.print(line, markup=False, soft_wrap=True)


@click.command("search")
@sources_option
@cache_option
@offline_option
@source_filter_option
@click.argument("query")
def search(sources_dir: Path, cache_dir: Path, offline: bool, only: tuple[str, ...], query: str) -> None:
    """Print the packages QUERY matches, one 'name version architecture' a line; exit 1 when none."""
    from minimirror.lock import stage as locking

    hits = locking.search(_config(sources_dir, Path("locks"), cache_dir, offline=offline, only=only), query)
    several = len({hit.source_id for hit in hits}) > 1 or len(only) != 1
    for hit in hits:
        line = f"{hit.package.name} {hit.package.version} {hit.package.architecture}"
        out_console.print(f"{line}  [{hit.source_id}]" if several else line, markup=False)
    if not hits:
        err_console.print(f"no package matches {query!r}", markup=False)
        click.get_current_context().exit(1)


@click.command("why")
@locks_option
@cache_option
@click.option("--arch", "architecture", default=None, help="Only this architecture.")
@click.argument("name")
def why(locks_dir: Path, cache_dir: Path, architecture: str | None, name: str) -> None:
    """Show the chains from query lines to the locked package NAME."""
    from minimirror.audit.why import format_chains
    from minimirror.audit.why import why as why_chains
    from minimirror.lock.lockcache import read_lock_tables

    # through the parsed-lock cache, keyed by each lock's bytes (minimirror.lock.lockcache)
    chains = why_chains(read_lock_tables(locks_dir, cache_dir), name, architecture)
    out_console.print(format_chains(chains), markup=False)
