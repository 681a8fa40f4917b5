"""``minimirror fetch``: download the pool files the locks name into the cache (see :mod:`minimirror.publish.fetch`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from minimirror.cli._common import cache_option, err_console, invocation, locks_option, out_console

if TYPE_CHECKING:
    from minimirror.publish.fetch import FetchProgress, FetchReport

__all__ = ["fetch", "progress_bar", "run_fetch", "summary"]

# minimirror.publish.fetch's DEFAULT_JOBS and DEFAULT_PER_HOST (see why there), repeated rather than imported:
# importing that module here would load httpx for every command's start-up; tests/publish/test_fetch.py checks
# that the two agree.
JOBS, PER_HOST = 16, 16


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def summary(report: FetchReport) -> str:
    """``downloaded N files / X MiB, reused M`` (and how many damaged blobs were replaced)."""
    noun = "file" if report.downloaded == 1 else "files"
    text = f"downloaded {report.downloaded} {noun} / {_mib(report.bytes_downloaded)}, reused {report.reused}"
    return text + (f" (replaced {len(report.corrupt)} damaged)" if report.corrupt else "")


@contextmanager
def progress_bar(*, show: bool) -> Iterator[FetchProgress | None]:
    """A rich progress bar on stderr when it is a terminal (and not -q); otherwise no callback at all."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("fetch {task.fields[files]}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("fetch", total=None, files="")

        def update(files_done: int, bytes_done: int, files_total: int, bytes_total: int) -> None:
            bar.update(task, completed=bytes_done, total=bytes_total, files=f"{files_done}/{files_total}")

        yield update


@click.command("fetch")
@locks_option
@cache_option
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=JOBS,
    show_default=True,
    help="Parallel downloads in all.",
)
@click.option(
    "--per-host",
    type=click.IntRange(min=1, max=64),
    default=PER_HOST,
    show_default=True,
    help="Parallel downloads from one host at most.",
)
@click.option(
    "--fallback-url",
    "fallback_urls",
    multiple=True,
    metavar="URL",
    help="An archive base URL (e.g. a snapshot archive) tried, in order, for files gone from their source.",
)
def fetch(locks_dir: Path, cache_dir: Path, jobs: int, per_host: int, fallback_urls: tuple[str, ...]) -> None:
    """Download every pool file the locks name into the cache, verified by size and sha256.

    Files already cached are re-hashed and reused; a damaged one is downloaded again. Cut downloads resume.
    """
    run_fetch(locks_dir, cache_dir, jobs=jobs, per_host=per_host, fallback_urls=fallback_urls)


def run_fetch(
    locks_dir: Path,
    cache_dir: Path,
    *,
    jobs: int = JOBS,
    per_host: int = PER_HOST,
    fallback_urls: tuple[str, ...] = (),
) -> None:
    """Fetch with a progress bar on a terminal and a one-line summary; shared by fetch, publish and build."""
    from minimirror.publish import fetch as fetching

    config = fetching.FetchConfig(
        locks_dir=locks_dir, cache_dir=cache_dir, jobs=jobs, per_host=per_host, fallback_urls=fallback_urls
    )
    quiet = invocation().quiet
    with progress_bar(show=err_console.is_terminal and not quiet) as progress:
        report = fetching.fetch(config, progress=progress)
    if not quiet:
        out_console.print(summary(report), markup=False)
