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

from minimirror.errors import LockError
from minimirror.lock.lockfile import Lock
from minimirror.lock.locktable import LockTable, as_table

__all__ = ["Chain", "format_chains", "why"]

Chain = tuple[str, ...]
"""``("query: <query>", "<name>/<arch>", ..., "<package>/<arch>")``: from a query line to the package."""

QUERY_PREFIX = "query: "


class _Graph:
    """Locks as a graph of ``name/arch`` nodes (all locked versions of a name and architecture merged); several
    locks of one group as one graph of ``<source id>:<name>/<arch>`` nodes.

    Only the nodes are listed up front; a node's parents (the nodes whose dependency it satisfies) and query lines
    are read from its packages' columns when the walk first reaches it, so a question about one package does not
    pay for the 63,420 of a whole-suite lock."""

    __slots__ = ("_grouped", "_parents", "_queries", "_rows")

    def __init__(self, tables: Sequence[LockTable]) -> None:
        self._grouped = len(tables) > 1
        self._rows: dict[str, list[tuple[LockTable, int]]] = {}
        for table in tables:
            columns = table.columns
            for number, (name, arch) in enumerate(zip(columns["name"], columns["architecture"], strict=True)):
                self._rows.setdefault(_node(table, f"{name}/{arch}", grouped=self._grouped), []).append((table, number))
        self._parents: dict[str, tuple[str, ...]] = {}
        self._queries: dict[str, tuple[str, ...]] = {}

    def parents(self, node: str) -> tuple[str, ...]:
        """The nodes of the graph whose dependency ``node`` satisfies, sorted."""
        found = self._parents.get(node)
        if found is None:
            named = {
                _node(table, parent, grouped=self._grouped)
                for table, number in self._rows.get(node, ())
                for parent in table.columns["required_by"][number]
            }
            found = self._parents[node] = tuple(sorted(named & self._rows.keys()))
        return found

    def queries(self, node: str) -> tuple[str, ...]:
        """The query lines that selected ``node``, sorted."""
        found = self._queries.get(node)
        if found is None:
            lines = {query for table, number in self._rows.get(node, ()) for query in table.columns["queries"][number]}
            found = self._queries[node] = tuple(sorted(lines))
        return found


def _node(lock: LockTable, node: str, *, grouped: bool) -> str:
    """A ``required-by`` entry as a node of the graph: qualified by its source in a group's graph."""
    return f"{lock.source.id}:{node}" if grouped and ":" not in node else node


def _graphs(locks: Sequence[LockTable]) -> list[list[LockTable]]:
    """The locks to walk together: each group's locks as one, every other lock alone."""
    grouped: dict[tuple[str, ...], list[LockTable]] = {}
    alone: list[list[LockTable]] = []
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
        roots = [node for node in level if graph.queries(node)]
        if roots:
            return sorted(roots), closer
        following: dict[str, None] = {}  # ordered set
        for node in level:
            for parent in graph.parents(node):
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
    starts = sorted((query, root) for root in roots for query in graph.queries(root))
    for query, root in starts:
        for path in _paths(root, closer, limit - len(chains)):
            chains.append((QUERY_PREFIX + query, *path))
            if len(chains) >= limit:
                return chains
    return chains


def _not_found(locks: Sequence[LockTable], name: str, architecture: str | None) -> LockError:
    names = sorted({package for lock in locks for package in lock.columns["name"]})
    if architecture is not None and name in names:
        have = sorted({a for lock in locks for n, a in _names_and_architectures(lock) if n == name})
        return LockError(f"{name}/{architecture} is not in any lock ({name} is locked for: {', '.join(have)})")
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return LockError(f"{name} is not in any lock{hint}")


def _names_and_architectures(lock: LockTable) -> Iterator[tuple[str, str]]:
    return zip(lock.columns["name"], lock.columns["architecture"], strict=True)


def why(
    locks: Sequence[Lock | LockTable], name: str, architecture: str | None = None, *, limit: int = 50
) -> list[Chain]:
    """Every distinct shortest chain from a query line to the package ``name`` (of ``architecture`` when
    given), sorted; at most ``limit`` of them. Raises :class:`LockError` when no lock has the package.
    The locks may be :class:`~minimirror.lock.lockfile.Lock` values or the parsed-lock cache's
    :class:`~minimirror.lock.locktable.LockTable`."""
    tables = [as_table(lock) for lock in locks]
    chains: set[Chain] = set()
    found = False
    for together in _graphs(tables):
        grouped = len(together) > 1
        targets = sorted(
            {
                _node(lock, f"{n}/{a}", grouped=grouped)
                for lock in together
                for n, a in _names_and_architectures(lock)
                if n == name and (architecture is None or a == architecture)
            }
        )
        found = found or bool(targets)
        graph = _Graph(together) if targets else None
        for target in targets:
            assert graph is not None
            chains.update(_chains_to(graph, target, limit))
    if not found:
        raise _not_found(tables, name, architecture)
    return sorted(chains)[:limit]


def format_chains(chains: Sequence[Chain]) -> str:
    """One chain a line, steps joined by ``->``; a word when there is none."""
    if not chains:
        return "no query leads to it (a lock that passed the reader always has one)"
    return "\n".join(" -> ".join(chain) for chain in chains)
