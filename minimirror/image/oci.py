"""A daemonless, byte-reproducible OCI image that serves the mirror: written directly, no container engine.

Implements the OCI image-spec v1.1 (github.com/opencontainers/image-spec): the image layout (``oci-layout``,
``index.json``, ``blobs/sha256/<hex>``), the image manifest (``application/vnd.oci.image.manifest.v1+json``),
the image configuration (``application/vnd.oci.image.config.v1+json``: ``created``, ``architecture``, ``os``,
``config``, ``rootfs.diff_ids``, ``history``) and gzip layers (``application/vnd.oci.image.layer.v1.tar+gzip``);
and Docker's ``docker save`` tarball (``manifest.json`` ``[{"Config", "RepoTags", "Layers"}]``, the config as
``<hex>.json``, each layer as an uncompressed ``<diff_id hex>.tar``), which ``docker load`` and ``podman load``
accept.

The layers: the server (``minimirror.image.httpd``: a static busybox httpd running as 65534; or with an
:class:`~minimirror.image.nginx.NginxServer`, the locked nginx and the libraries it loads), then the repository
tree at ``/srv`` split by :mod:`minimirror.image.split` into pool buckets and a last metadata layer (with the SBOM
at ``/srv/sbom.spdx.json`` when one is given, and the readiness file ``/srv/healthz``). The server layer changes
only when its packages do, a pool bucket only when a package in it does, so registries and nodes keep them across
mirror updates. Layers are compressed as ``ImageSpec.compression`` says (:mod:`minimirror.image.layers`).
With a base image (:mod:`minimirror.image.base`), the base's verified layers come first, copied byte for byte,
and the server layer is an nginx configuration instead; the base's config is merged with ours
(:func:`minimirror.image.base.merge_config`).

Reproducible means byte-identical: every JSON document is canonical (sorted keys, no spaces), every time is
``SOURCE_DATE_EPOCH``, layers are normalized (``minimirror.image.layers``), and nothing reads the clock, the
umask, the time zone or the host's user database. Planning (the JSON documents) is pure; the writer stages
everything in a temporary directory beside the output and renames it into place, so an interrupted build
never leaves a half-written image under the output's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias

from minimirror import __version__
from minimirror.atomic import disk_errors
from minimirror.errors import UsageError
from minimirror.filelock import image_lock
from minimirror.image.httpd import ENTRYPOINT, NOBODY, PORT, READY_BODY, READY_PATH, server_entries
from minimirror.image.layers import (
    Compression,
    LayerDigest,
    LayerEntry,
    make_tarinfo,
    open_layer,
    scan_tree,
    write_layer,
)
from minimirror.image.sbom import rfc3339
from minimirror.image.split import split_repository

if TYPE_CHECKING:
    from minimirror.image.base import BaseImage
    from minimirror.image.nginx import NginxServer

ServerSource: TypeAlias = "Path | NginxServer"
"""One platform's server: the locked busybox-static .deb, or the locked nginx and its Depends closure."""

__all__ = [
    "DEFAULT_TAG",
    "Descriptor",
    "ImageFormat",
    "ImageResult",
    "ImageSpec",
    "ServerSource",
    "StagedImage",
    "build_image",
    "canonical_json",
    "debian_architecture",
    "image_config",
    "image_index",
    "image_manifest",
    "oci_platform",
    "parse_platforms",
    "platform_index",
    "write_layers",
]

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
DEFAULT_TAG = "localhost/minimirror:latest"
SBOM_PATH = "srv/sbom.spdx.json"
DEFAULT_COMPRESSION: Compression = "none"

ImageFormat = Literal["oci", "docker-archive"]

