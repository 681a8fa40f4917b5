"""Sources used together resolve together: a third-party repository on top of the distribution is resolved as
one apt universe with it (``resolve-with``), each package locked with the source it comes from. apt, with every
line of the group (and the same pins), is the judge: the union of the group's locks is what it installs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.apt import PrivateApt
from fixtures.archive import FixtureArchive, build_flat_archive
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer
from fixtures.worktree import WorkTree

from minimirror.audit.diff import diff_locks
from minimirror.cli import main
from minimirror.lock.lockfile import Lock, read_locks
from minimirror.package import Package
from minimirror.upstream.index import IndexPart, PackageIndex

DISTRIBUTION = [
    P("libc6", "2.36-9", priority="required"),
    P("iptables", "1.8.9-2", depends="libc6 (>= 2.34)"),
    P("libx", "1.0-1", depends="libc6"),
    P("app", "1.0-1", depends="libx (>= 1.0)"),
    P("exim4", "4.96-15", provides="mail-transport-agent", depends="libc6"),
    P("cyc-a", "1.0-1", depends="cyc-b"),
]
THIRD_PARTY = [
    P("dockerish", "1.0-1", depends="libc6 (>= 2.34), iptables, mail-transport-agent"),
    P("libx", "2.0-1", depends="libc6"),  # newer than the distribution's
    P("cyc-b", "1.0-1", depends="cyc-a"),  # a cycle across the two sources
    P("needs-nothing-here", "1.0-1", depends="not-anywhere"),
]
VENDOR = [P("vtool", "3.1", depends="dockerish, libx (>= 2)")]


@dataclass
class Repo:
    source_id: str
    archive: FixtureArchive
    server: LoopbackServer
    queries: str
    settings: str = ""

    @property
    def line(self) -> str:
        assert self.archive.key is not None
        return f"{self.server.url} file://{self.archive.key.public_key_asc_path} {self.archive.dist} main\n"


@dataclass
class Tree(WorkTree):
    repos: dict[str, Repo] = field(default_factory=dict)

    def write(self) -> None:
        for repo in self.repos.values():
            directory = self.sources / repo.source_id
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "source.txt").write_text(repo.line)
            (directory / "packages.txt").write_text(repo.queries)
            toml = directory / "minimirror.toml"
            toml.write_text(repo.settings) if repo.settings else toml.unlink(missing_ok=True)

    def lock(self, *extra: str) -> dict[str, Lock]:
        self.write()
        assert main(self.lock_args(*extra)) == 0
        return {lock.source.id: lock for lock in read_locks(self.locks)}

    def apt(self, private_apt: AptFactory, *ids: str, preferences: str = "") -> PrivateApt:
        apt = private_apt()
        for source_id in ids or sorted(self.repos):
            repo = self.repos[source_id]
            assert repo.archive.key is not None
            apt.add_repository(repo.server.url, repo.archive.dist, ["main"], signed_by=repo.archive.key.public_key_path)
        if preferences:
            (apt.root / "etc/apt/preferences").write_text(preferences)
        apt.update()
        return apt


@pytest.fixture
def tree(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Tree:
    def repo(source_id: str, packages: list[P], queries: str, origin: str, dist: str) -> Repo:
        archive = fixture_archive_factory({"main": packages}, dist=dist, origin=origin, label=origin)
        return Repo(source_id, archive, http_server(archive.root), queries)

    made = Tree(tmp_path)
    made.repos["debian/bookworm"] = repo("debian/bookworm", DISTRIBUTION, "app\ncyc-a\n", "Debian", "bookworm")
    made.repos["docker/bookworm"] = repo("docker/bookworm", THIRD_PARTY, "dockerish\n", "Docker", "bookworm")
    made.repos["docker/bookworm"].settings = 'resolve-with = ["debian/bookworm"]\n'
    return made


def _keys(*locks: Lock) -> set[tuple[str, str, str]]:
    return {package.key for lock in locks for package in lock.packages}


def _package(lock: Lock, name: str) -> tuple[str, tuple[str, ...]]:
    (found,) = [p for p in lock.packages if p.name == name]
    return found.version, found.required_by


def test_a_group_locks_what_apt_installs_from_all_its_lines(tree: Tree, private_apt: AptFactory) -> None:
    locks = tree.lock()
    debian, docker = locks["debian/bookworm"], locks["docker/bookworm"]
    apt = tree.apt(private_apt)
    assert _keys(debian, docker) == apt.simulate_install(["app", "cyc-a", "dockerish"])

    # each package in the lock of the source it comes from; the newer third-party libx wins for debian's app too
    assert {p.name for p in docker.packages} == {"dockerish", "libx", "cyc-b"}
    assert {p.name for p in debian.packages} == {"app", "cyc-a", "libc6", "iptables", "exim4"}
    assert _package(docker, "libx") == ("2.0-1", ("debian/bookworm:app/amd64",))
    assert _package(debian, "iptables") == ("1.8.9-2", ("docker/bookworm:dockerish/amd64",))
    assert _package(debian, "exim4")[1] == ("docker/bookworm:dockerish/amd64",)  # only debian provides the MTA
    assert _package(docker, "cyc-b")[1] == ("debian/bookworm:cyc-a/amd64",)
    assert _package(debian, "cyc-a")[1] == ("docker/bookworm:cyc-b/amd64",)
    assert debian.source.group == docker.source.group == ("debian/bookworm", "docker/bookworm")
    assert main(tree.lock_args("--check")) == 0


def test_a_change_in_one_source_makes_the_whole_group_stale(tree: Tree) -> None:
    tree.lock()
    (tree.sources / "docker/bookworm/packages.txt").write_text("dockerish\ncyc-b\n")
    assert main(tree.lock_args("--check")) == 1
    assert main([*tree.lock_args(), "--source", "docker/bookworm"]) == 0  # locks the whole group
    assert main(tree.lock_args("--check")) == 0


def test_a_pinned_source_s_older_version_wins(tree: Tree, private_apt: AptFactory) -> None:
    tree.repos["debian/bookworm"].settings = "pin-priority = 990\n"
    locks = tree.lock()
    preferences = "Package: *\nPin: release o=Debian\nPin-Priority: 990\n"
    apt = tree.apt(private_apt, preferences=preferences)
    assert _keys(*locks.values()) == apt.simulate_install(["app", "cyc-a", "dockerish"])
    assert _package(locks["debian/bookworm"], "libx")[0] == "1.0-1"
    assert "libx" not in {p.name for p in locks["docker/bookworm"].packages}
    assert locks["debian/bookworm"].source.pin_priority == 990
    assert locks["docker/bookworm"].source.pin_priority is None  # the default is not written


def test_a_negative_priority_is_never_chosen(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.repos["docker/bookworm"].settings = 'resolve-with = ["debian/bookworm"]\npin-priority = -1\n'
    tree.repos["docker/bookworm"].queries = "cyc-b\n"
    tree.write()
    assert main(tree.lock_args()) == 2  # docker's own query cannot select a package apt would never install
    assert "the query 'docker/bookworm:cyc-b' matches no package" in capsys.readouterr().err


def test_pin_priorities_order_versions_and_hide_negative_ones() -> None:
    """The index of a group: priority first, then version; a negative priority's packages are not there."""
    part = [Package("libx", v, "amd64", {"SHA256": v}) for v in ("1.0", "2.0")]
    debian = IndexPart("main", "debian", (part[0],), origin="debian/bookworm", priority=990)
    docker = IndexPart("main", "docker", (part[1],), origin="docker/bookworm")
    assert [p.version for p in PackageIndex([debian, docker]).by_name("libx")] == ["1.0", "2.0"]
    assert [p.version for p in PackageIndex([replace(debian, priority=500), docker]).by_name("libx")] == ["2.0", "1.0"]
    hidden = PackageIndex([replace(debian, priority=500), replace(docker, priority=-1)])
    assert [p.version for p in hidden.by_name("libx")] == ["1.0"]


