"""``notebooks/audit.ipynb`` run by papermill with non-default parameters (the key-rotation fixture pair).

``pytest --nbval-lax notebooks/`` runs the same notebook with its default parameters.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from fixtures import REPO_ROOT
from fixtures_locks import HERE, KEY_EVIL

NOTEBOOK = REPO_ROOT / "notebooks" / "audit.ipynb"


def _outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def _text(output: nbformat.NotebookNode) -> str:
    data = output.get("data", {})
    return str(output.get("text", "")) + str(data.get("text/plain", "")) + str(data.get("text/markdown", ""))


def test_committed_notebook_has_a_parameters_cell_and_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and "old = " in tagged[0].source and "new = " in tagged[0].source
    assert all(
        not cell.get("outputs") and not cell.get("execution_count")
        for cell in notebook.cells
        if cell.cell_type == "code"
    )


@pytest.mark.slow
def test_audit_notebook_shows_the_rebuilt_package_and_the_key_change(tmp_path: Path) -> None:
    out = tmp_path / "audit.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"old": str(HERE / "keyrotation" / "old"), "new": str(HERE / "keyrotation" / "new")},
        cwd=str(NOTEBOOK.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    executed = nbformat.read(out, as_version=4)
    outputs = _outputs(executed)
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(_text(o) for o in outputs)
    assert "1 REBUILT (same version, new hash), 2 trust changes (1 flagged), +512 B" in text
    assert f"mirror/main signed-by: +{KEY_EVIL}" in text  # the flagged trust change, printed
    assert "libc6" in text and "rebuilt" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    # changelogs on, offline by default: the rebuilt package's .deb is in no cache, which the security section says
    assert "security fixes: none in 1 changelog; 1 changelog unknown" in text
    injected = [cell for cell in executed.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    assert len(injected) == 1 and "keyrotation" in injected[0].source