# Debian architecture -> (GOARCH, variant), as the OCI image index's platform names them.
_PLATFORMS: Mapping[str, tuple[str, str]] = {
    "amd64": ("amd64", ""), "arm64": ("arm64", "v8"), "armhf": ("arm", "v7"), "armel": ("arm", "v5"),
    "i386": ("386", ""), "ppc64el": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64el": ("mips64le", ""), "loong64": ("loong64", ""),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What the image holds. ``created`` is SOURCE_DATE_EPOCH; ``architecture`` is the server's Debian one."""

    repo_dir: Path
    server: Path | NginxServer | None
    tag: str = DEFAULT_TAG
    created: int = 0
    architecture: str = "amd64"
    locks_sha256: str = ""
    source: str = ""
    title: str = "minimirror APT mirror"
    labels: tuple[tuple[str, str], ...] = ()
    sbom: bytes | None = field(default=None, repr=False)
    base: BaseImage | None = None
    compression: Compression = DEFAULT_COMPRESSION
    more_platforms: tuple[tuple[str, Path | NginxServer], ...] = ()
    """Further (Debian architecture, server) pairs: an image index, one manifest per platform."""

    @property
    def platforms(self) -> tuple[tuple[str, Path | NginxServer | None], ...]:
        return ((self.architecture, self.server), *self.more_platforms)

    @property
    def nginx(self) -> bool:
        """Served by the locked nginx (every platform has the same kind of server)."""
        return self.server is not None and not isinstance(self.server, Path)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and its size."""

    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The written image: where, in which format, and the digests that identify it."""

    path: Path
    format: ImageFormat
    manifest_digest: str
    config_digest: str
    layers: tuple[LayerDigest, ...]
    sbom_path: Path | None = None
    base_digest: str | None = None
    pushed: str | None = None  # "host/name:tag@sha256:..." once pushed
    loaded: str | None = None  # the engine's image id once loaded
    platforms: tuple[str, ...] = ()  # Debian architectures; several: manifest_digest is the image index's


# --- planning: the JSON documents, pure --------------------------------------------------------------------


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: one byte sequence per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def oci_platform(debian_arch: str) -> tuple[str, str]:
    """(architecture, variant) for a Debian architecture name; variant may be empty."""
    try:
        return _PLATFORMS[debian_arch]
    except KeyError:
        known = ", ".join(sorted(_PLATFORMS))
        raise UsageError(
            f"no OCI platform known for the Debian architecture {debian_arch!r} (known: {known})"
        ) from None


def debian_architecture(goarch: str) -> str:
    """The Debian architecture of an OCI/Go architecture name (``arm64`` -> ``arm64``, ``386`` -> ``i386``)."""
    for debian, (arch, _) in sorted(_PLATFORMS.items()):
        if arch == goarch and debian != "armel":  # "arm" is armhf (v7), the one Debian port still built
            return debian
    known = ", ".join(sorted({arch for arch, _ in _PLATFORMS.values()}))
    raise UsageError(f"no Debian architecture known for the platform architecture {goarch!r} (known: {known})")


def parse_platforms(value: str) -> tuple[str, ...]:
    """``linux/amd64,linux/arm64`` -> ``("amd64", "arm64")``: Debian architectures, in the given order."""
    found: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        os_name, _, arch = item.partition("/")
        if os_name != "linux" or not arch:
            raise UsageError(f"--platform {value!r}: {item!r} is not linux/ARCH (e.g. linux/amd64,linux/arm64)")
        debian = debian_architecture(arch.split("/")[0])
        if debian in found:
            raise UsageError(f"--platform {value!r}: {item!r} is given twice")
        found.append(debian)
    return tuple(found)


def _labels(spec: ImageSpec) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.created": rfc3339(spec.created),
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.source": spec.source,
        "org.opencontainers.image.title": spec.title,
        "io.minimirror.locks.sha256": spec.locks_sha256,
    }
    labels.update(dict(spec.labels))
    return labels


_SERVERS = {
    "base": "nginx configuration, /etc/nginx/conf.d/default.conf",
    "nginx": "nginx (the locked nginx and the libraries it loads), /etc",
    "busybox": "busybox httpd (busybox-static), /etc",
}


