"""A client of the OCI distribution API over httpx: pull manifests and blobs by digest, push an image layout.

Implements the OCI distribution-spec v1.1 (github.com/opencontainers/distribution-spec, ``spec.md``):

- pull: ``GET /v2/<name>/manifests/<reference>`` (with an ``Accept`` list of the OCI and Docker v2 manifest and
  index media types) and ``GET /v2/<name>/blobs/<digest>``; every body is hashed while it streams and refused
  when its sha256 is not the digest asked for (a registry is never trusted for content);
- push: ``HEAD /v2/<name>/blobs/<digest>`` (skip what exists), ``POST /v2/<name>/blobs/uploads/`` then either one
  ``PUT <location>?digest=`` with the whole blob (monolithic) or ``PATCH <location>`` chunks with
  ``Content-Range`` followed by a closing ``PUT ...?digest=`` (chunked), and ``PUT /v2/<name>/manifests/<tag>``;
- auth, as Docker's token specification (distribution/docs/spec/auth/token.md) and RFC 7617 describe it: a
  request is sent anonymously first; a ``401`` with ``WWW-Authenticate: Basic`` is retried with the credentials,
  one with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` fetches a token from the realm (with the
  credentials as Basic auth when there are some, anonymously otherwise) and retries with it;
- reliability: idempotent requests (``GET``, ``HEAD``) are retried, at most ``retries`` more times with doubling
  waits, after a network error, a timeout, a body cut short or a ``429``/``5xx`` answer (RFC 9110 §9.2.2 lets a
  client repeat them); ``POST``/``PATCH``/``PUT`` are sent once. A manifest is read up to 4 MiB and a blob up to the
  size its manifest's descriptor gives, so an endless body is refused, never buffered; a redirect to a scheme other
  than http(s) is refused.

Credentials come only from the environment (``MINIMIRROR_REGISTRY_USER``/``MINIMIRROR_REGISTRY_PASSWORD``) or a
``~/.docker/config.json``-style auth file (``$REGISTRY_AUTH_FILE``, ``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``: ``{"auths": {"host": {"auth": base64("user:password")}}}``); they are never logged
and never part of an error message. Memory stays bounded: blobs stream to disk, and an upload holds one chunk.
See docs/reliability.md for the faults tried.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode, urljoin

import httpx

from minimirror.errors import FetchError, IntegrityError, UsageError

_T = TypeVar("_T")

__all__ = [
    "MANIFEST_TYPES",
    "Credentials",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "find_credentials",
    "parse_reference",
    "push_layout",
]

log = logging.getLogger(__name__)

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
CHUNK = 8 << 20
"""The largest blob pushed in one request, and the size of each PATCH beyond it: an upload holds one chunk."""
_MAX_MANIFEST = 4 << 20  # the distribution-spec lets registries refuse manifests above 4 MiB
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
RETRIES = 3
"""How many more times an idempotent request is sent after a transient failure."""
BACKOFF = 0.25
"""The first wait between tries, in seconds; it doubles each time (0.25, 0.5, 1: under 2 s in all)."""
_IDEMPOTENT = frozenset({"GET", "HEAD"})
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class RegistryError(FetchError):
    """A registry request that failed: names the URL, the status and what to do."""


class _TransientStatus(Exception):
    """A ``429``/``5xx`` answer to an idempotent request: worth another try."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Reference:
    """``host[:port]/name[:tag][@sha256:...]``, split. ``scheme`` is http for loopback hosts, https otherwise."""

    host: str
    name: str
    tag: str = ""
    digest: str = ""

    @property
    def scheme(self) -> str:
        bare = self.host.rsplit(":", 1)[0] if not self.host.startswith("[") else self.host.split("]")[0][1:]
        return "http" if bare in ("127.0.0.1", "localhost", "::1") else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}/v2/{self.name}"

    def __str__(self) -> str:
        return (
            f"{self.host}/{self.name}"
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def parse_reference(text: str) -> Reference:
    """A registry reference; the host part is required (no implicit default registry)."""
    rest, _, digest = text.partition("@")
    host, slash, path = rest.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(f"{text!r}: not a registry reference; write HOST[:PORT]/NAME[:TAG][@sha256:HEX]")
    name, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if not _NAME.fullmatch(name) or (tag and not _TAG.fullmatch(tag)):
        raise UsageError(f"{text!r}: invalid repository name or tag (distribution-spec: lowercase name, tag [\\w.-])")
    if digest and not _DIGEST.fullmatch(digest):
        raise UsageError(f"{text!r}: the digest must be sha256: followed by 64 lowercase hex digits")
    return Reference(host, name, tag, digest)


# --- credentials ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password for one registry. ``repr`` never shows the password."""

    user: str
    password: str = field(repr=False)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()


def find_credentials(host: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The environment's credentials, else the auth file's entry for ``host``, else none (anonymous)."""
    env = os.environ if environ is None else environ
    user, password = env.get("MINIMIRROR_REGISTRY_USER"), env.get("MINIMIRROR_REGISTRY_PASSWORD")
    if user and password is not None:
        return Credentials(user, password)
    path = _auth_file(env)
    return _from_auth_file(path, host) if path is not None and path.is_file() else None


def _auth_file(env: Mapping[str, str]) -> Path | None:
    if env.get("REGISTRY_AUTH_FILE"):
        return Path(env["REGISTRY_AUTH_FILE"])
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path(env["HOME"]) / ".docker" / "config.json" if env.get("HOME") else None


def _from_auth_file(path: Path, host: str) -> Credentials | None:
    try:
        auths = json.loads(path.read_bytes()).get("auths", {})
        entry = auths.get(host) or auths.get(f"https://{host}") or auths.get(f"http://{host}")
        if not entry or "auth" not in entry:
            return None
        user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: not a readable auth file ({type(exc).__name__}); fix or remove it") from None
    if not sep:
        raise UsageError(f"{path}: the auth entry for {host} is not base64 of user:password; fix it")
    return Credentials(user, password)


# --- auth: the 401 dance, as an httpx.Auth ---------------------------------------------------------------


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(params))


class _RegistryAuth(httpx.Auth):
    """Anonymous first; on a 401, Basic with the credentials or a bearer token from the challenge's realm.

    The last working ``Authorization`` value is reused for later requests, so a push authenticates once per
    scope. Request bodies are bytes (one chunk at most), so a request can be resent after a challenge. Only the
    token service's answer is read here: ``requires_response_body`` would make httpx read every body (a blob,
    an endless one) into memory before the caller streams it.
    """

    requires_response_body = False

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self.header: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.header is not None:
            request.headers["Authorization"] = self.header
        response = yield request
        if response.status_code != 401 or "www-authenticate" not in response.headers:
            return
        scheme, params = _challenge(response.headers["www-authenticate"])
        if scheme == "basic" and self.credentials is not None:
            self.header = self.credentials.basic()
        elif scheme == "bearer" and "realm" in params:
            token_response = yield self._token_request(params)
            self.header = self._token(token_response)
        else:
            return
        request.headers["Authorization"] = self.header
        yield request

    def _token_request(self, params: Mapping[str, str]) -> httpx.Request:
        query = {key: params[key] for key in ("service", "scope") if key in params}
        url = params["realm"] + ("?" + urlencode(query) if query else "")
        headers = {"Authorization": self.credentials.basic()} if self.credentials is not None else {}
        return httpx.Request("GET", url, headers=headers)

    @staticmethod
    def _token(response: httpx.Response) -> str:
        url = str(response.request.url.copy_with(query=None))
        response.read()
        if response.status_code != 200:
            hint = "set MINIMIRROR_REGISTRY_USER/MINIMIRROR_REGISTRY_PASSWORD or log in (auth file)"
            raise RegistryError(url, f"the token service answered {response.status_code}", hint)
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(url, "the token service answered without a token", "check the registry's auth setup")
        return f"Bearer {token}"


# --- the client -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest (or index) as the registry sent it: the exact bytes, its media type and digest."""

    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, object]:
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise IntegrityError(f"manifest {self.digest} is not a JSON object")
        return value


