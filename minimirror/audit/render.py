"""A :class:`~minimirror.audit.diff.LockDiff` for people and machines: a terminal table, a pull-request comment in
GitHub-flavoured Markdown, JSON, and a size-delta plot for the audit notebook.

The formats are documented in ``docs/audit.md``. Every output is deterministic: the diff is sorted already,
and nothing here adds a time, a path of the machine or a dict order. The Markdown follows the GitHub Flavored
Markdown spec (tables, extension 4.10) with HTML ``<details>`` blocks; the JSON is RFC 8259 text with sorted
keys and a ``schema`` number that changes only when a field changes meaning or disappears.

When the diff carries changelogs (:func:`minimirror.audit.explain.explain`), every format adds them: a CVE column
in the tables, a "security fixes" section first in the Markdown and the entries inside each kind's details (in
fenced code blocks, so hostile changelog text stays text), and ``changelog``/``cves`` per package in the JSON.
Without them the output is byte for byte what it was.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from minimirror.audit.changelog import SourceChangelog
from minimirror.audit.diff import KINDS, Kind, LockDiff, PackageChange, SourcePackageChange, TrustChange

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FORMATS",
    "JSON_SCHEMA",
    "Format",
    "diff_json",
    "format_size",
    "plot_size_deltas",
    "render",
    "render_json",
    "render_markdown",
    "render_table",
    "security_summary",
    "size_plot_png",
    "summary_line",
]

Format = Literal["table", "markdown", "json"]
FORMATS: tuple[Format, ...] = ("table", "markdown", "json")
JSON_SCHEMA = 1

_KIND_LABELS: dict[Kind, str] = {
    "added": "added",
    "removed": "removed",
    "upgraded": "upgraded",
    "downgraded": "DOWNGRADED",
    "rebuilt": "REBUILT (same version, new hash)",
    "moved": "moved (component or pool path)",
}


def format_size(count: int, *, signed: bool = False) -> str:
    """``12.3 MiB``; with ``signed``, ``+12.3 MiB`` / ``-512 B`` (binary units, as apt shows them)."""
    sign = ("+" if count > 0 else "-" if count < 0 else "±") if signed else ("-" if count < 0 else "")
    value = float(abs(count))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def summary_line(diff: LockDiff) -> str:
    """``3 added, 1 upgraded, 1 REBUILT (same version, new hash), 2 trust changes (1 flagged), +12.3 MiB``."""
    if diff.is_empty:
        return "no changes"
    parts = [f"{count} {_KIND_LABELS[kind]}" for kind, count in _reading_order(diff.counts())]
    if diff.trust:
        flagged = len(diff.flagged_trust())
        noun = "trust change" if len(diff.trust) == 1 else "trust changes"
        parts.append(f"{len(diff.trust)} {noun}" + (f" ({flagged} flagged)" if flagged else ""))
    sources = {kind: count for kind, count in diff.source_counts().items() if count}
    if sources:
        label = {"added": "added", "removed": "removed", "rebuilt": "REBUILT"}
        listed = ", ".join(f"{count} {label.get(kind, kind)}" for kind, count in sorted(sources.items()))
        parts.append(f"source packages: {listed}")
    parts.append(format_size(diff.size_delta, signed=True))
    return ", ".join(parts)


def security_summary(diff: LockDiff) -> str:
    """``security fixes: 3 CVEs in 2 source packages (highest urgency: high); 1 changelog unknown``; empty when
    the changelogs were not read."""
    if diff.changelogs is None:
        return ""
    fixes = diff.security_fixes()
    cves = {cve for fix in fixes for cve in fix.cves}
    if fixes:
        noun = "source package" if len(fixes) == 1 else "source packages"
        counted = f"{len(cves)} CVE{'' if len(cves) == 1 else 's'} in" if cves else "from a security suite:"
        text = f"security fixes: {counted} {len(fixes)} {noun}"
        urgency = fixes[0].urgency
        text += f" (highest urgency: {urgency})" if urgency else ""
    else:
        text = f"security fixes: none in {len(diff.changelogs)} changelog{'' if len(diff.changelogs) == 1 else 's'}"
    missing = [
        f"{count} changelog{'' if count == 1 else 's'} {status}"
        for status in ("unknown", "unreadable")
        if (count := sum(1 for c in diff.changelogs if c.status == status))
    ]
    return "; ".join([text, *missing])


def _reading_order(counts: dict[Kind, int]) -> list[tuple[Kind, int]]:
    """The summary reads added, removed, upgraded, downgraded, rebuilt, moved; zero counts left out."""
    order: Sequence[Kind] = ("added", "removed", "upgraded", "downgraded", "rebuilt", "moved")
    return [(kind, counts[kind]) for kind in order if counts[kind]]


def _versions(change: PackageChange) -> str:
    if change.old and change.new and change.old_version != change.new_version:
        return f"{change.old_version} -> {change.new_version}"
    return change.new_version or change.old_version


# --- table ----------------------------------------------------------------------------------------------


def _trust_table(changes: Sequence[TrustChange]) -> Table:
    table = Table(title="chain of trust", box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("source", "field", "change"):
        table.add_column(header, overflow="fold")
    for change in sorted(changes, key=lambda c: (not c.flagged, c.source, c.field)):
        cells = (change.source, change.field, change.description)  # Text: no rich markup in lock values
        table.add_row(*map(Text, cells), style="bold red" if change.flagged else None)
    return table


def _package_cell(change: PackageChange) -> str:
    """``name/arch``, with the source package when it has another name: ``editor/amd64 [vim]``."""
    node = f"{change.name}/{change.architecture}"
    return node if change.source_package == change.name else f"{node} [{change.source_package}]"


def _package_table(source: str, changes: Sequence[PackageChange], diff: LockDiff) -> Table:
    table = Table(title=Text(f"packages of {source}"), box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("kind", no_wrap=True)
    table.add_column(Text("package [source]"), overflow="fold")
    table.add_column("version", overflow="fold")
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("why / what", overflow="fold")
    index = diff.changelog_index() if diff.changelogs is not None else None
    if index is not None:
        table.add_column("CVEs", overflow="fold")
    for change in sorted(changes, key=lambda c: (KINDS.index(c.kind), c.sort_key)):
        what = change.detail if change.kind in {"rebuilt", "moved"} else change.reason
        cells = [
            change.kind.upper() if change.flagged else change.kind,
            _package_cell(change),
            _versions(change),
            format_size(change.size_delta, signed=True),
            what,
        ]
        if index is not None:
            cells.append(_cves_cell(change, index))
        table.add_row(*map(Text, cells), style="bold red" if change.flagged else None)
    return table


def _cves_cell(change: PackageChange, index: dict[tuple[str, str], SourceChangelog]) -> str:
    """The CVEs a change fixes, ``none``, ``unknown``, ``unreadable``; empty for a removed or moved package."""
    if change.new is None or change.kind == "moved":
        return ""
    found = index.get((change.source, change.source_package))
    return found.described if found else ""


def render_table(diff: LockDiff) -> RenderableType:
    """For the terminal: the summary, the trust changes (flagged first, in red), then one table of package
    changes per source (rebuilt and downgraded first, in red); with changelogs, the security summary second
    and a CVE column."""
    parts: list[RenderableType] = [Text(summary_line(diff), style="bold")]
    if diff.changelogs is not None:
        parts.append(Text(security_summary(diff), style="bold"))
    if diff.trust:
        parts.append(_trust_table(diff.trust))
    for source in sorted({change.source for change in diff.packages}):
        parts.append(_package_table(source, [c for c in diff.packages if c.source == source], diff))
    if diff.source_packages:
        parts.append(_source_table(diff.source_packages))
    return Group(*parts)


def _source_table(changes: Sequence[SourcePackageChange]) -> Table:
    table = Table(title="source packages", box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("source", "source package", "version", "change", "size"):
        table.add_column(header, overflow="fold")
    for change in sorted(changes, key=lambda c: (not c.flagged, c.source, c.name, c.version)):
        style = "bold red" if change.flagged else None
        kind = "REBUILT" if change.kind == "rebuilt" else change.kind
        size = format_size(change.size_delta, signed=True)
        table.add_row(change.source, change.name, change.version, kind, size, style=style)
    return table


# --- markdown -------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """A table cell: pipes escaped (also inside code spans, as GFM tables require), one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """A code span, so lock values (which arrive in pull requests) are never read as Markdown or HTML."""
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def _markdown_trust(diff: LockDiff) -> list[str]:
    lines = ["### Chain of trust", "", "| | source | field | change |", "| --- | --- | --- | --- |"]
    for change in sorted(diff.trust, key=lambda c: (not c.flagged, c.source, c.field)):
        mark = "⚠️" if change.flagged else ""
        lines.append(f"| {mark} | {_code(change.source)} | `{change.field}` | {_code(change.description)} |")
    return [*lines, ""]