def _history(created: str, layers: int, *, server_kind: str = "busybox") -> list[dict[str, str]]:
    """One entry per layer of ours: the server, ``layers - 2`` pool buckets, the repository's metadata."""
    server = _SERVERS[server_kind]
    pool = [
        {"created": created, "created_by": f"minimirror image: pool files at /srv, part {i}", "comment": "pool"}
        for i in range(1, layers - 1)
    ]
    return [
        {"created": created, "created_by": f"minimirror image: {server}", "comment": "server"},
        *pool,
        {
            "created": created,
            "created_by": "minimirror image: the repository tree at /srv but its pool files",
            "comment": "repository",
        },
    ]


def image_config(spec: ImageSpec, diff_ids: Sequence[str]) -> dict[str, Any]:
    """The image configuration for our layers, whose uncompressed digests are ``diff_ids`` (after the base's)."""
    arch, variant = oci_platform(spec.architecture)
    created = rfc3339(spec.created)
    if spec.base is not None:
        from minimirror.image.base import merge_config

        history = _history(created, len(diff_ids), server_kind="base")
        return merge_config(spec.base.config, created=created, labels=_labels(spec), diff_ids=diff_ids, history=history)
    entrypoint = ENTRYPOINT
    if spec.nginx:
        from minimirror.image.nginx import ENTRYPOINT as entrypoint
    config: dict[str, Any] = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": f"{NOBODY}:{NOBODY}",
            "ExposedPorts": {f"{PORT}/tcp": {}},
            "Entrypoint": list(entrypoint),
            "WorkingDir": "/srv",
            "Env": ["PATH=/usr/sbin" if spec.nginx else "PATH=/bin"],
            "Labels": _labels(spec),
        },
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": _history(created, len(diff_ids), server_kind="nginx" if spec.nginx else "busybox"),
    }
    if variant:
        config["variant"] = variant
    return config


def image_manifest(config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
        "annotations": dict(annotations),
    }


def _platform(debian_arch: str) -> dict[str, str]:
    """An index entry's ``platform`` for a Debian architecture."""
    arch, variant = oci_platform(debian_arch)
    return {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}


def image_index(manifest: Descriptor, tag: str, spec: ImageSpec) -> dict[str, Any]:
    platform = _platform(spec.architecture)
    entry = {**manifest.to_json(), "annotations": {"org.opencontainers.image.ref.name": tag}, "platform": platform}
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry]}


def _docker_manifest(config_name: str, tag: str, layer_names: Sequence[str]) -> list[dict[str, Any]]:
    return [{"Config": config_name, "RepoTags": [tag], "Layers": list(layer_names)}]


# --- writing --------------------------------------------------------------------------------------------


def _repository_entries(spec: ImageSpec) -> list[LayerEntry]:
    entries = scan_tree(spec.repo_dir, "srv")
    ours = [LayerEntry.file(f"srv/{READY_PATH}", READY_BODY)]
    if spec.sbom is not None:
        ours.append(LayerEntry.file(SBOM_PATH, spec.sbom))
    taken = {entry.path for entry in entries}
    for entry in ours:
        if entry.path in taken:
            name = entry.path.removeprefix("srv/")
            raise UsageError(f"{spec.repo_dir}/{name} exists; minimirror writes its own {name} there, remove it")
    return [*entries, *ours]


@dataclass(frozen=True, slots=True)
class _Image:
    """One platform's image in a layout: its manifest, config and layers (the base's, then ours)."""

    architecture: str  # Debian's name
    manifest: Descriptor
    config: Descriptor
    layers: tuple[LayerDigest, ...]


@dataclass(frozen=True, slots=True)
class _Layout:
    """An OCI layout written in ``root``: what ``index.json`` names (``top``: the one platform's manifest, or an
    image index of several), and each platform's image, for the docker-archive writer, push and load."""

    root: Path
    top: Descriptor
    images: tuple[_Image, ...]

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def image(self, architecture: str | None) -> _Image:
        """The image of ``architecture`` (None: the only one)."""
        if architecture is None and len(self.images) == 1:
            return self.images[0]
        for image in self.images:
            if image.architecture == architecture:
                return image
        held = ", ".join(image.architecture for image in self.images)
        raise UsageError(f"the image holds the platforms {held}, not {architecture}; build it with that platform")


def _put_json(blobs: Path, media_type: str, obj: object) -> Descriptor:
    data = canonical_json(obj)
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return Descriptor(media_type, f"sha256:{digest}", len(data))


def _put_layer(
    blobs: Path, number: int, entries: Sequence[LayerEntry], epoch: int, compression: Compression
) -> LayerDigest:
    partial = blobs / f".layer{number}.partial"
    layer = write_layer(entries, partial, epoch=epoch, compression=compression)
    partial.replace(blobs / layer.digest.removeprefix("sha256:"))
    return layer


def write_layers(
    blobs: Path, plans: Sequence[Sequence[LayerEntry]], *, epoch: int, compression: Compression
) -> tuple[LayerDigest, ...]:
    """Write each plan as a layer blob in ``blobs``, several at a time; the digests in the order of ``plans``.

    Threads, because the work is hashing, compressing and file I/O, which all release the GIL: a mirror's pool
    layers then pack on every core instead of one. Each layer's bytes depend only on its plan, so the order in
    which they finish changes nothing.
    """
    workers = max(1, min(len(plans), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layer") as pool:
        futures = [pool.submit(_put_layer, blobs, i, plan, epoch, compression) for i, plan in enumerate(plans)]
        return tuple(future.result() for future in futures)


def _copy_base(spec: ImageSpec, blobs: Path) -> tuple[LayerDigest, ...]:
    """The base's layer blobs, copied byte for byte (each was verified when the base was read)."""
    if spec.base is None:
        return ()
    for layer in spec.base.layers:
        shutil.copyfile(layer.path, blobs / layer.layer.digest.removeprefix("sha256:"))
    return tuple(layer.layer for layer in spec.base.layers)


def _put_image(spec: ImageSpec, blobs: Path, base: tuple[LayerDigest, ...], ours: tuple[LayerDigest, ...]) -> _Image:
    """The config and manifest of one platform's image (``spec.architecture``) over ``base`` and ``ours``."""
    layers = base + ours
    config = _put_json(blobs, MEDIA_CONFIG, image_config(spec, [layer.diff_id for layer in ours]))
    layer_descriptors = [Descriptor(layer.media_type, layer.digest, layer.size) for layer in layers]
    annotations = {"org.opencontainers.image.created": rfc3339(spec.created)}
    manifest = _put_json(blobs, MEDIA_MANIFEST, image_manifest(config, layer_descriptors, annotations))
    return _Image(spec.architecture, manifest, config, layers)


def platform_index(images: Sequence[tuple[str, Descriptor]]) -> dict[str, Any]:
    """An image index with one manifest per platform (Debian architecture, manifest), in the given order."""
    entries = [{**manifest.to_json(), "platform": _platform(architecture)} for architecture, manifest in images]
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}


def _write_layout(spec: ImageSpec, root: Path) -> _Layout:
    """Every blob, then ``index.json``: the server layer of each platform, the repository layers once (shared
    by every platform's manifest), a config and manifest per platform, and with several an image index."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    base = _copy_base(spec, blobs)
    platforms = spec.platforms
    servers = [_server_entries(spec, arch, deb) for arch, deb in platforms]
    plans = [*servers, *split_repository(_repository_entries(spec)).layers]
    written = write_layers(blobs, plans, epoch=spec.created, compression=spec.compression)
    server_layers, repository = written[: len(platforms)], written[len(platforms) :]
    images = tuple(
        _put_image(dataclasses.replace(spec, architecture=arch), blobs, base, (server, *repository))
        for (arch, _), server in zip(platforms, server_layers, strict=True)
    )
    if len(images) == 1:
        top, index = images[0].manifest, image_index(images[0].manifest, spec.tag, spec)
    else:
        top = _put_json(blobs, MEDIA_INDEX, platform_index([(image.architecture, image.manifest) for image in images]))
        entry = {**top.to_json(), "annotations": {"org.opencontainers.image.ref.name": spec.tag}}
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry]}
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_bytes(canonical_json(index))
    for path in (root, root / "blobs", blobs, *blobs.iterdir(), root / "oci-layout", root / "index.json"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return _Layout(root, top, images)


def _docker_archive(layout: _Layout, image: _Image, tag: str, out: Path, epoch: int) -> None:
    """``docker save``'s format, entries sorted by name: the config, the uncompressed layers (streamed out of
    the blobs, decompressed on the fly, so memory stays flat) and ``manifest.json``: one platform's image."""
    config_name = f"{image.config.digest.removeprefix('sha256:')}.json"
    layer_names = [f"{layer.diff_id.removeprefix('sha256:')}.tar" for layer in image.layers]
    config_path = layout.blob(image.config.digest)
    members: dict[str, tuple[int, Callable[[], IO[bytes]]]] = {
        config_name: (image.config.size, lambda: config_path.open("rb")),
        "manifest.json": _in_memory(canonical_json(_docker_manifest(config_name, tag, layer_names))),
    }
    for name, layer in zip(layer_names, image.layers, strict=True):
        members[name] = (layer.uncompressed_size, _opener(layout.blob(layer.digest), layer))
    with out.open("wb") as raw, tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for name, (size, opener) in sorted(members.items()):
            with opener() as source:
                archive.addfile(make_tarinfo(name, "file", 0o644, size, epoch=epoch), source)


