"""The binary package as an index describes it: one stanza of a ``Packages`` file (Debian RepositoryFormat).

A :class:`Package` is a value: its identity is (name, version, architecture), and ``fields`` holds every
field of the stanza with the names as the index writes them. ``fields`` may be a lazy mapping (the index
parser keeps the raw stanza and parses it on first access), so code reads fields through :meth:`field`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_PIN_PRIORITY", "Package"]

DEFAULT_PIN_PRIORITY = 500
"""apt's priority for a package version from an archive no preference names (apt_preferences(5)): the one
default of the index, the settings, the locks and the published Releases."""


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    architecture: str
    fields: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def field(self, name: str) -> str | None:
        """The value of a field, looked up case-insensitively as deb822 requires; ``None`` when absent."""
        lookup = getattr(self.fields, "lookup", None)
        if lookup is not None:  # the index's lazy stanza answers any case without parsing everything
            found: str | None = lookup(name)
            return found
        value = self.fields.get(name)
        if value is not None:
            return value
        folded = name.casefold()
        for key, candidate in self.fields.items():
            if key.casefold() == folded:
                return candidate
        return None

    @property
    def source_name(self) -> str:
        """The source package: ``Source: name (version)`` names it, else it is the binary's own name."""
        source = self.field("Source")
        return source.split(" ", 1)[0] if source else self.name

    @property
    def source_version(self) -> str:
        """The source version: the one in parentheses of ``Source:`` when given, else the binary's."""
        source = self.field("Source")
        if source and "(" in source:
            return source[source.index("(") + 1 : source.rindex(")")].strip()
        return self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.architecture)

    def __str__(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}"
