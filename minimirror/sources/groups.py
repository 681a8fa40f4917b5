"""Sources used together: the groups that ``resolve-with`` links, each resolved as one apt universe.

A machine that uses the mirror has all of a group's lines in its ``sources.list`` at once, so apt resolves
across all of them; minimirror does the same. ``resolve-with`` links two sources in both directions, and
transitively: the groups are the connected components of those links. A source that names no other and is
named by none is a group of its own and resolves alone, as before groups existed.

The order of a group's members is the order of their lines on a node (``minimirror apt-sources`` writes them
so): by source id. It matters where apt has to break a tie by the order its cache met names in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from minimirror.sources.tree import Source, normalized_inputs

__all__ = ["SourceGroup", "group_inputs", "group_of", "source_groups"]


@dataclass(frozen=True, slots=True)
class SourceGroup:
    """Sources resolved together, sorted by source id."""

    members: tuple[Source, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(source.source_id for source in self.members)

    @property
    def linked(self) -> bool:
        """Whether the group has more than one source (a source alone resolves as it always did)."""
        return len(self.members) > 1

    def __str__(self) -> str:
        return " + ".join(self.ids)


def source_groups(sources: Iterable[Source]) -> tuple[SourceGroup, ...]:
    """Every source in exactly one group, groups sorted by their first member. Links to sources that are not
    in ``sources`` are ignored here (``sources check`` reports them)."""
    by_id = {source.source_id: source for source in sources}
    parent = {source_id: source_id for source_id in by_id}

    def root(source_id: str) -> str:
        while parent[source_id] != source_id:
            parent[source_id] = parent[parent[source_id]]
            source_id = parent[source_id]
        return source_id

    for source in by_id.values():
        for other in source.settings.resolve_with:
            if other in by_id:
                a, b = sorted((root(source.source_id), root(other)))
                parent[b] = a
    members: dict[str, list[Source]] = {}
    for source_id in sorted(by_id):
        members.setdefault(root(source_id), []).append(by_id[source_id])
    return tuple(SourceGroup(tuple(group)) for _, group in sorted(members.items()))


def group_of(groups: Sequence[SourceGroup], source_id: str) -> SourceGroup:
    """The group holding ``source_id``; KeyError if none does."""
    for group in groups:
        if source_id in group.ids:
            return group
    raise KeyError(source_id)


def group_inputs(group: SourceGroup, source: Source) -> str:
    """What the lock of ``source`` depends on: its own inputs alone, or, in a group, every member's (a new
    query in one source can change what another locks), so ``lock --check`` sees a change anywhere in it."""
    if not group.linked:
        return normalized_inputs(source)
    document = {"group": {member.source_id: normalized_inputs(member) for member in group.members}}
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
