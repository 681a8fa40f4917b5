"""``minimirror cache prune``: remove from the cache what no lock needs (see :mod:`minimirror.publish.prune`)."""

from __future__ import annotations

from pathlib import Path

import click

from minimirror.cli._common import cache_option, invocation, out_console

__all__ = ["cache"]


@click.group("cache")
def cache() -> None:
    """Look after the download cache."""


@cache.command("prune")
@click.option(
    "--locks",
    "locks_dirs",
    type=click.Path(path_type=Path, file_okay=False),
    multiple=True,
    default=(Path("locks"),),
    show_default=True,
    help="A lock tree whose files stay; repeat it for every project that shares the cache.",
)
@cache_option
@click.option("-n", "--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def prune(locks_dirs: tuple[Path, ...], cache_dir: Path, dry_run: bool) -> None:
    """Remove the blobs, parsed indices and partial downloads that no lock needs any more.

    Kept: every pool file, source file and index the locks name (so fetch and lock --offline still work),
    and the cached Release files and keys.
    """
    from minimirror.publish.prune import PruneConfig, prune

    report = prune(PruneConfig(cache_dir=cache_dir, locks_dirs=locks_dirs, dry_run=dry_run))
    if dry_run:
        for path in report.removed:
            out_console.print(f"would remove {path}", markup=False)
    if not invocation().quiet:
        verb = "would remove" if dry_run else "removed"
        noun = "file" if len(report.removed) == 1 else "files"
        out_console.print(
            f"{verb} {len(report.removed)} {noun} / {report.bytes_freed / (1 << 20):.1f} MiB, "
            f"kept {report.blobs_kept} blobs",
            markup=False,
        )