class RegistryClient:
    """One registry, one repository; the network is the ``httpx.Client`` given (tests give a MockTransport)."""

    def __init__(
        self,
        client: httpx.Client,
        ref: Reference,
        credentials: Credentials | None = None,
        *,
        retries: int = RETRIES,
        backoff: float | None = None,
    ) -> None:
        self.client, self.ref = client, ref
        self.retries, self.backoff = retries, BACKOFF if backoff is None else backoff
        self._auth = _RegistryAuth(credentials)
        self._sizes: dict[str, int] = {}  # digest -> size, from the descriptors of the manifests read

    def _retrying(self, method: str, url: str, call: Callable[[], _T]) -> _T:
        """``call()``; for GET/HEAD again after a transient failure, up to ``retries`` more times, with backoff."""
        attempts = 1 + self.retries if method in _IDEMPOTENT else 1
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except (*_TRANSIENT, _TransientStatus) as exc:
                if attempt == attempts:
                    raise _failure(url, exc, attempt) from exc
                log.info("%s %s: %s; trying again (%d/%d)", method, url, _reason(exc), attempt + 1, attempts)
                time.sleep(self.backoff * 2 ** (attempt - 1))
            except httpx.HTTPError as exc:  # not transient: a file: redirect, too many redirects, a bad URL
                raise _failure(url, exc, attempt) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        def once() -> httpx.Response:
            response = self.client.request(method, url, auth=self._auth, **kwargs)  # type: ignore[arg-type]
            if response.status_code in _RETRY_STATUS and method in _IDEMPOTENT:
                raise _TransientStatus(response.status_code)
            return response

        return self._retrying(method, url, once)

    def _check(self, response: httpx.Response, *expected: int) -> httpx.Response:
        if response.status_code in expected:
            return response
        url = str(response.request.url)
        detail = response.text[:300].strip() if not response.is_stream_consumed or response.content else ""
        hint = {
            401: "set MINIMIRROR_REGISTRY_USER/MINIMIRROR_REGISTRY_PASSWORD or an auth file entry for " + self.ref.host,
            403: "the credentials have no permission for this repository",
            404: "check the repository name and digest",
        }.get(response.status_code, "")
        raise RegistryError(url, f"HTTP {response.status_code} {detail}".strip(), hint)

    def _stream(self, url: str, limit: int, sink: Callable[[bytes], None], **kwargs: object) -> httpx.Response:
        """GET ``url`` and feed its body to ``sink``; more than ``limit`` bytes is refused (an endless body)."""
        with self.client.stream("GET", url, auth=self._auth, **kwargs) as response:  # type: ignore[arg-type]
            if response.status_code in _RETRY_STATUS:
                raise _TransientStatus(response.status_code)
            if response.status_code != 200:
                response.read()  # an error page, for the message
            self._check(response, 200)
            received = 0
            for chunk in response.iter_bytes(1 << 20):
                received += len(chunk)
                if received > limit:
                    raise RegistryError(url, f"the body is longer than the {limit} bytes expected; refusing it")
                sink(chunk)
        return response

    def get_manifest(self, reference: str) -> Manifest:
        """The manifest or index at ``reference`` (a tag or a digest); a digest is verified."""
        url = f"{self.ref.base_url}/manifests/{reference}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}

        def once() -> tuple[httpx.Response, bytes]:
            body = bytearray()
            return self._stream(url, _MAX_MANIFEST, body.extend, headers=headers), bytes(body)

        response, data = self._retrying("GET", url, once)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise IntegrityError(f"{url}: the registry sent a manifest whose digest is {digest}; refusing it")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        try:
            body = json.loads(data)
        except ValueError:
            raise RegistryError(url, "the manifest is not JSON", "check the registry and the reference") from None
        self._remember_sizes(body)
        return Manifest(data, (body.get("mediaType") if isinstance(body, dict) else None) or media_type, digest)

    def _remember_sizes(self, body: object) -> None:
        """The sizes of the config and layers a manifest names: the most :meth:`get_blob` will read of each."""
        if not isinstance(body, dict):
            return
        config = body.get("config")
        layers = body.get("layers")
        descriptors = [config] if isinstance(config, dict) else []
        descriptors += [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []
        for descriptor in descriptors:
            if isinstance(descriptor.get("digest"), str) and isinstance(descriptor.get("size"), int):
                self._sizes[descriptor["digest"]] = descriptor["size"]

    def get_blob(self, digest: str, out: Path, *, size: int | None = None) -> None:
        """Stream the blob ``digest`` to ``out`` (via a temporary name), refusing it if its sha256 differs.

        At most ``size`` bytes are read: by default the size a manifest read by this client gave for it."""
        url = f"{self.ref.base_url}/blobs/{digest}"
        partial = out.with_name(out.name + ".partial")
        limit = size if size is not None else self._sizes.get(digest, 1 << 62)
        hasher = hashlib.sha256()

        def once() -> None:
            nonlocal hasher
            hasher = hashlib.sha256()
            with partial.open("wb") as handle:

                def sink(chunk: bytes) -> None:
                    hasher.update(chunk)
                    handle.write(chunk)

                self._stream(url, limit, sink)

        try:
            self._retrying("GET", url, once)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if "sha256:" + hasher.hexdigest() != digest:
            partial.unlink()
            raise IntegrityError(f"{url}: the blob's sha256 is {hasher.hexdigest()}, not {digest}; refusing it")
        partial.replace(out)

    def has_blob(self, digest: str) -> bool:
        response = self._send("HEAD", f"{self.ref.base_url}/blobs/{digest}")
        return self._check(response, 200, 404).status_code == 200

    def push_blob(self, digest: str, path: Path, *, chunk: int = CHUNK) -> bool:
        """Upload ``path`` as ``digest`` unless the registry has it; True when it was uploaded."""
        if self.has_blob(digest):
            return False
        location = self._location(self._check(self._send("POST", f"{self.ref.base_url}/blobs/uploads/"), 202))
        size = path.stat().st_size
        with path.open("rb") as handle:
            if size <= chunk:
                self._put_upload(location, digest, handle.read())
                return True
            offset = 0
            for data in _chunks(handle, chunk):
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(data) - 1}",
                }
                response = self._send("PATCH", location, content=data, headers=headers)
                location = self._location(self._check(response, 202))
                offset += len(data)
        self._put_upload(location, digest, b"")
        return True

    def _put_upload(self, location: str, digest: str, data: bytes) -> None:
        url = location + ("&" if "?" in location else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        self._check(self._send("PUT", url, content=data, headers=headers), 201)

    def _location(self, response: httpx.Response) -> str:
        if "location" not in response.headers:
            raise RegistryError(str(response.request.url), "upload answer without a Location header")
        return urljoin(str(response.request.url), response.headers["location"])

    def put_manifest(self, tag: str, data: bytes, media_type: str) -> str:
        """PUT the manifest under ``tag``; returns its digest (checked against the registry's answer)."""
        url = f"{self.ref.base_url}/manifests/{tag}"
        response = self._check(self._send("PUT", url, content=data, headers={"Content-Type": media_type}), 201)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        answered = response.headers.get("docker-content-digest", digest)
        if answered != digest:
            raise IntegrityError(f"{url}: the registry stored the manifest as {answered}, not {digest}")
        return digest


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _TransientStatus) else f"{type(exc).__name__}: {exc}"


