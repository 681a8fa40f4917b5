"""``minimirror image``: a valid OCI layout and docker-archive, normalized layers, byte-reproducible builds.

Offline: a signed fixture archive that locks ``busybox-static`` (built from the host's real static busybox
when installed, else from a minimal static ELF), locked with the real CLI, served from the archive tree.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import DEFAULT_DATE, FixtureArchive
from fixtures.plugin import ArchiveFactory, ServerFactory

from minimirror.cli import main
from minimirror.image.httpd import ENTRYPOINT, SUPERVISOR, BusyboxError, extract_busybox, supervisor_script
from minimirror.image.layers import LayerEntry, LayerError, scan_tree, write_layer
from minimirror.image.split import bucket_of
from minimirror.upstream.cache import Cache

EPOCH = int(DEFAULT_DATE.timestamp())
HOST_BUSYBOX = Path("/bin/busybox")


def static_elf() -> bytes:
    """A 64-bit little-endian ELF header with no program headers: "static" for the check, never run."""
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    header[0x10:0x14] = (2).to_bytes(2, "little") + (62).to_bytes(2, "little")  # ET_EXEC, x86-64
    return bytes(header)


def busybox_bytes() -> bytes:
    """The host's static busybox (``apt-get install busybox-static``) if present, else :func:`static_elf`."""
    return HOST_BUSYBOX.read_bytes() if HOST_BUSYBOX.is_file() else static_elf()


def mirror_packages(busybox: bytes) -> list[P]:
    return [
        P("busybox-static", "1:1.36.1-9", files={"bin/busybox": busybox}, source="busybox (1:1.36.1-9)"),
        P("web", "1.0", depends="libssl", files={"usr/share/doc/web/README": b"web\n"}),
        P("libssl", "3.0.2"),
    ]


class Mirror:
    """A locked fixture archive with busybox-static in the cache, and the CLI arguments to image it."""

    def __init__(self, root: Path, archive: FixtureArchive, url: str) -> None:
        self.root, self.archive = root, archive
        source = root / "sources" / "fixture" / "stable"
        source.mkdir(parents=True)
        key_url = f"file://{archive.key.public_key_asc_path}"  # type: ignore[union-attr]
        (source / "source.txt").write_text(f"{url} {key_url} {archive.dist} main\n")
        (source / "packages.txt").write_text("web\nbusybox-static\n")
        self.locks, self.cache = root / "locks", root / "cache"
        args = ["--sources", str(root / "sources"), "--locks", str(self.locks), "--cache", str(self.cache)]
        assert main(["lock", *args]) == 0
        self.cache_deb("busybox-static")

    def cache_deb(self, name: str) -> str:
        return Cache(self.cache).put_blob(self.archive.deb(name).read_bytes())

    def image_args(self, out: Path, *extra: str, repo: Path | None = None) -> list[str]:
        dirs = ["--locks", str(self.locks), "--cache", str(self.cache)]
        return ["image", "--repo", str(repo or self.archive.root), "--image", str(out), *dirs, *extra]


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


