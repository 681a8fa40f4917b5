"""``minimirror sources``: check the sources tree, and import the seed's YAML form into it.

``check`` loads the whole tree and prints every problem (``path:line:col``, the line, a caret) through the
CLI's one error handler, exit 2; or a table of the sources, a table of the groups that ``resolve-with`` links,
and ``N sources, M queries OK``, exit 0.
``import-yaml`` converts ``mini-mirror-sources.yaml`` with :func:`minimirror.sources.yamlimport.import_yaml`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.table import Table

from minimirror.cli._common import err_console, invocation, out_console, sources_option

if TYPE_CHECKING:
    from minimirror.sources.groups import SourceGroup
    from minimirror.sources.tree import Source

__all__ = ["sources"]


@click.group("sources")
def sources() -> None:
    """Check the sources tree, or import it from the seed's YAML."""


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _table(*headers: str) -> Table:
    """A compact table that folds long cells instead of cutting them (paths and URLs must stay whole)."""
    table = Table(box=box.SIMPLE_HEAD)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _sources_table(loaded: Sequence[Source]) -> Table:
    table = _table("source", "dist", "components", "arch", "queries", "settings")
    for source in loaded:
        own = [name for name in ("aptly.conf", "minimirror.toml") if (source.directory / name).is_file()]
        table.add_row(
            source.source_id,
            "\n".join(suite.dist for suite in source.suites),  # a line a suite: the release suite first
            " ".join(source.components),
            " ".join(source.settings.architectures),
            str(len(source.queries)),
            " ".join(own) or "-",
        )
    return table


def _groups_table(groups: Sequence[SourceGroup]) -> Table:
    """The sources resolved together: one row a group, a line a member, with what decides apt's candidate
    (pin-priority) and what a missing dependency does (``skip`` shown; ``error`` is the default)."""
    table = _table("group", "resolved together", "pin-priority", "missing-dependencies")
    for number, group in enumerate(groups, start=1):
        table.add_row(
            str(number),
            "\n".join(group.ids),
            "\n".join(str(member.settings.pin_priority) for member in group.members),
            "\n".join("skip" if m.settings.missing_dependencies == "skip" else "-" for m in group.members),
        )
    return table


def _groups_summary(groups: Sequence[SourceGroup]) -> str:
    if not groups:
        return ""
    linked = sum(len(group.members) for group in groups)
    return f" ({linked} resolved together in {_count(len(groups), 'group', 'groups')})"


@sources.command("check")
@sources_option
def check(sources_dir: Path) -> None:
    """Validate the whole tree; report every problem.

    Exit 0 with a table of the sources when the tree is valid, 2 when anything is wrong.
    """
    from minimirror.sources.groups import source_groups
    from minimirror.sources.tree import load_sources

    loaded = load_sources(sources_dir)
    queries = sum(len(source.queries) for source in loaded)
    groups = [group for group in source_groups(loaded) if group.linked]
    if not invocation().quiet:
        out_console.print(_sources_table(loaded))
        if groups:
            out_console.print(_groups_table(groups))
    counts = f"{_count(len(loaded), 'source', 'sources')}{_groups_summary(groups)}"
    out_console.print(f"{counts}, {_count(queries, 'query', 'queries')} OK")


@sources.command("import-yaml")
@click.argument("yaml_file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@sources_option
@click.option("--force", is_flag=True, help="Replace sources that exist and differ from the YAML.")
def import_yaml(yaml_file: Path, sources_dir: Path, force: bool) -> None:
    """Convert the seed's YAML FILE into the tree.

    FILE is a mini-mirror-sources.yaml; each document's subrepos become DIR/<name>/<distribution>/.
    Nothing is written unless the whole file is valid.
    """
    from minimirror.sources.yamlimport import import_yaml as run_import

    imported = run_import(yaml_file, sources_dir, force=force)
    table = _table("source", "packages", "status", "directory")
    for source in imported:
        table.add_row(source.source_id, str(source.packages), source.status, str(source.directory))
    if not invocation().quiet:
        out_console.print(table)
    for note in (note for source in imported for note in source.notes):
        err_console.print(f"{note.location}: note: {note.message}", markup=False)
    changed = sum(source.status != "unchanged" for source in imported)
    out_console.print(f"{_count(len(imported), 'source', 'sources')} imported, {changed} written")
