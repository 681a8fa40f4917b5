"""Serving under load: the image's server beside nginx on the same tree, many apt-like clients at once.

Generates a mirror-like tree (``bench_image.make_tree``: .deb-sized incompressible files and a Packages index),
then serves it on loopback in turn with

    (a) the image's server: ``busybox sh -c SCRIPT minimirror-httpd -p 127.0.0.1:PORT``, where SCRIPT is the
        image's own entrypoint script (minimirror.image.httpd.supervisor_script, given the host's busybox and
        the tree): busybox ``nc`` listening with a backlog of 512 and running ``httpd -i`` per connection, the
        image's ``/etc/httpd.conf``; the host's static busybox is Debian's busybox-static, the package the image
        takes from the lock
    (b) busybox httpd alone, as the image ran it before: ``busybox httpd -f -v -p ADDR -h TREE -c httpd.conf``
        (its own accept loop, listen backlog 9)
    (c) nginx as the ``--base`` nginx image runs it: the image's site (minimirror.image.base.NGINX_CONF, root
        and port put in) inside Debian's nginx.conf settings (a worker per core, sendfile, tcp_nopush, keep-alive,
        an access log): the host's nginx, the seed's server
    (d) the ``--server nginx`` layer as the image runs it: Debian's nginx and the libraries it loads, taken out of
        the .debs by minimirror.image.nginx.runtime_files (the packages fetched with ``apt-get download`` into
        ``--debs``, default ~/.cache/minimirror-bench/nginx-debs), started through their own dynamic loader
        (``LOADER --library-path LIBDIR nginx``, so none of the host's libraries is used) with the image's
        nginx.conf (minimirror.image.nginx.nginx_conf with the tree, a temp dir and the port put in; its access
        log on stdout, a file here, as a container runtime keeps it)
    (e) ``--servers nginx-image-nolog`` only: (d) with ``access_log off``, what the log costs

and for each of ``--clients`` (default 64 and 256) downloads every pool file of the tree ``--rounds`` times with
``curl --parallel --parallel-max N`` (curl opens up to N connections and reuses them when the server keeps them
alive, as apt does: nginx does, busybox httpd closes each after one response). curl is the client for every
server, so the client's cost is the same on each side. ``--repeat`` runs the whole sequence again (the servers
interleaved, so a change in the machine's load hits all of them). Prints requests, failures (any status but 200,
any transfer error), bytes, throughput and the slowest TCP connect (a SYN dropped by a full listen queue is
retried after 1 s) per run, and the ratios to nginx of each run with their spread (target >= 0.8x).
``--small N`` downloads a 3-byte file N times instead: the cost of a connection alone. Usage::

    python benchmarks/bench_serve.py [--mib 200] [--clients 64,256] [--rounds 5] [--repeat 3] [--small N]
                                     [--servers image,httpd,nginx-image,nginx] [--debs DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_image import make_tree

from minimirror.image.base import NGINX_CONF
from minimirror.image.elf import read_elf
from minimirror.image.httpd import HTTPD_CONF, PORT, supervisor_script
from minimirror.image.nginx import (
    ACCESS_LOG,
    BINARY,
    NGINX_PACKAGE,
    TRIPLETS,
    NginxServer,
    nginx_conf,
    runtime_files,
)

BUSYBOX = Path("/bin/busybox")
IMAGE, HTTPD_ALONE, NGINX = "image (nc + httpd -i)", "busybox httpd -f", "nginx (--base)"
IMAGE_NGINX = "image --server nginx"
IMAGE_NGINX_QUIET = "(d), access_log off"
# nginx and the packages of its Depends that ship what it loads (Debian 12); the layer takes only what it loads.
NGINX_DEBS = (NGINX_PACKAGE, "libc6", "libcrypt1", "libpcre2-8-0", "libssl3", "zlib1g")


@dataclass(frozen=True)
class Result:
    server: str
    clients: int
    requests: int
    failures: int
    seconds: float
    size: int
    slowest_connect: float

    @property
    def mib_per_s(self) -> float:
        return self.size / 2**20 / self.seconds

    def rate(self, *, per_request: bool) -> float:
        return self.requests / self.seconds if per_request else self.mib_per_s


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def start_image(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    """The image's entrypoint with the host's paths; its own process group, since nc outlives the shell here."""
    script = supervisor_script(busybox=str(BUSYBOX), home=str(tree), conf=str(work / "httpd.conf"))
    argv = [str(BUSYBOX), "sh", "-c", script, "minimirror-httpd", "-p", f"127.0.0.1:{port}"]
    with (work / "image.log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


def start_httpd_alone(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [
        str(BUSYBOX),
        "httpd",
        "-f",
        "-v",
        "-p",
        f"127.0.0.1:{port}",
        "-h",
        str(tree),
        "-c",
        str(work / "httpd.conf"),
    ]
    with (work / "busybox.log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


def start_nginx(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    site = NGINX_CONF.replace(f"listen {PORT} ", f"listen 127.0.0.1:{port} ").replace("root /srv;", f"root {tree};")
    conf = work / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes auto;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ include /etc/nginx/mime.types; sendfile on; tcp_nopush on; keepalive_timeout 65;\n"
        f"  access_log {work}/access.log;\n"
        f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;\n"
        f"  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;\n"
        f"{site}}}\n"
    )
    argv = ["nginx", "-c", str(conf), "-e", str(work / "nginx-error.log")]
    return subprocess.Popen(argv, start_new_session=True)


def extract_image_nginx(debs: Path, work: Path) -> Path:
    """The server layer's nginx, loader and libraries under ``work/rootfs``, from the .debs in ``debs``."""
    debs.mkdir(parents=True, exist_ok=True)
    if not all(any(debs.glob(f"{name}_*_amd64.deb")) for name in NGINX_DEBS):
        subprocess.run(["apt-get", "download", *NGINX_DEBS], cwd=debs, check=True, capture_output=True, timeout=300)
    found = tuple((name, sorted(debs.glob(f"{name}_*_amd64.deb"))[-1]) for name in NGINX_DEBS)
    rootfs = work / "rootfs"
    for item in runtime_files(NginxServer("amd64", found)):
        path = rootfs / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data)
        path.chmod(item.mode)
    (work / "nginx-tmp").mkdir(mode=0o1777)
    return rootfs