def test_three_sources_in_a_group(tree: Tree, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory,
                                  private_apt: AptFactory) -> None:  # fmt: skip
    archive = fixture_archive_factory({"main": VENDOR}, dist="tools", origin="Vendor", label="Vendor")
    tree.repos["vendor/tools"] = Repo("vendor/tools", archive, http_server(archive.root), "vtool\n")
    tree.repos["vendor/tools"].settings = 'resolve-with = ["docker/bookworm"]\n'  # debian comes transitively
    locks = tree.lock()
    assert sorted(locks) == ["debian/bookworm", "docker/bookworm", "vendor/tools"]
    assert locks["vendor/tools"].source.group == ("debian/bookworm", "docker/bookworm", "vendor/tools")
    apt = tree.apt(private_apt)
    assert _keys(*locks.values()) == apt.simulate_install(["app", "cyc-a", "dockerish", "vtool"])


def test_skip_leaves_a_dependency_out_and_records_it(tree: Tree, caplog: pytest.LogCaptureFixture) -> None:
    tree.repos["docker/bookworm"].queries = "dockerish\nneeds-nothing-here\n"
    tree.write()
    assert main(tree.lock_args()) == 2  # the default is an error
    tree.repos["docker/bookworm"].settings += 'missing-dependencies = "skip"\n'
    locks = tree.lock()
    (package,) = [p for p in locks["docker/bookworm"].packages if p.name == "needs-nothing-here"]
    assert package.missing == ("not-anywhere",)
    text = (tree.locks / "docker/bookworm.lock").read_text()
    assert 'missing = ["not-anywhere"]' in text


