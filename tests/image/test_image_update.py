"""Layers that survive updates: a 120-package mirror, then the same mirror with one package added and with one
upgraded. The images share every layer whose files did not change (same blob digest), at most 10 % of the
image's bytes are new, and a push of the updated image to Debian's ``docker-registry`` on loopback uploads only
the new blobs (the registry's blob existence check answers for the rest).
"""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_image import Mirror, blob, busybox_bytes, decompress, load_layout, mirror_packages
from test_registry import Registry, running_registry

from minimirror.cli import main
from minimirror.image.layers import LayerEntry
from minimirror.image.registry import push_layout
from minimirror.image.split import POOL_BUCKETS, split_repository
from minimirror.upstream.download import make_client

pytestmark = pytest.mark.slow

_PACKAGES = 120


def _payload(name: str, version: str) -> bytes:
    """Incompressible bytes of a size between 8 and 160 KiB, fixed by name and version (as .debs vary)."""
    rng = random.Random(f"{name}={version}")
    return rng.randbytes(rng.randint(8 << 10, 160 << 10))


def _package(index: int, version: str = "1.0") -> P:
    name = f"pkg{index:03d}"
    return P(name, version, files={f"usr/share/{name}/data": _payload(name, version)})


def _mirror_packages(*, add: bool = False, upgrade: bool = False) -> list[P]:
    packages = [_package(i, "2.0" if upgrade and i == 42 else "1.0") for i in range(_PACKAGES)]
    return [*mirror_packages(busybox_bytes()), *packages, *([_package(_PACKAGES)] if add else [])]


@pytest.fixture
def mirrors(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, tmp_path: Path
) -> list[FixtureArchive]:
    return [
        fixture_archive_factory({"main": _mirror_packages()}),
        fixture_archive_factory({"main": _mirror_packages(add=True)}),
        fixture_archive_factory({"main": _mirror_packages(upgrade=True)}),
    ]


def _image(mirror: Mirror, archive: FixtureArchive, out: Path) -> Path:
    assert main(mirror.image_args(out, repo=archive.root)) == 0
    return out


def _layers(layout: Path) -> list[tuple[str, int, frozenset[tuple[str, str]]]]:
    """Each layer's digest, size, and what it holds (path, kind or content hash)."""
    _, manifest, _ = load_layout(layout)
    found = []
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(decompress(blob(layout, layer["digest"]))), mode="r:") as archive:
            held = frozenset((m.name, f"{m.type!r}{m.size}{m.linkname}") for m in archive.getmembers())
        found.append((layer["digest"], layer["size"], held))
    return found


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as started:
        yield started


def test_an_update_shares_every_unchanged_layer_and_changes_little(
    mirrors: list[FixtureArchive], http_server: ServerFactory, tmp_path: Path, registry: Registry
) -> None:
    old_archive, added_archive, upgraded_archive = mirrors
    mirror = Mirror(tmp_path / "work", old_archive, http_server(old_archive.root).url)
    old = _image(mirror, old_archive, tmp_path / "old")
    old_layers = _layers(old)
    assert 2 + POOL_BUCKETS // 2 <= len(old_layers) <= 2 + POOL_BUCKETS  # 120 source dirs fill most buckets
    old_digests = {digest for digest, _, _ in old_layers}
    with make_client(timeout=60.0) as client:
        first = push_layout(old, f"{registry.host}/mirror:1", client)
        assert first.skipped == 0
        for name, archive in (("added", added_archive), ("upgraded", upgraded_archive)):
            new = _image(mirror, archive, tmp_path / name)
            new_layers = _layers(new)
            old_by_content = {held: digest for digest, _, held in old_layers}
            for digest, _, held in new_layers:
                if held in old_by_content:
                    assert digest == old_by_content[held], f"{name}: a layer with the same files changed digest"
            changed = [(digest, size) for digest, size, _ in new_layers if digest not in old_digests]
            # the metadata layer, and the one pool bucket of the package's directory
            assert len(changed) == 2, f"{name}: {len(changed)} layers changed"
            total = sum(size for _, size, _ in new_layers)
            share = sum(size for _, size in changed) / total
            assert share <= 0.10, f"{name}: {share:.1%} of the image's bytes changed"
            pushed = push_layout(new, f"{registry.host}/mirror:{name}", client)
            # only the changed layers and the new config went up; the registry had the rest (HEAD said so)
            assert (pushed.uploaded, pushed.skipped) == (len(changed) + 1, len(new_layers) - len(changed))
        index, _, _ = load_layout(tmp_path / "upgraded")
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        served = client.get(f"http://{registry.host}/v2/mirror/manifests/upgraded", headers=accept)
        assert served.content == blob(tmp_path / "upgraded", index["manifests"][0]["digest"])  # the built bytes


def test_the_split_is_bounded_and_keeps_every_path_once() -> None:
    files = [LayerEntry(f"srv/p/pool/main/x/src{i}/f.deb", "file", data=b"") for i in range(4000)]
    entries = [
        LayerEntry.directory("srv"),
        LayerEntry.directory("srv/p/dists/empty"),
        LayerEntry.file("srv/p/dists/stable/Release", b"r"),
        *files,
    ]
    split = split_repository(entries)
    assert len(split.pool) == POOL_BUCKETS  # 4000 directories fill every bucket, and no more layers
    held = [e.path for layer in split.layers for e in layer if e.kind != "dir"]
    assert sorted(held) == sorted(e.path for e in entries if e.kind != "dir")  # each file once
    assert {e.path for e in split.metadata} >= {"srv/p/dists/empty", "srv/p/dists/stable/Release"}
    counts = [sum(e.kind == "file" for e in layer) for layer in split.pool]
    mean = 4000 / POOL_BUCKETS  # balanced: the hash spreads directories evenly (here within +-25 %)
    assert 0.75 * mean <= min(counts) and max(counts) <= 1.25 * mean, counts
    assert split_repository(list(reversed(entries))) == split  # order of the scan does not matter