@pytest.fixture
def no_sde(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def decompress(data: bytes) -> bytes:
    """A layer blob's tar: gunzipped, un-zstd'ed, or as it is (an uncompressed layer)."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def layer_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(decompress(data)), mode="r:") as archive:
        return archive.getmembers()


def layer_files(layout: Path, digests: list[str]) -> dict[str, bytes]:
    """Every regular file of the given layers, by path (a later layer's file wins, as in overlayfs)."""
    files: dict[str, bytes] = {}
    for digest in digests:
        with tarfile.open(fileobj=io.BytesIO(decompress(blob(layout, digest))), mode="r:") as archive:
            for member in archive.getmembers():
                if member.isfile():
                    files[member.name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    return files


def repository_files(layout: Path) -> dict[str, bytes]:
    """The files of every layer after the server's: the pool buckets and the metadata layer."""
    _, manifest, _ = load_layout(layout)
    return layer_files(layout, [layer["digest"] for layer in manifest["layers"][1:]])


def load_layout(layout: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads(blob(layout, index["manifests"][0]["digest"]))
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    return index, manifest, config


# --- the OCI layout ------------------------------------------------------------------------------------


def test_oci_layout_is_valid_and_every_digest_matches(mirror: Mirror, tmp_path: Path, no_sde: None) -> None:
    out = tmp_path / "image"
    assert main(mirror.image_args(out, "--tag", "localhost/mirror:1")) == 0
    assert json.loads((out / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index, manifest, config = load_layout(out)
    assert index["schemaVersion"] == 2 and len(index["manifests"]) == 1
    entry = index["manifests"][0]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "localhost/mirror:1"}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    for descriptor in [entry, manifest["config"], *manifest["layers"]]:
        data = blob(out, descriptor["digest"])
        assert (sha256(data), len(data)) == (descriptor["digest"], descriptor["size"])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    layers = manifest["layers"]
    assert [layer["mediaType"] for layer in layers] == ["application/vnd.oci.image.layer.v1.tar"] * len(layers)
    pool_dirs = {p.parent.relative_to(mirror.archive.root) for p in (mirror.archive.root / "pool").rglob("*.deb")}
    assert len(layers) == 2 + len({bucket_of(f"srv/{d}") for d in pool_dirs})  # server, pool buckets, metadata
    diff_ids = [sha256(decompress(blob(out, layer["digest"]))) for layer in layers]
    assert diff_ids == [layer["digest"] for layer in layers]  # uncompressed: the blob is the tar
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert [h["comment"] for h in config["history"]] == ["server", *["pool"] * (len(layers) - 2), "repository"]
    assert all(h["created"] == "2024-06-01T00:00:00Z" for h in config["history"])
    stored = {p.name for p in (out / "blobs" / "sha256").iterdir()}
    assert stored == {d["digest"][7:] for d in [entry, manifest["config"], *manifest["layers"]]}  # nothing else
    # canonical JSON: what is stored is exactly the sorted, space-free dump
    raw = blob(out, manifest["config"]["digest"])
    assert raw == json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def test_config_runs_busybox_httpd_as_nobody_with_labels(mirror: Mirror, tmp_path: Path, no_sde: None) -> None:
    assert main(mirror.image_args(tmp_path / "image")) == 0
    _, _, config = load_layout(tmp_path / "image")
    assert (config["created"], config["architecture"], config["os"]) == ("2024-06-01T00:00:00Z", "amd64", "linux")
    run = config["config"]
    assert run["User"] == "65534:65534" and run["WorkingDir"] == "/srv"
    assert run["ExposedPorts"] == {"8080/tcp": {}}
    # busybox's sh runs the server script (what it does: test_httpd_serve.py), with the image's own paths
    assert run["Entrypoint"] == list(ENTRYPOINT) == ["/bin/busybox", "sh", "-c", SUPERVISOR, "minimirror-httpd"]
    assert supervisor_script(busybox="/bin/busybox", home="/srv", conf="/etc/httpd.conf") == SUPERVISOR
    labels = run["Labels"]
    locks_hash = hashlib.sha256()
    for lock_file in sorted(mirror.locks.glob("*/*.lock")):
        source_id = f"{lock_file.parent.name}/{lock_file.stem}"
        locks_hash.update(f"{source_id}\0{hashlib.sha256(lock_file.read_bytes()).hexdigest()}\n".encode())
    assert labels["io.minimirror.locks.sha256"] == locks_hash.hexdigest()
    assert labels["org.opencontainers.image.created"] == "2024-06-01T00:00:00Z"
    assert labels["org.opencontainers.image.title"] == "APT mirror of fixture/stable"
    assert labels["org.opencontainers.image.source"].startswith("http://127.0.0.1:")
    assert labels["org.opencontainers.image.version"]


def test_layers_are_sorted_owned_by_root_and_dated_source_date_epoch(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert main(mirror.image_args(tmp_path / "image")) == 0
    _, manifest, config = load_layout(tmp_path / "image")
    assert config["created"] == "2023-11-14T22:13:20Z"
    server, *repo = (blob(tmp_path / "image", layer["digest"]) for layer in manifest["layers"])
    for data in (server, *repo):
        members = layer_members(data)
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: n.split("/"))
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 1_700_000_000)}
        assert all(m.mode == (0o755 if m.isdir() else 0o644) for m in members if m.name != "bin/busybox")
    by_name = {m.name: m for m in layer_members(server)}
    assert sorted(by_name) == ["bin", "bin/busybox", "etc", "etc/group", "etc/httpd.conf", "etc/passwd"]
    assert by_name["bin/busybox"].mode == 0o755 and by_name["bin/busybox"].size == len(busybox_bytes())
    repo_names = {m.name for data in repo for m in layer_members(data)}
    assert {"srv", "srv/dists/stable/InRelease", "srv/sbom.spdx.json", "srv/healthz"} <= repo_names
    assert f"srv/{mirror.archive.deb('web').relative_to(mirror.archive.root)}" in repo_names


def test_server_files_nobody_and_mime_types(mirror: Mirror, tmp_path: Path, no_sde: None) -> None:
    assert main(mirror.image_args(tmp_path / "image")) == 0
    _, manifest, _ = load_layout(tmp_path / "image")
    files = layer_files(tmp_path / "image", [manifest["layers"][0]["digest"]])
    assert files["bin/busybox"] == busybox_bytes()
    assert b"nobody:x:65534:65534:" in files["etc/passwd"] and b"nogroup:x:65534:" in files["etc/group"]
    assert b".deb:application/vnd.debian.binary-package\n" in files["etc/httpd.conf"]


def test_sbom_is_next_to_the_image_and_inside_it(mirror: Mirror, tmp_path: Path, no_sde: None) -> None:
    out = tmp_path / "image"
    assert main(mirror.image_args(out)) == 0
    beside = (tmp_path / "image.spdx.json").read_bytes()
    _, manifest, _ = load_layout(out)
    assert layer_files(out, [manifest["layers"][-1]["digest"]])["srv/sbom.spdx.json"] == beside  # the metadata
    names = {p["name"] for p in json.loads(beside)["packages"]}
    assert names == {"busybox-static", "web", "libssl"}


# --- reproducibility -----------------------------------------------------------------------------------

_BUILD = textwrap.dedent(
    """
    import os, shutil, sys
    from pathlib import Path
    os.umask(int(sys.argv[1], 8))
    repo = Path(sys.argv[3]) / "repo"
    shutil.copytree(sys.argv[2], repo, copy_function=shutil.copyfile)  # fresh modes and mtimes
    from minimirror.cli import main
    argv = sys.argv[4:]
    argv[argv.index("--repo") + 1] = str(repo)
    sys.exit(main(argv))
    """
)


def build_in_child(mirror: Mirror, work: Path, umask: str, tz: str, *extra: str) -> Path:
    work.mkdir()
    out = work / "image"
    env = {**os.environ, "TZ": tz, "SOURCE_DATE_EPOCH": str(EPOCH)}
    argv = [sys.executable, "-c", _BUILD, umask, str(mirror.archive.root), str(work), *mirror.image_args(out, *extra)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_builds_with_other_umask_and_tz_are_byte_identical(mirror: Mirror, tmp_path: Path) -> None:
    first = build_in_child(mirror, tmp_path / "a", "022", "UTC")
    second = build_in_child(mirror, tmp_path / "b", "077", "Asia/Kolkata")
    assert tree_bytes(first) == tree_bytes(second)
    assert (tmp_path / "a" / "image.spdx.json").read_bytes() == (tmp_path / "b" / "image.spdx.json").read_bytes()
    first_tar = build_in_child(mirror, tmp_path / "c", "002", "UTC", "--format", "docker-archive")
    second_tar = build_in_child(mirror, tmp_path / "d", "027", "America/New_York", "--format", "docker-archive")
    assert first_tar.read_bytes() == second_tar.read_bytes()


@pytest.mark.parametrize(
    ("compression", "media_type", "magic"),
    [("gzip", "tar+gzip", b"\x1f\x8b\x08\x00\0\0\0\0"), ("zstd", "tar+zstd", b"\x28\xb5\x2f\xfd")],
)
def test_compressed_layers_are_reproducible_and_unpack_to_the_same_tars(
    mirror: Mirror, tmp_path: Path, compression: str, media_type: str, magic: bytes
) -> None:
    plain = build_in_child(mirror, tmp_path / "plain", "022", "UTC")
    first = build_in_child(mirror, tmp_path / "a", "022", "UTC", "--compression", compression)
    second = build_in_child(mirror, tmp_path / "b", "077", "Asia/Kolkata", "--compression", compression)
    assert tree_bytes(first) == tree_bytes(second)
    _, manifest, config = load_layout(first)
    _, _, plain_config = load_layout(plain)
    assert config["rootfs"] == plain_config["rootfs"]  # the same tars, so the same files: only the blobs differ
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        data = blob(first, layer["digest"])
        # gzip: no FNAME, mtime 0; zstd: a frame, no checksum
        assert layer["mediaType"] == f"application/vnd.oci.image.layer.v1.{media_type}" and data.startswith(magic)
        assert sha256(decompress(data)) == diff_id
    archive = build_in_child(
        mirror, tmp_path / "c", "022", "UTC", "--compression", compression, "--format", "docker-archive"
    )
    plain_archive = build_in_child(mirror, tmp_path / "d", "022", "UTC", "--format", "docker-archive")
    assert archive.read_bytes() == plain_archive.read_bytes()  # docker load gets the uncompressed layers anyway


# --- docker-archive ------------------------------------------------------------------------------------


def test_docker_archive_matches_the_oci_image(mirror: Mirror, tmp_path: Path, no_sde: None) -> None:
    assert main(mirror.image_args(tmp_path / "oci", "--tag", "localhost/mirror:2")) == 0
    assert (
        main(mirror.image_args(tmp_path / "image.tar", "--format", "docker-archive", "--tag", "localhost/mirror:2"))
        == 0
    )
    _, manifest, config = load_layout(tmp_path / "oci")
    with tarfile.open(tmp_path / "image.tar") as archive:
        members = archive.getmembers()
        files = {m.name: archive.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert [m.name for m in members] == sorted(files)
    assert {(m.uid, m.gid, m.mtime, m.mode) for m in members} == {(0, 0, EPOCH, 0o644)}
    docker = json.loads(files["manifest.json"])
    assert docker == [
        {
            "Config": manifest["config"]["digest"][7:] + ".json",
            "RepoTags": ["localhost/mirror:2"],
            "Layers": [diff_id[7:] + ".tar" for diff_id in config["rootfs"]["diff_ids"]],
        }
    ]
    assert sha256(files[docker[0]["Config"]]) == manifest["config"]["digest"]
    for name, diff_id in zip(docker[0]["Layers"], config["rootfs"]["diff_ids"], strict=True):
        assert sha256(files[name]) == diff_id


# --- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc", "../../outside", "dists/../../.."])
def test_a_symlink_leaving_the_tree_is_refused(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, no_sde: None
) -> None:
    link = mirror.archive.root / "pool" / "escape"
    link.symlink_to(target)
    out = tmp_path / "image"
    assert main(mirror.image_args(out)) == 2
    err = capsys.readouterr().err
    assert f"{link}: symlink to {target!r} points outside the tree" in err.replace("\n", "")
    assert "Traceback" not in err
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".image") and p.name != ".image.minimirror-lock"]
    assert not out.exists() and not leftovers  # only the output's lock file stays, as for publish


def test_a_symlink_inside_the_tree_is_kept(tmp_path: Path) -> None:
    (tmp_path / "tree" / "dists" / "stable").mkdir(parents=True)
    (tmp_path / "tree" / "dists" / "bookworm").symlink_to("stable")
    entries = {e.path: e for e in scan_tree(tmp_path / "tree", "srv")}
    assert entries["srv/dists/bookworm"].kind == "symlink" and entries["srv/dists/bookworm"].linkname == "stable"


def test_missing_busybox_in_the_locks_says_what_to_add(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock_file = next(mirror.locks.glob("*/*.lock"))
    text = lock_file.read_text()
    (mirror.root / "sources" / "fixture" / "stable" / "packages.txt").write_text("web\n")
    assert (
        main(
            [
                "lock",
                "--sources",
                str(mirror.root / "sources"),
                "--locks",
                str(mirror.locks),
                "--cache",
                str(mirror.cache),
            ]
        )
        == 0
    )
    assert lock_file.read_text() != text
    assert main(mirror.image_args(tmp_path / "image")) == 2
    err = capsys.readouterr().err
    assert "no busybox-static in the locks" in err and "Add a line `busybox-static` to a packages.txt" in err


def test_busybox_not_in_the_cache_names_the_file(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(mirror.cache / "blobs")
    assert main(mirror.image_args(tmp_path / "image")) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "busybox-static_1.36.1-9_amd64.deb" in err and "is not in the cache" in err


def test_a_dynamically_linked_busybox_is_refused(tmp_path: Path, fixture_archive_factory: ArchiveFactory) -> None:
    dynamic = Path("/bin/ls").read_bytes()  # any dynamically linked executable has a PT_INTERP header
    archive = fixture_archive_factory({"main": [P("busybox-static", "1.0", files={"bin/busybox": dynamic})]})
    with pytest.raises(BusyboxError, match="dynamically linked; lock busybox-static"):
        extract_busybox(archive.deb("busybox-static"))
    static = fixture_archive_factory({"main": [P("busybox-static", "1.1", files={"bin/busybox": static_elf()})]})
    assert extract_busybox(static.deb("busybox-static")) == static_elf()


def test_an_existing_directory_that_is_no_layout_is_not_replaced(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_sde: None
) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes").write_text("keep")
    assert main(mirror.image_args(tmp_path / "precious")) == 2
    assert "is not an OCI image layout" in capsys.readouterr().err
    assert (tmp_path / "precious" / "notes").read_text() == "keep"
    assert main(mirror.image_args(tmp_path / "layout")) == 0
    first = tree_bytes(tmp_path / "layout")
    assert main(mirror.image_args(tmp_path / "layout")) == 0  # rebuilding over a layout replaces it
    assert tree_bytes(tmp_path / "layout") == first


# --- the layer writer ----------------------------------------------------------------------------------


def test_long_unicode_names_hard_links_and_modes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    deep = tree / ("d" * 120) / "ünïcödé"
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"data")
    os.link(deep / "f", tree / "hardlink")
    (tree / "tool").write_bytes(b"#!/bin/sh\n")
    (tree / "tool").chmod(0o700)
    out = tmp_path / "layer.tar.gz"
    digest = write_layer(scan_tree(tree, "srv"), out, epoch=EPOCH, compression="gzip")
    data = out.read_bytes()
    assert (digest.digest, digest.size) == (sha256(data), len(data))
    assert (digest.diff_id, digest.uncompressed_size) == (sha256(gzip.decompress(data)), len(gzip.decompress(data)))
    members = {m.name: m for m in layer_members(data)}
    long_name = f"srv/{'d' * 120}/ünïcödé/f"
    assert members[long_name].isfile() and members["srv/hardlink"].isfile()  # a copy, not a link
    assert members["srv/hardlink"].size == 4
    assert (members["srv/tool"].mode, members[long_name].mode) == (0o755, 0o644)
    assert write_layer(scan_tree(tree, "srv"), tmp_path / "again.tar.gz", epoch=EPOCH, compression="gzip") == digest


def test_special_files_and_duplicates_are_refused(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    os.mkfifo(tmp_path / "tree" / "pipe")
    with pytest.raises(LayerError, match="not a regular file, directory or symlink"):
        scan_tree(tmp_path / "tree", "srv")
    with pytest.raises(LayerError, match="two entries for 'a'"):
        write_layer(
            [LayerEntry.file("a", b"1"), LayerEntry.file("/a", b"2")], tmp_path / "l", epoch=0, compression="none"
        )


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "big" / "pool.deb"
    path.parent.mkdir()
    with path.open("wb") as handle:
        handle.truncate(64 << 20)  # sparse: cheap to make, read as zeros
    yield path


def test_a_layer_streams_with_flat_memory(big_file: Path, tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        digest = write_layer(
            scan_tree(big_file.parent, "srv"), tmp_path / "big.tar.gz", epoch=EPOCH, compression="gzip"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.uncompressed_size > 64 << 20
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes for a 64 MiB file"


def test_build_fetches_publishes_and_images_in_one_command(mirror: Mirror, tmp_path: Path, no_sde: None) -> None:
    public, layout = tmp_path / "public", tmp_path / "oci"
    dirs = ["--locks", str(mirror.locks), "--cache", str(mirror.cache)]
    assert main(["build", *dirs, "--out", str(public), "--no-sign", "--image", str(layout)]) == 0
    assert (public / "fixture/dists/stable/Release").is_file()
    web = next((public / "fixture/pool").rglob("web_1.0_amd64.deb"))
    assert web.read_bytes() == mirror.archive.deb("web").read_bytes()  # fetched, not only the cached busybox
    assert f"srv/{web.relative_to(public)}" in repository_files(layout)
