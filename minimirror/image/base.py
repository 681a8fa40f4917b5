"""A pinned base image for ``minimirror image --base REF``: read, verified, and the nginx layer that serves /srv.

``REF`` is one of:

- ``oci:DIR[:TAG]``: an OCI image layout (image-spec ``image-layout.md``); TAG is matched against the index's
  ``org.opencontainers.image.ref.name`` and may be left out when the layout holds one image;
- ``docker-archive:FILE``: a ``docker save`` tarball (``manifest.json`` with ``Config`` and ``Layers``); its layers
  are uncompressed tars, kept uncompressed (``application/vnd.oci.image.layer.v1.tar``, digest = diff_id), so
  nothing is recompressed and the result does not depend on zlib;
- ``HOST[:PORT]/NAME@sha256:HEX``: a registry reference pulled over the OCI distribution API
  (:mod:`minimirror.image.registry`). It must be pinned by digest: a tag names different bytes on different days, and
  the image must be reproducible. Blobs are kept in the content-addressed cache.

Whatever the source, every blob is verified: manifests, configs and layers against their sha256 digests, and each
layer's uncompressed tar against the config's ``rootfs.diff_ids`` (image-spec ``config.md``). An image index
(or Docker manifest list) is resolved to the entry for ``--arch`` (or its only Linux entry). Docker v2 media types
are mapped to their OCI equivalents (the bytes are the same); zstd and foreign layers are refused.

The base's configuration is kept, and ours merged in (:func:`merge_config`); the server is the base's nginx,
told by ``/etc/nginx/conf.d/default.conf`` (:data:`NGINX_CONF`) to serve ``/srv`` on port 8080.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from minimirror.errors import IntegrityError, UsageError
from minimirror.image.layers import LayerDigest, LayerEntry
from minimirror.upstream.cache import Cache

__all__ = [
    "NGINX_CMD",
    "NGINX_CONF",
    "BaseImage",
    "BaseLayer",
    "BaseSource",
    "load_base",
    "merge_config",
    "nginx_entries",
    "parse_base",
]

MEDIA_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_GZIP_TYPES = frozenset({MEDIA_TAR_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip"})
_TAR_TYPES = frozenset({MEDIA_TAR, "application/vnd.docker.image.rootfs.diff.tar"})
_INDEX_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
_CHUNK = 1 << 20
_PORT = 8080

NGINX_CONF = f"""\
# Written by minimirror: serve the APT repository at /srv on port {_PORT} (replaces the base's default site).
server {{
    listen {_PORT} default_server;
    server_name _;
    root /srv;
    autoindex on;
    location / {{
        try_files $uri $uri/ =404;
    }}
}}
"""
NGINX_CMD = ("nginx", "-g", "daemon off;")
"""The command set when the base has neither Entrypoint nor Cmd."""

# OCI (architecture, variant) -> Debian architecture; the reverse of minimirror.image.oci's table.
_DEBIAN_ARCH: Mapping[tuple[str, str], str] = {
    ("amd64", ""): "amd64", ("arm64", "v8"): "arm64", ("arm64", ""): "arm64", ("arm", "v7"): "armhf",
    ("arm", "v5"): "armel", ("386", ""): "i386", ("ppc64le", ""): "ppc64el", ("s390x", ""): "s390x",
    ("riscv64", ""): "riscv64", ("mips64le", ""): "mips64el", ("loong64", ""): "loong64",
}  # fmt: skip

SourceKind = Literal["oci", "docker-archive", "registry"]


@dataclass(frozen=True, slots=True)
class BaseSource:
    """Where the base comes from, parsed from ``--base`` (pure)."""

    kind: SourceKind
    location: str  # a directory, a file or a registry reference
    tag: str = ""


@dataclass(frozen=True, slots=True)
class BaseLayer:
    """One verified layer blob of the base: its digests and where its bytes are."""

    layer: LayerDigest
    path: Path


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A verified base: its manifest digest (or config digest for a docker-archive), config and layers."""

    reference: str
    digest: str
    config: Mapping[str, Any] = field(repr=False)
    layers: tuple[BaseLayer, ...]

    @property
    def architecture(self) -> str:
        """The Debian architecture of the base."""
        key = (str(self.config.get("architecture", "")), str(self.config.get("variant", "")))
        try:
            return _DEBIAN_ARCH[key]
        except KeyError:
            raise UsageError(f"--base {self.reference}: no Debian architecture for the platform {key}") from None


