"""An HTTP/1.1 file server that behaves like a remote archive over a WAN, for ``bench_fetch_wan.py``.

Loopback has no latency and no bandwidth limit, so a fetch there measures the client's CPU, not how it uses a
link. This server adds what a link to a remote mirror has, per connection, as a token bucket would:

- a round-trip time: a response starts no earlier than ``rtt`` after its request arrived (so HTTP pipelining,
  which sends requests ahead, saves the waits it saves on a real link), and a new connection's first request
  arrives one ``rtt`` after the connection was accepted (the TCP handshake);
- a bandwidth cap per connection (``rate`` bytes/s): the body goes out in 256 KiB pieces, each sent no earlier
  than the cap allows;
- zero-copy bodies: ``loop.sendfile`` (``os.sendfile``), so the server's CPU does not decide the race; it runs in
  its own process (``python _wan.py ROOT``), bound to 127.0.0.1.

Not modelled: TCP slow start, loss, a cap on the whole link (each connection gets its own ``rate``).
With ``--log FILE`` each event goes to FILE as ``<time.monotonic()> accept|request|done [path bytes]`` (the
clock is the machine's, so a client's own timestamps line up): ``bench_fetch_wan.py --timeline`` reads it.
Requests: ``GET``/``HEAD`` of files below ROOT, ``Range: bytes=N-`` (206), keep-alive and pipelining; anything
else gets 404 or 400. The server stops when its stdin closes (the parent's ``with`` block).

    python benchmarks/_wan.py ROOT [--rtt-ms 40] [--rate-mib 25] [--log FILE]

prints its base URL and serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

_PIECE = 256 << 10
_MAX_HEADER = 64 << 10


@dataclass(frozen=True)
class Link:
    rtt: float
    """Seconds from a request's arrival to the first byte of its response."""
    rate: float
    """Bytes per second per connection."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range_start: int | None
    close: bool
    arrived: float


async def _requests(reader: asyncio.StreamReader, queue: asyncio.Queue[Request | None], ready: float) -> None:
    """Read requests as they arrive (pipelined ones too) and timestamp them; ``None`` when the client is done."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            headers: dict[str, str] = {}
            size = len(line)
            while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                size += len(header)
                if size > _MAX_HEADER:
                    raise ValueError("header too large")
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            method, target, version = line.decode("latin-1").split()
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            start = _range_start(headers.get("range"))
            path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
            await queue.put(Request(method, path, start, close, max(time.monotonic(), ready)))
            if close:
                break
    except (ValueError, ConnectionError, asyncio.IncompleteReadError):
        pass
    await queue.put(None)


def _range_start(value: str | None) -> int | None:
    if not value or not value.startswith("bytes=") or not value.endswith("-"):
        return None
    return int(value[len("bytes=") : -1])


class Server:
    def __init__(self, root: Path, link: Link, log: TextIO | None = None) -> None:
        self.root = root.resolve()
        self.link = link
        self.log = log

    def event(self, what: str, when: float | None = None) -> None:
        if self.log is not None:
            self.log.write(f"{time.monotonic() if when is None else when:.6f} {what}\n")
            self.log.flush()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[Request | None] = asyncio.Queue()
        ready = time.monotonic() + self.link.rtt  # the handshake before the first request can arrive
        self.event("accept")
        reading = asyncio.create_task(_requests(reader, queue, ready))
        try:
            while (request := await queue.get()) is not None:
                await asyncio.sleep(max(0.0, request.arrived + self.link.rtt - time.monotonic()))
                await self.respond(request, writer)
                if request.close:
                    break
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            return  # the server stops (its stdin closed) with this connection still open: nothing to report
        finally:
            reading.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        path = (self.root / request.path.lstrip("/")).resolve()
        if request.method not in ("GET", "HEAD") or not path.is_relative_to(self.root) or not path.is_file():
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        size = path.stat().st_size
        start = request.range_start if request.range_start is not None and request.range_start < size else 0
        status = "206 Partial Content" if start else "200 OK"
        head = [f"HTTP/1.1 {status}", f"Content-Length: {size - start}", "Content-Type: application/octet-stream"]
        if start:
            head.append(f"Content-Range: bytes {start}-{size - 1}/{size}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        self.event(f"request {request.path} {size - start}", request.arrived)
        if request.method == "GET":
            with path.open("rb") as body:
                sent = await self.paced(writer, body, start, size)
            self.event(f"done {request.path} {size - start}", sent)

    async def paced(self, writer: asyncio.StreamWriter, body: object, start: int, end: int) -> float:
        """``os.sendfile`` in pieces, each no sooner than ``rate`` allows since the body started; returns when
        the last piece was handed to the socket (the wait after it only delays this connection's next answer)."""
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        sent = 0
        last = began
        while start + sent < end:
            count = min(_PIECE, end - start - sent)
            await loop.sendfile(writer.transport, body, start + sent, count)  # type: ignore[arg-type]
            last = time.monotonic()
            sent += count
            await asyncio.sleep(max(0.0, began + sent / self.link.rate - last))
        return last


async def serve(root: Path, link: Link, log: TextIO | None) -> None:
    server = Server(root, link, log)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, backlog=256)
    port = listener.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--rate-mib", type=float, default=25.0)
    parser.add_argument("--log", type=Path, default=None, help="Write each connection and request here.")
    args = parser.parse_args()
    link = Link(args.rtt_ms / 1000, args.rate_mib * (1 << 20))
    with args.log.open("a") if args.log else contextlib.nullcontext() as log:
        asyncio.run(serve(args.root, link, log))


if __name__ == "__main__":
    main()
