"""SOURCE_DATE_EPOCH (reproducible-builds.org/specs/source-date-epoch): the one clock of a build.

Every timestamp minimirror writes (Release ``Date``, signatures, file and layer mtimes, the image's
``created``) comes from here: ``$SOURCE_DATE_EPOCH`` when set, else the newest upstream ``Date`` in the locks,
so the same locks give the same bytes on any day.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from minimirror.errors import UsageError
from minimirror.lock.lockfile import Lock

__all__ = ["environment_epoch", "newest_upstream_date", "source_date_epoch"]


def environment_epoch(environ: Mapping[str, str] | None = None) -> int | None:
    """``$SOURCE_DATE_EPOCH`` as an integer, or None when unset or empty."""
    value = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise UsageError(f"$SOURCE_DATE_EPOCH={value!r}: expected a non-negative integer (seconds since 1970)")
    return int(value)


def newest_upstream_date(locks: Sequence[Lock]) -> int:
    if not locks:
        raise UsageError("no locks: run `minimirror lock` first")
    return max(int(pin.date.timestamp()) for lock in locks for pin in lock.upstream_pins())


def source_date_epoch(locks: Sequence[Lock], environ: Mapping[str, str] | None = None) -> int:
    """``$SOURCE_DATE_EPOCH`` when set, else the newest upstream ``Date`` among the locks."""
    from_environment = environment_epoch(environ)
    return from_environment if from_environment is not None else newest_upstream_date(locks)
