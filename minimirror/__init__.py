"""minimirror: pinned, reviewable, reproducible offline APT mirrors.

The library behind the ``minimirror`` command: read a sources tree, lock it, diff locks, build the mirror.
The CLI and the notebooks call the same functions; nothing here prints.

This module is the public API: the names in ``__all__`` are what notebooks, the docs and a user's own code
import (``from minimirror import diff_locks, render_markdown``). Everything below the stage folders is internal
and free to move. The stages, lowest first (a stage imports only from lower ones and from the shared modules
at the top, ``errors``, ``atomic``, ``filelock`` and ``package``; ``tests/test_layout.py`` holds the rule):

    upstream/  reading an archive: download, Release, gpgv, Packages/Sources indices, the cache
    sources/   the sources tree: source.txt/packages.txt, settings, the query language, YAML and host imports
    lock/      relations, resolution, the lockfile, the lock stage
    audit/     diff of two lock sets, its renderings, why, where locks come from
    publish/   fetch, the published tree, signing, verify, serve, the build clock
    image/     OCI layers and images, the server layer, base images, registries, engines, SBOM
    pipeline/  whole runs across stages: build, the build notebook's report, the bundled example
    cli/       the command line on top

Names are resolved lazily (PEP 562), so ``import minimirror`` stays as cheap as the CLI's start-up needs.
Four stage folders share their name with a verb (``lock``, ``publish``, ``image``, ``sources``), so the entry
functions are exported as ``lock_tree``, ``publish_tree``, ``verify_tree`` and ``make_image``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from minimirror.errors import MinimirrorError
from minimirror.package import Package

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    # sources
    "Source": ("minimirror.sources.tree", "Source"),
    "load_sources": ("minimirror.sources.tree", "load_sources"),
    "check_sources": ("minimirror.sources.tree", "check_sources"),
    "Suite": ("minimirror.sources.tree", "Suite"),
    "normalized_inputs": ("minimirror.sources.tree", "normalized_inputs"),
    "write_source": ("minimirror.sources.tree", "write_source"),
    # lock
    "LockConfig": ("minimirror.lock.stage", "LockConfig"),
    "LockReport": ("minimirror.lock.stage", "LockReport"),
    "lock_tree": ("minimirror.lock.stage", "lock"),
    "check_locks": ("minimirror.lock.stage", "check_locks"),
    "search": ("minimirror.lock.stage", "search"),
    "Lock": ("minimirror.lock.lockfile", "Lock"),
    "LockedPackage": ("minimirror.lock.lockfile", "LockedPackage"),
    "read_lock": ("minimirror.lock.lockfile", "read_lock"),
    "read_locks": ("minimirror.lock.lockfile", "read_locks"),
    # audit
    "read_lock_ref": ("minimirror.audit.refs", "read_lock_ref"),
    "LockDiff": ("minimirror.audit.diff", "LockDiff"),
    "diff_locks": ("minimirror.audit.diff", "diff_locks"),
    "added_chains": ("minimirror.audit.diff", "added_chains"),
    "why": ("minimirror.audit.why", "why"),
    "format_chains": ("minimirror.audit.why", "format_chains"),
    "ChangelogConfig": ("minimirror.audit.explain", "ChangelogConfig"),
    "explain": ("minimirror.audit.explain", "explain"),
    "SourceChangelog": ("minimirror.audit.changelog", "SourceChangelog"),
    "security_summary": ("minimirror.audit.render", "security_summary"),
    "render": ("minimirror.audit.render", "render"),
    "render_table": ("minimirror.audit.render", "render_table"),
    "render_markdown": ("minimirror.audit.render", "render_markdown"),
    "render_json": ("minimirror.audit.render", "render_json"),
    "summary_line": ("minimirror.audit.render", "summary_line"),
    "format_size": ("minimirror.audit.render", "format_size"),
    "size_plot_png": ("minimirror.audit.render", "size_plot_png"),
    # publish
    "FetchConfig": ("minimirror.publish.fetch", "FetchConfig"),
    "fetch": ("minimirror.publish.fetch", "fetch"),
    "PublishConfig": ("minimirror.publish.repository", "PublishConfig"),
    "publish_tree": ("minimirror.publish.repository", "publish"),
    "verify_tree": ("minimirror.publish.verify", "verify_tree"),
    # image
    "ImageConfig": ("minimirror.image.pack", "ImageConfig"),
    "make_image": ("minimirror.image.pack", "make_image"),
    # pipeline
    "BuildConfig": ("minimirror.pipeline.build", "BuildConfig"),
    "BuildOutcome": ("minimirror.pipeline.build", "BuildOutcome"),
    "build": ("minimirror.pipeline.build", "build"),
    "prepare_build": ("minimirror.pipeline.report", "prepare_build"),
    "summarize_tree": ("minimirror.pipeline.report", "summarize_tree"),
    "rebuild_twice": ("minimirror.pipeline.report", "rebuild_twice"),
}

__all__ = [
    "BuildConfig",
    "BuildOutcome",
    "ChangelogConfig",
    "FetchConfig",
    "ImageConfig",
    "Lock",
    "LockConfig",
    "LockDiff",
    "LockReport",
    "LockedPackage",
    "MinimirrorError",
    "Package",
    "PublishConfig",
    "Source",
    "SourceChangelog",
    "Suite",
    "__version__",
    "added_chains",
    "build",
    "check_locks",
    "check_sources",
    "diff_locks",
    "explain",
    "fetch",
    "format_chains",
    "format_size",
    "load_sources",
    "lock_tree",
    "make_image",
    "normalized_inputs",
    "prepare_build",
    "publish_tree",
    "read_lock",
    "read_lock_ref",
    "read_locks",
    "rebuild_twice",
    "render",
    "render_json",
    "render_markdown",
    "render_table",
    "search",
    "security_summary",
    "size_plot_png",
    "summarize_tree",
    "summary_line",
    "verify_tree",
    "why",
    "write_source",
]


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'minimirror' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from minimirror.audit.changelog import SourceChangelog
    from minimirror.audit.diff import LockDiff, added_chains, diff_locks
    from minimirror.audit.explain import ChangelogConfig, explain
    from minimirror.audit.refs import read_lock_ref
    from minimirror.audit.render import (
        format_size,
        render,
        render_json,
        render_markdown,
        render_table,
        security_summary,
        size_plot_png,
        summary_line,
    )
    from minimirror.audit.why import format_chains, why
    from minimirror.image.pack import ImageConfig, make_image
    from minimirror.lock.lockfile import Lock, LockedPackage, read_lock, read_locks
    from minimirror.lock.stage import LockConfig, LockReport, check_locks, search
    from minimirror.lock.stage import lock as lock_tree
    from minimirror.pipeline.build import BuildConfig, BuildOutcome, build
    from minimirror.pipeline.report import prepare_build, rebuild_twice, summarize_tree
    from minimirror.publish.fetch import FetchConfig, fetch
    from minimirror.publish.repository import PublishConfig
    from minimirror.publish.repository import publish as publish_tree
    from minimirror.publish.verify import verify_tree
    from minimirror.sources.tree import Source, Suite, check_sources, load_sources, normalized_inputs, write_source