def _markdown_kind(
    kind: Kind, changes: Sequence[PackageChange], index: dict[tuple[str, str], SourceChangelog] | None
) -> list[str]:
    """One kind's ``<details>``: its table (with a CVE column when changelogs were read), then the changelogs
    of its source packages that ``index`` still holds (each is shown once, under the first kind that has it)."""
    size = format_size(sum(c.size_delta for c in changes), signed=True)
    opened = " open" if kind in {"rebuilt", "downgraded"} else ""
    cve_head, cve_rule = (" CVEs |", " --- |") if index is not None else ("", "")
    lines = [
        f"<details{opened}><summary><b>{len(changes)} {_KIND_LABELS[kind]}</b> ({size})</summary>",
        "",
        "| source | source package | package | arch | version | size | why / what |" + cve_head,
        "| --- | --- | --- | --- | --- | ---: | --- |" + cve_rule,
    ]
    for c in changes:
        what = c.detail if kind in {"rebuilt", "moved"} else c.reason
        cells = (c.source, c.source_package, c.name, c.architecture, _versions(c))
        row = " | ".join(_code(text) for text in cells)
        cves = f" {_code(_cves_cell(c, index))} |" if index is not None else ""
        lines.append(f"| {row} | {format_size(c.size_delta, signed=True)} | {_code(what)} |{cves}")
    lines.append("")
    if index is not None:
        for c in changes:
            shown = index.pop((c.source, c.source_package), None) if c.new and c.kind != "moved" else None
            lines += _markdown_changelog(shown) if shown else []
    return [*lines, "</details>", ""]


