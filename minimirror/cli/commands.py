"""The list of top-level commands, in the order ``--help`` shows them."""

from __future__ import annotations

import click

from minimirror.cli.diff import diff
from minimirror.cli.fetch import fetch
from minimirror.cli.image import image
from minimirror.cli.init import init
from minimirror.cli.lock import lock, search, why
from minimirror.cli.publish import build, key, publish
from minimirror.cli.sources import sources
from minimirror.cli.verify import serve, verify

ALL: list[click.Command] = []
ALL.append(init)
ALL.append(sources)
ALL.append(search)
ALL.append(lock)
ALL.append(why)
ALL.append(diff)
ALL.append(fetch)
ALL.extend([publish, key, build])
ALL.extend([verify, serve])
ALL.append(image)
