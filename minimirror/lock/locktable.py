"""A lock whose packages are kept column by column, for the tools that read a whole lock but look at few packages.

``minimirror diff`` compares two locks of 63,420 packages each to find the few that changed, and ``minimirror why``
walks up from one package; neither needs a :class:`~minimirror.lock.lockfile.LockedPackage` for every table. A
:class:`LockTable` is a lock (schema 1, ``docs/lockfile.md``) as the strict reader returned it, split in two:

- ``head``: the :class:`~minimirror.lock.lockfile.Lock` without its packages (``[source]``, ``[upstream]``, the
  companions, ``[[left-out]]``, ``[[source-package]]``), which is small;
- ``columns``: the packages as one tuple per field of ``LockedPackage``, in ``Lock.packages`` order, each
  column made (from the packages, or unmarshalled from the parsed-lock cache, :mod:`minimirror.lock.lockcache`)
  the first time it is asked for.

:meth:`LockTable.lock` gives the whole :class:`Lock` back, equal to what the strict reader returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import Any

from minimirror.lock.lockfile import Lock, LockedPackage, SourcePin

__all__ = ["PACKAGE_COLUMNS", "LockTable", "PackageColumns", "as_table"]

PACKAGE_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in dataclasses.fields(LockedPackage))
"""The columns, in ``LockedPackage``'s field order (a row is the arguments of its constructor)."""

Row = tuple[Any, ...]


class PackageColumns:
    """The packages of one lock, column by column; a column is loaded (by ``load``) on first use and kept."""

    __slots__ = ("_columns", "_load", "count")

    def __init__(self, count: int, load: Callable[[str], tuple[Any, ...]]) -> None:
        self.count = count
        self._load = load
        self._columns: dict[str, tuple[Any, ...]] = {}

    @classmethod
    def of(cls, packages: Sequence[LockedPackage]) -> PackageColumns:
        return cls(len(packages), lambda name: tuple(map(attrgetter(name), packages)))

    @classmethod
    def loaded(cls, columns: dict[str, tuple[Any, ...]]) -> PackageColumns:
        """Columns already made (by the column reader, :mod:`minimirror.lock.lockcolumns`): every one of them."""
        if set(columns) != set(PACKAGE_COLUMNS):
            raise ValueError(f"columns {sorted(columns)} are not {sorted(PACKAGE_COLUMNS)}")
        count = len(columns["name"])

        def missing(name: str) -> tuple[Any, ...]:
            raise KeyError(name)

        made = cls(count, missing)
        for name in PACKAGE_COLUMNS:
            made[name] = columns[name]
        return made

    def __setitem__(self, name: str, column: tuple[Any, ...]) -> None:
        if len(column) != self.count:
            raise ValueError(f"column {name} has {len(column)} values for {self.count} packages")
        self._columns[name] = column

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, name: str) -> tuple[Any, ...]:
        column = self._columns.get(name)
        if column is None:
            if name not in PACKAGE_COLUMNS:
                raise KeyError(name)
            column = self._columns[name] = self._load(name)
            if len(column) != self.count:
                raise ValueError(f"column {name} has {len(column)} values for {self.count} packages")
        return column

    def rows(self) -> Iterator[Row]:
        """Each package as a tuple of its fields (hashable; equal rows are equal packages)."""
        return zip(*(self[name] for name in PACKAGE_COLUMNS), strict=True)

    def package(self, number: int) -> LockedPackage:
        return LockedPackage(*(self[name][number] for name in PACKAGE_COLUMNS))


class LockTable:
    """One lock: its ``head`` (every table but the packages) and its packages' ``columns``."""

    __slots__ = ("_lock", "columns", "head")

    def __init__(self, head: Lock, columns: PackageColumns, *, lock: Lock | None = None) -> None:
        if head.packages:
            raise ValueError("a LockTable's head holds no packages (they are its columns)")
        self.head = head
        self.columns = columns
        self._lock = lock

    @classmethod
    def of(cls, lock: Lock) -> LockTable:
        return cls(dataclasses.replace(lock, packages=()), PackageColumns.of(lock.packages), lock=lock)

    @property
    def source(self) -> SourcePin:
        return self.head.source

    def lock(self) -> Lock:
        """The whole lock (its packages made from the columns the first time)."""
        if self._lock is None:
            packages = tuple(LockedPackage(*row) for row in self.columns.rows())
            self._lock = dataclasses.replace(self.head, packages=packages)
        return self._lock


def as_table(lock: Lock | LockTable) -> LockTable:
    """A lock as a table (a table as it is), so that functions accept either."""
    return lock if isinstance(lock, LockTable) else LockTable.of(lock)
