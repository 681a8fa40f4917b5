"""``minimirror verify OUT`` and ``minimirror serve OUT``: check a published tree, and serve it to apt."""

from __future__ import annotations

from pathlib import Path

import click

from minimirror.cli._common import err_console, out_console

__all__ = ["serve", "verify"]

_OUT = click.Path(path_type=Path, file_okay=False, exists=True)


@click.command("verify")
@click.argument("out_dir", metavar="OUT", type=_OUT)
@click.option(
    "--keyring",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The public key the tree must be signed with (armored or binary); default OUT/signing-key.gpg.",
)
@click.option("--no-dose", "no_dose", is_flag=True, help="Skip the dose-distcheck second opinion (slow on big trees).")
def verify(out_dir: Path, keyring: Path | None, no_dose: bool) -> None:
    """Check signatures, hashes, indices, pool files and dependencies of a published tree; exit 1 on problems."""
    from minimirror.publish.verify import verify_tree

    report = verify_tree(out_dir, keyring=keyring, dose=not no_dose)
    for problem in report.problems:
        out_console.print(str(problem), markup=False)
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    checked = (
        f"{report.dists} dist(s), {report.indices} index file(s), {report.packages} package entries, "
        f"{report.pool_files} file(s) hashed"
    )
    verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    err_console.print(f"{out_dir}: {verdict}{warned} ({checked})", markup=False)
    if not report.ok:
        click.get_current_context().exit(1)


@click.command("serve")
@click.argument("out_dir", metavar="OUT", type=_OUT)
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free).")
def serve(out_dir: Path, bind: str, port: int) -> None:
    """Serve a published tree read-only over HTTP for apt, until Ctrl-C."""
    from minimirror.errors import UsageError
    from minimirror.publish.serve import apt_source_lines, make_server, run_until_interrupted

    try:
        server = make_server(out_dir, bind, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {bind}:{port}: {exc.strerror}; choose another --port or --bind") from exc
    out_console.print(f"serving {out_dir} at {server.url}/  (Ctrl-C to stop)", markup=False)
    lines = apt_source_lines(out_dir, server.url)
    if not lines:
        err_console.print(f"warning: no dists/<dist>/Release under {out_dir}: apt will find nothing", markup=False)
    for line in lines:
        out_console.print(line, markup=False)
    run_until_interrupted(server)
