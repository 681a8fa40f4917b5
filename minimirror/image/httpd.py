"""The server layer: a static busybox running ``httpd`` as nobody, with the files it needs and nothing else.

The binary comes from the locked ``busybox-static`` package (Debian's statically linked busybox), so the
image holds no code that was not reviewed in the lock. It is read from the .deb's data archive as
``dpkg-deb --fsys-tarfile`` prints it (deb(5)), and must be a static ELF executable: a dynamically linked
busybox (the ``busybox`` package) would need a libc the image does not have.

PID 1 is busybox's own ``sh`` (ash), which runs the server in the background and waits for it: the kernel drops
every signal sent to a namespace's PID 1 that has no handler, so a server as PID 1 ignores SIGTERM and
``podman stop`` or a Kubernetes rollout waits out the whole grace period. ``trap 'exit 0' TERM INT`` gives
PID 1 a handler; ash's ``wait`` returns as soon as a trapped signal arrives (POSIX ``wait``), the shell exits,
and the kernel kills the server with the rest of the namespace. When the server dies on its own, ``wait``
returns its status and the container exits with it, so a restart policy sees the failure. Nothing but the
locked busybox runs, so no second binary (tini, dumb-init) needs locking.

The server is busybox ``nc`` accepting and ``httpd -i`` answering, one process per connection, not ``httpd -f``
alone: busybox httpd listens with a fixed backlog of 9 (``xlisten(fd, 9)`` in ``networking/httpd.c``), so a burst
of clients overflows the kernel's accept queue and every handshake that does not fit waits for the client's SYN
retry (1 s, then 3 s, 7 s: ``benchmarks/bench_serve.py`` measured a run of 15 s where nginx took 1). busybox
``nc`` listens with a backlog of its number of ``-l`` flags (``xlisten(sfd, do_listen); /* can be > 1 */`` in
``networking/nc.c``), and with ``-e`` and two or more ``-l`` it is a persistent server that starts the program on
each accepted connection, as inetd would: the script builds ``-l`` repeated :data:`BACKLOG` times. Debian's
busybox-static has no ``tcpsvd`` or ``inetd`` applet, so nc is the one accept loop with a settable backlog that
the lock provides. The price is an exec per connection, about twice the CPU of httpd's fork (docs/image.md,
"Serving under load"). Arguments given to the container (``podman run IMAGE -p 127.0.0.1:9000``) keep busybox
httpd's meaning: the last ``-p [IP:]PORT`` is where nc listens, and all of them reach ``httpd -i`` (which
ignores ``-p`` in that mode).

busybox httpd's configuration format (``httpd.conf``, documented in busybox's ``networking/httpd.c``):
``.ext:mime/type`` lines map file extensions to Content-Type; ``I:name`` names the index file. The server
runs as user 65534 (Debian's nobody/nogroup), so it can read the world-readable tree and write nothing.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from minimirror.errors import UsageError
from minimirror.image.elf import ElfError, check_machine, read_elf
from minimirror.image.layers import LayerEntry

__all__ = [
    "BACKLOG",
    "BUSYBOX_PACKAGE",
    "ENTRYPOINT",
    "HTTPD",
    "HTTPD_CONF",
    "NOBODY",
    "PORT",
    "READY_BODY",
    "READY_PATH",
    "SUPERVISOR",
    "BusyboxError",
    "ServerFiles",
    "extract_busybox",
    "server_entries",
    "supervisor_script",
]

BUSYBOX_PACKAGE = "busybox-static"
PORT = 8080
NOBODY = 65534
BACKLOG = 512
"""nc's listen backlog, a power of two (the script doubles ``l`` up to it): connections the kernel completes and
queues before they are accepted. nginx's default is 511; Linux caps it at net.core.somaxconn (4096 since 5.4,
128 before: either way far above httpd's 9)."""


def _httpd(busybox: str, home: str, conf: str) -> tuple[str, ...]:
    return (busybox, "httpd", "-i", "-v", "-h", home, "-c", conf)


HTTPD = _httpd("/bin/busybox", "/srv", "/etc/httpd.conf")
"""httpd for one connection on stdin/stdout (``-i``, inetd mode), logging one line per response (``-v``)."""


def supervisor_script(busybox: str = "/bin/busybox", home: str = "/srv", conf: str = "/etc/httpd.conf") -> str:
    """The ash script PID 1 runs: the last ``-p [IP:]PORT`` of its arguments, nc listening there, a trap on TERM.

    The paths are parameters so that tests and ``benchmarks/bench_serve.py`` run this very script on the host
    (its busybox, a tree elsewhere); the image uses the defaults (:data:`SUPERVISOR`).
    """
    httpd = " ".join(shlex.quote(arg) for arg in _httpd(busybox, home, conf))
    return "\n".join(
        (
            "trap 'exit 0' TERM INT",
            f"port={PORT} addr= take=",
            "for arg; do",
            '  if [ "$take" ]; then port=$arg take=',
            "  else case $arg in -p) take=1;; -p?*) port=${arg#-p};; esac; fi",
            "done",
            "case $port in *:*) addr=${port%:*}; port=${port##*:};; esac",
            f"l=l; while [ ${{#l}} -lt {BACKLOG} ]; do l=$l$l; done",
            f'{shlex.quote(busybox)} nc -$l -p "$port" $addr -e {httpd} "$@" & wait $!',
        )
    )


