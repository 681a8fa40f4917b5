"""``minimirror serve``: apt updates and downloads from it; types, ranges, escapes and methods over real HTTP."""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.plugin import AptFactory, ArchiveFactory

from minimirror.publish.serve import ByteRange, MirrorServer, apt_source_lines, content_type, make_server, parse_range

PACKAGES = [P("web", "1.0", depends="libc"), P("libc", "2.37"), P("webdoc", "1.0", architecture="all")]
DIST = "/fixture/dists/stable"


@pytest.fixture
def out(tmp_path: Path, fixture_archive_factory: ArchiveFactory) -> Path:
    root = tmp_path / "public"
    archive = fixture_archive_factory({"main": PACKAGES}, root=root / "fixture")
    assert archive.key is not None
    shutil.copyfile(archive.key.public_key_path, root / "signing-key.gpg")
    shutil.copyfile(archive.key.public_key_asc_path, root / "signing-key.asc")
    return root


@pytest.fixture
def server(out: Path) -> Iterator[MirrorServer]:
    mirror = make_server(out, port=0)
    thread = threading.Thread(target=mirror.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield mirror
    mirror.shutdown()
    mirror.server_close()
    thread.join(5)


def request(
    server: MirrorServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_apt_updates_and_downloads(out: Path, server: MirrorServer, private_apt: AptFactory, tmp_path: Path) -> None:
    lines = apt_source_lines(out, server.url)
    assert lines == [f"deb [signed-by={out.resolve()}/signing-key.gpg] {server.url}/fixture stable main"]
    apt = private_apt()
    apt.add_source(lines[0])
    proc = apt.update()  # fails on any W:/E:/Err: line
    assert "Err:" not in proc.stdout
    debs = apt.download(["web", "webdoc"], tmp_path / "dl")
    assert [d.name for d in debs] == ["web_1.0_amd64.deb", "webdoc_1.0_all.deb"]
    assert debs[0].read_bytes() == next((out / "fixture" / "pool").rglob("web_1.0_amd64.deb")).read_bytes()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/fixture/pool/main/w/web/web_1.0_amd64.deb", "application/vnd.debian.binary-package"),
        (f"{DIST}/main/binary-amd64/Packages.gz", "application/gzip"),
        (f"{DIST}/main/binary-amd64/Packages.xz", "application/x-xz"),
        (f"{DIST}/main/binary-amd64/Packages", "text/plain; charset=utf-8"),
        (f"{DIST}/InRelease", "text/plain; charset=utf-8"),
        (f"{DIST}/Release", "text/plain; charset=utf-8"),
        (f"{DIST}/Release.gpg", "application/pgp-signature"),
        ("/signing-key.asc", "application/pgp-keys"),
        ("/signing-key.gpg", "application/octet-stream"),
    ],
)
def test_content_types_and_lengths(out: Path, server: MirrorServer, path: str, expected: str) -> None:
    status, headers, body = request(server, path)
    assert status == 200
    assert headers["Content-Type"] == expected
    assert body == (out / path.lstrip("/")).read_bytes()
    assert headers["Content-Length"] == str(len(body))
    assert headers["Last-Modified"].endswith(" GMT")


