"""Source packages, opt-in per source (aptly.conf ``dependencyFollowSource``): lock, fetch, publish, verify.

Fixture archives carry real source packages (``dpkg-source -b``) and a ``Sources`` index written by
``dpkg-scansources``; apt is the judge: ``apt-get source --download-only`` against the published tree served on
loopback, then ``dpkg-source -x`` of what it downloaded (which checks every file against the ``.dsc``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer

from minimirror.audit.diff import diff_locks
from minimirror.cli import main
from minimirror.errors import LockError
from minimirror.lock.lockfile import dumps_lock, loads_lock, read_lock

PACKAGES = [
    P("web", "1.0", depends="libssl (>= 3), webcommon", source="web-src (1.0)"),
    P("webcommon", "1.0", architecture="all", source="web-src (1.0)"),
    P("libssl", "3.0.2-1"),
    P("tool", "1.2-3+b1", source="tool (1.2-3)"),  # a binNMU: the source version is the one in parentheses
    P("unrelated", "9.9"),
]


@pytest.fixture(autouse=True)
def _no_global_aptly_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APTLY_CONFIG_PATH", raising=False)


class Tree:
    """A sources tree asking for source packages from a served fixture archive, and the CLI arguments."""

    def __init__(self, root: Path, archive: FixtureArchive, server: LoopbackServer) -> None:
        assert archive.key is not None
        self.root, self.archive = root, archive
        self.source_dir = root / "sources" / "fixture" / "stable"
        self.source_dir.mkdir(parents=True)
        key_url = f"file://{archive.key.public_key_asc_path}"
        (self.source_dir / "source.txt").write_text(f"{server.url} {key_url} {archive.dist} main\n")
        (self.source_dir / "packages.txt").write_text("web\ntool\n")
        (self.source_dir / "aptly.conf").write_text(json.dumps({"dependencyFollowSource": True}))
        self.locks, self.cache, self.out = root / "locks", root / "cache", root / "public"
        self.lock_file = self.locks / "fixture" / "stable.lock"

    def where(self) -> list[str]:
        return ["--sources", str(self.root / "sources"), "--locks", str(self.locks), "--cache", str(self.cache)]

    def lock(self, *extra: str) -> int:
        return main(["lock", *self.where(), *extra])


@pytest.fixture
def served(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory
) -> tuple[FixtureArchive, LoopbackServer]:
    archive = fixture_archive_factory({"main": PACKAGES}, sources=True)
    return archive, http_server(archive.root)


@pytest.fixture
def tree(tmp_path: Path, served: tuple[FixtureArchive, LoopbackServer]) -> Tree:
    return Tree(tmp_path, *served)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lock_pins_the_source_of_every_binary_including_a_binnmu(tree: Tree) -> None:
    assert tree.lock() == 0
    lock = read_lock(tree.lock_file)
    assert {p.name for p in lock.packages} == {"web", "webcommon", "libssl", "tool"}
    by_key = {s.key: s for s in lock.source_packages}
    assert set(by_key) == {("libssl", "3.0.2-1"), ("tool", "1.2-3"), ("web-src", "1.0")}
    assert by_key[("web-src", "1.0")].binaries == ("web/amd64", "webcommon/all")
    tool = by_key[("tool", "1.2-3")]
    assert tool.binaries == ("tool/amd64",) and tool.directory == "pool/main/t/tool"
    assert [f.name for f in tool.files] == ["tool_1.2-3.debian.tar.xz", "tool_1.2-3.dsc", "tool_1.2.orig.tar.gz"]
    for file in tool.files:
        path = tree.archive.root / tool.path(file)
        assert (file.size, file.sha256) == (path.stat().st_size, _sha256(path))
    sources_pins = [i for i in lock.upstream.indices if i.architecture == "source"]
    assert [i.path for i in sources_pins] == ["main/source/Sources.xz"]
    text = tree.lock_file.read_text()
    assert '\n[[source-package]]\nname = "libssl"' in text and "[[source-package.file]]" in text
    assert dumps_lock(loads_lock(text, path="x")) == text and text.count("schema = 1") == 1


def test_the_setting_is_an_input_and_off_means_no_sources(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    assert tree.lock() == 0
    (tree.source_dir / "aptly.conf").write_text(json.dumps({"dependencyFollowSource": False}))
    assert tree.lock("--check") == 1
    assert "settings changed" in capsys.readouterr().err
    assert tree.lock() == 0
    lock = read_lock(tree.lock_file)
    assert lock.source_packages == () and "source-package" not in tree.lock_file.read_text()
    assert all(i.architecture != "source" for i in lock.upstream.indices)
    (tree.source_dir / "aptly.conf").write_text(json.dumps({"downloadSourcePackages": True}))
    assert tree.lock() == 0 and len(read_lock(tree.lock_file).source_packages) == 3


def test_offline_lock_from_a_warm_cache(tree: Tree) -> None:
    assert tree.lock() == 0
    first = tree.lock_file.read_bytes()
    tree.lock_file.unlink()
    assert tree.lock("--offline") == 0
    assert tree.lock_file.read_bytes() == first


def test_fetch_publish_verify_and_apt_get_source(
    tree: Tree, http_server: ServerFactory, private_apt: AptFactory, signing_key: SigningKey, tmp_path: Path
) -> None:
    assert tree.lock() == 0
    assert main(["fetch", "--locks", str(tree.locks), "--cache", str(tree.cache)]) == 0
    key_file = tmp_path / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    where = ["--locks", str(tree.locks), "--cache", str(tree.cache), "--out", str(tree.out)]
    assert main(["publish", *where, "--sign-key", str(key_file), "--no-fetch"]) == 0
    prefix = tree.out / "fixture"
    dist = prefix / "dists" / "stable"
    release = (dist / "Release").read_text()
    for name in ("Sources", "Sources.gz", "Sources.xz", "Release"):
        assert f" main/source/{name}\n" in release
    # Byte for byte what dpkg-scansources writes from the published pool (but its final blank line).
    scanned = subprocess.run(["dpkg-scansources", "pool/main"], cwd=prefix, capture_output=True, check=True).stdout
    assert (dist / "main" / "source" / "Sources").read_bytes() == scanned.removesuffix(b"\n")
    assert main(["verify", str(tree.out)]) == 0

    server = http_server(tree.out)
    apt = private_apt()
    keyring = tree.out / "signing-key.gpg"
    apt.add_source(f"deb-src [signed-by={keyring}] {server.url}/fixture/ stable main")
    apt.add_source(f"deb [signed-by={keyring}] {server.url}/fixture/ stable main")
    apt.update()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    apt.run("source", "--download-only", "tool", cwd=downloads)  # by binary name: apt finds its source
    apt.run("source", "--download-only", "web-src", cwd=downloads)
    names = sorted(p.name for p in downloads.iterdir())
    assert "tool_1.2-3.dsc" in names and "web-src_1.0.dsc" in names and "tool_1.2.orig.tar.gz" in names
    for dsc in ("tool_1.2-3.dsc", "web-src_1.0.dsc"):
        proc = subprocess.run(["dpkg-source", "-x", dsc], cwd=downloads, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    assert (downloads / "tool-1.2" / "debian" / "changelog").is_file()


def test_verify_finds_a_damaged_source_file(
    tree: Tree, signing_key: SigningKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tree.lock() == 0
    key_file = tmp_path / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    where = ["--locks", str(tree.locks), "--cache", str(tree.cache), "--out", str(tree.out)]
    assert main(["publish", *where, "--sign-key", str(key_file)]) == 0  # fetches what the cache lacks
    assert main(["verify", str(tree.out)]) == 0
    target = tree.out / "fixture" / "pool" / "main" / "t" / "tool" / "tool_1.2.orig.tar.gz"
    data = target.read_bytes()
    target.unlink()  # a hard link into the cache: replace, never write through
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    capsys.readouterr()
    assert main(["verify", str(tree.out)]) != 0
    output = capsys.readouterr()
    assert "tool_1.2.orig.tar.gz: sha256 differs from fixture/dists/stable/main/source" in output.out
    assert ": 1 problem(s)" in output.err


def _sources_text(archive: FixtureArchive) -> str:
    return archive.sources_path("main").read_text()


def test_a_missing_source_package_names_the_binary_and_its_source(
    tree: Tree, served: tuple[FixtureArchive, LoopbackServer], capsys: pytest.CaptureFixture[str]
) -> None:
    archive, _ = served
    stanzas = _sources_text(archive).strip("\n").split("\n\n")
    kept = [s for s in stanzas if not s.startswith("Format: 3.0 (quilt)\nPackage: tool\n")]
    assert len(kept) == len(stanzas) - 1
    archive.rewrite_sources("main", "\n\n".join(kept) + "\n", resign=True)
    assert tree.lock() != 0
    err = capsys.readouterr().err
    assert "tool 1.2-3+b1 (amd64) is built from the source package tool 1.2-3" in err
    assert "not in the Sources indices" in err and not tree.lock_file.exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (" tool_1.2.orig.tar.gz\n", " ../../../evil.tar.gz\n", "refusing the file name '../../../evil.tar.gz'"),
        ("Directory: pool/main/t/tool\n", "Directory: pool/../../etc\n", "refusing Directory 'pool/../../etc'"),
    ],
)
def test_hostile_sources_are_refused(
    tree: Tree,
    served: tuple[FixtureArchive, LoopbackServer],
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    message: str,
) -> None:
    archive, _ = served
    text = _sources_text(archive)
    assert old in text
    archive.rewrite_sources("main", text.replace(old, new), resign=True)
    assert tree.lock() != 0
    assert message in capsys.readouterr().err and not tree.lock_file.exists()


def test_an_archive_without_sources_is_named(
    tmp_path: Path,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = fixture_archive_factory({"main": PACKAGES})
    tree = Tree(tmp_path, archive, http_server(archive.root))
    assert tree.lock() != 0
    err = capsys.readouterr().err
    assert "no Sources index for main/source in the Release" in err and "dependencyFollowSource" in err
    assert "Traceback" not in err


# --- the strict reader -------------------------------------------------------------------------------


@pytest.fixture
def lock_text(tree: Tree) -> str:
    assert tree.lock() == 0
    return tree.lock_file.read_text()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "tool_1.2.orig.tar.gz"', 'name = "../tool.tar.gz"', "contains a path separator"),
        ('name = "tool_1.2.orig.tar.gz"', 'name = "a\\u0000b"', "contains a control character"),
        ('directory = "pool/main/t/tool"', 'directory = "pool/../x"', "contains '..'"),
        ('directory = "pool/main/t/tool"', 'directory = "srv/x"', "does not start with 'pool/'"),
        ('name = "tool_1.2.orig.tar.gz"', 'name = "tool_1.2-3.debian.tar.xz"', "lists the file"),
        ('name = "tool_1.2-3.dsc"', 'name = "tool_1.2-3.txt"', "exactly one .dsc"),
        ('binaries = ["tool/amd64"]', 'binaries = ["web/amd64"]', "built from web-src 1.0"),
        ('binaries = ["tool/amd64"]', 'binaries = ["nope/amd64"]', "not a package of this lock"),
    ],
)
def test_the_reader_refuses_damaged_source_tables(lock_text: str, old: str, new: str, message: str) -> None:
    assert old in lock_text
    with pytest.raises(LockError, match=message):
        loads_lock(lock_text.replace(old, new, 1), path="fixture/stable.lock")


def test_the_reader_refuses_a_bad_sha256_and_a_dropped_source(lock_text: str) -> None:
    sha = next(line for line in lock_text.splitlines() if line.startswith("sha256 = ") and "source-package" not in line)
    last = lock_text.rindex(sha)
    with pytest.raises(LockError, match="is not a sha256"):
        loads_lock(lock_text[:last] + 'sha256 = "XYZ"' + lock_text[last + len(sha) :], path="x.lock")
    start = lock_text.index('[[source-package]]\nname = "tool"')
    end = lock_text.find("[[source-package]]", start + 1)
    dropped = lock_text[:start] + (lock_text[end:] if end > 0 else "")
    with pytest.raises(LockError, match=r"its source tool 1.2-3 has no \[\[source-package\]\]"):
        loads_lock(dropped, path="x.lock")
    duplicated = lock_text + lock_text[lock_text.index('[[source-package]]\nname = "web-src"') :]
    with pytest.raises(LockError, match="is locked twice"):
        loads_lock(duplicated, path="x.lock")


def test_dpkg_source_is_available() -> None:
    assert shutil.which("dpkg-source") and shutil.which("dpkg-scansources")


def test_diff_counts_source_package_changes(tree: Tree) -> None:
    assert tree.lock() == 0
    new = read_lock(tree.lock_file)
    old = replace(new, source_packages=())
    diff = diff_locks([old], [new])
    assert not diff.is_empty and diff.source_counts() == {"rebuilt": 0, "added": 3, "removed": 0}
    tool = next(s for s in new.source_packages if s.name == "tool")
    other = replace(
        tool, files=tuple(replace(f, sha256="0" * 64) if f.name.endswith(".dsc") else f for f in tool.files)
    )
    changed = replace(new, source_packages=tuple(other if s is tool else s for s in new.source_packages))
    rebuilt = diff_locks([new], [changed]).source_packages
    assert [(c.name, c.version, c.kind, c.flagged) for c in rebuilt] == [("tool", "1.2-3", "rebuilt", True)]
    assert diff_locks([new], [new]).is_empty


def test_every_diff_format_shows_source_package_changes(tree: Tree) -> None:
    import json

    from minimirror.audit.render import render_json, render_markdown, summary_line

    assert tree.lock() == 0
    new = read_lock(tree.lock_file)
    tool = next(s for s in new.source_packages if s.name == "tool")
    rebuilt = replace(tool, files=tuple(replace(f, sha256="0" * 64) for f in tool.files))
    changed = replace(new, source_packages=tuple(rebuilt if s is tool else s for s in new.source_packages))
    diff = diff_locks([new], [changed])
    assert "source packages: 1 REBUILT" in summary_line(diff)
    markdown = render_markdown(diff)
    assert "<details open><summary><b>1 source package changes</b>" in markdown and "`tool`" in markdown
    (entry,) = json.loads(render_json(diff))["source_packages"]
    assert (entry["name"], entry["kind"], entry["flagged"]) == ("tool", "rebuilt", True)
