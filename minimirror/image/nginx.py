"""The nginx server layer (``--server nginx``): the locked nginx binary, exactly the libraries it loads, our config.

Why nginx beside busybox: busybox httpd answers one request per process and closes the connection, so many apt
clients at once cost a fork and exec per download (0.4x nginx's throughput, docs/image.md "Serving under
load"); nginx keeps connections alive and serves files with ``sendfile``. Like busybox, it comes from the lock:
the user locks ``nginx`` for each architecture, and nothing runs in the image that was not reviewed there.

What the layer holds, and nothing else (no nginx-common, iproute2, debconf or perl, which the package depends on
but the binary never loads):

- ``/usr/sbin/nginx`` from the locked ``nginx`` .deb;
- its dynamic loader (the ``PT_INTERP`` path) and every shared library it needs, followed through ``DT_NEEDED``
  (:mod:`minimirror.image.elf`) transitively, each read from the data archive of a locked package in nginx's
  ``Depends`` closure, as the lock's ``required-by`` records it. A library goes where the loader looks without
  ``/etc/ld.so.cache``: the multiarch directory ``/lib/<triplet>`` (or ``/lib``), under its soname, with the
  bytes the package's symlink chain leads to. Packages shipped under ``/usr/lib`` (merged-/usr) or ``/lib`` are
  both found. A library no package of the closure ships is an :class:`NginxError` naming it; every binary's ELF
  machine must be the platform's;
- ``/etc/nginx/nginx.conf`` (:func:`nginx_conf`), ``/etc/passwd`` and ``/etc/group`` (the busybox layer's), and
  ``/tmp`` (mode 1777) for the pid file and nginx's temp directories, the one place it writes.

PID 1 is the nginx master (``daemon off``): it handles SIGTERM itself (fast shutdown: workers are told to exit and
the master follows), so ``podman stop`` and a Kubernetes rollout end it at once. It runs as 65534 and needs no
capability (port 8080). With a read-only root filesystem, ``/tmp`` must be a writable volume (``minimirror kube``
mounts an emptyDir there).

Errors go to stderr (``-e stderr`` on the command line, so nginx never tries its compiled-in log path first);
the access log to ``/dev/stdout`` (nginx logs only to a path or syslog, so the path of the inherited stdout, as the
official nginx images link it), one line per request as busybox logs each response: what ``kubectl logs`` shows.
Container runtimes give the process pipes it may reopen (podman does, tested); a runtime that did not would stop
nginx at start with ``open() "/dev/stdout" failed (13: Permission denied)``, a clear message, not a silent loss.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from minimirror.errors import UsageError
from minimirror.image.elf import ElfInfo, check_machine, read_elf
from minimirror.image.httpd import GROUP, HTTPD_CONF, PASSWD, PORT
from minimirror.image.layers import LayerEntry
from minimirror.lock.lockfile import Lock, LockedPackage
from minimirror.upstream.debfile import DataMember, read_data_members

__all__ = [
    "BINARY",
    "CONF",
    "ENTRYPOINT",
    "NGINX_PACKAGE",
    "NginxError",
    "NginxServer",
    "depends_closure",
    "mime_types",
    "nginx_conf",
    "nginx_entries",
    "runtime_files",
]

NGINX_PACKAGE = "nginx"
BINARY = "usr/sbin/nginx"
CONF = "etc/nginx/nginx.conf"
ENTRYPOINT = (f"/{BINARY}", "-e", "stderr", "-c", f"/{CONF}")
"""nginx in the foreground as PID 1; arguments given to the container are appended (e.g. ``-g 'worker_processes
2;'``)."""

# Debian's multiarch tuple of each architecture (the directory under /lib its libraries live in).
TRIPLETS = {
    "amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "armhf": "arm-linux-gnueabihf",
    "armel": "arm-linux-gnueabi", "i386": "i386-linux-gnu", "ppc64el": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu", "mips64el": "mips64el-linux-gnuabi64",
    "loong64": "loongarch64-linux-gnu",
}  # fmt: skip
ACCESS_LOG = "/dev/stdout"
"""One line per request on the container's stdout, as the busybox server logs each response."""
_MERGED = frozenset({"bin", "sbin", "lib", "lib32", "lib64", "libx32"})  # /X is /usr/X on a merged-/usr system
_MAX_LINKS = 16


class NginxError(UsageError):
    """A locked nginx that cannot make the server layer: no binary, or a library no locked package ships."""


def mime_types() -> list[tuple[str, list[str]]]:
    """httpd.conf's ``.ext:type`` lines as (type, extensions), in their order: both servers say the same."""
    found: dict[str, list[str]] = {}
    for line in HTTPD_CONF.splitlines():
        if line.startswith("."):
            extension, _, kind = line[1:].partition(":")
            found.setdefault(kind, []).append(extension)
    return list(found.items())


def nginx_conf(*, root: str = "/srv", tmp: str = "/tmp", listen: str = str(PORT), access_log: str = ACCESS_LOG) -> str:
    """The image's nginx.conf; the paths and the listen address are parameters so that tests and
    ``benchmarks/bench_serve.py`` run this very configuration on the host (the image uses the defaults)."""
    types = "".join(f"        {kind} {' '.join(extensions)};\n" for kind, extensions in mime_types())
    temp = "".join(f"    {kind}_temp_path {tmp}/nginx-{kind};\n" for kind in ("client_body", "proxy", "fastcgi"))
    temp += "".join(f"    {kind}_temp_path {tmp}/nginx-{kind};\n" for kind in ("uwsgi", "scgi"))
    return f"""\
# Written by minimirror: serve the APT repository at {root} on port {listen} (see minimirror/image/nginx.py).
daemon off;
worker_processes auto;
pid {tmp}/nginx.pid;
lock_file {tmp}/nginx.lock;
error_log stderr;
events {{
    worker_connections 1024;
}}
http {{
    types {{
{types}    }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 10000;
    server_tokens off;
    access_log {access_log};
{temp}    server {{
        listen {listen} default_server;
        server_name _;
        root {root};
        index index.html;
        autoindex on;
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class NginxServer:
    """One platform's nginx: the cached .debs of the locked nginx and of its Depends closure (nginx first)."""

    architecture: str
    debs: tuple[tuple[str, Path], ...]  # (package name, verified .deb)

    def entries(self) -> list[LayerEntry]:
        return nginx_entries(self)


# --- which packages: nginx's Depends closure, as the lock records it -------------------------------------------

_Node = tuple[str, str]  # (source id, "name/architecture")


def depends_closure(locks: Sequence[Lock], package: LockedPackage) -> list[LockedPackage]:
    """``package`` and every locked package it depends on, directly or not, following ``required-by`` backwards
    (across the sources of a group, whose ``required-by`` names ``SOURCE:name/arch``); sorted by name, ``package``
    first. A node locked at several versions gives its newest."""
    home = next(lock.source.id for lock in locks if package in lock.packages)
    children: dict[_Node, set[_Node]] = defaultdict(set)
    newest: dict[_Node, LockedPackage] = {}
    for lock in locks:
        for child in lock.packages:
            node = (lock.source.id, child.node)
            newest[node] = _newer(newest.get(node), child)
            for parent in child.required_by:
                other, _, name = parent.rpartition(":")
                children[(other or lock.source.id, name)].add(node)
    start = (home, package.node)
    seen, todo = {start}, [start]
    while todo:
        for reached in sorted(children.get(todo.pop(), ())):
            if reached not in seen:
                seen.add(reached)
                todo.append(reached)
    rest = sorted((newest[node] for node in seen - {start}), key=lambda p: (p.name, p.architecture, p.version))
    return [package, *rest]


def _newer(old: LockedPackage | None, new: LockedPackage) -> LockedPackage:
    from debian.debian_support import version_compare

    return new if old is None or version_compare(new.version, old.version) > 0 else old


# --- which files: the binary, its loader and libraries -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shipped:
    """A file or symlink of a package, keyed by its merged-/usr path."""

    package: str
    member: DataMember


def _canonical(path: str) -> str:
    """``usr/lib/x`` and ``lib/x`` are one file on a merged-/usr system: keyed as ``lib/x``."""
    path = posixpath.normpath(path).lstrip("/")
    head, _, rest = path.partition("/")
    if head == "usr" and rest.partition("/")[0] in _MERGED:
        return rest
    return path


def _search_dirs(architecture: str) -> tuple[str, ...]:
    """Where glibc's loader looks with no ld.so.cache (Debian's system search path), merged-/usr keys."""
    triplet = TRIPLETS.get(architecture)
    return (f"lib/{triplet}", "lib") if triplet else ("lib",)


def _wanted(architecture: str) -> Callable[[str], bool]:
    dirs = {*_search_dirs(architecture), "lib64", "lib32", "libx32"}

    def select(path: str) -> bool:
        if path == BINARY:
            return True
        folder, _, name = _canonical(path).rpartition("/")
        return folder in dirs and (".so" in name or name.startswith("ld"))

    return select


def _shipped(server: NginxServer) -> dict[str, _Shipped]:
    """The binary and the loader and libraries of every package of the closure, by merged-/usr path."""
    select = _wanted(server.architecture)
    found: dict[str, _Shipped] = {}
    for name, deb in server.debs:
        for member in read_data_members(deb, select, name=str(deb)):
            found.setdefault(_canonical(member.path), _Shipped(name, member))
    return found


def _resolve(files: dict[str, _Shipped], path: str) -> _Shipped | None:
    """The regular file ``path`` is, following symlinks inside the packages (absolute ones from their root)."""
    for _ in range(_MAX_LINKS):
        shipped = files.get(_canonical(path))
        if shipped is None or shipped.member.linkname is None:
            return shipped
        link = shipped.member.linkname
        path = link if link.startswith("/") else posixpath.join(posixpath.dirname(shipped.member.path), link)
    return None


@dataclass(frozen=True, slots=True)
class RuntimeFile:
    """A file of the server layer: its path in the image, its bytes and mode, and the package it came from."""

    path: str
    data: bytes
    mode: int
    package: str


def runtime_files(server: NginxServer) -> list[RuntimeFile]:
    """The nginx binary, its loader and every library it loads (transitively), sorted by path."""
    files = _shipped(server)
    nginx_deb = server.debs[0][1]
    binary = files.get(_canonical(BINARY))
    if binary is None or binary.member.data is None:
        raise NginxError(f"{nginx_deb}: has no /{BINARY}; is it Debian's {NGINX_PACKAGE} package?")
    info = _elf(binary.member.data, f"{nginx_deb}: /{BINARY}", server.architecture)
    if info.interpreter is None:  # a static nginx needs nothing else
        return [RuntimeFile(BINARY, binary.member.data, 0o755, NGINX_PACKAGE)]
    found = {BINARY: RuntimeFile(BINARY, binary.member.data, 0o755, NGINX_PACKAGE)}
    loader = _resolve(files, info.interpreter)
    if loader is None or loader.member.data is None:
        raise _missing(server, info.interpreter.lstrip("/"), f"/{BINARY}'s loader")
    interp = info.interpreter.lstrip("/")
    found[interp] = RuntimeFile(interp, loader.member.data, 0o755, loader.package)
    _elf(loader.member.data, f"{loader.package}: /{interp}", server.architecture)
    todo = [(f"/{BINARY}", soname) for soname in info.needed]
    while todo:
        needer, soname = todo.pop(0)
        if soname == posixpath.basename(interp):  # libc names the loader, which is loaded already
            continue
        path, shipped = _library(files, server.architecture, soname)
        if shipped is None or shipped.member.data is None:
            raise _missing(server, soname, needer)
        if path in found:
            continue
        library = _elf(shipped.member.data, f"{shipped.package}: /{path}", server.architecture)
        found[path] = RuntimeFile(path, shipped.member.data, _mode(shipped.member.mode), shipped.package)
        todo.extend((f"/{path}", name) for name in library.needed)
    return sorted(found.values(), key=lambda f: f.path)


def _library(files: dict[str, _Shipped], architecture: str, soname: str) -> tuple[str, _Shipped | None]:
    """Where the loader finds ``soname``, and the file it opens there (the first search directory that has it)."""
    for folder in _search_dirs(architecture):
        shipped = _resolve(files, f"{folder}/{soname}")
        if shipped is not None:
            return f"{folder}/{soname}", shipped
    return soname, None


def _elf(data: bytes, name: str, architecture: str) -> ElfInfo:
    info = read_elf(data, name)
    check_machine(info, architecture, name)
    return info


def _mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def _missing(server: NginxServer, soname: str, needer: str) -> NginxError:
    searched = ", ".join(name for name, _ in server.debs)
    return NginxError(
        f"{soname} (needed by {needer}) is in none of the packages locked for {server.architecture} that "
        f"{NGINX_PACKAGE} depends on ({searched}); lock the package that ships it for {server.architecture} "
        f"(`dpkg -S {soname}` on a Debian system names it) and run `minimirror lock`"
    )


# --- the layer --------------------------------------------------------------------------------------------------


def nginx_entries(server: NginxServer) -> list[LayerEntry]:
    """The server layer: nginx, its loader and libraries, /etc/nginx/nginx.conf, passwd, group and a 1777 /tmp."""
    files = [LayerEntry(f.path, "file", f.mode, data=f.data) for f in runtime_files(server)]
    files += [
        LayerEntry.file(CONF, nginx_conf().encode()),
        LayerEntry.file("etc/group", GROUP.encode()),
        LayerEntry.file("etc/passwd", PASSWD.encode()),
    ]
    return [*_directories(f.path for f in files), LayerEntry("tmp", "dir", 0o1777), *files]


def _directories(paths: Iterable[str]) -> list[LayerEntry]:
    folders = {"/".join(path.split("/")[:i]) for path in paths for i in range(1, path.count("/") + 1)}
    return [LayerEntry.directory(folder) for folder in sorted(folders)]
