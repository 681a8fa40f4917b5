"""``minimirror lock``, ``--check``, conservative re-locks, ``why`` and ``search`` on signed fixture archives."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive
from fixtures.collector import note_collector
from fixtures.plugin import ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer

from minimirror.cli import main
from minimirror.lock.lockfile import read_lock

PACKAGES = [
    P("web", "1.0", depends="libssl (>= 3), webcommon", source="web-src (1.0)"),
    P("webcommon", "1.0", architecture="all", source="web-src (1.0)"),
    P("libssl", "3.0.1"),
    P("libssl", "3.0.2"),
    P("shell", "5.2", depends="libc"),
    P("libc", "2.36"),
    P("libc", "2.37"),
]


class Tree:
    """A sources tree pointing at a served fixture archive, and the CLI arguments to lock it."""

    def __init__(self, root: Path, archive: FixtureArchive, server: LoopbackServer) -> None:
        assert archive.key is not None
        self.root = root
        self.source_dir = root / "sources" / "fixture" / "stable"
        self.source_dir.mkdir(parents=True)
        key_url = f"file://{archive.key.public_key_asc_path}"
        (self.source_dir / "source.txt").write_text(f"{server.url} {key_url} {archive.dist} main\n")
        self.write_packages("web\nshell\n")
        self.lock_file = root / "locks" / "fixture" / "stable.lock"

    def write_packages(self, text: str) -> None:
        (self.source_dir / "packages.txt").write_bytes(text.encode())

    def args(self, *extra: str) -> list[str]:
        dirs = ["--sources", str(self.root / "sources"), "--locks", str(self.root / "locks")]
        return [extra[0], *dirs, "--cache", str(self.root / "cache"), *extra[1:]]


@pytest.fixture
def served(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory
) -> tuple[FixtureArchive, LoopbackServer]:
    archive = fixture_archive_factory({"main": PACKAGES})
    return archive, http_server(archive.root)


@pytest.fixture
def tree(tmp_path: Path, served: tuple[FixtureArchive, LoopbackServer]) -> Tree:
    return Tree(tmp_path, *served)


def versions(lock_file: Path) -> dict[str, str]:
    return {p.name: p.version for p in read_lock(lock_file).packages}


def test_lock_pins_the_closure_with_hashes_and_reasons(
    tree: Tree, served: tuple[FixtureArchive, LoopbackServer]
) -> None:
    assert main(tree.args("lock")) == 0
    lock = read_lock(tree.lock_file)
    assert versions(tree.lock_file) == {
        "web": "1.0", "webcommon": "1.0", "libssl": "3.0.2", "shell": "5.2", "libc": "2.37"
    }  # fmt: skip
    archive, _ = served
    web = lock.find("web")[0]
    assert web.source == "web-src" and web.source_version == "1.0"
    assert web.filename.startswith("pool/main/") and (archive.root / web.filename).is_file()
    import hashlib

    assert web.sha256 == hashlib.sha256((archive.root / web.filename).read_bytes()).hexdigest()
    assert web.queries == ("web",) and lock.find("libssl")[0].required_by == ("web/amd64",)
    assert lock.upstream.signed_by == (archive.key.fingerprint,)  # type: ignore[union-attr]


def test_same_bytes_whatever_the_order_comments_or_line_endings(tree: Tree) -> None:
    assert main(tree.args("lock")) == 0
    first = tree.lock_file.read_bytes()
    tree.write_packages("# the shell first this time\r\nshell\r\n\r\nweb   # and the web server\r\n")
    assert main(tree.args("lock", "--check")) == 0
    assert main(tree.args("lock")) == 0
    assert tree.lock_file.read_bytes() == first


def test_check_names_stale_and_missing_locks(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(tree.args("lock", "--check")) == 1
    assert "stable.lock: no lock" in capsys.readouterr().err
    assert main(tree.args("lock")) == 0
    assert main(tree.args("lock", "--check")) == 0
    tree.write_packages("web\n")
    assert main(tree.args("lock", "--check")) == 1
    assert f"stale: {tree.lock_file}: packages.txt, source.txt or settings changed" in capsys.readouterr().err


def test_relock_is_conservative_unless_asked(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory
) -> None:
    newest = {"libssl": "3.0.2", "libc": "2.37"}
    old_packages = [p for p in PACKAGES if newest.get(p.name) != p.version]
    archive = fixture_archive_factory({"main": old_packages}, root=tmp_path / "archive")
    tree = Tree(tmp_path / "work", archive, http_server(archive.root))
    assert main(tree.args("lock")) == 0
    assert versions(tree.lock_file)["libssl"] == "3.0.1"
    # upstream publishes newer versions next to the old ones
    fixture_archive_factory({"main": PACKAGES}, root=tmp_path / "archive")
    assert main(tree.args("lock")) == 0
    assert (versions(tree.lock_file)["libssl"], versions(tree.lock_file)["libc"]) == ("3.0.1", "2.36")
    assert main(tree.args("lock", "--upgrade-package", "libssl")) == 0
    assert (versions(tree.lock_file)["libssl"], versions(tree.lock_file)["libc"]) == ("3.0.2", "2.36")
    assert main(tree.args("lock", "--upgrade")) == 0
    assert versions(tree.lock_file)["libc"] == "2.37"


def test_unsatisfiable_query_fails_cleanly_and_keeps_the_old_lock(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(tree.args("lock")) == 0
    before = tree.lock_file.read_bytes()
    tree.write_packages("web\nshell\nnosuchpackage\n")
    assert main(tree.args("lock")) == 2
    err = capsys.readouterr().err
    assert "packages.txt:3: the query 'nosuchpackage' matches no package" in err
    assert "Traceback" not in err
    assert tree.lock_file.read_bytes() == before


def test_offline_lock_from_a_warm_cache(tree: Tree, served: tuple[FixtureArchive, LoopbackServer]) -> None:
    assert main(tree.args("lock")) == 0
    before = tree.lock_file.read_bytes()
    _, server = served
    server.log.clear()
    tree.lock_file.unlink()
    assert main(tree.args("lock", "--offline")) == 0
    assert server.log.paths() == []
    assert tree.lock_file.read_bytes() == before


def test_why_prints_the_chain(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(tree.args("lock")) == 0
    capsys.readouterr()
    assert main(["why", "--locks", str(tree.root / "locks"), "libssl"]) == 0
    assert capsys.readouterr().out.strip() == "query: web -> web/amd64 -> libssl/amd64"
    assert main(["why", "--locks", str(tree.root / "locks"), "libsssl"]) == 2
    assert "libssl" in capsys.readouterr().err


def test_search_prints_sorted_matches_and_fails_on_none(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", "--sources", str(tree.root / "sources"), "--cache", str(tree.root / "cache")]
    assert main([*args, "Name (% lib*)"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "libc 2.37 amd64  [fixture/stable]",
        "libc 2.36 amd64  [fixture/stable]",
        "libssl 3.0.2 amd64  [fixture/stable]",
        "libssl 3.0.1 amd64  [fixture/stable]",
    ]
    assert main([*args, "--source", "fixture/stable", "webcommon"]) == 0
    assert capsys.readouterr().out.splitlines() == ["webcommon 1.0 all"]
    assert main([*args, "nothing-like-this"]) == 1
    assert "no package matches 'nothing-like-this'" in capsys.readouterr().err


def test_a_selection_locks_what_installs_and_lists_the_rest_in_the_output_and_the_lock(
    tmp_path: Path,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = [P("kfreebsd-tool", "1.0", depends="vidcontrol"), P("kfreebsd-meta", "1.0", depends="kfreebsd-tool")]
    archive = fixture_archive_factory({"main": [*PACKAGES, *broken]})
    tree = Tree(tmp_path, archive, http_server(archive.root))
    tree.write_packages("Name (% *)\n")
    capsys.readouterr()
    assert main(tree.args("lock")) == 0
    out = capsys.readouterr().out
    assert "fixture/stable: 2 packages the queries match cannot be installed and are left out" in out
    assert "  kfreebsd-tool 1.0 amd64: needs vidcontrol, which no package of amd64 or all satisfies" in out
    lock = read_lock(tree.lock_file)
    assert {p.name for p in lock.packages} == {"web", "webcommon", "libssl", "shell", "libc"}
    assert [(p.name, p.queries) for p in lock.left_out] == [
        ("kfreebsd-meta", ("Name (% *)",)),
        ("kfreebsd-tool", ("Name (% *)",)),
    ]
    assert '\n[[left-out]]\nname = "kfreebsd-meta"\n' in tree.lock_file.read_text()
    assert main(tree.args("lock", "--check")) == 0
    tree.write_packages("kfreebsd-meta\n")  # named: still an error
    assert main(tree.args("lock")) == 2
    assert "cannot satisfy vidcontrol: no package vidcontrol in the index" in capsys.readouterr().err


def test_a_lock_resolves_and_writes_with_the_cyclic_collector_paused(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole suite's lock spent a third of its time in the collector's full passes over its live objects
    (minimirror.memory); the spies let the real resolver and writer run and note whether it was on."""
    import gc

    from minimirror.lock import stage

    seen: dict[str, bool] = {}
    note_collector(monkeypatch, stage, "resolve", seen)
    note_collector(monkeypatch, stage, "write_lock", seen)
    assert gc.isenabled()
    assert main(tree.args("lock")) == 0
    assert seen == {"resolve": False, "write_lock": False}
    assert gc.isenabled()
    assert versions(tree.lock_file)["web"] == "1.0"
