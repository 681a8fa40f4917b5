"""A Docker or Podman engine through the ``docker`` SDK: load an image, run it, remove what was created.

Talks the Docker Engine API (docs.docker.com/engine/api, ``POST /images/load`` with a ``docker save`` tarball;
``POST /containers/create``/``start``; ``DELETE /containers/{id}`` and ``/images/{name}``), which Podman's
``podman system service`` serves as well. The socket is ``docker_host`` when given, else ``DOCKER_HOST``, else the
SDK's default (``unix:///var/run/docker.sock``). SDK and transport errors become :class:`EngineError` naming the
socket and what to start, so a missing engine is a one-line message, not a traceback.

:func:`push_image` is ``POST /images/{name}/tag`` then ``POST /images/{name}/push`` (the engine's own credentials:
the SDK's ``~/.docker/config.json`` lookup for Docker, plus Podman's auth.json and ``registries.conf``). The push
progress is a JSON stream; an ``error`` object in it is the failure, and the manifest digest is the ``aux.Digest``
of the last event (Docker) or the ``TAG: digest: sha256:... size: N`` status line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minimirror.errors import UsageError

if TYPE_CHECKING:
    import docker

__all__ = [
    "EngineError",
    "EnginePush",
    "LoadedImage",
    "connect",
    "engine_architecture",
    "load_image",
    "push_digest",
    "push_image",
    "remove_container",
    "remove_image",
    "run_image",
]

_TIMEOUT = 120
_STATUS_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class EngineError(UsageError):
    """The engine cannot be reached, or refused a request."""


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An image the engine holds after ``load``: its id (``sha256:`` + config digest) and tags."""

    id: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnginePush:
    """What the engine pushed: the reference, and the manifest digest it reported (``None`` if it reported none)."""

    reference: str
    digest: str | None


def _where(docker_host: str | None) -> str:
    return docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@contextmanager
def _translated(docker_host: str | None, action: str) -> Iterator[None]:
    import docker.errors
    import requests

    try:
        yield
    except docker.errors.APIError as exc:
        raise EngineError(f"the container engine at {_where(docker_host)} refused to {action}: {exc}") from exc
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise EngineError(
            f"the container engine at {_where(docker_host)} could not {action} ({exc}); start Docker or "
            "`podman system service unix://PATH` and set DOCKER_HOST (or --docker-host) to its socket"
        ) from exc


def connect(docker_host: str | None = None) -> docker.DockerClient:
    """A client of the engine at ``docker_host`` (or ``DOCKER_HOST``); checked with a ping."""
    import docker

    where = _where(docker_host)
    if where.startswith("unix://") and not Path(where.removeprefix("unix://")).exists():
        raise EngineError(
            f"the container engine at {where} could not be reached (no such socket); start Docker or "
            "`podman system service unix://PATH` and set DOCKER_HOST (or --docker-host) to its socket"
        )
    with _translated(docker_host, "be reached"):
        client = (
            docker.DockerClient(base_url=docker_host, timeout=_TIMEOUT)
            if docker_host
            else docker.from_env(timeout=_TIMEOUT)
        )
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
    return client


def load_image(tar: Path, docker_host: str | None = None) -> LoadedImage:
    """Load the docker-archive ``tar`` into the engine; the loaded image's id and tags."""
    client = connect(docker_host)
    try:
        with _translated(docker_host, f"load {tar}"), tar.open("rb") as handle:
            images = client.images.load(handle)
        if len(images) != 1:
            raise EngineError(f"{tar}: the engine loaded {len(images)} images from it, expected one")
        return LoadedImage(str(images[0].id), tuple(images[0].tags))
    finally:
        client.close()


def engine_architecture(docker_host: str | None = None) -> str:
    """The engine's platform as a Debian architecture (``amd64``): the one platform of an index it can run."""
    from minimirror.image.oci import debian_architecture

    client = connect(docker_host)
    try:
        with _translated(docker_host, "version"):
            version = client.version()
    finally:
        client.close()
    return debian_architecture(str(version.get("Arch", "")))


def run_image(
    image: str,
    *,
    name: str,
    command: list[str] | None = None,
    network_mode: str | None = None,
    ports: Mapping[str, Any] | None = None,
    ulimits: Mapping[str, tuple[int, int]] | None = None,
    docker_host: str | None = None,
) -> str:
    """Start a detached container of ``image`` called ``name``; its id. ``ulimits`` maps a name (``nofile``) to
    (soft, hard); an engine in a container may need them set below its own limits."""
    from docker.types import Ulimit

    limits = [Ulimit(name=key, soft=soft, hard=hard) for key, (soft, hard) in sorted((ulimits or {}).items())]
    client = connect(docker_host)
    try:
        with _translated(docker_host, f"run {image}"):
            container = client.containers.run(
                image, command, name=name, detach=True, network_mode=network_mode, ports=dict(ports or {}),
                ulimits=limits or None,
            )  # fmt: skip
        return str(container.id)
    finally:
        client.close()


def remove_container(name: str, docker_host: str | None = None) -> None:
    """Stop and remove the container ``name`` (no error when it is already gone)."""
    import docker.errors

    client = connect(docker_host)
    try:
        with _translated(docker_host, f"remove the container {name}"), suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)
    finally:
        client.close()


def remove_image(image: str, docker_host: str | None = None) -> None:
    """Remove the image ``image`` (no error when it is already gone)."""
    import docker.errors

    client = connect(docker_host)
    try:
        with _translated(docker_host, f"remove the image {image}"), suppress(docker.errors.NotFound):
            client.images.remove(image, force=True)
    finally:
        client.close()


def push_image(image: str, reference: str, docker_host: str | None = None) -> EnginePush:
    """Tag ``image`` (an id or name the engine holds) as ``reference`` (``HOST/NAME:TAG``) and push it with the
    engine's own credentials; the digest the engine reports. The new tag stays in the engine, as ``docker push``'s."""
    from minimirror.image.registry import parse_reference

    ref = parse_reference(reference)
    if ref.digest or not ref.tag:
        raise EngineError(f"--push {reference!r}: give a tag to push to (HOST/NAME:TAG), not a digest")
    repository = f"{ref.host}/{ref.name}"
    client = connect(docker_host)
    try:
        with _translated(docker_host, f"push {reference}"):
            client.images.get(image).tag(repository, ref.tag)
            events = client.images.push(repository, tag=ref.tag, stream=True, decode=True)
            digest = push_digest(events, reference, _where(docker_host))
        return EnginePush(reference, digest)
    finally:
        client.close()


def push_digest(events: Iterable[Mapping[str, Any]], reference: str, where: str) -> str | None:
    """The manifest digest in an engine's push progress stream; an ``error`` event raises :class:`EngineError`."""
    digest: str | None = None
    for event in events:
        if "error" in event or "errorDetail" in event:
            detail = event.get("error") or (event.get("errorDetail") or {}).get("message", "")
            raise EngineError(
                f"the container engine at {where} could not push {reference}: {detail}; check that the registry "
                "is reachable from the engine, the engine's login for it (`docker login`/`podman login`), and, "
                "for a plain-HTTP registry, the engine's insecure-registries (registries.conf for Podman)"
            )
        aux = event.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("Digest"), str):
            digest = aux["Digest"]
        elif (found := _STATUS_DIGEST.search(str(event.get("status", "")))) is not None:
            digest = found.group(1)
    return digest
