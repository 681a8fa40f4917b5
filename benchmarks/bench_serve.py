"""Serving under load: the image's busybox httpd beside nginx on the same tree, many apt-like clients at once.

Generates a mirror-like tree (``bench_image.make_tree``: .deb-sized incompressible files and a Packages index),
then serves it on loopback in turn with

    (a) busybox httpd as the image runs it: ``busybox httpd -f -v -p ADDR -h TREE -c httpd.conf`` with the image's
        ``/etc/httpd.conf`` (minimirror.image.httpd.HTTPD_CONF), the host's static busybox (Debian's
        busybox-static, the package the image takes from the lock)
    (b) nginx (the seed's server): one worker per core, sendfile on, an access log as busybox's -v

and for each of ``--clients`` (default 64 and 256) downloads every pool file of the tree ``--rounds`` times with
``curl --parallel --parallel-max N`` (one connection per download, as apt's parallel queues to one host open a few
each; curl is the client for both servers, so the client's cost is the same on both sides). Prints requests,
failures (any status but 200, any transfer error), bytes and throughput, and the ratio busybox/nginx (target >=
0.8). Usage::

    python benchmarks/bench_serve.py [--mib 200] [--clients 64,256] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_image import make_tree

from minimirror.image.httpd import HTTPD_CONF

BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class Result:
    server: str
    clients: int
    requests: int
    failures: int
    seconds: float
    size: int

    @property
    def mib_per_s(self) -> float:
        return self.size / 2**20 / self.seconds


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


def start_busybox(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "httpd.conf"
    conf.write_text(HTTPD_CONF)
    argv = [str(BUSYBOX), "httpd", "-f", "-v", "-p", f"127.0.0.1:{port}", "-h", str(tree), "-c", str(conf)]
    with (work / "busybox.log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log)


def start_nginx(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes auto;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ include /etc/nginx/mime.types; sendfile on; tcp_nopush on; access_log {work}/access.log;\n"
        f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;\n"
        f"  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {tree}; }} }}\n"
    )
    return subprocess.Popen(["nginx", "-c", str(conf), "-e", str(work / "nginx-error.log")])


def download(port: int, paths: list[str], clients: int, rounds: int, work: Path) -> tuple[int, int, float, int]:
    """(requests, failures, seconds, bytes) of downloading every path ``rounds`` times, ``clients`` at once."""
    config = work / f"curl-{port}-{clients}.conf"
    lines = [f'url = "http://127.0.0.1:{port}/{path}"\noutput = "/dev/null"\n' for _ in range(rounds) for path in paths]
    config.write_text("".join(lines))
    argv = [
        "curl", "--silent", "--show-error", "--parallel", "--parallel-max", str(clients), "--no-progress-meter",
        "--write-out", "%{http_code} %{size_download}\\n", "--config", str(config),
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    seconds = time.perf_counter() - start
    results = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    failures = sum(code != "200" for code, _ in results) + (len(lines) - len(results))
    return len(lines), failures, seconds, sum(int(size) for _, size in results)


def measure(
    name: str, proc: subprocess.Popen[bytes], port: int, paths: list[str], args: argparse.Namespace
) -> list[Result]:
    try:
        wait_for(port)
        found = []
        for clients in args.clients:
            requests, failures, seconds, size = download(port, paths, clients, args.rounds, args.work)
            found.append(Result(name, clients, requests, failures, seconds, size))
        return found
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--clients", type=lambda s: [int(n) for n in s.split(",")], default=[64, 256])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
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
        paths = sorted(p.relative_to(tree).as_posix() for p in (tree / "pool").rglob("*.deb"))
        port = free_port()
        ours = measure("busybox httpd", start_busybox(tree, args.work, port), port, paths, args)
        port = free_port()
        nginx = measure("nginx", start_nginx(tree, args.work, port), port, paths, args)
        print(f"tree: {args.mib} MiB, {len(paths)} pool files, each downloaded {args.rounds} times per run")
        print(f"{'server':15} {'clients':>7} {'requests':>8} {'failed':>6} {'seconds':>8} {'MiB/s':>8}")
        for result in (*ours, *nginx):
            print(
                f"{result.server:15} {result.clients:7} {result.requests:8} {result.failures:6} "
                f"{result.seconds:8.2f} {result.mib_per_s:8.1f}"
            )
        for a, b in zip(ours, nginx, strict=True):
            print(f"{a.clients} clients: busybox/nginx throughput {a.mib_per_s / b.mib_per_s:.2f}x (target >= 0.8x)")
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