SUPERVISOR = supervisor_script()
ENTRYPOINT = ("/bin/busybox", "sh", "-c", SUPERVISOR, "minimirror-httpd")
READY_PATH = "healthz"
"""The readiness and liveness path below /srv (``GET /healthz`` -> ``ok``): a few bytes from the last layer, so
a 200 means the server answers and the whole repository is in place; probes cost one small static file."""
READY_BODY = b"ok\n"

# Where Debian's busybox-static has shipped the binary (before and after the /usr merge).
_BUSYBOX_MEMBERS = ("./bin/busybox", "./usr/bin/busybox")
_TIMEOUT = 120

HTTPD_CONF = """\
# busybox httpd configuration, written by minimirror (see networking/httpd.c in busybox)
I:index.html
.deb:application/vnd.debian.binary-package
.udeb:application/vnd.debian.binary-package
.dsc:text/plain
.gz:application/gzip
.xz:application/x-xz
.bz2:application/x-bzip2
.lz4:application/x-lz4
.zst:application/zstd
.gpg:application/pgp-signature
.asc:application/pgp-keys
.json:application/json
.txt:text/plain
.html:text/html
"""

PASSWD = f"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/sbin/nologin\n"
GROUP = f"root:x:0:\nnogroup:x:{NOBODY}:\n"


class BusyboxError(UsageError):
    """A busybox .deb that cannot provide the server: unreadable, without the binary, or not static."""


@dataclass(frozen=True, slots=True)
class ServerFiles:
    """The server layer's content: the busybox binary and the three files in /etc."""

    busybox: bytes

    def entries(self) -> list[LayerEntry]:
        return [
            LayerEntry.directory("bin"),
            LayerEntry.file("bin/busybox", self.busybox, executable=True),
            LayerEntry.directory("etc"),
            LayerEntry.file("etc/group", GROUP.encode()),
            LayerEntry.file("etc/httpd.conf", HTTPD_CONF.encode()),
            LayerEntry.file("etc/passwd", PASSWD.encode()),
        ]


def server_entries(busybox_deb: Path, architecture: str | None = None) -> list[LayerEntry]:
    """The server layer's entries, with the binary read from ``busybox_deb`` (built for ``architecture``)."""
    return ServerFiles(extract_busybox(busybox_deb, architecture)).entries()


def extract_busybox(deb: Path, architecture: str | None = None) -> bytes:
    """The static busybox executable inside ``deb`` (a busybox-static .deb), for ``architecture`` when given."""
    data = _member(_fsys_tarfile(deb), deb)
    _check_static_elf(data, deb)
    if architecture is not None:
        _check_machine(data, deb, architecture)
    return data


def _check_machine(data: bytes, deb: Path, architecture: str) -> None:
    """The binary runs on ``architecture``: a platform's manifest must not carry another platform's server."""
    try:
        check_machine(read_elf(data, f"{deb}: /bin/busybox"), architecture, f"{deb}: /bin/busybox")
    except ElfError as exc:
        raise BusyboxError(str(exc)) from exc


def _fsys_tarfile(deb: Path) -> bytes:
    cmd = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, timeout=_TIMEOUT)
    except FileNotFoundError as exc:
        raise BusyboxError("dpkg-deb is not installed; install the Debian package dpkg") from exc
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip()
        raise BusyboxError(f"{deb}: not a readable .deb ({reason}); fetch {BUSYBOX_PACKAGE} again")
    return proc.stdout


def _member(tar_bytes: bytes, deb: Path) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
        for name in _BUSYBOX_MEMBERS:
            try:
                member = archive.getmember(name)
            except KeyError:
                continue
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                return handle.read()
    raise BusyboxError(f"{deb}: has no /bin/busybox; is it the {BUSYBOX_PACKAGE} package?")


def _check_static_elf(data: bytes, deb: Path) -> None:
    """An ELF executable without a PT_INTERP program header, i.e. one that needs no dynamic loader."""
    try:
        info = read_elf(data, f"{deb}: /bin/busybox")
    except ElfError as exc:
        raise BusyboxError(str(exc)) from exc
    if info.interpreter is not None:
        raise BusyboxError(
            f"{deb}: /bin/busybox is dynamically linked; lock {BUSYBOX_PACKAGE}, not busybox, for the image"
        )
