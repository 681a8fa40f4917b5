"""``minimirror diff OLD NEW``: what changed between two sets of locks, for a reviewer or a CI job.

OLD and NEW are a lock file, a lock directory or ``git:REF[:PATH]`` (see :mod:`minimirror.audit.refs`); the
classification is :func:`minimirror.audit.diff.diff_locks`, the formats :mod:`minimirror.audit.render`
(documented in ``docs/audit.md``). ``--changelogs`` adds each change's changelog entries and CVEs
(:func:`minimirror.audit.explain.explain`); without it nothing is downloaded and the output is unchanged.
"""

from __future__ import annotations

import gc
from pathlib import Path

import click

from minimirror.cli._common import cache_option, out_console

__all__ = ["diff"]


@click.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json"]),
    default="table",
    show_default=True,
    help="table for a terminal, markdown for a pull-request comment, json for machines.",
)
@click.option("--exit-code", is_flag=True, help="Exit 1 when something differs, 0 when nothing does.")
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="The git repository git:REF is read from; default: the current directory's.",
)
@click.option(
    "--changelogs",
    is_flag=True,
    help="Read each change's Debian changelog from its new .deb (cache, else download): entries and CVEs.",
)
@cache_option
@click.option(
    "--offline", is_flag=True, help="With --changelogs: use only the cache; what is not cached is shown as unknown."
)
def diff(
    old: str,
    new: str,
    fmt: str,
    exit_code: bool,
    repo: Path | None,
    changelogs: bool,
    cache_dir: Path,
    offline: bool,
) -> None:
    """Show what changed from the locks OLD to the locks NEW.

    OLD and NEW are each a .lock file, a locks directory, or git:REF[:PATH] (the locks committed at REF,
    PATH defaulting to locks/), e.g. `minimirror diff git:origin/main locks --format markdown`.
    Trust changes (keys, URLs, Release fields) and rebuilt packages (same version, new hash) come first.
    With --changelogs, the security fixes (CVEs, urgency, security suite) come first and each change shows
    the changelog entries between its old and new version.
    """
    from minimirror.audit.diff import diff_locks
    from minimirror.audit.refs import read_lock_tables_ref
    from minimirror.audit.render import render_json, render_markdown, render_table
    from minimirror.lock.lockcolumns import ReadMemo

    # through the parsed-lock cache: a review diffs the same locks again and again (minimirror.lock.lockcache);
    # read cold, what the two sides share byte for byte is matched and checked once (ReadMemo)
    memo = ReadMemo()
    new_locks = read_lock_tables_ref(new, repo=repo, cache_dir=cache_dir, memo=memo)
    old_locks = read_lock_tables_ref(old, repo=repo, cache_dir=cache_dir, memo=memo)
    # the locks are a million strings and tuples, none in a cycle, kept to the end of the command: the collector
    # would only walk them again at each collection the diff's own tuples trigger (~10% of a cold whole-suite diff)
    gc.freeze()
    try:
        result = diff_locks(old_locks, new_locks)
    finally:
        gc.unfreeze()  # main() also runs in a test's process, which goes on
    if changelogs:
        from minimirror.audit.explain import ChangelogConfig, explain

        whole = [table.lock() for table in new_locks]
        result = explain(result, whole, ChangelogConfig(cache_dir=cache_dir, offline=offline))
    if fmt == "table":
        out_console.print(render_table(result))
    else:
        click.echo(render_markdown(result) if fmt == "markdown" else render_json(result), nl=False)
    if exit_code and not result.is_empty:
        click.get_current_context().exit(1)
