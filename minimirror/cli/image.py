"""``minimirror image``: pack a published repository into a reproducible OCI image (or a docker-archive).

The work is :func:`minimirror.image.pack.make_image`; this module parses the options and prints the digests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from minimirror.cli._common import cache_option, invocation, locks_option, out_console

if TYPE_CHECKING:
    from minimirror.image.layers import Compression
    from minimirror.image.oci import ImageFormat, ImageResult
    from minimirror.image.pack import PushVia, ServerKind

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["image", "image_options", "print_image"]


def image_options(func: F) -> F:
    """The image options (--format, --compression, --tag, --push...): shared by ``image`` and ``build``."""
    for option in reversed(_IMAGE_OPTIONS):
        func = option(func)
    return func


_IMAGE_OPTIONS = [
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["oci", "docker-archive"]),
        default="oci",
        show_default=True,
        help="An OCI image layout directory, or a tar file for `docker load` / `podman load`.",
    ),
    click.option(
        "--compression",
        type=click.Choice(["none", "gzip", "zstd"]),
        default="none",
        show_default=True,
        help="Layer compression. none: plain tar layers, fastest, and .deb files are compressed already; gzip "
        "(level 1): for old engines and registries; zstd: smallest, needs Docker 23+ / containerd 1.5+ / podman.",
    ),
    click.option("--tag", default=None, help="The image name and tag.  [default: localhost/minimirror:latest]"),
    click.option(
        "--arch", default=None, help="The Debian architecture of the image, when the server is locked for several."
    ),
    click.option(
        "--platform",
        "platforms",
        default=None,
        metavar="linux/ARCH[,linux/ARCH...]",
        help="Build an image index with one manifest per platform (e.g. linux/amd64,linux/arm64), each served by "
        "the server locked for its architecture; the repository layers are shared. docker-archive: one.",
    ),
    click.option(
        "--server",
        type=click.Choice(["busybox", "nginx"]),
        default="busybox",
        show_default=True,
        help="What serves /srv: busybox (the locked busybox-static: one static binary, a process per connection) "
        "or nginx (the locked nginx and the libraries it loads: keep-alive, sendfile; lock `nginx` for each "
        "architecture). See docs/image.md.",
    ),
    click.option(
        "--base",
        default=None,
        metavar="REF",
        help="Serve with this base image's nginx instead of busybox: oci:DIR[:TAG], docker-archive:FILE or "
        "HOST/NAME@sha256:HEX (a registry base must be pinned by digest).",
    ),
    click.option(
        "--push",
        default=None,
        metavar="HOST/NAME:TAG",
        help="Push the image to this registry reference (OCI distribution API; credentials from "
        "MINIMIRROR_REGISTRY_USER/MINIMIRROR_REGISTRY_PASSWORD or ~/.docker/config.json).",
    ),
    click.option("--load", is_flag=True, help="Load the image into the Docker or Podman engine at DOCKER_HOST."),
    click.option(
        "--docker-host", default=None, metavar="URL", help="The engine's socket for --load.  [default: DOCKER_HOST]"
    ),
    click.option(
        "--push-via",
        type=click.Choice(["registry", "engine"]),
        default="registry",
        show_default=True,
        help="registry: push the built manifest over the OCI distribution API. engine: load the image (as --load) "
        "and let the engine at --docker-host push it with its own login; it may recompress layers (another digest).",
    ),
]


@click.command("image")
@click.option(
    "--repo",
    "repo_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The published repository tree to serve (becomes /srv).",
)
@click.option("--image", "image_path", type=click.Path(path_type=Path), required=True, help="Where to write the image.")
@image_options
@locks_option
@cache_option
def image(
    repo_dir: Path,
    image_path: Path,
    fmt: ImageFormat,
    tag: str | None,
    arch: str | None,
    platforms: str | None,
    server: ServerKind,
    base: str | None,
    push: str | None,
    load: bool,
    docker_host: str | None,
    push_via: PushVia,
    compression: Compression,
    locks_dir: Path,
    cache_dir: Path,
) -> None:
    """Pack the repository into a reproducible OCI image served on port 8080 by the locked busybox or nginx.

    Built without a container engine; the same locks, tree and SOURCE_DATE_EPOCH (and base digest) give the same
    digest. An SPDX 2.3 SBOM of every locked package is written to IMAGE.spdx.json and into the image.
    With --base, the base's nginx serves /srv on port 8080 instead.
    """
    from minimirror.image.oci import DEFAULT_TAG, parse_platforms
    from minimirror.image.pack import ImageConfig, make_image

    config = ImageConfig(
        locks_dir, cache_dir, repo_dir, image_path, fmt, tag or DEFAULT_TAG, arch,
        base=base, push=push, load=load, docker_host=docker_host, push_via=push_via,
        compression=compression, platforms=parse_platforms(platforms) if platforms else (), server=server,
    )  # fmt: skip
    result = make_image(config)
    print_image(result)


def print_image(result: ImageResult) -> None:
    if invocation().quiet:
        return
    out_console.print(f"{result.format} image written to {result.path}", markup=False)
    out_console.print(f"manifest {result.manifest_digest}", markup=False)
    out_console.print(f"config   {result.config_digest}", markup=False)
    if len(result.platforms) > 1:
        out_console.print(f"index    {result.manifest_digest} ({', '.join(result.platforms)})", markup=False)
    for layer in result.layers:
        out_console.print(f"layer    {layer.digest} ({layer.size} bytes)", markup=False)
    if result.sbom_path is not None:
        out_console.print(f"sbom     {result.sbom_path}", markup=False)
    if result.base_digest is not None:
        out_console.print(f"base     {result.base_digest}", markup=False)
    if result.pushed is not None:
        out_console.print(f"pushed   {result.pushed}", markup=False)
    if result.loaded is not None:
        out_console.print(f"loaded   {result.loaded}", markup=False)
