"""``notebooks/build.ipynb`` under papermill with non-default parameters: a fixture archive locked by
``minimirror lock`` over loopback, signed with a passphrase-protected key given only through the environment.

``pytest --nbval-lax notebooks/`` runs the same notebook with its defaults (the bundled offline example).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill  # type: ignore[import-untyped]
import pytest
from fixtures import REPO_ROOT, SigningKey, generate_signing_key
from fixtures import FixturePackage as P
from fixtures.plugin import ArchiveFactory, ServerFactory

from minimirror.cli import main

NOTEBOOK = REPO_ROOT / "notebooks" / "build.ipynb"
PASSPHRASE = "correct horse battery staple 7f3a"


def _text(output: nbformat.NotebookNode) -> str:
    data = output.get("data", {})
    return str(output.get("text", "")) + str(data.get("text/plain", ""))


def _outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def test_committed_notebook_has_a_parameters_cell_no_secret_parameter_and_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = [line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line]
    assert names == ["locks", "out", "image", "cache"]
    assert all(
        not cell.get("outputs") and not cell.get("execution_count")
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    assert "PASSPHRASE" not in tagged[0].source.upper()


@pytest.fixture
def protected_key(tmp_path: Path) -> Iterator[SigningKey]:
    key = generate_signing_key(tmp_path, name="Release Key", passphrase=PASSPHRASE)
    yield key
    key.close()


@pytest.mark.slow
def test_build_notebook_signs_from_the_environment_and_proves_reproducibility(
    tmp_path: Path,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    protected_key: SigningKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packages = [
        P("busybox-static", "1:1.36.1-9", files={"bin/busybox": Path("/bin/busybox").read_bytes()}, source="busybox"),
        P("web", "1.0", depends="libssl", files={"usr/share/doc/web/README": b"web\n"}),
        P("libssl", "3.0.2"),
    ]
    archive = fixture_archive_factory({"main": packages})
    assert archive.key is not None
    source = tmp_path / "sources" / "fixture" / "stable"
    source.mkdir(parents=True)
    key_url = f"file://{archive.key.public_key_asc_path}"
    (source / "source.txt").write_text(f"{http_server(archive.root).url} {key_url} {archive.dist} main\n")
    (source / "packages.txt").write_text("web\nbusybox-static\n")
    locks, cache = tmp_path / "locks", tmp_path / "cache"
    lock_args = ["lock", "--sources", str(tmp_path / "sources"), "--locks", str(locks), "--cache", str(cache)]
    assert main(lock_args) == 0

    secret = tmp_path / "release.key"
    secret.write_text(protected_key.secret_key_armored)
    monkeypatch.setenv("RELEASE_SIGN_KEY_PATH", str(secret))
    monkeypatch.setenv("RELEASE_SIGN_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    out, image, executed_path = tmp_path / "public", tmp_path / "image", tmp_path / "build.ipynb"
    parameters = {"locks": str(locks), "out": str(out), "image": str(image), "cache": str(cache)}
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed_path), parameters=parameters, cwd=str(NOTEBOOK.parent),
        kernel_name="python3", progress_bar=False,
    )  # fmt: skip

    executed = nbformat.read(executed_path, as_version=4)  # type: ignore[no-untyped-call]
    outputs = _outputs(executed)
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(_text(o) for o in outputs)
    assert f"signed by {protected_key.fingerprint}" in text and "UNSIGNED" not in text
    assert "fetched 3 files, reused 0 from the cache" in text  # over loopback, then warm for the rebuilds
    assert "IDENTICAL: " in text and "DIFFERENT" not in text
    assert "same manifest digest as the first build: True" in text
    assert PASSPHRASE not in executed_path.read_text()  # nor anywhere papermill wrote the parameters
    # the kept tree is real and signed by the key: minimirror verify checks signatures, hashes and pool files
    public = tmp_path / "release.pub.gpg"
    public.write_bytes(protected_key.public_key_path.read_bytes())
    assert main(["verify", str(out), "--keyring", str(public)]) == 0
    assert (out / "fixture" / "dists" / "stable" / "InRelease").is_file() and (image / "index.json").is_file()
