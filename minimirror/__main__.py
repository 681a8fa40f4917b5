"""``python -m minimirror``: the same entry point as the ``minimirror`` command."""

from minimirror.cli import entry

entry()
