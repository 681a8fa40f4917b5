"""``minimirror init --from-apt``: start a sources tree from the archives the host already trusts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from minimirror.cli._common import err_console, out_console, sources_option

if TYPE_CHECKING:
    from minimirror.sources.hostapt import PlannedSource

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
    """Write SOURCES/<prefix>/<suite>/ for every release suite of the host's enabled 'deb' entries.

    Its -updates and -security suites become further lines of its source.txt, resolved together with it;
    backports, and a companion suite whose release suite the host does not list, are left out (with why).
    Third-party entries (a docker.list beside the distribution's files, a flat 'deb URL ./' line) become
    sources that resolve with the distribution's (resolve-with); the host's APT pins that select whole sources
    become their pin-priority, and every other pin is reported as not imported.
    """
    from minimirror.sources.hostapt import init_from_apt

    result = init_from_apt(sources_dir, packages=packages.split(), apt_root=apt_root, force=force)
    for plan in result.written:
        out_console.print(f"wrote {sources_dir / plan.prefix / plan.name}  ({_summary(plan)})", markup=False)
    for plan, reason in result.skipped:
        err_console.print(f"skipped {_label(sources_dir, plan)}: {reason}")
    for record, reason in result.not_imported:
        err_console.print(f"not imported: the APT pin at {record}: {reason}", markup=False)


def _summary(plan: PlannedSource) -> str:
    """The suite and components, the companions, and the settings init wrote into minimirror.toml."""
    parts = [" ".join((plan.dist, *plan.components))]
    if plan.companions:
        parts[0] += f" + {', '.join(c.dist for c in plan.companions)}"
    if plan.resolve_with:
        parts.append(f"resolve-with {', '.join(plan.resolve_with)}")
    if plan.pin is not None:
        parts.append(f"pin-priority {plan.pin.priority} from {plan.pin.location}")
    return "; ".join(parts)


def _label(sources_dir: Path, plan: PlannedSource) -> str:
    """A source's directory (and its companions), or a companion suite's dist and URL: it has no directory."""
    if plan.companion_of is not None:
        return f"{plan.dist} of {plan.url}"
    also = f" (+ {', '.join(c.dist for c in plan.companions)})" if plan.companions else ""
    return f"{sources_dir / plan.prefix / plan.name}{also}"