def start_image_nginx(tree: Path, work: Path, port: int, *, access_log: str = ACCESS_LOG) -> subprocess.Popen[bytes]:
    """The layer's nginx through its own loader, so the host's libraries play no part; the image's config."""
    rootfs = work / "rootfs"
    interpreter = read_elf((rootfs / BINARY).read_bytes(), BINARY).interpreter or ""
    conf = work / "image-nginx.conf"
    listen = f"127.0.0.1:{port}"
    conf.write_text(nginx_conf(root=str(tree), tmp=str(work / "nginx-tmp"), listen=listen, access_log=access_log))
    loader, libraries = rootfs / interpreter.lstrip("/"), rootfs / "lib" / TRIPLETS["amd64"]
    argv = [str(loader), "--library-path", str(libraries), str(rootfs / BINARY), "-e", "stderr", "-c", str(conf)]
    with (work / "image-nginx.log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


def start_image_nginx_quiet(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    """(e) as (d), without the access log: what the log costs."""
    return start_image_nginx(tree, work, port, access_log="off")


def download(port: int, paths: list[str], clients: int, rounds: int, work: Path) -> tuple[int, int, float, int, float]:
    """(requests, failures, seconds, bytes, slowest connect) of downloading every path ``rounds`` times, ``clients``
    at once; a connect that waited for a SYN retry takes a second or more."""
    config = work / f"curl-{port}-{clients}.conf"
    lines = [f'url = "http://127.0.0.1:{port}/{path}"\noutput = "/dev/null"\n' for _ in range(rounds) for path in paths]
    config.write_text("".join(lines))
    argv = [
        "curl", "--silent", "--show-error", "--parallel", "--parallel-max", str(clients), "--no-progress-meter",
        "--write-out", "%{http_code} %{size_download} %{time_connect}\\n", "--config", str(config),
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    seconds = time.perf_counter() - start
    results = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    failures = sum(code != "200" for code, _, _ in results) + (len(lines) - len(results))
    slowest = max((float(connect) for _, _, connect in results), default=0.0)
    return len(lines), failures, seconds, sum(int(size) for _, size, _ in results), slowest


Starter = Callable[[Path, Path, int], "subprocess.Popen[bytes]"]


def measure(name: str, start: Starter, tree: Path, paths: list[str], args: argparse.Namespace) -> list[Result]:
    port = free_port()
    proc = start(tree, args.work, port)
    try:
        wait_for(port)
        found = []
        for clients in args.clients:
            found.append(Result(name, clients, *download(port, paths, clients, args.rounds, args.work)))
        return found
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this script started: the server and its children
        proc.wait(timeout=20)


STARTERS: dict[str, tuple[str, Starter]] = {
    "image": (IMAGE, start_image),
    "httpd": (HTTPD_ALONE, start_httpd_alone),
    "nginx-image": (IMAGE_NGINX, start_image_nginx),
    "nginx-image-nolog": (IMAGE_NGINX_QUIET, start_image_nginx_quiet),
    "nginx": (NGINX, start_nginx),
}


def report(results: list[Result], args: argparse.Namespace, files: int) -> None:
    if args.small:
        print(f"/healthz (3 bytes) downloaded {args.small} times per run")
    else:
        print(f"tree: {args.mib} MiB, {files} pool files, each downloaded {args.rounds} times per run")
    rate = "req/s" if args.small else "MiB/s"
    print(
        f"{'run':>3} {'server':22} {'clients':>7} {'requests':>8} {'failed':>6} {'seconds':>8} {rate:>8} "
        f"{'slowest connect':>15}"
    )
    per_run = len(args.servers) * len(args.clients)
    runs = len(results) // per_run
    for index, result in enumerate(results):
        print(
            f"{index // per_run + 1:3} {result.server:22} {result.clients:7} {result.requests:8} "
            f"{result.failures:6} {result.seconds:8.2f} {result.rate(per_request=args.small > 0):8.1f} "
            f"{result.slowest_connect:13.3f} s"
        )
    for clients in args.clients:
        nginx = [r for r in results if r.server == NGINX and r.clients == clients]
        for name in (IMAGE, HTTPD_ALONE, IMAGE_NGINX, IMAGE_NGINX_QUIET):
            ours = [r for r in results if r.server == name and r.clients == clients]
            if not ours or not nginx:
                continue
            ratios = [b.seconds / a.seconds for a, b in zip(ours, nginx, strict=True)]  # same work: throughput ratio
            print(
                f"{clients:4} clients, {name} / nginx over {runs} runs: {' '.join(f'{r:.2f}' for r in ratios)} "
                f"(median {statistics.median(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x; "
                f"target >= 0.8x); slowest connect {max(r.slowest_connect for r in ours):.3f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--clients", type=lambda s: [int(n) for n in s.split(",")], default=[64, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=0, help="Download /healthz (3 bytes) this many times instead.")
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=["image", "httpd", "nginx-image", "nginx"],
        help=f"Some of {','.join(STARTERS)}.",
    )
    parser.add_argument("--debs", type=Path, default=Path.home() / ".cache" / "minimirror-bench" / "nginx-debs")
    args = parser.parse_args()
    unknown = sorted(set(args.servers) - set(STARTERS))
    if unknown:
        raise SystemExit(f"--servers: unknown {', '.join(unknown)} (choose from {', '.join(STARTERS)})")
    for tool in ("curl", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install curl nginx-light)")
    if not BUSYBOX.is_file():
        raise SystemExit("no /bin/busybox (apt-get install busybox-static)")
    args.work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    args.work.chmod(0o755)  # nginx's workers run as nobody when started by root
    try:
        tree = args.work / "tree"
        make_tree(tree, args.mib)
        (args.work / "httpd.conf").write_text(HTTPD_CONF)
        (tree / "healthz").write_bytes(b"ok\n")
        paths = sorted(p.relative_to(tree).as_posix() for p in (tree / "pool").rglob("*.deb"))
        if args.small:  # the cost of a connection alone: a 3-byte file, --small times
            paths, args.rounds = ["healthz"], args.small
        if {"nginx-image", "nginx-image-nolog"} & set(args.servers):
            extract_image_nginx(args.debs, args.work)
        servers = [STARTERS[key] for key in args.servers]
        results = [
            r for _ in range(args.repeat) for name, start in servers for r in measure(name, start, tree, paths, args)
        ]
        report(results, args, len(paths))
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
