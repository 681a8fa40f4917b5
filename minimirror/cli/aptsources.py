"""``minimirror apt-sources OUT --url URL``: the deb822 sources (and apt preferences) a node uses the mirror with."""

from __future__ import annotations

from pathlib import Path

import click

from minimirror.cli._common import err_console, out_console

__all__ = ["apt_sources"]


@click.command("apt-sources")
@click.argument("out_dir", metavar="OUT", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--url", required=True, help="Where nodes reach OUT, e.g. http://mirror.example:8080.")
@click.option(
    "--locks",
    "locks_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Only the dists of these locks, in their order (default: every dist of OUT).",
)
@click.option(
    "--preferences",
    "preferences_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the apt preferences that reproduce the sources' pin-priority here.",
)
def apt_sources(out_dir: Path, url: str, locks_dir: Path | None, preferences_file: Path | None) -> None:
    """Print a deb822 .sources file for a node (the mirror's key inline), one stanza per published dist."""
    from minimirror.atomic import write_atomically
    from minimirror.lock.lockfile import read_locks
    from minimirror.publish.aptsources import apt_setup

    locks = read_locks(locks_dir) if locks_dir is not None else None
    setup = apt_setup(out_dir, url, locks=locks)
    out_console.print(setup.sources, markup=False, end="")
    if preferences_file is not None:
        write_atomically(preferences_file, setup.preferences.encode("utf-8"))
        pinned = setup.preferences.count("Pin-Priority:")
        err_console.print(f"wrote {preferences_file} ({pinned} pinned source(s))", markup=False)
    elif setup.preferences:
        err_console.print("warning: some sources are pinned; pass --preferences FILE to write their pins", markup=False)
