"""One build, as ``minimirror build`` and ``notebooks/build.ipynb`` both run it: fetch what the cache lacks,
publish (signed unless told otherwise), then the image. The CLI and the notebook call :func:`build`; nothing
else strings the stages together.

Secrets: the signing key and its passphrase come from the environment (``$RELEASE_SIGN_KEY_PATH``,
``$RELEASE_SIGN_KEY_PASSPHRASE``; :func:`signing_from_environment`) or, for the key only, a CLI option; never
from notebook parameters, since papermill writes parameters into the executed notebook. The passphrase is kept
out of every ``repr`` and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from minimirror.image.layers import Compression
from minimirror.image.oci import DEFAULT_COMPRESSION, DEFAULT_TAG, ImageFormat, ImageResult
from minimirror.image.pack import ImageConfig, PushVia, ServerKind, make_image
from minimirror.publish.epoch import environment_epoch
from minimirror.publish.fetch import FetchConfig, FetchProgress, FetchReport, fetch
from minimirror.publish.repository import PublishConfig, PublishOptions, PublishReport, ReleaseOverrides, publish
from minimirror.publish.signingkey import KEY_ENV, PASSPHRASE_ENV, SigningChoice, signing_from_environment

__all__ = [
    "KEY_ENV",
    "PASSPHRASE_ENV",
    "BuildConfig",
    "BuildOutcome",
    "SigningChoice",
    "build",
    "signing_from_environment",
]

# --- one build --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """What ``minimirror build`` does, as a value: fetch into ``cache_dir``, publish to ``out_dir``, and write
    the image to ``image_path`` unless it is None. ``epoch`` None: ``$SOURCE_DATE_EPOCH``, else the locks'."""

    locks_dir: Path
    cache_dir: Path
    out_dir: Path
    image_path: Path | None
    signing: SigningChoice
    epoch: int | None = None
    tag: str = DEFAULT_TAG
    image_format: ImageFormat = "oci"
    image_arch: str | None = None
    image_base: str | None = None
    """A base image (``oci:``, ``docker-archive:``, ``host/repo@sha256:``) whose nginx serves instead of busybox."""
    image_push: str | None = None
    image_load: bool = False
    docker_host: str | None = None
    push_via: PushVia = "registry"
    image_compression: Compression = DEFAULT_COMPRESSION
    image_platforms: tuple[str, ...] = ()
    """Debian architectures of an image index (one manifest per platform); () = ``image_arch``'s one."""
    image_server: ServerKind = "busybox"
    """What serves the image: the locked busybox-static, or the locked nginx and its libraries."""
    overrides: Mapping[str, ReleaseOverrides] = field(default_factory=dict)
    fetch_missing: bool = True
    """False: an offline build; a pool file missing from the cache is an error naming it."""

    def elsewhere(self, root: Path) -> BuildConfig:
        """The same build, written under ``root`` (``root/public``, ``root/image``), sharing the cache."""
        image = root / "image" if self.image_path is not None else None
        return replace(self, out_dir=root / "public", image_path=image)


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    fetched: FetchReport | None
    """None when the build did not fetch (``fetch_missing=False``)."""
    published: PublishReport
    image: ImageResult | None


def build(
    config: BuildConfig, *, client: httpx.Client | None = None, progress: FetchProgress | None = None
) -> BuildOutcome:
    """Fetch what the cache lacks, publish (signed unless ``config.signing.key_path`` is None), then the image."""
    fetched = None
    if config.fetch_missing:
        fetched = fetch(FetchConfig(config.locks_dir, config.cache_dir), client=client, progress=progress)
    epoch = config.epoch if config.epoch is not None else environment_epoch()
    published = publish(
        PublishConfig(
            locks_dir=config.locks_dir,
            out_dir=config.out_dir,
            cache_dir=config.cache_dir,
            sign_key=config.signing.key_path,
            passphrase=config.signing.passphrase if config.signing.key_path is not None else None,
            options=PublishOptions(epoch=epoch, overrides=config.overrides),
        )
    )
    image = None
    if config.image_path is not None:
        environ = {"SOURCE_DATE_EPOCH": str(published.epoch)}
        image_config = ImageConfig(
            config.locks_dir,
            config.cache_dir,
            config.out_dir,
            config.image_path,
            fmt=config.image_format,
            tag=config.tag,
            arch=config.image_arch,
            environ=environ,
            base=config.image_base,
            push=config.image_push,
            load=config.image_load,
            docker_host=config.docker_host,
            push_via=config.push_via,
            compression=config.image_compression,
            platforms=config.image_platforms,
            server=config.image_server,
        )
        image = make_image(image_config)
    return BuildOutcome(fetched, published, image)