def test_head_sends_headers_only(out: Path, server: MirrorServer) -> None:
    status, headers, body = request(server, f"{DIST}/InRelease", "HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str((out / DIST.lstrip("/") / "InRelease").stat().st_size)


def test_if_modified_since(server: MirrorServer) -> None:
    _, headers, _ = request(server, f"{DIST}/InRelease")
    status, _, body = request(server, f"{DIST}/InRelease", headers={"If-Modified-Since": headers["Last-Modified"]})
    assert (status, body) == (304, b"")


def test_ranges(out: Path, server: MirrorServer) -> None:
    data = (out / DIST.lstrip("/") / "Release").read_bytes()
    size = len(data)
    status, headers, body = request(server, f"{DIST}/Release", headers={"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{size}")
    status, _, body = request(server, f"{DIST}/Release", headers={"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])
    status, headers, body = request(server, f"{DIST}/Release", headers={"Range": f"bytes={size}-"})
    assert (status, headers["Content-Range"], body) == (416, f"bytes */{size}", b"")
    status, _, body = request(server, f"{DIST}/Release", headers={"Range": "bytes=0-1", "If-Range": "old date"})
    assert (status, body) == (200, data)


def test_parse_range() -> None:
    assert parse_range("bytes=0-", 10) == ByteRange(0, 9, 10)
    assert parse_range("bytes=5-100", 10) == ByteRange(5, 9, 10)
    assert parse_range("bytes=-3", 10) == ByteRange(7, 9, 10)
    assert parse_range("bytes=10-", 10) is False
    assert parse_range("bytes=0-1,3-4", 10) is None  # several ranges: the whole file
    assert parse_range("bytes=5-2", 10) is None
    assert parse_range(None, 10) is None


def test_content_type_names() -> None:
    assert content_type("foo_1_all.udeb") == "application/vnd.debian.binary-package"
    assert content_type("Packages") == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../etc/passwd",
        "/fixture/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/fixture/%2E%2E/%2e%2e/secret.txt",
        "/fixture/..%2f..%2fsecret.txt",
        "/fixture/pool/leak.txt",
        "/fixture/pool/leak-dir/secret.txt",
        "/signing-key.gpg%00.txt",
        "//etc/passwd",
        "http://127.0.0.1/../secret.txt",
    ],
)
def test_escapes_are_refused(out: Path, server: MirrorServer, path: str) -> None:
    secret = out.parent / "secret.txt"
    secret.write_text("secret: not for the mirror\n")
    (out / "fixture" / "pool" / "leak.txt").symlink_to(secret)
    (out / "fixture" / "pool" / "leak-dir").symlink_to(out.parent)
    status, _, body = request(server, path)
    assert status in (403, 404)
    assert b"secret" not in body and b"root:" not in body


def test_directories_are_not_listed(server: MirrorServer) -> None:
    assert request(server, "/")[0] == 403
    assert request(server, "/fixture/pool/")[0] == 403


def test_symlink_inside_the_tree_is_served(out: Path, server: MirrorServer) -> None:
    (out / "key.asc").symlink_to("signing-key.asc")
    assert request(server, "/key.asc")[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(server: MirrorServer, method: str) -> None:
    status, headers, _ = request(server, f"{DIST}/Release", method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_one_log_line_per_request(server: MirrorServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="minimirror.publish.serve"):
        request(server, f"{DIST}/Release")
        request(server, "/missing")
    lines = [r.getMessage() for r in caplog.records if r.name == "minimirror.publish.serve"]
    assert len(lines) == 2
    assert lines[0].endswith(f'"GET {DIST}/Release HTTP/1.1" 200')
    assert lines[1].endswith('"GET /missing HTTP/1.1" 404')


def test_cli_prints_the_apt_line_and_stops_on_ctrl_c(out: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    cmd = [sys.executable, "-m", "minimirror", "serve", str(out), "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            first, second = _readlines(proc, 2)
            assert first.startswith(f"serving {out} at http://127.0.0.1:")
            url = first.split(" at ", 1)[1].split("/ ", 1)[0]
            assert second == f"deb [signed-by={out.resolve()}/signing-key.gpg] {url}/fixture stable main"
            conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
            conn.request("GET", f"{DIST}/InRelease")
            assert conn.getresponse().status == 200
            conn.close()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _readlines(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines of the child's stdout, waiting at most 20 s. (select() on the pipe would miss
    a second line already read into the text wrapper's buffer together with the first.)"""
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout.readline().rstrip("\n") for _ in range(count)))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive(), f"minimirror serve printed {lines} and nothing more within 20 s"
    return lines