def test_a_source_alone_gets_a_hint_naming_the_source_and_the_line(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.repos["docker/bookworm"].settings = ""
    tree.repos["debian/bookworm"].queries = "app\n"  # debian alone resolves; docker alone cannot
    tree.write()
    assert main(tree.lock_args()) == 2
    err = capsys.readouterr().err
    assert "docker/bookworm: cannot satisfy libc6 (>= 2.34)" in err
    assert "debian/bookworm has libc6" in err
    assert 'resolve-with = ["debian/bookworm"]' in err
    assert str(tree.sources / "docker/bookworm/minimirror.toml") in err


def test_same_version_in_two_sources_with_other_files(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    one = fixture_archive_factory({"main": [P("tool", "1.0", files={"usr/share/tool": b"one"})]}, dist="one",
                                  origin="One", label="One")  # fmt: skip
    two = fixture_archive_factory({"main": [P("tool", "1.0", files={"usr/share/tool": b"two"})]}, dist="two",
                                  origin="Two", label="Two")  # fmt: skip
    made = Tree(tmp_path)
    made.repos["a/one"] = Repo("a/one", one, http_server(one.root), "tool\n", 'resolve-with = ["b/two"]\n')
    made.repos["b/two"] = Repo("b/two", two, http_server(two.root), "tool\n")
    made.write()
    assert main(made.lock_args()) == 2  # equal priority: no silent pick by order

    made.repos["b/two"].settings = "pin-priority = 600\n"
    locks = made.lock()
    (tool,) = [p for lock in locks.values() for p in lock.packages]
    assert tool.sha256 == hashlib.sha256(two.deb("tool").read_bytes()).hexdigest()
    assert locks["b/two"].packages == (tool,) and not locks["a/one"].packages


def test_a_version_without_its_epoch_is_named_in_the_error(
    tree: Tree, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The upstream mini-mirror example pins docker-ce 20.10.9~3-0~ubuntu-bionic; the archive says 5:20.10.9~..."""
    archive = fixture_archive_factory({"main": [P("docker-ce", "5:20.10.9~3-0~ubuntu-bionic")]}, dist="bionic")
    tree.repos = {"docker/bionic": Repo("docker/bionic", archive, http_server(archive.root), "")}
    tree.repos["docker/bionic"].queries = "docker-ce (= 20.10.9~3-0~ubuntu-bionic)\n"
    tree.write()
    assert main(tree.lock_args()) == 2
    err = capsys.readouterr().err
    assert "matches no package for amd64; docker-ce has 5:20.10.9~3-0~ubuntu-bionic" in err
    assert "docker-ce (= 5:20.10.9~3-0~ubuntu-bionic)" in err


def test_why_follows_a_chain_across_sources(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.lock()
    capsys.readouterr()
    assert main(["why", "iptables", "--locks", str(tree.locks)]) == 0
    out = capsys.readouterr().out
    assert "query: dockerish -> docker/bookworm:dockerish/amd64 -> debian/bookworm:iptables/amd64" in out


def test_diff_flags_a_package_that_moved_to_another_source(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree.lock()
    tree.repos["debian/bookworm"].settings = "pin-priority = 990\n"
    kept = tree.lock()  # conservative: the locked libx 2.0 stays, as apt keeps an installed version
    assert _package(kept["docker/bookworm"], "libx")[0] == "2.0-1"
    after = tree.lock("--upgrade")  # now libx comes from debian
    diff = diff_locks(list(before.values()), list(after.values()))
    moved = [c for c in diff.trust if c.field == "origin of libx/amd64"]
    assert [(c.source, c.old, c.new, c.flagged) for c in moved] == [
        ("debian/bookworm", ("docker/bookworm",), ("debian/bookworm",), True)
    ]
    assert any(c.field == "pin-priority" and c.new == ("990",) for c in diff.flagged_trust())


def test_upgrade_package_works_across_the_group(tree: Tree) -> None:
    tree.repos["debian/bookworm"].settings = "pin-priority = 990\n"
    assert _package(tree.lock()["debian/bookworm"], "libx")[0] == "1.0-1"
    tree.repos["debian/bookworm"].settings = ""
    assert _package(tree.lock()["debian/bookworm"], "libx")[0] == "1.0-1"  # kept while it satisfies everything
    upgraded = tree.lock("--upgrade-package", "libx")
    assert "libx" not in {p.name for p in upgraded["debian/bookworm"].packages}
    assert _package(upgraded["docker/bookworm"], "libx") == ("2.0-1", ("debian/bookworm:app/amd64",))


def test_a_published_group_verifies_and_installs_through_apt_sources(
    tree: Tree,
    signing_key: SigningKey,
    http_server: ServerFactory,
    private_apt: AptFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tree.repos["debian/bookworm"].settings = "pin-priority = 990\n"  # apt on the node must keep debian's libx
    tree.repos["docker/bookworm"].queries = "dockerish\nneeds-nothing-here\n"
    tree.repos["docker/bookworm"].settings += 'missing-dependencies = "skip"\n'
    locks = tree.lock()
    key_file = tree.root / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    out, cache = tree.root / "public", tree.root / "cache"
    publish = ["publish", "--locks", str(tree.locks), "--cache", str(cache), "--out", str(out)]
    assert main([*publish, "--sign-key", str(key_file)]) == 0
    release = (out / "docker/dists/bookworm/Release").read_text()
    assert "Minimirror-Group: debian/dists/bookworm docker/dists/bookworm\n" in release
    assert "Minimirror-Missing:\n needs-nothing-here/amd64 not-anywhere\n" in release
    assert "Minimirror-Pin-Priority: 990" in (out / "debian/dists/bookworm/Release").read_text()
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0  # closure across the group; the skipped gap is only a warning
    assert "needs-nothing-here 1.0-1 (amd64): Depends 'not-anywhere' is left out on purpose" in capsys.readouterr().err

    url = http_server(out).url
    preferences = tree.root / "mirror.pref"
    assert main(["apt-sources", str(out), "--url", url, "--preferences", str(preferences)]) == 0
    sources_text = capsys.readouterr().out
    assert sources_text.count("Types: deb\n") == 2 and "-----BEGIN PGP PUBLIC KEY BLOCK-----" in sources_text
    apt = private_apt()
    (apt.root / "etc/apt/sources.list.d/mirror.sources").write_text(sources_text)
    (apt.root / "etc/apt/preferences.d/mirror.pref").write_text(preferences.read_text())
    apt.update()
    wanted = ["app", "cyc-a", "dockerish"]
    assert apt.simulate_install(wanted) == _keys(*locks.values()) - {("needs-nothing-here", "1.0-1", "amd64")}
    assert ("libx", "1.0-1", "amd64") in apt.simulate_install(["app"])  # the pin reached the node
    every = sorted(name for name, _, _ in apt.simulate_install(wanted))
    downloaded = apt.download(every, tree.root / "downloaded")  # each file from its own source's dist
    assert len(downloaded) == len(every) == 8


def test_publishing_part_of_a_group_is_refused(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.lock()
    (tree.locks / "debian/bookworm.lock").unlink()
    out, cache = tree.root / "public", tree.root / "cache"
    assert main(["publish", "--locks", str(tree.locks), "--cache", str(cache), "--out", str(out), "--no-sign"]) == 2
    assert "resolved together with debian/bookworm, whose lock is not being published" in capsys.readouterr().err


def test_a_flat_repository_locks_publishes_and_installs(
    tree: Tree,
    signing_key: SigningKey,
    http_server: ServerFactory,
    private_apt: AptFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``deb URL ./``: a vendor's flat repository on top of the distribution, published as the dist 'tools'."""
    flat = build_flat_archive(tree.root / "flat", [P("vtool", "3.1", depends="libc6, iptables")], key=signing_key)
    server = http_server(flat)
    directory = tree.sources / "vendor" / "tools"
    directory.mkdir(parents=True)
    assert signing_key.public_key_asc_path is not None
    (directory / "source.txt").write_text(f"{server.url} file://{signing_key.public_key_asc_path} ./\n")
    (directory / "packages.txt").write_text("vtool\n")
    (directory / "minimirror.toml").write_text('resolve-with = ["debian/bookworm"]\n')
    locks = tree.lock()
    vendor = locks["vendor/tools"]
    assert [(p.name, p.component, p.filename) for p in vendor.packages] == [("vtool", "flat", "vtool_3.1_amd64.deb")]
    assert vendor.source.dist == "./" and vendor.source.components == ("flat",)

    apt = tree.apt(private_apt)
    apt.add_source(f"deb [signed-by={signing_key.public_key_path}] {server.url}/ ./")
    apt.update()
    assert _keys(*locks.values()) == apt.simulate_install(["app", "cyc-a", "dockerish", "vtool"])

    out, cache = tree.root / "public", tree.root / "cache"
    key_file = tree.root / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    publish = ["publish", "--locks", str(tree.locks), "--cache", str(cache), "--out", str(out)]
    assert main([*publish, "--sign-key", str(key_file)]) == 0
    assert (out / "vendor/dists/tools/flat/binary-amd64/Packages").is_file()
    assert (out / "vendor/pool/flat/vtool/vtool_3.1_amd64.deb").is_file()
    assert main(["verify", str(out), "--no-dose"]) == 0
    capsys.readouterr()
    assert main(["apt-sources", str(out), "--url", http_server(out).url]) == 0
    node = private_apt()
    (node.root / "etc/apt/sources.list.d/mirror.sources").write_text(capsys.readouterr().out)
    node.update()
    assert ("vtool", "3.1", "amd64") in node.simulate_install(["vtool"])
