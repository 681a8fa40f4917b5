"""Phased updates: the ``Phased-Update-Percentage`` field of an index stanza (Ubuntu's ``-updates`` suites).

Launchpad writes the field into the ``Packages`` index (it is an archive field, not in the ``.deb``) while an
update rolls out: ``N`` means that N % of machines take it. apt (>= 2.3, apt_preferences(5) "Phased Updates")
decides per machine from a hash of the source package, its version and ``/etc/machine-id``, and only for a
package that is already installed: a fresh install, and an explicit ``apt-get install NAME``, take the phased
version whatever the percentage. A mirror therefore carries the phased update (it is what ``apt-get install``
on an empty system installs, and what the lock resolves) and keeps the field in its published stanza, so that
each node's apt phases its own upgrades exactly as against the upstream archive.
"""

from __future__ import annotations

import logging

from minimirror.package import Package

__all__ = ["FIELD", "phased_update_percentage"]

log = logging.getLogger(__name__)

FIELD = "Phased-Update-Percentage"


def phased_update_percentage(package: Package, *, where: str) -> int | None:
    """The stanza's percentage, 0 to 100; None when the field is absent.

    A value that is not a whole number from 0 to 100 is ignored with a warning, as apt ignores it (it then treats
    the update as fully phased): refusing the whole index over a roll-out hint would help no one."""
    value = package.field(FIELD)
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and int(text) <= 100:
        return int(text)
    log.warning("%s: %s has %s %r, not 0 to 100; ignored, as apt ignores it", where, package, FIELD, value)
    return None