# --- parsing --------------------------------------------------------------------------------------------


def parse_base(text: str) -> BaseSource:
    """``oci:DIR[:TAG]``, ``docker-archive:FILE`` or ``HOST/NAME@sha256:...``; a tag-only reference is refused."""
    if text.startswith("oci:"):
        path, sep, tag = text[4:].rpartition(":")
        if not sep or "/" in tag:
            path, tag = text[4:], ""
        return BaseSource("oci", path, tag)
    if text.startswith("docker-archive:"):
        return BaseSource("docker-archive", text.removeprefix("docker-archive:"))
    from minimirror.image.registry import parse_reference

    ref = parse_reference(text)
    if not ref.digest:
        raise UsageError(
            f"--base {text}: a registry base must be pinned by digest (HOST/NAME@sha256:...), since a tag names "
            f"other bytes tomorrow and the image must be reproducible; find the digest with "
            f"`skopeo inspect docker://{text}` and write it after '@'"
        )
    return BaseSource("registry", text)


def load_base(
    text: str,
    cache_dir: Path,
    client: httpx.Client | None = None,
    *,
    arch: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> BaseImage:
    """Read and verify the base named by ``text``; registry blobs land in ``cache_dir`` (content-addressed)."""
    source = parse_base(text)
    if source.kind == "oci":
        return _from_layout(text, source, arch)
    if source.kind == "docker-archive":
        return _from_docker_archive(text, Path(source.location), cache_dir)
    return _from_registry(text, cache_dir, client, arch, environ)


# --- verification, shared -------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _verify_blob(path: Path, digest: str, where: str) -> None:
    if not path.is_file():
        raise UsageError(f"{where}: blob {digest} is missing ({path})")
    actual = _sha256_file(path)
    if actual != digest:
        raise IntegrityError(f"{where}: blob {path} has sha256 {actual[7:]}, not {digest}; the base is corrupt")


def _diff_digest(path: Path, compressed: bool) -> tuple[str, int]:
    """sha256 and size of the uncompressed tar in ``path``."""
    digest, size = hashlib.sha256(), 0
    with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def _layer(where: str, descriptor: Mapping[str, Any], diff_id: str, path: Path) -> BaseLayer:
    media_type = str(descriptor.get("mediaType", ""))
    if media_type not in _GZIP_TYPES | _TAR_TYPES:
        raise UsageError(
            f"{where}: layer {descriptor.get('digest')} has media type {media_type!r}; minimirror takes gzip or "
            "uncompressed tar layers (convert the base with `skopeo copy --dest-compress-format gzip`)"
        )
    digest = str(descriptor["digest"])
    _verify_blob(path, digest, where)
    actual, size = _diff_digest(path, media_type in _GZIP_TYPES)
    if actual != diff_id:
        raise IntegrityError(f"{where}: layer {digest} unpacks to {actual}, but the config says {diff_id}")
    return BaseLayer(LayerDigest(digest, path.stat().st_size, diff_id, size), path)


def _config_layers(where: str, config: Mapping[str, Any], count: int) -> list[str]:
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if not isinstance(diff_ids, list) or len(diff_ids) != count:
        raise IntegrityError(f"{where}: the config lists {len(diff_ids)} diff_ids for {count} layers")
    return [str(d) for d in diff_ids]


def _select(where: str, index: Mapping[str, Any], arch: str | None, tag: str = "") -> Mapping[str, Any]:
    """The index entry for ``tag`` (layouts) or the platform of ``arch`` (or the only Linux image)."""
    entries = [e for e in index.get("manifests", []) if isinstance(e, dict)]
    if tag:
        entries = [e for e in entries if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    platforms = [e for e in entries if e.get("platform", {}).get("os", "linux") == "linux"]
    if arch is not None:
        from minimirror.image.oci import oci_platform

        want_arch, want_variant = oci_platform(arch)
        platforms = [
            e
            for e in platforms
            if e.get("platform", {}).get("architecture", want_arch) == want_arch
            and e.get("platform", {}).get("variant", want_variant) in (want_variant, "")
        ]
    if len(platforms) == 1:
        return platforms[0]
    found = sorted(f"{e.get('platform', {}).get('architecture', '?')}" for e in entries)
    what = "no image" if not platforms else f"{len(platforms)} images"
    raise UsageError(f"{where}: {what} match (tag {tag or '-'}, arch {arch or '-'}; found {found}); use --arch")


# --- oci: ----------------------------------------------------------------------------------------------


def _from_layout(text: str, source: BaseSource, arch: str | None) -> BaseImage:
    root = Path(source.location)
    if not (root / "oci-layout").is_file():
        raise UsageError(f"--base {text}: {root} is not an OCI image layout (no oci-layout file)")
    blobs = root / "blobs" / "sha256"
    entry = _select(text, json.loads((root / "index.json").read_bytes()), arch, source.tag)
    while entry.get("mediaType") in _INDEX_TYPES:
        _verify_blob(blobs / str(entry["digest"])[7:], str(entry["digest"]), text)
        entry = _select(text, json.loads((blobs / str(entry["digest"])[7:]).read_bytes()), arch)
    digest = str(entry["digest"])
    _verify_blob(blobs / digest[7:], digest, text)
    manifest = json.loads((blobs / digest[7:]).read_bytes())
    config_digest = str(manifest["config"]["digest"])
    _verify_blob(blobs / config_digest[7:], config_digest, text)
    config = json.loads((blobs / config_digest[7:]).read_bytes())
    diff_ids = _config_layers(text, config, len(manifest["layers"]))
    layers = tuple(
        _layer(text, d, diff_id, blobs / str(d["digest"])[7:])
        for d, diff_id in zip(manifest["layers"], diff_ids, strict=True)
    )
    return BaseImage(text, digest, config, layers)


# --- docker-archive: ------------------------------------------------------------------------------------


def _from_docker_archive(text: str, path: Path, cache_dir: Path) -> BaseImage:
    if not path.is_file():
        raise UsageError(f"--base {text}: {path} is not a file")
    try:
        with tarfile.open(path, mode="r:") as archive:
            manifest = json.loads(_member(archive, "manifest.json", text).read())
            if not isinstance(manifest, list) or len(manifest) != 1:
                raise UsageError(f"--base {text}: the archive must hold exactly one image")
            config_data = _member(archive, manifest[0]["Config"], text).read()
            config = json.loads(config_data)
            diff_ids = _config_layers(text, config, len(manifest[0]["Layers"]))
            cache = Cache(cache_dir)
            layers = tuple(
                _cache_tar_layer(text, archive, name, diff_id, cache)
                for name, diff_id in zip(manifest[0]["Layers"], diff_ids, strict=True)
            )
    except (tarfile.TarError, KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"--base {text}: not a docker-archive ({type(exc).__name__}: {exc})") from None
    return BaseImage(text, "sha256:" + hashlib.sha256(config_data).hexdigest(), config, layers)


def _member(archive: tarfile.TarFile, name: str, where: str) -> IO[bytes]:
    handle = archive.extractfile(name)
    if handle is None:
        raise UsageError(f"--base {where}: {name} is not a file in the archive")
    return handle


def _cache_tar_layer(where: str, archive: tarfile.TarFile, name: str, diff_id: str, cache: Cache) -> BaseLayer:
    """Copy the uncompressed layer into the cache under its diff_id (which is also its blob digest)."""
    target = cache.blob_path(diff_id[7:])
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with _member(archive, name, where) as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        partial.replace(target)
    descriptor = {"mediaType": MEDIA_TAR, "digest": diff_id}
    try:
        return _layer(where, descriptor, diff_id, target)
    except IntegrityError:
        target.unlink()
        raise


# --- registry -------------------------------------------------------------------------------------------


def _from_registry(
    text: str, cache_dir: Path, client: httpx.Client | None, arch: str | None, environ: Mapping[str, str] | None
) -> BaseImage:
    from minimirror.image.registry import RegistryClient, find_credentials, parse_reference
    from minimirror.upstream.download import make_client

    ref = parse_reference(text)
    own = client is None
    http = make_client() if client is None else client
    try:
        registry = RegistryClient(http, ref, find_credentials(ref.host, environ))
        manifest = registry.get_manifest(ref.digest)
        while manifest.media_type in _INDEX_TYPES:
            manifest = registry.get_manifest(str(_select(text, manifest.json(), arch)["digest"]))
        body = manifest.json()
        cache = Cache(cache_dir)
        config_path = _fetch(registry, cache, str(body["config"]["digest"]))  # type: ignore[index]
        config = json.loads(config_path.read_bytes())
        descriptors: Sequence[Mapping[str, Any]] = body["layers"]  # type: ignore[assignment]
        diff_ids = _config_layers(text, config, len(descriptors))
        layers = tuple(
            _layer(text, d, diff_id, _fetch(registry, cache, str(d["digest"])))
            for d, diff_id in zip(descriptors, diff_ids, strict=True)
        )
    finally:
        if own:
            http.close()
    return BaseImage(text, manifest.digest, config, layers)


def _fetch(registry: Any, cache: Cache, digest: str) -> Path:
    """The blob from the cache when it is there and intact, else downloaded (and verified) into it."""
    path = cache.blob_path(digest[7:])
    if path.is_file() and _sha256_file(path) == digest:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    registry.get_blob(digest, path)
    return path


# --- what minimirror adds on top ------------------------------------------------------------------------


def nginx_entries() -> list[LayerEntry]:
    """The configuration layer: nginx serves /srv on port 8080 (``conf.d/default.conf`` replaced)."""
    return [
        LayerEntry.directory("etc"),
        LayerEntry.directory("etc/nginx"),
        LayerEntry.directory("etc/nginx/conf.d"),
        LayerEntry.file("etc/nginx/conf.d/default.conf", NGINX_CONF.encode()),
    ]


def merge_config(
    base: Mapping[str, Any],
    *,
    created: str,
    labels: Mapping[str, str],
    diff_ids: Sequence[str],
    history: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    """The base's config with ours merged in, deterministically.

    Kept from the base: Entrypoint, Cmd, User, Env, WorkingDir, StopSignal, architecture, os, variant (nginx
    starts as the base says; :data:`NGINX_CMD` only when the base says nothing). Replaced: ``ExposedPorts`` is
    ``{"8080/tcp": {}}`` (the only port the mirror is served on), ``created`` is SOURCE_DATE_EPOCH. Merged:
    ``Labels`` (ours win), ``rootfs.diff_ids`` and ``history`` (the base's, then ours).
    """
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    run: dict[str, Any] = dict(merged.get("config") or {})
    if not run.get("Entrypoint") and not run.get("Cmd"):
        run["Cmd"] = list(NGINX_CMD)
    run["ExposedPorts"] = {f"{_PORT}/tcp": {}}
    run["Labels"] = {**(run.get("Labels") or {}), **labels}
    merged["config"] = run
    merged["created"] = created
    merged["rootfs"] = {"type": "layers", "diff_ids": [*merged["rootfs"]["diff_ids"], *diff_ids]}
    merged["history"] = [*(merged.get("history") or []), *map(dict, history)]
    return merged
