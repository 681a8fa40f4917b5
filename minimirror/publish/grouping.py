"""What a published dist says about how it was resolved: its group, its pin, its expected gaps.

A dist of a source resolved together with others (``resolve-with``) is only installable beside them, so the
published tree records, in each dist's **signed** Release (apt ignores fields it does not know):

    Minimirror-Group: debian/dists/bookworm docker/dists/bookworm     the dists of the group, relative to OUT
    Minimirror-Pin-Priority: 990                                      apt's Pin-Priority, when not 500
    Minimirror-Missing:                                               dependencies left out (missing = "skip")
     needs-nothing-here/amd64 not-anywhere

``verify`` checks dependency closure across the dists of a group and reports a listed gap as expected rather
than as a failure; ``apt-sources`` gives a node the group's lines and the pins. Being in the signed Release,
none of it can be changed without the signing key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from minimirror.errors import UsageError
from minimirror.lock.lockfile import Lock
from minimirror.package import DEFAULT_PIN_PRIORITY

__all__ = ["GROUP_FIELD", "MISSING_FIELD", "PIN_FIELD", "DistGrouping", "dist_path", "release_fields"]

GROUP_FIELD = "Minimirror-Group"
PIN_FIELD = "Minimirror-Pin-Priority"
MISSING_FIELD = "Minimirror-Missing"


def dist_path(lock: Lock) -> str:
    """Where the lock's dist is published, relative to OUT: ``<prefix>/dists/<dist>``."""
    return f"{lock.source.id.split('/')[0]}/dists/{lock.source.published_dist}"


def release_fields(lock: Lock, locks: Sequence[Lock]) -> dict[str, str]:
    """The ``Minimirror-*`` fields of the lock's Release; none for a source alone, unpinned, without gaps.
    Every source of a group must be published together: a dist whose group is incomplete could not install."""
    fields: dict[str, str] = {}
    if lock.source.group:
        by_id = {other.source.id: other for other in locks}
        absent = [source_id for source_id in lock.source.group if source_id not in by_id]
        if absent:
            raise UsageError(
                f"{lock.source.id} is resolved together with {', '.join(absent)}, whose lock is not being "
                "published; publish every lock of the group (they live in the same --locks folder)"
            )
        fields[GROUP_FIELD] = " ".join(sorted(dist_path(by_id[source_id]) for source_id in lock.source.group))
    if lock.source.priority != DEFAULT_PIN_PRIORITY:
        fields[PIN_FIELD] = str(lock.source.priority)
    gaps = sorted(f"{package.node} {missing}" for package in lock.packages for missing in package.missing)
    if gaps:
        fields[MISSING_FIELD] = "".join(f"\n {gap}" for gap in gaps)
    return fields


@dataclass(frozen=True, slots=True)
class DistGrouping:
    """A published dist's ``Minimirror-*`` fields, read back."""

    group: tuple[str, ...] = ()
    """The group's dist paths relative to OUT (this dist's included); empty for a dist resolved alone."""
    pin_priority: int = DEFAULT_PIN_PRIORITY
    missing: frozenset[tuple[str, str]] = frozenset()
    """(``name/arch``, dependency text) of each dependency the lock left out on purpose."""

    @classmethod
    def read(cls, fields: Mapping[str, str]) -> DistGrouping:
        """From a ReleaseFile's ``minimirror`` fields (field names as apt treats them: case-insensitive)."""
        lowered = {key.lower(): value for key, value in fields.items()}
        pin = lowered.get(PIN_FIELD.lower(), "").strip()
        gaps = [line.strip().split(" ", 1) for line in lowered.get(MISSING_FIELD.lower(), "").splitlines()]
        return cls(
            group=tuple(lowered.get(GROUP_FIELD.lower(), "").split()),
            pin_priority=int(pin) if pin.lstrip("-").isdigit() else DEFAULT_PIN_PRIORITY,
            missing=frozenset((gap[0], gap[1]) for gap in gaps if len(gap) == 2),
        )
