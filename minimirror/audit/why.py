"""Why is a package in the lock? The chains from a query line to it, read from the locks' ``required-by``.

Every locked package records the query lines that selected it (``queries``) and the locked packages whose
dependency it satisfies (``required-by``, as ``name/architecture``). :func:`why` walks ``required-by`` upward
from the package, breadth first, and stops at the first level where some package carries a query: the chains
it returns are all the distinct shortest ones (as ``aptitude why`` shows the shortest reason), e.g.::

    ("query: git", "git/amd64", "libcurl3-gnutls/amd64", "libnghttp2-14/amd64")

Each (lock, architecture) of the package is answered on its own, so an ``arm64`` copy pulled in by another
query shows its own chains. The locks of sources resolved together (a group, ``[source] group``) are one graph:
a chain may cross from one source to another, and every step then names its source
(``docker/bookworm:dockerish/amd64``), as the locks' ``required-by`` do for another source's package. The walk
visits each package at most once (cycles are harmless) and the number of chains is capped (``limit``), since
diamond-shaped dependencies can multiply them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from minimirror.errors import LockError
from minimirror.lock.lockfile import Lock

__all__ = ["Chain", "format_chains", "why"]

Chain = tuple[str, ...]
"""``("query: <query>", "<name>/<arch>", ..., "<package>/<arch>")``: from a query line to the package."""

QUERY_PREFIX = "query: "


@dataclass(frozen=True, slots=True)
class _Graph:
    """One lock as a graph of ``name/arch`` nodes (all locked versions of a name and architecture merged)."""

    parents: Mapping[str, tuple[str, ...]]  # node -> the nodes whose dependency it satisfies
    queries: Mapping[str, tuple[str, ...]]  # node -> the query lines that selected it

    @classmethod
    def of(cls, locks: Sequence[Lock]) -> _Graph:
        """One lock's graph; several locks of one group as one graph of ``<source id>:<name>/<arch>`` nodes."""
        parents: dict[str, set[str]] = {}
        queries: dict[str, set[str]] = {}
        for lock in locks:
            for package in lock.packages:
                node = _node(lock, package.node, grouped=len(locks) > 1)
                parents.setdefault(node, set()).update(
                    _node(lock, parent, grouped=len(locks) > 1) for parent in package.required_by
                )
                queries.setdefault(node, set()).update(package.queries)
        return cls(
            parents={node: tuple(sorted(p & parents.keys())) for node, p in parents.items()},
            queries={node: tuple(sorted(q)) for node, q in queries.items()},
        )


def _node(lock: Lock, node: str, *, grouped: bool) -> str:
    """A ``required-by`` entry as a node of the graph: qualified by its source in a group's graph."""
    return f"{lock.source.id}:{node}" if grouped and ":" not in node else node


def _graphs(locks: Sequence[Lock]) -> list[list[Lock]]:
    """The locks to walk together: each group's locks as one, every other lock alone."""
    grouped: dict[tuple[str, ...], list[Lock]] = {}
    alone: list[list[Lock]] = []
    for lock in locks:
        if lock.source.group:
            grouped.setdefault(lock.source.group, []).append(lock)
        else:
            alone.append([lock])
    return [*alone, *grouped.values()]


def _shortest_levels(graph: _Graph, target: str) -> tuple[list[str], dict[str, list[str]]]:
    """Breadth-first upward from ``target``: the nodes with queries at the first level that has any, and for
    each node reached, the nodes one step closer to ``target`` on a shortest path."""
    closer: dict[str, list[str]] = {target: []}
    level = [target]
    while level:
        roots = [node for node in level if graph.queries.get(node)]
        if roots:
            return sorted(roots), closer
        following: dict[str, None] = {}  # ordered set
        for node in level:
            for parent in graph.parents.get(node, ()):
                if parent not in closer:
                    closer[parent] = []
                    following[parent] = None
                if parent in following:
                    closer[parent].append(node)
        level = list(following)
    return [], closer


def _paths(node: str, closer: Mapping[str, list[str]], limit: int) -> Iterator[tuple[str, ...]]:
    """Paths from ``node`` down to the target (the node with no closer node), in sorted order, at most ``limit``."""
    steps = sorted(closer[node])
    if not steps:
        yield (node,)
        return
    produced = 0
    for step in steps:
        for rest in _paths(step, closer, limit - produced):
            yield (node, *rest)
            produced += 1
            if produced >= limit:
                return


def _chains_to(graph: _Graph, target: str, limit: int) -> list[Chain]:
    roots, closer = _shortest_levels(graph, target)
    chains: list[Chain] = []
    starts = sorted((query, root) for root in roots for query in graph.queries[root])
    for query, root in starts:
        for path in _paths(root, closer, limit - len(chains)):
            chains.append((QUERY_PREFIX + query, *path))
            if len(chains) >= limit:
                return chains
    return chains


def _not_found(locks: Sequence[Lock], name: str, architecture: str | None) -> LockError:
    names = sorted({package.name for lock in locks for package in lock.packages})
    if architecture is not None and name in names:
        have = sorted({p.architecture for lock in locks for p in lock.find(name)})
        return LockError(f"{name}/{architecture} is not in any lock ({name} is locked for: {', '.join(have)})")
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return LockError(f"{name} is not in any lock{hint}")


def why(locks: Sequence[Lock], name: str, architecture: str | None = None, *, limit: int = 50) -> list[Chain]:
    """Every distinct shortest chain from a query line to the package ``name`` (of ``architecture`` when
    given), sorted; at most ``limit`` of them. Raises :class:`LockError` when no lock has the package."""
    chains: set[Chain] = set()
    found = False
    for together in _graphs(locks):
        grouped = len(together) > 1
        targets = sorted(
            {_node(lock, p.node, grouped=grouped) for lock in together for p in lock.find(name, architecture)}
        )
        found = found or bool(targets)
        graph = _Graph.of(together) if targets else None
        for target in targets:
            assert graph is not None
            chains.update(_chains_to(graph, target, limit))
    if not found:
        raise _not_found(locks, name, architecture)
    return sorted(chains)[:limit]


def format_chains(chains: Sequence[Chain]) -> str:
    """One chain a line, steps joined by ``->``; a word when there is none."""
    if not chains:
        return "no query leads to it (a lock that passed the reader always has one)"
    return "\n".join(" -> ".join(chain) for chain in chains)