def _fenced(text: str) -> list[str]:
    """A fenced code block holding ``text`` literally: the fence is longer than any run of backticks in it
    (GFM 4.5), so no changelog line can close it, and nothing inside is read as Markdown or HTML."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), fence]


def _markdown_changelog(changelog: SourceChangelog) -> list[str]:
    """A nested ``<details>`` with the entries of one source package; lock values in the summary are
    HTML-escaped (a ``<summary>`` line is raw HTML, where code spans do not apply)."""
    versions = f"{changelog.old_version} -> {changelog.new_version}" if changelog.old_version else changelog.new_version
    what = {"read": ", ".join(changelog.cves) or "no CVE", "unknown": "unknown", "unreadable": "unreadable"}
    head = html.escape(f"{changelog.source_package} {versions}: {what[changelog.status]}")
    lines = [f"<details><summary>changelog of {head}</summary>", ""]
    if changelog.status == "read":
        body = "\n\n".join(f"{changelog.source_package} {e.header}\n{e.text}" for e in changelog.entries)
    else:
        body = f"{changelog.status}: {changelog.note}"
    return [*lines, *_fenced(body), "", "</details>", ""]


def _markdown_security(diff: LockDiff) -> list[str]:
    """The "security fixes" section: its summary, then one row per fixing source package, most urgent first,
    and the changelogs that could not be read."""
    lines = ["### Security fixes", "", security_summary(diff), ""]
    fixes = diff.security_fixes()
    if fixes:
        lines += [
            "| source | source package | version | urgency | security suite | CVEs |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for fix in fixes:
            cells = (fix.source, fix.source_package, fix.new_version, fix.urgency, fix.security_suite)
            row = " | ".join(_code(text) for text in cells)
            lines.append(f"| {row} | {_code(', '.join(fix.cves) or 'none named')} |")
        lines.append("")
    for missing in (c for c in diff.changelogs or () if c.status != "read"):
        lines.append(f"- {_code(missing.source_package)}: changelog {missing.status} ({_code(missing.note)})")
    return [*lines, ""] if lines[-1] else lines


def render_markdown(diff: LockDiff, *, title: str = "minimirror lock diff") -> str:
    """A pull-request comment: the summary line first, then (with changelogs) the security fixes, the chain of
    trust, the flagged changes, and one ``<details>`` table per kind (flagged kinds open)."""
    lines = [f"**{title}**: {summary_line(diff)}", ""]
    if diff.changelogs is not None:
        lines += _markdown_security(diff)
    flagged = diff.flagged()
    if flagged or diff.flagged_trust():
        lines += ["> [!WARNING]", "> Flagged changes: confirm them with the upstream before merging.", ""]
    if diff.trust:
        lines += _markdown_trust(diff)
    if diff.new_source_packages:
        listed = ", ".join(f"`{package}` ({source})" for source, package in diff.new_source_packages)
        lines += [f"New source packages: {listed}", ""]
    index = diff.changelog_index() if diff.changelogs is not None else None
    for kind in KINDS:
        changes = diff.of_kind(kind)
        if changes:
            lines += _markdown_kind(kind, changes, index)
    if diff.source_packages:
        lines += _markdown_sources(diff.source_packages)
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_sources(changes: Sequence[SourcePackageChange]) -> list[str]:
    opened = " open" if any(c.flagged for c in changes) else ""
    lines = [
        f"<details{opened}><summary><b>{len(changes)} source package changes</b></summary>",
        "",
        "| | source | source package | version | change | size |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for change in sorted(changes, key=lambda c: (not c.flagged, c.source, c.name, c.version)):
        mark = "⚠️" if change.flagged else ""
        size = format_size(change.size_delta, signed=True)
        row = f"| {mark} | {_code(change.source)} | {_code(change.name)} | {_code(change.version)} | {change.kind} |"
        lines.append(f"{row} {size} |")
    return [*lines, "", "</details>", ""]


# --- json -----------------------------------------------------------------------------------------------


def _trust_json(change: TrustChange) -> dict[str, Any]:
    return {
        "source": change.source,
        "field": change.field,
        "old": list(change.old),
        "new": list(change.new),
        "flagged": change.flagged,
    }


def _package_json(change: PackageChange, index: dict[tuple[str, str], SourceChangelog] | None) -> dict[str, Any]:
    row = change.row()
    for side, package in (("old", change.old), ("new", change.new)):
        row[f"{side}_sha256"] = package.sha256 if package else None
        row[f"{side}_filename"] = package.filename if package else None
        row[f"{side}_component"] = package.component if package else None
    if index is not None:
        found = index.get((change.source, change.source_package)) if change.new and change.kind != "moved" else None
        row.update(_changelog_json(found))
    return row


def _changelog_json(found: SourceChangelog | None) -> dict[str, Any]:
    """``changelog`` (entries) and ``cves`` (sorted): ``None`` when there is nothing to explain or it could not be
    read, with ``changelog_status`` and ``changelog_note`` saying which."""
    read = found is not None and found.status == "read"
    return {
        "changelog": [
            {"version": e.version, "distribution": e.distribution, "urgency": e.urgency, "text": e.text}
            for e in found.entries
        ]
        if found is not None and read
        else None,
        "cves": list(found.cves) if found is not None and read else None,
        "urgency": (found.urgency or None) if found is not None else None,
        "security_suite": (found.security_suite or None) if found is not None else None,
        "changelog_status": found.status if found is not None else None,
        "changelog_note": (found.note or None) if found is not None else None,
    }


def _security_json(diff: LockDiff) -> dict[str, Any]:
    return {
        "summary": security_summary(diff),
        "cves": sorted({cve for fix in diff.security_fixes() for cve in fix.cves}),
        "fixes": [
            {
                "source": fix.source,
                "source_package": fix.source_package,
                "old_version": fix.old_version or None,
                "new_version": fix.new_version,
                "urgency": fix.urgency or None,
                "security_suite": fix.security_suite or None,
                "cves": list(fix.cves),
            }
            for fix in diff.security_fixes()
        ],
    }


def diff_json(diff: LockDiff) -> dict[str, Any]:
    """The diff as plain JSON values (what :func:`render_json` writes)."""
    counts = dict(diff.counts())
    index = diff.changelog_index() if diff.changelogs is not None else None
    result: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "empty": diff.is_empty,
        "summary": {**counts, "trust": len(diff.trust), "flagged": len(diff.flagged()), "size_delta": diff.size_delta},
        "old_sources": list(diff.old_sources),
        "new_sources": list(diff.new_sources),
        "new_source_packages": [{"source": s, "source_package": p} for s, p in diff.new_source_packages],
        "trust": [_trust_json(change) for change in diff.trust],
        "packages": [_package_json(change, index) for change in diff.packages],
        "source_packages": [
            {
                "source": c.source,
                "name": c.name,
                "version": c.version,
                "kind": c.kind,
                "size_delta": c.size_delta,
                "flagged": c.flagged,
            }
            for c in diff.source_packages
        ],
    }
    if diff.changelogs is not None:
        result["security"] = _security_json(diff)
    return result


def render_json(diff: LockDiff) -> str:
    """Stable JSON: sorted keys, two-space indentation, UTF-8 kept, a final newline."""
    return json.dumps(diff_json(diff), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render(diff: LockDiff, fmt: Format) -> RenderableType | str:
    """The diff in ``fmt``: a rich renderable for ``table``, text for the others."""
    if fmt == "table":
        return render_table(diff)
    return render_markdown(diff) if fmt == "markdown" else render_json(diff)


# --- plot -----------------------------------------------------------------------------------------------


def plot_size_deltas(diff: LockDiff, *, limit: int = 30) -> Figure:
    """A horizontal bar chart of the ``limit`` largest size changes (by absolute delta, ties by name), flagged
    ones in red. Uses matplotlib's object API only (no pyplot state), so it works under the Agg backend."""
    from matplotlib.figure import Figure

    changes = sorted(diff.packages, key=lambda c: (-abs(c.size_delta), c.sort_key))[:limit]
    figure = Figure(figsize=(8, max(2.0, 0.3 * len(changes) + 1)), layout="constrained")
    axes = figure.add_subplot()
    labels = [f"{c.name}/{c.architecture} ({c.kind})" for c in reversed(changes)]
    deltas = [c.size_delta / 1024 for c in reversed(changes)]
    colors = ["tab:red" if c.flagged else "tab:green" if c.size_delta <= 0 else "tab:blue" for c in reversed(changes)]
    axes.barh(range(len(changes)), deltas, color=colors)
    axes.set_yticks(range(len(changes)), labels)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("size change (KiB)")
    axes.set_title(f"size change per package: {format_size(diff.size_delta, signed=True)} in total")
    return figure


def size_plot_png(diff: LockDiff, *, limit: int = 30) -> bytes:
    """:func:`plot_size_deltas` as PNG bytes (no timestamp or software metadata, so the same diff gives the
    same bytes), for a notebook to display whatever its matplotlib backend."""
    import io

    buffer = io.BytesIO()
    plot_size_deltas(diff, limit=limit).savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    return buffer.getvalue()
