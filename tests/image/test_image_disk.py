"""Issue 15.5 for the image stage: ``minimirror image`` onto a real tmpfs that fills or is read-only.

One ``error:`` line naming the path and the space the step needs (about the repository's size, twice for a
docker-archive, which is staged as a layout and a tar); the staging folder beside the output is removed and the
previous image stays byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.tmpfs import Tmpfs
from test_disk_full import assert_one_clean_error, run
from test_image import EPOCH, Mirror, busybox_bytes, mirror_packages


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


@pytest.fixture(autouse=True)
def _fixed_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


def leftovers(disk: Path) -> list[str]:
    """What is on the disk besides the lock file beside the image."""
    return sorted(p.name for p in disk.iterdir() if not p.name.endswith("minimirror-lock"))


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_image_on_a_full_disk_keeps_the_previous_image(mirror: Mirror, tmpfs: Tmpfs, fmt: str) -> None:
    out = tmpfs.path / "image"
    assert run(mirror.image_args(out, "--format", fmt))[0] == 0
    before = _digest(out)
    tmpfs.leave_room(extra_bytes=256 << 10)  # the layers of a second image do not fit beside the first

    message = assert_one_clean_error(*run(mirror.image_args(out, "--format", fmt)), "no space left on device")
    assert str(tmpfs.path) in message and "this step needs" in message
    assert _digest(out) == before
    assert leftovers(tmpfs.path) == ["image", "image.spdx.json"]  # the previous image and its SBOM, nothing staged


def test_image_onto_a_read_only_disk(mirror: Mirror, tmpfs: Tmpfs) -> None:
    tmpfs.remount("ro")
    assert_one_clean_error(*run(mirror.image_args(tmpfs.path / "image.tar")), str(tmpfs.path), "read-only file system")


def _digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files)).hexdigest()
