"""The package map stays true: a stage imports only lower stages and the shared modules at the top.

Every ``import`` of every module is read from its syntax tree, the ones inside functions and under
``TYPE_CHECKING`` too (a lazy import is still a dependency). The order is the one ``minimirror/__init__.py``
draws; ``audit`` and ``publish`` are siblings on one rank and may not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fixtures import REPO_ROOT

PACKAGE = REPO_ROOT / "minimirror"
SHARED = 0
RANKS = {"upstream": 1, "sources": 2, "lock": 3, "audit": 4, "publish": 4, "image": 5, "pipeline": 6, "cli": 7}
# what a stage or shared module may take from ``minimirror`` itself: the version, never the lazy public API
ROOT_NAMES = {"__version__"}


def stage_of(module: str) -> str:
    """``minimirror.lock.resolve`` -> ``lock``; a shared top-level module is its own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rank_of(stage: str) -> int:
    return RANKS.get(stage, SHARED)


def imports_of(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, imported module, names taken from it) for every import in the file."""
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "(relative)", ()))
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO_ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        if importer in {"minimirror", "minimirror.__main__"}:
            continue  # the public API and ``python -m`` sit above every stage
        here = stage_of(importer)
        for line, imported, names in imports_of(path):
            where = f"{path.relative_to(REPO_ROOT)}:{line}"
            if imported == "(relative)":
                problems.append(f"{where}: relative import; name the module in full")
                continue
            if imported == "minimirror":
                if set(names) - ROOT_NAMES:
                    problems.append(f"{where}: imports the public API {sorted(set(names) - ROOT_NAMES)}")
                continue
            if not imported.startswith("minimirror."):
                continue
            there = stage_of(imported)
            if there == here or (rank_of(there) == SHARED and imported.count(".") == 1):
                continue  # its own stage, or a shared module
            if rank_of(there) >= rank_of(here):
                label = here if here in RANKS else "shared"
                problems.append(f"{where}: {importer} ({label}) imports {imported} ({there})")
    return problems


def test_stages_import_only_lower_stages() -> None:
    assert violations() == []


def test_every_stage_folder_has_a_rank() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(RANKS), "a new stage folder needs its rank here and in minimirror/__init__.py's map"


@pytest.mark.parametrize(
    ("importer", "source", "expected"),
    [
        ("upstream/x.py", "from minimirror.lock.lockfile import Lock\n", "imports minimirror.lock.lockfile (lock)"),
        ("audit/x.py", "def f():\n    from minimirror.publish import fetch\n", "(audit) imports minimirror.publish"),
        ("errors_like.py", "from minimirror.sources.query import parse_query\n", "(shared) imports"),
        ("lock/x.py", "from minimirror import lock_tree\n", "imports the public API ['lock_tree']"),
    ],
)
def test_the_rule_catches_an_upward_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, importer: str, source: str, expected: str
) -> None:
    """The check itself can fail: the same walk over a small fake package finds each kind of wrong arrow."""
    fake_root = tmp_path / "repo"
    target = fake_root / "minimirror" / importer
    target.parent.mkdir(parents=True)
    target.write_text(source)
    monkeypatch.setattr(f"{__name__}.REPO_ROOT", fake_root)
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake_root / "minimirror")
    found = violations()
    assert len(found) == 1 and expected in found[0], found


def test_public_api_names_resolve() -> None:
    """Every name in ``__all__`` loads, and the lazy map and ``__all__`` list the same names."""
    import minimirror

    assert sorted(minimirror.__all__) == minimirror.__all__
    assert set(minimirror.__all__) == {"MinimirrorError", "Package", "__version__", *minimirror._EXPORTS}
    for name in minimirror.__all__:
        assert getattr(minimirror, name) is not None, name


def _python_in_docs() -> list[tuple[str, str]]:
    """(where, code) for every notebook code cell and every ```python block of the docs and README."""
    import json
    import re

    found = []
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        for number, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            if cell["cell_type"] == "code":
                found.append((f"{notebook.name} cell {number}", "".join(cell["source"])))
    for page in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for match in re.finditer(r"```python\n(.*?)```", page.read_text(), re.DOTALL):
            found.append((page.name, match.group(1)))
    return found


def test_notebooks_and_docs_import_only_the_public_api() -> None:
    import minimirror

    blocks = _python_in_docs()
    assert any("notebook" not in where for where, _ in blocks), "no docs example found: the scan is broken"
    for where, code in blocks:
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minimirror"):
                assert node.module == "minimirror", f"{where}: imports {node.module}, an internal module"
                missing = {alias.name for alias in node.names} - set(minimirror.__all__)
                assert not missing, f"{where}: {sorted(missing)} not in minimirror.__all__"
            elif isinstance(node, ast.Import):
                internal = [a.name for a in node.names if a.name.startswith("minimirror.")]
                assert not internal, f"{where}: imports {internal}, internal modules"


def test_test_modules_have_unique_names() -> None:
    """The stage folders have no __init__.py, so pytest imports each test module by its basename: two with one
    name in two folders would stop the whole collection."""
    names = [path.name for path in (REPO_ROOT / "tests").rglob("test_*.py")]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []
