"""Packing a published repository into the image: the locked server, the epoch, the SBOM, the spec.

The one orchestration both ``minimirror image`` and ``minimirror build`` call (:func:`make_image`); the image
format itself is :mod:`minimirror.image.oci`. The server is the locked busybox-static (``server="busybox"``,
:mod:`minimirror.image.httpd`) or the locked nginx with the libraries it loads (``server="nginx"``,
:mod:`minimirror.image.nginx`). With ``base``, the server is the base image's nginx
(:mod:`minimirror.image.base`) and busybox-static is not needed; ``push`` sends the written image to a registry
(:mod:`minimirror.image.registry`), ``load`` into a Docker or Podman engine (:mod:`minimirror.image.engine`), both
after the output is in place, so a failed push or load leaves a complete image behind. With
``push_via="engine"`` the image is loaded into the engine and the engine pushes it
(:func:`minimirror.image.engine.push_image`, its own credentials); an engine may recompress layers and so push
another manifest digest than the built one: then both are reported.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from minimirror.image.layers import Compression
from minimirror.image.oci import (
    DEFAULT_COMPRESSION,
    DEFAULT_TAG,
    ImageFormat,
    ImageResult,
    ImageSpec,
    ServerSource,
    StagedImage,
    build_image,
)
from minimirror.lock.lockfile import Lock, LockedPackage, read_locks
from minimirror.publish.epoch import source_date_epoch

__all__ = ["SERVERS", "ImageConfig", "PushVia", "ServerKind", "image_spec", "make_image"]

log = logging.getLogger(__name__)

PushVia = Literal["registry", "engine"]
ServerKind = Literal["busybox", "nginx"]
SERVERS: tuple[ServerKind, ...] = ("busybox", "nginx")


@dataclass(frozen=True, slots=True)
class ImageConfig:
    locks_dir: Path
    cache_dir: Path
    repo_dir: Path
    image_path: Path
    fmt: ImageFormat = "oci"
    tag: str = DEFAULT_TAG
    arch: str | None = None
    environ: Mapping[str, str] | None = field(default=None, compare=False)
    base: str | None = None  # oci:DIR[:TAG], docker-archive:FILE or HOST/NAME@sha256:...
    push: str | None = None  # HOST/NAME:TAG
    load: bool = False
    docker_host: str | None = None
    push_via: PushVia = "registry"  # "engine": load, then the engine pushes (implies load)
    compression: Compression = DEFAULT_COMPRESSION
    platforms: tuple[str, ...] = ()  # Debian architectures, from --platform linux/amd64,linux/arm64; () = --arch
    server: ServerKind = "busybox"  # the locked busybox-static, or the locked nginx and its libraries


@dataclass
class _Delivered:
    pushed: str | None = None
    loaded: str | None = None


def make_image(config: ImageConfig) -> ImageResult:
    """Write the image of ``config.repo_dir``, served by the locked busybox-static or nginx, or the base's nginx."""
    _check_push(config)
    locks = read_locks(config.locks_dir)
    epoch = source_date_epoch(locks, config.environ)
    archs = _architectures(config)
    if config.base is not None:
        from minimirror.image.base import load_base

        base = load_base(config.base, config.cache_dir, arch=archs[0], environ=config.environ)
        spec = image_spec(locks, config.repo_dir, None, base.architecture, tag=config.tag, epoch=epoch)
        spec = dataclasses.replace(spec, base=base, compression=config.compression)
    else:
        servers = [_server(locks, config, arch) for arch in archs]
        spec = image_spec(locks, config.repo_dir, servers[0][1], servers[0][0], tag=config.tag, epoch=epoch)
        spec = dataclasses.replace(spec, compression=config.compression, more_platforms=tuple(servers[1:]))
    delivered = _Delivered()
    result = build_image(spec, config.image_path, config.fmt, after=lambda staged: _deliver(config, staged, delivered))
    return dataclasses.replace(result, pushed=delivered.pushed, loaded=delivered.loaded)


def _server(locks: Sequence[Lock], config: ImageConfig, arch: str | None) -> tuple[str, ServerSource]:
    """One platform's server: (Debian architecture, the busybox-static .deb or nginx's closure of .debs)."""
    if config.server == "busybox":
        package = _find_locked(locks, config.locks_dir, arch, _busybox_package())
        return package.architecture, _verified_deb(package, config.cache_dir)
    from minimirror.image.nginx import NGINX_PACKAGE, NginxServer, depends_closure

    package = _find_locked(locks, config.locks_dir, arch, NGINX_PACKAGE)
    closure = depends_closure(locks, package)
    debs = tuple((p.name, _verified_deb(p, config.cache_dir)) for p in closure)
    return package.architecture, NginxServer(package.architecture, debs)


def _busybox_package() -> str:
    from minimirror.image.httpd import BUSYBOX_PACKAGE

    return BUSYBOX_PACKAGE


def _architectures(config: ImageConfig) -> list[str | None]:
    """The Debian architecture of each platform to build (None: the one busybox-static is locked for)."""
    from minimirror.errors import UsageError

    if config.base is not None and config.server != "busybox":
        raise UsageError(f"--base serves with the base's nginx; leave out --server {config.server}")
    if not config.platforms:
        return [config.arch]
    if config.arch is not None:
        raise UsageError("give either --arch or --platform, not both")
    if len(config.platforms) > 1 and config.base is not None:
        raise UsageError("--base gives one platform's server; give one --platform with --base")
    return list(config.platforms)


