"""``minimirror init --from-apt``: start a sources tree from the archives the host already trusts."""

from __future__ import annotations

from pathlib import Path

import click

from minimirror.cli._common import err_console, out_console, sources_option

__all__ = ["init"]


@click.command("init")
@click.option("--from-apt", "from_apt", is_flag=True, required=True, help="Read the host's APT configuration.")
@sources_option
@click.option("--packages", default="", metavar='"A B C"', help="Package queries for the release suites.")
@click.option(
    "--apt-root",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("/"),
    show_default=True,
    help="Root of the APT configuration to read (etc/apt below it).",
)
@click.option("--force", is_flag=True, help="Replace sources that already exist.")
def init(from_apt: bool, sources_dir: Path, packages: str, apt_root: Path, force: bool) -> None:
    """Write SOURCES/<prefix>/<suite>/ for every enabled 'deb' entry of the host's APT sources."""
    from minimirror.aptsources import init_from_apt

    result = init_from_apt(sources_dir, packages=packages.split(), apt_root=apt_root, force=force)
    for plan in result.written:
        out_console.print(f"wrote {sources_dir / plan.prefix / plan.name}  ({plan.dist} {' '.join(plan.components)})")
    for plan, reason in result.skipped:
        err_console.print(f"skipped {sources_dir / plan.prefix / plan.name}: {reason}")