def _in_memory(data: bytes) -> tuple[int, Callable[[], IO[bytes]]]:
    return len(data), lambda: io.BytesIO(data)


def _opener(path: Path, layer: LayerDigest) -> Callable[[], IO[bytes]]:
    compression: Compression = "none" if layer.digest == layer.diff_id else layer.compression
    return lambda: open_layer(path, compression)


@dataclass(frozen=True, slots=True)
class StagedImage:
    """A complete image handed to ``build_image``'s ``after`` callback: the OCI layout, and on demand the
    docker-archive of the same image (for pushing and loading without reading the output back)."""

    layout: Path
    _layout: _Layout = field(repr=False)
    _tag: str = field(repr=False)
    _epoch: int = field(repr=False)

    @property
    def architectures(self) -> tuple[str, ...]:
        """The Debian architectures of the image's platforms, in the index's order."""
        return tuple(image.architecture for image in self._layout.images)

    def docker_archive(self, out: Path, architecture: str | None = None) -> None:
        """The docker-archive of one platform's image (``architecture``; None: the only one)."""
        _docker_archive(self._layout, self._layout.image(architecture), self._tag, out, self._epoch)


def _check_output(spec: ImageSpec, out: Path, fmt: ImageFormat) -> None:
    if not spec.repo_dir.is_dir():
        raise UsageError(f"{spec.repo_dir}: no repository directory; publish the mirror first or fix --repo")
    if out.resolve().is_relative_to(spec.repo_dir.resolve()):
        raise UsageError(
            f"{out}: the image would be written inside the repository {spec.repo_dir}; choose a path outside"
        )
    if fmt == "oci" and out.exists() and not (out / "oci-layout").is_file():
        raise UsageError(f"{out}: exists and is not an OCI image layout; remove it or choose another --image path")
    if fmt == "docker-archive" and spec.more_platforms:
        raise UsageError("--format docker-archive holds one platform; give one --platform, or write an OCI layout")
    if fmt == "docker-archive" and out.is_dir():
        raise UsageError(f"{out}: is a directory; a docker-archive is one file, choose a file path")


