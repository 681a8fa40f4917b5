"""``minimirror serve``: a read-only HTTP/1.1 server for a published tree, enough for apt and nothing more.

It speaks what apt's http method uses (RFC 9110/9112): ``GET`` and ``HEAD``, persistent connections,
``Content-Length``, ``Last-Modified`` and ``If-Modified-Since`` (304), and a single ``Range`` (206, or 416
when unsatisfiable; ``If-Range`` with a different date gets the whole file), which apt sends to resume a
partial download. Directory listings are off (403), every other method gets 405.

Why the standard library's ``ThreadingHTTPServer`` and no dependency: the same code runs inside the image,
where every package is attack surface and bytes to review, and apt needs none of what a framework adds.

No request can leave the tree: the path is percent-decoded once, and a NUL, a ``..`` segment, an absolute
form pointing elsewhere, or a symlink whose target resolves outside the tree is answered 404.
"""

from __future__ import annotations

import email.utils
import logging
import mimetypes
import os
import re
import socketserver
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from minimirror.publish.verify import find_dists

__all__ = [
    "ByteRange",
    "MirrorServer",
    "apt_source_lines",
    "content_type",
    "make_server",
    "parse_range",
    "resolve_request_path",
    "run_until_interrupted",
    "serve",
]

log = logging.getLogger(__name__)

_CHUNK = 256 << 10
_IDLE_SECONDS = 60  # an idle keep-alive connection is closed after this, so its thread ends
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TYPES = {
    ".deb": "application/vnd.debian.binary-package",
    ".udeb": "application/vnd.debian.binary-package",
    ".gz": "application/gzip",
    ".xz": "application/x-xz",
    ".bz2": "application/x-bzip2",
    ".asc": "application/pgp-keys",
    ".gpg": "application/pgp-signature",
}
_TEXT_NAMES = {"InRelease", "Release", "Packages", "Sources", "Index"}


def content_type(name: str) -> str:
    """The Content-Type for a file name: Debian's own types first, then text for index names."""
    suffix = Path(name).suffix
    if name in _TEXT_NAMES:
        return "text/plain; charset=utf-8"
    if name == "signing-key.gpg":
        return "application/octet-stream"  # a binary keyring, not a signature
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def resolve_request_path(root: Path, target: str) -> Path | None:
    """The file under ``root`` (already resolved) a request target names; None when it may not be served."""
    path = urlsplit(target).path if not target.startswith("/") else target.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path, errors="strict") if "%" in path else path
    if not decoded.startswith("/") or "\x00" in decoded or "\\" in decoded:
        return None
    segments = [s for s in decoded.split("/") if s not in ("", ".")]
    if ".." in segments:
        return None
    candidate = root.joinpath(*segments).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | bool | None:
    """A single ``bytes=`` range: the range, ``None`` to send the whole file, ``False`` when unsatisfiable.

    Several ranges or a malformed header are ignored (the whole file is sent), which RFC 9110 §14.2 allows.
    """
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # a suffix: the last N bytes
        count = int(last)
        return ByteRange(max(size - count, 0), size - 1, size) if count and size else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    return ByteRange(start, end, size) if start < size else False


class MirrorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows the tree it serves; ``daemon_threads`` so stopping never waits."""

    daemon_threads = True

    def __init__(self, root: Path, address: tuple[str, int]) -> None:
        self.root = root.resolve()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can hang offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def url(self) -> str:
        host = self.server_name if ":" not in self.server_name else f"[{self.server_name}]"
        return f"http://{host}:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: MirrorServer
    protocol_version = "HTTP/1.1"
    server_version = "minimirror"
    sys_version = ""
    timeout = _IDLE_SECONDS

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse_method(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self._empty_body({"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def _serve(self, *, body: bool) -> None:
        try:
            path = resolve_request_path(self.server.root, self.path)
        except UnicodeDecodeError:
            path = None
        if path is None or not path.exists():
            self._status(HTTPStatus.NOT_FOUND)
        elif path.is_dir():
            self._status(HTTPStatus.FORBIDDEN)
        elif not path.is_file():
            self._status(HTTPStatus.NOT_FOUND)
        else:
            self._send_file(path, body=body)

    def _status(self, status: HTTPStatus) -> None:
        self.send_response(status)
        text = f"{status.value} {status.phrase}\n".encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(text))}
        self._headers(headers)
        if self.command != "HEAD":
            self.wfile.write(text)

    def _empty_body(self, headers: dict[str, str]) -> None:
        self._headers({**headers, "Content-Length": "0"})

    def _headers(self, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_file(self, path: Path, *, body: bool) -> None:
        try:
            stream = path.open("rb")
        except OSError:
            self._status(HTTPStatus.FORBIDDEN)
            return
        with stream:
            stat = os.fstat(stream.fileno())
            modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            if _not_modified(self.headers.get("If-Modified-Since"), stat.st_mtime):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self._headers({"Last-Modified": modified})
                return
            wanted = self._range(stat.st_size, modified)
            if wanted is False:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self._empty_body({"Content-Range": f"bytes */{stat.st_size}"})
                return
            part = wanted if isinstance(wanted, ByteRange) else ByteRange(0, stat.st_size - 1, stat.st_size)
            self._file_headers(path, part, modified, partial=isinstance(wanted, ByteRange))
            if body:
                _copy(stream, self.wfile, part)

    def _range(self, size: int, modified: str) -> ByteRange | bool | None:
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range.strip() != modified:
            return None
        return parse_range(self.headers.get("Range"), size)

    def _file_headers(self, path: Path, part: ByteRange, modified: str, *, partial: bool) -> None:
        self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
        headers = {
            "Content-Type": content_type(path.name),
            "Content-Length": str(max(part.length, 0)),
            "Last-Modified": modified,
            "Accept-Ranges": "bytes",
        }
        if partial:
            headers["Content-Range"] = f"bytes {part.start}-{part.end}/{part.size}"
        self._headers(headers)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, HTTPStatus) else code
        log.info('%s "%s" %s', self.address_string(), self.requestline, status)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.address_string(), *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s: " + format, self.address_string(), *args)


def _not_modified(header: str | None, mtime: float) -> bool:
    if not header:
        return False
    try:
        since = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    return int(mtime) <= since.timestamp()


def _copy(stream: BinaryIO, out: Any, part: ByteRange) -> None:
    stream.seek(part.start)
    remaining = part.length
    while remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:  # the file shrank while being sent: close rather than send a short body silently
            raise ConnectionAbortedError("file changed while being served")
        out.write(chunk)
        remaining -= len(chunk)


def make_server(out_dir: Path, bind: str = "127.0.0.1", port: int = 8080) -> MirrorServer:
    """A bound server for ``out_dir`` (port 0 picks a free one); run it with ``serve_forever()``."""
    return MirrorServer(Path(out_dir), (bind, port))


def run_until_interrupted(server: MirrorServer) -> None:
    """Serve until Ctrl-C, then close the listening socket; KeyboardInterrupt ends it cleanly."""
    log.info("serving %s at %s", server.root, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()


def serve(out_dir: Path, bind: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``out_dir`` read-only on ``bind:port`` until Ctrl-C."""
    run_until_interrupted(make_server(out_dir, bind, port))


def apt_source_lines(out_dir: Path, url: str) -> list[str]:
    """One ``deb [signed-by=OUT/signing-key.gpg] URL/<prefix> <dist> <components>`` line per published dist."""
    keyring = Path(out_dir).resolve() / "signing-key.gpg"
    lines = []
    for dist in find_dists(Path(out_dir)):
        base = f"{url.rstrip('/')}/{dist.prefix}" if dist.prefix else url.rstrip("/")
        components = " ".join(_components(dist.path)) or "main"
        lines.append(f"deb [signed-by={keyring}] {base} {dist.name} {components}")
    return lines


def _components(dist_dir: Path) -> Iterable[str]:
    for name in ("Release", "InRelease"):
        try:
            text = (dist_dir / name).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Components:"):
                return line.removeprefix("Components:").split()
    return ()
