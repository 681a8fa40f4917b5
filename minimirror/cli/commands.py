"""The top-level commands and the modules that define them, imported only when a command runs (or ``--help``
lists them): ``minimirror lock`` does not pay for the imports of ``image`` or ``publish``."""

from __future__ import annotations

import importlib

import click

# command name -> (module, attribute); --help lists them by name
_WHERE: dict[str, tuple[str, str]] = {
    "apt-sources": ("minimirror.cli.aptsources", "apt_sources"),
    "init": ("minimirror.cli.init", "init"),
    "sources": ("minimirror.cli.sources", "sources"),
    "search": ("minimirror.cli.lock", "search"),
    "lock": ("minimirror.cli.lock", "lock"),
    "why": ("minimirror.cli.lock", "why"),
    "diff": ("minimirror.cli.diff", "diff"),
    "fetch": ("minimirror.cli.fetch", "fetch"),
    "publish": ("minimirror.cli.publish", "publish"),
    "key": ("minimirror.cli.publish", "key"),
    "build": ("minimirror.cli.publish", "build"),
    "verify": ("minimirror.cli.verify", "verify"),
    "serve": ("minimirror.cli.verify", "serve"),
    "image": ("minimirror.cli.image", "image"),
    "kube": ("minimirror.cli.kube", "kube"),
    "cache": ("minimirror.cli.cache", "cache"),
}

NAMES: tuple[str, ...] = tuple(sorted(_WHERE))


def load(name: str) -> click.Command | None:
    """The command called ``name``, its module imported now; None if there is none."""
    where = _WHERE.get(name)
    if where is None:
        return None
    command = getattr(importlib.import_module(where[0]), where[1])
    assert isinstance(command, click.Command), where
    return command