def _restore_interrupted(out: Path) -> None:
    """Put back the layout a killed run had moved aside (``.<out>.old.*/layout``) just before its second rename.

    Such a run left no ``out`` at all: its previous image is whole beside it, and becomes ``out`` again."""
    if out.exists() or out.is_symlink():
        return
    waiting = sorted(out.parent.glob(f".{out.name}.old.*/layout"), key=lambda path: path.stat().st_mtime)
    if waiting and (waiting[-1] / "oci-layout").is_file():
        waiting[-1].replace(out)
        shutil.rmtree(waiting[-1].parent, ignore_errors=True)


def _install_dir(staged: Path, out: Path) -> None:
    """Move ``staged`` to ``out``; an existing layout is swapped out by rename, then removed.

    A kill between the two renames leaves the old layout in ``.<out>.old.*``; the next run restores it first."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.replace(old / "layout")
    staged.replace(out)
    if old is not None:
        shutil.rmtree(old)


def _write_sbom(spec: ImageSpec, out: Path) -> Path | None:
    if spec.sbom is None:
        return None
    from minimirror.atomic import write_atomically

    path = out.with_name(out.name + ".spdx.json")
    write_atomically(path, spec.sbom)
    path.chmod(0o644)
    return path


def _server_entries(spec: ImageSpec, architecture: str, server: Path | NginxServer | None) -> list[LayerEntry]:
    if spec.base is not None:
        from minimirror.image.base import nginx_entries

        return nginx_entries()
    if server is None:
        raise UsageError("an image without --base needs the locked busybox-static .deb")
    if not isinstance(server, Path):
        return server.entries()
    return server_entries(server, architecture)


def build_image(
    spec: ImageSpec, out: Path, fmt: ImageFormat = "oci", *, after: Callable[[StagedImage], None] | None = None
) -> ImageResult:
    """Write the image of ``spec`` to ``out``: an OCI layout directory, or a docker-archive tar file.

    The SBOM (when ``spec.sbom`` is set) goes both into the image at ``/srv/sbom.spdx.json`` and next to the
    output as ``<out>.spdx.json``. ``after`` (push, load) is called once the output is in place, with the image's
    layout still at hand.
    """
    # The staging folder beside ``out`` holds the layers (about the repository's size: .debs do not compress),
    # and a docker-archive's tar besides; it is removed on the way out, the previous output never touched.
    with disk_errors(out.parent, needed=lambda: _tree_bytes(spec.repo_dir) * (1 if fmt == "oci" else 2)):
        out.parent.mkdir(parents=True, exist_ok=True)
        with image_lock(out):
            if fmt == "oci":
                _restore_interrupted(out)
            _remove_abandoned_staging(out)
            return _build_locked(spec, out, fmt, after)


def _tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def _remove_abandoned_staging(out: Path) -> None:
    """Staging folders (``.<out>.*/``) that killed runs left: safe to remove while we hold the output's lock."""
    for stale in out.parent.glob(f".{out.name}.*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _build_locked(
    spec: ImageSpec, out: Path, fmt: ImageFormat, after: Callable[[StagedImage], None] | None
) -> ImageResult:
    _check_output(spec, out, fmt)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        layout = _write_layout(spec, work / "layout")
        if fmt == "oci":
            _install_dir(layout.root, out)
            layout = dataclasses.replace(layout, root=out)
        else:
            _docker_archive(layout, layout.image(None), spec.tag, work / "image.tar", spec.created)
            (work / "image.tar").chmod(0o644)
            (work / "image.tar").replace(out)
        sbom_path = _write_sbom(spec, out)
        if after is not None:
            after(StagedImage(layout.root, layout, spec.tag, spec.created))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_digest = spec.base.digest if spec.base is not None else None
    first = layout.images[0]
    layers = tuple(dict.fromkeys(layer for image in layout.images for layer in image.layers))  # each blob once
    platforms = tuple(image.architecture for image in layout.images)
    return ImageResult(
        out, fmt, layout.top.digest, first.config.digest, layers, sbom_path, base_digest, platforms=platforms
    )
