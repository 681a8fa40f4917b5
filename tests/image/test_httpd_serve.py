"""The image's server script run on the host with the host's static busybox (Debian's busybox-static, the package
the image takes from the lock): where it listens, that a burst of clients is queued rather than dropped, and that
every queued client is served. (In the container, under podman and Kubernetes: test_image_runtime.py.)

A burst is made deterministic by stopping the server's processes (SIGSTOP) while the clients connect: the kernel
completes a handshake into the listen queue without the server's help as long as the queue has room, and drops the
SYN when it is full, so the client waits for its SYN retry (1 s). A connect that does not complete within 0.5 s
was therefore dropped, whatever the machine's load. Needs /bin/busybox (``apt-get install busybox-static``).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from minimirror.image.httpd import BACKLOG, HTTPD_CONF, supervisor_script

BUSYBOX = Path("/bin/busybox")
_BURST = 100
_DROPPED = 0.5  # seconds: far below the 1 s SYN retry, far above a loopback handshake


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if not BUSYBOX.is_file():
        pytest.skip("no /bin/busybox on this machine (apt-get install busybox-static)")
    root = tmp_path / "srv"
    (root / "pool" / "main").mkdir(parents=True)
    (root / "healthz").write_bytes(b"ok\n")
    (root / "pool" / "main" / "a_1.0_amd64.deb").write_bytes(os.urandom(300_000))
    (tmp_path / "httpd.conf").write_text(HTTPD_CONF)
    return root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _serving(argv: list[str]) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Runs ``argv`` (the port put in for ``{port}``) as the leader of a new process group; yields (port, process)."""
    port = _free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    proc = subprocess.Popen(argv, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield port, proc
    finally:
        # The script's shell exits on TERM; outside a container nothing kills nc with it, so the whole group goes.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _listening(port: int) -> list[str]:
    """The local addresses (``ADDR:PORT`` in hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(f":{port:04X}"):
                found.append(local)
    return found


def _image_script(tree: Path, *args: str) -> list[str]:
    script = supervisor_script(busybox=str(BUSYBOX), home=str(tree), conf=str(tree.parent / "httpd.conf"))
    return [str(BUSYBOX), "sh", "-c", script, "minimirror-httpd", *args]


def _get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET /{path} HTTP/1.0\r\nHost: mirror\r\n\r\n".encode())
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _burst(port: int, group: int) -> tuple[list[socket.socket], int]:
    """``_BURST`` clients connect at once while the server is stopped: (the connected sockets, how many were not)."""
    socks = [socket.socket() for _ in range(_BURST)]
    os.killpg(group, signal.SIGSTOP)
    try:
        for sock in socks:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        _, writable, _ = select.select([], socks, [], _DROPPED)
    finally:
        os.killpg(group, signal.SIGCONT)
    connected = [sock for sock in socks if sock in writable and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)]
    for sock in socks:
        if sock in connected:
            sock.setblocking(True)
            sock.settimeout(30)
        else:
            sock.close()
    return connected, _BURST - len(connected)


def test_a_burst_of_clients_is_queued_and_every_one_served(tree: Path) -> None:
    with _serving(_image_script(tree, "-p", "127.0.0.1:{port}")) as (port, proc):
        clients, dropped = _burst(port, proc.pid)
        assert dropped == 0 and len(clients) == _BURST <= BACKLOG
        expected = (tree / "pool" / "main" / "a_1.0_amd64.deb").read_bytes()
        for sock in clients:
            with sock:
                head, _, body = _get(sock, "pool/main/a_1.0_amd64.deb").partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and b"application/vnd.debian.binary-package" in head
            assert body == expected


def test_busybox_httpd_alone_drops_such_a_burst(tree: Path) -> None:
    # What the image ran before: busybox httpd's own accept loop, listen(fd, 9). The same burst overflows it,
    # which is what the test above would catch if the image went back to it.
    conf = str(tree.parent / "httpd.conf")
    argv = [str(BUSYBOX), "httpd", "-f", "-p", "127.0.0.1:{port}", "-h", str(tree), "-c", conf]
    with _serving(argv) as (port, proc):
        clients, dropped = _burst(port, proc.pid)
        for sock in clients:
            sock.close()
    assert dropped >= _BURST - 20


@pytest.mark.parametrize(
    "spelling", [["-p", "127.0.0.1:{port}"], ["-p127.0.0.1:{port}"], ["-p", "9", "-p", "127.0.0.1:{port}"]]
)
def test_the_last_p_argument_says_where_it_listens(tree: Path, spelling: list[str]) -> None:
    with _serving(_image_script(tree, *spelling)) as (port, _):
        assert _listening(port) == [f"0100007F:{port:04X}"]  # 127.0.0.1 only, as asked, and nothing on port 9
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head, _, body = _get(sock, "healthz").partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"ok\n"


def test_sigterm_ends_the_script_at_once_with_status_zero(tree: Path) -> None:
    with _serving(_image_script(tree, "-p", "127.0.0.1:{port}")) as (_, proc):
        proc.send_signal(signal.SIGTERM)  # the shell is what the container runs as PID 1
        assert proc.wait(timeout=5) == 0