def _check_push(config: ImageConfig) -> None:
    """A bad --push or --push-via fails before anything is built."""
    from minimirror.errors import UsageError
    from minimirror.image.registry import parse_reference

    if config.push is None:
        if config.push_via == "engine":
            raise UsageError("--push-via engine needs --push HOST/NAME:TAG: the reference the engine pushes to")
        return
    ref = parse_reference(config.push)
    if ref.digest or not ref.tag:
        raise UsageError(f"--push {config.push!r}: give a tag to push to (HOST/NAME:TAG), not a digest")


def _deliver(config: ImageConfig, staged: StagedImage, delivered: _Delivered) -> None:
    """Push and/or load the image just written."""
    if config.push is not None and config.push_via == "registry":
        from minimirror.image.registry import push_layout
        from minimirror.upstream.download import make_client

        with make_client(timeout=120.0) as client:
            pushed = push_layout(staged.layout, config.push, client, environ=config.environ)
        delivered.pushed = f"{pushed.reference}@{pushed.digest}"
    if config.load or config.push_via == "engine":
        loaded = delivered.loaded = _load(config, staged)
        if config.push is not None and config.push_via == "engine":
            delivered.pushed = _push_via_engine(config.push, loaded, _manifest_digest(staged.layout), config)


def _load(config: ImageConfig, staged: StagedImage) -> str:
    """Load the image into the engine; its id there."""
    from minimirror.image.engine import engine_architecture, load_image

    if config.fmt == "docker-archive":
        return load_image(config.image_path, config.docker_host).id
    architecture = None
    if len(staged.architectures) > 1:  # the engine runs its own platform: load that one
        architecture = engine_architecture(config.docker_host)
    with tempfile.TemporaryDirectory(prefix=".load.", dir=config.image_path.parent) as tmp:
        staged.docker_archive(Path(tmp) / "image.tar", architecture)
        return load_image(Path(tmp) / "image.tar", config.docker_host).id


def _push_via_engine(target: str, image_id: str, built: str, config: ImageConfig) -> str:
    """The engine pushes the loaded image; ``REF@DIGEST`` it reported, with a warning when it is not ``built``."""
    from minimirror.image.engine import push_image

    pushed = push_image(image_id, target, config.docker_host)
    if pushed.digest is None:
        log.warning(
            "the engine pushed %s without reporting a digest; the built manifest is %s, the registry's may differ "
            "(check with `skopeo inspect docker://%s`)", target, built, target,
        )  # fmt: skip
        return pushed.reference
    if pushed.digest != built:
        log.warning(
            "the engine rewrote the manifest pushing %s (it recompresses layers): the registry has %s, the built "
            "image is %s; use --push-via registry to push the built bytes", target, pushed.digest, built,
        )  # fmt: skip
    return f"{pushed.reference}@{pushed.digest}"


def _manifest_digest(layout: Path) -> str:
    """The digest of the one manifest of the OCI layout ``layout``."""
    digest: str = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    return digest


def _find_locked(locks: Sequence[Lock], locks_dir: Path, arch: str | None, name: str) -> LockedPackage:
    """The locked server package ``name`` of the one architecture locked (or ``arch``); the newest if several
    versions."""
    from minimirror.errors import LockError, UsageError

    found = [p for lock in locks for p in lock.find(name, arch)]
    if not found:
        where = f" for {arch}" if arch else ""
        what = "its static busybox" if name == _busybox_package() else f"the locked {name} (--server {name})"
        raise LockError(
            f"{locks_dir}: no {name}{where} in the locks; the image serves with {what}. "
            f"Add a line `{name}` to a packages.txt (and the architecture to its source) and run `minimirror lock`"
        )
    archs = sorted({p.architecture for p in found})
    if len(archs) > 1:
        raise UsageError(f"{name} is locked for {', '.join(archs)}; choose the image's with --arch or --platform")
    return max(found, key=functools.cmp_to_key(_by_version))


def _by_version(a: LockedPackage, b: LockedPackage) -> int:
    from debian.debian_support import version_compare

    return version_compare(a.version, b.version) or (a.sha256 > b.sha256) - (a.sha256 < b.sha256)


def _verified_deb(package: LockedPackage, cache_dir: Path) -> Path:
    """The cached .deb, checked against the lock's size and sha256."""
    from minimirror.errors import IntegrityError, UsageError
    from minimirror.upstream.cache import Cache

    path = Cache(cache_dir).blob_path(package.sha256)
    if not path.is_file():
        raise UsageError(
            f"{package.filename} ({package.name} {package.version}) is not in the cache {cache_dir} "
            f"(expected {path}); download the locked pool files into the cache first (`minimirror fetch`)"
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != package.sha256:
        raise IntegrityError(
            f"{path}: sha256 differs from the lock's for {package.filename}; delete it and fetch again"
        )
    return path


def image_spec(
    locks: Sequence[Lock], repo_dir: Path, server: ServerSource | None, server_arch: str, *, tag: str, epoch: int
) -> ImageSpec:
    """The image's spec from the locks: labels, SBOM, SOURCE_DATE_EPOCH."""
    from minimirror.image.oci import ImageSpec
    from minimirror.image.sbom import locks_sha256, sbom_bytes

    ids = ", ".join(lock.source.id for lock in locks)
    return ImageSpec(
        repo_dir=repo_dir,
        server=server,
        tag=tag,
        created=epoch,
        architecture=server_arch,
        locks_sha256=locks_sha256(locks),
        source=" ".join(
            sorted({c.url for lock in locks for c in lock.companions} | {lock.source.url for lock in locks})
        ),
        title=f"APT mirror of {ids}",
        sbom=sbom_bytes(locks, created=epoch, name=f"minimirror {ids}"),
    )
