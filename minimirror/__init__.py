"""minimirror: pinned, reviewable, reproducible offline APT mirrors.

The library behind the ``minimirror`` command: read a sources tree, lock it, diff locks, build the mirror.
The CLI and the notebooks call the same functions; nothing here prints.
"""

from minimirror.errors import MinimirrorError
from minimirror.package import Package

__version__ = "0.1.0"

__all__ = ["MinimirrorError", "Package", "__version__"]
