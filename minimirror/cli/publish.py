"""``minimirror publish`` and ``minimirror key generate``: the publish+sign stage (see docs/publish.md).

Secrets come from the environment only: ``$RELEASE_SIGN_KEY_PATH`` (the default for ``--sign-key``) and
``$RELEASE_SIGN_KEY_PASSPHRASE``. The passphrase is never an option, so it never lands in shell history,
``ps`` output or an executed notebook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from minimirror.cli._common import cache_option, err_console, invocation, locks_option, out_console
from minimirror.cli.image import image_options, print_image
from minimirror.errors import UsageError
from minimirror.publish.signingkey import (
    KEY_ENV,
    PASSPHRASE_ENV,
    SigningChoice,
    environment_passphrase,
    signing_from_environment,
)

if TYPE_CHECKING:
    from minimirror.image.layers import Compression
    from minimirror.image.oci import ImageFormat
    from minimirror.image.pack import PushVia, ServerKind
    from minimirror.publish.repository import PublishOptions, PublishReport

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["build", "key", "publish", "publish_options", "run_build"]

log = logging.getLogger("minimirror.publish.repository")


def _signing(sign_key: Path | None, no_sign: bool) -> SigningChoice:
    """Exactly one of --sign-key / --no-sign, unless $RELEASE_SIGN_KEY_PATH stands in for --sign-key; the
    passphrase always from the environment (:func:`minimirror.pipeline.build.signing_from_environment`)."""
    if sign_key is not None and no_sign:
        raise UsageError("give either --sign-key FILE or --no-sign, not both")
    if no_sign:
        return SigningChoice(None)
    from_environment = signing_from_environment()
    if sign_key is not None:
        return SigningChoice(sign_key, environment_passphrase())
    if from_environment.key_path is not None:
        return from_environment
    raise UsageError(
        f"publish needs a signing key: give --sign-key FILE (or set ${KEY_ENV}), "
        "or --no-sign for an unsigned repository (never for production); "
        "`minimirror key generate --out FILE` makes a key"
    )


def _options(sources_dir: Path | None) -> PublishOptions:
    from minimirror.publish.epoch import environment_epoch
    from minimirror.publish.repository import PublishOptions, ReleaseOverrides

    if sources_dir is None:
        return PublishOptions(epoch=environment_epoch())
    from minimirror.sources.tree import load_sources

    overrides = {
        source.source_id: ReleaseOverrides(
            origin=source.settings.origin,
            label=source.settings.label,
            suite=source.settings.suite,
            codename=source.settings.codename,
            description=source.settings.description,
        )
        for source in load_sources(sources_dir)
    }
    return PublishOptions(epoch=environment_epoch(), overrides=overrides)


def _print_report(report: PublishReport) -> None:
    for dist in report.dists:
        out_console.print(f"{dist.source_id}: {dist.prefix}/dists/{dist.dist} ({dist.packages} packages)", markup=False)
    signed = f"signed by {report.fingerprint}" if report.fingerprint else "UNSIGNED"
    out_console.print(
        f"published {report.files} files to {report.out_dir} ({signed}, SOURCE_DATE_EPOCH={report.epoch})"
    )


_PUBLISH_OPTIONS = [
    locks_option,
    cache_option,
    click.option(
        "--out",
        "out_dir",
        required=True,
        type=click.Path(path_type=Path, file_okay=False),
        help="The published tree; replaced atomically (OUT/<prefix>/dists, pool, signing-key.gpg).",
    ),
    click.option(
        "--sign-key",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help=f"Armored secret key to sign with (default ${KEY_ENV}); passphrase from ${PASSPHRASE_ENV}.",
    ),
    click.option("--no-sign", is_flag=True, help="Publish without signatures (tests only; apt refuses it by default)."),
    click.option(
        "--sources",
        "sources_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Read Release overrides (origin, label, suite, codename, description) from this sources tree.",
    ),
    click.option(
        "--no-fetch", is_flag=True, help="Do not download missing pool files; fail naming them (offline builds)."
    ),
]


def publish_options(func: F) -> F:
    for option in reversed(_PUBLISH_OPTIONS):
        func = option(func)
    return func


def run_build(
    locks_dir: Path,
    cache_dir: Path,
    out_dir: Path,
    sign_key: Path | None,
    no_sign: bool,
    sources_dir: Path | None,
    no_fetch: bool,
    image: ImageChoice | None = None,
) -> None:
    """One :func:`minimirror.pipeline.build.build` with the options of ``publish``/``build``, and its report."""
    from minimirror.cli.fetch import progress_bar, summary
    from minimirror.image.oci import DEFAULT_TAG
    from minimirror.pipeline.build import BuildConfig, build

    signing = _signing(sign_key, no_sign)
    options = _options(sources_dir)
    image = image or ImageChoice()
    config = BuildConfig(
        locks_dir=locks_dir,
        cache_dir=cache_dir,
        out_dir=out_dir,
        image_path=image.path,
        signing=signing,
        epoch=options.epoch,
        tag=image.tag or DEFAULT_TAG,
        image_format=image.fmt,
        image_arch=image.arch,
        image_base=image.base,
        image_push=image.push,
        image_load=image.load,
        docker_host=image.docker_host,
        push_via=image.push_via,
        image_compression=image.compression,
        image_platforms=image.platforms,
        image_server=image.server,
        overrides=options.overrides,
        fetch_missing=not no_fetch,
    )
    quiet = invocation().quiet
    with progress_bar(show=err_console.is_terminal and not quiet) as progress:
        outcome = build(config, progress=progress)
    if quiet:
        return
    if outcome.fetched is not None:
        out_console.print(summary(outcome.fetched), markup=False)
    _print_report(outcome.published)
    if outcome.image is not None:
        print_image(outcome.image)


@click.command("publish")
@publish_options
def publish(
    locks_dir: Path,
    cache_dir: Path,
    out_dir: Path,
    sign_key: Path | None,
    no_sign: bool,
    sources_dir: Path | None,
    no_fetch: bool,
) -> None:
    """Publish the locked packages as a signed APT repository in OUT, fetching what the cache lacks.

    Reproducible: the same locks, key and SOURCE_DATE_EPOCH (default: the newest upstream Date of the locks)
    give the same bytes.
    """
    run_build(locks_dir, cache_dir, out_dir, sign_key, no_sign, sources_dir, no_fetch)


@click.command("build")
@publish_options
@click.option("--image", "image_path", type=click.Path(path_type=Path), default=None, help="Also write the image here.")
@image_options
def build(
    locks_dir: Path,
    cache_dir: Path,
    out_dir: Path,
    sign_key: Path | None,
    no_sign: bool,
    sources_dir: Path | None,
    no_fetch: bool,
    image_path: Path | None,
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
) -> None:
    """fetch + publish (+ image with --image): the mirror from the locks, in one command."""
    from minimirror.image.oci import parse_platforms

    parsed = parse_platforms(platforms) if platforms else ()
    image = ImageChoice(
        image_path, fmt, tag, arch, base, push, load, docker_host, push_via, compression, parsed, server
    )
    run_build(locks_dir, cache_dir, out_dir, sign_key, no_sign, sources_dir, no_fetch, image)


@dataclass(frozen=True, slots=True)
class ImageChoice:
    """The image options of ``build``; ``path`` None: no image."""

    path: Path | None = None
    fmt: ImageFormat = "oci"
    tag: str | None = None
    arch: str | None = None
    base: str | None = None
    push: str | None = None
    load: bool = False
    docker_host: str | None = None
    push_via: PushVia = "registry"
    compression: Compression = "none"
    platforms: tuple[str, ...] = ()
    server: ServerKind = "busybox"


@click.group("key")
def key() -> None:
    """Signing keys for published repositories."""


@key.command("generate")
@click.option(
    "--out",
    "out_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the armored secret key (mode 0600); the public key goes to OUT.pub.asc.",
)
@click.option("--uid", default=None, help="User id: 'Name' or 'Name <email>'.")
def generate(out_file: Path, uid: str | None) -> None:
    """Generate an Ed25519 signing key, protected with $RELEASE_SIGN_KEY_PASSPHRASE when it is set."""
    from minimirror.publish.sign import DEFAULT_UID, generate_key, write_generated_key

    passphrase = environment_passphrase()
    generated = generate_key(uid or DEFAULT_UID, passphrase=passphrase)
    secret, public = write_generated_key(out_file, generated)
    if not passphrase:
        log.warning("the secret key in %s is not protected by a passphrase; keep the file secret", secret)
    if not invocation().quiet:
        out_console.print(f"{generated.fingerprint}: secret key {secret}, public key {public}", markup=False)