def _failure(url: str, exc: BaseException, attempts: int) -> RegistryError:
    """The error for a request that failed for good: the URL, what happened (after how many tries), what to do."""
    tries = f" (after {attempts} tries)" if attempts > 1 else ""
    if isinstance(exc, httpx.UnsupportedProtocol):
        hint = "the registry redirected to a URL that is not http(s); minimirror does not follow it"
    elif isinstance(exc, _TransientStatus):
        hint = "the registry is failing; try again later or ask its operator"
    else:
        hint = "is the registry running and reachable?"
    return RegistryError(url, _reason(exc) + tries, hint)


def _chunks(handle: object, size: int) -> Iterator[bytes]:
    read = handle.read  # type: ignore[attr-defined]
    while data := read(size):
        yield data


# --- push an OCI image layout ----------------------------------------------------------------------------


_MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the reference written, the manifest digest, and how many blobs were uploaded."""

    reference: str
    digest: str
    uploaded: int
    skipped: int


def push_layout(
    layout: Path, target: str, client: httpx.Client, *, environ: Mapping[str, str] | None = None
) -> PushResult:
    """Push the one image of the OCI layout ``layout`` to ``target`` (``host/name:tag``): blobs, then manifest."""
    ref = parse_reference(target)
    if ref.digest or not ref.tag:
        raise UsageError(f"--push {target!r}: give a tag to push to (HOST/NAME:TAG), not a digest")
    index = json.loads((layout / "index.json").read_bytes())
    descriptor = index["manifests"][0]
    blobs = layout / "blobs" / "sha256"
    top_data = (blobs / descriptor["digest"][7:]).read_bytes()
    registry = RegistryClient(client, ref, find_credentials(ref.host, environ))
    # An image index (several platforms): each platform's manifest goes up by digest first, then the index
    # under the tag, so the tag never names a manifest the registry lacks.
    children = json.loads(top_data)["manifests"] if descriptor["mediaType"] == _MEDIA_INDEX else []
    manifests = [(child, (blobs / child["digest"][7:]).read_bytes()) for child in children] or [(descriptor, top_data)]
    uploaded = skipped = 0
    pushed: set[str] = set()
    for _, data in manifests:
        manifest = json.loads(data)
        for blob in [*manifest["layers"], manifest["config"]]:
            if blob["digest"] in pushed:  # the repository layers are shared by every platform
                continue
            pushed.add(blob["digest"])
            if registry.push_blob(blob["digest"], blobs / blob["digest"][7:]):
                uploaded += 1
            else:
                skipped += 1
    if children:
        for child, data in manifests:
            registry.put_manifest(child["digest"], data, child["mediaType"])
    digest = registry.put_manifest(ref.tag, top_data, descriptor["mediaType"])
    log.info("pushed %s (%s): %d blobs uploaded, %d already there", ref, digest, uploaded, skipped)
    return PushResult(str(ref), digest, uploaded, skipped)
