"""Ubuntu archives (issue 15, part 4): an Ubuntu-shaped release + -updates pair (four components, zstd .debs,
``Phased-Update-Percentage``, indices served by hash only; ``fixtures/ubuntu.py``) is locked, fetched,
published, verified and installed, with apt (Debian's apt reads Ubuntu archives) as the judge of the closure and
of the phasing a node applies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian.deb822 import Packages
from fixtures.apt import PrivateApt
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer
from fixtures.ubuntu import COMPONENTS, PHASED, UbuntuArchive, build_ubuntu_archive
from fixtures.worktree import WorkTree

from minimirror.cli import main
from minimirror.lock.lockfile import Lock, read_lock
from minimirror.upstream.debfile import read_control

QUERIES = ("curl", "htop", "unrar", "nvidia-kernel-common-535", "tzdata")
MACHINE_ID = "5d41402abc4b2a76b9719d911017c592"
# A node that installed Ubuntu 24.04 before the updates: what `apt-get upgrade` starts from.
INSTALLED = (
    ("curl", "8.5.0-2ubuntu10"), ("libcurl4t64", "8.5.0-2ubuntu10"), ("libssl3t64", "3.0.13-0ubuntu3"),
    ("htop", "3.3.0-4build1"), ("libc6", "2.39-0ubuntu8"), ("libncursesw6", "6.4+20240113-1ubuntu2"),
)  # fmt: skip


@dataclass
class Ubuntu(WorkTree):
    archive: UbuntuArchive
    server: LoopbackServer

    @property
    def lock_file(self) -> Path:
        return self.locks / "ubuntu" / "noble.lock"


@pytest.fixture
def ubuntu(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Ubuntu:
    archive = build_ubuntu_archive(tmp_path / "ubuntu", fixture_archive_factory)
    made = Ubuntu(tmp_path, archive, http_server(archive.root))
    assert archive.release.key is not None
    key = archive.release.key.public_key_asc_path
    source = made.sources / "ubuntu" / "noble"
    source.mkdir(parents=True)
    (source / "source.txt").write_text(
        f"{made.server.url} file://{key} noble {' '.join(COMPONENTS)}\n"
        f"{made.server.url} file://{key} noble-updates {' '.join(COMPONENTS)}\n"
    )
    (source / "packages.txt").write_text("\n".join(QUERIES) + "\n")
    return made


def _node(private_apt: AptFactory, lines: list[str], *, installed: tuple[tuple[str, str], ...] = ()) -> PrivateApt:
    """An amd64 node with a machine-id (phasing needs one) and ``installed`` in its dpkg status."""
    apt = private_apt(options={"APT::Machine-ID": MACHINE_ID})
    for line in lines:
        apt.add_source(line)
    status = "".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n"
        f"Maintainer: x <x@example.invalid>\nDescription: installed before the updates\n\n"
        for name, version in installed
    )
    (apt.root / "var/lib/dpkg/status").write_text(status)
    apt.update()
    return apt


def _upgrades(apt: PrivateApt) -> tuple[set[str], set[str]]:
    """``apt-get upgrade -s``: (names it upgrades, names it keeps back)."""
    out = apt.run("upgrade", "-s").stdout
    upgraded = {line.split()[1] for line in out.splitlines() if line.startswith("Inst ")}
    kept, lines = set(), iter(out.splitlines())
    for line in lines:
        if line.startswith("The following packages have been kept back"):
            kept = set(next(lines).split())
    return upgraded, kept


def _keys(lock: Lock) -> set[tuple[str, str, str]]:
    return {package.key for package in lock.packages}


def test_the_fixture_is_ubuntu_shaped(ubuntu: Ubuntu) -> None:
    updates = ubuntu.archive.updates
    release_text = updates.release_path.read_text()
    assert "Acquire-By-Hash: yes" in release_text and "No-Support-for-Architecture-all" not in release_text
    assert "Suite: noble-updates\nCodename: noble\n" in release_text
    assert not updates.index_path("main", "amd64", "xz").exists()  # listed, but served by hash only
    with ubuntu.archive.release.deb("curl").open("rb") as deb:
        members = deb.read()
    assert b"control.tar.zst" in members and b"data.tar.zst" in members
    control = read_control(updates.deb("curl"))
    assert control.get("Version") == "8.5.0-2ubuntu10.1" and control.get("Phased-Update-Percentage") is None


def test_the_lock_is_what_apt_installs_from_ubuntu(ubuntu: Ubuntu, private_apt: AptFactory) -> None:
    assert main(ubuntu.lock_args()) == 0
    lock = read_lock(ubuntu.lock_file)
    fresh = _node(private_apt, ubuntu.archive.source_lines(ubuntu.server.url))
    installed = fresh.simulate_install(QUERIES)
    assert _keys(lock) == installed  # apt installs the phased updates on a fresh node; so does the lock
    assert ("curl", "8.5.0-2ubuntu10.1", "amd64") in installed and ("htop", "3.3.0-4ubuntu0.1", "amd64") in installed

    phased = {f"{p.name}_{p.version}_{p.architecture}": p.phased_update_percentage for p in lock.packages}
    assert {ref: value for ref, value in phased.items() if value is not None} == PHASED
    assert "phased-update-percentage = 30\n" in ubuntu.lock_file.read_text()
    assert {p.component for p in lock.packages} == set(COMPONENTS)
    requested = ubuntu.server.log.paths()
    indices = [path for path in requested if "/binary-amd64/" in path]
    assert indices and all("/by-hash/SHA256/" in path for path in indices)
    assert main(ubuntu.lock_args("--check")) == 0


def test_the_published_mirror_installs_and_phases_as_ubuntu_does(
    ubuntu: Ubuntu, signing_key: SigningKey, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    assert main(ubuntu.lock_args()) == 0
    lock = read_lock(ubuntu.lock_file)
    key_file = ubuntu.root / "release.key"
    key_file.write_text(signing_key.secret_key_armored)
    out = ubuntu.root / "public"
    where = ["--locks", str(ubuntu.locks), "--cache", str(ubuntu.cache)]
    assert main(["fetch", *where]) == 0
    assert main(["publish", *where, "--out", str(out), "--sign-key", str(key_file)]) == 0
    assert main(["verify", str(out)]) == 0

    index = out / "ubuntu" / "dists" / "noble" / "main" / "binary-amd64" / "Packages"
    stanzas = {(s["Package"], s["Version"]): s for s in Packages.iter_paragraphs(index.read_text(), use_apt_pkg=False)}
    assert stanzas["curl", "8.5.0-2ubuntu10.1"]["Phased-Update-Percentage"] == "30"
    assert "Phased-Update-Percentage" not in stanzas["libssl3t64", "3.0.13-0ubuntu3.1"]

    mirror_url = http_server(out / "ubuntu").url
    mirror_line = f"deb [signed-by={out / 'signing-key.gpg'}] {mirror_url}/ noble {' '.join(COMPONENTS)}"
    mirror = _node(private_apt, [mirror_line])
    assert mirror.simulate_install(QUERIES) == _keys(lock)
    (downloaded,) = mirror.download(["curl"], ubuntu.root / "dl")
    upstream_deb = ubuntu.archive.updates.deb("curl", "8.5.0-2ubuntu10.1")
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(upstream_deb.read_bytes()).digest()

    # A node installed before the updates phases them by its machine-id the same way against the mirror as
    # against Ubuntu: the halted htop update (0 %) is kept back, the unphased libssl update goes through.
    on_mirror = _upgrades(_node(private_apt, [mirror_line], installed=INSTALLED))
    on_ubuntu = _upgrades(_node(private_apt, ubuntu.archive.source_lines(ubuntu.server.url), installed=INSTALLED))
    assert on_mirror == on_ubuntu
    upgraded, kept = on_mirror
    assert "htop" in kept and "libssl3t64" in upgraded


def test_a_relock_takes_the_roll_out_where_ubuntu_has_it_now(
    ubuntu: Ubuntu, fixture_archive_factory: ArchiveFactory
) -> None:
    assert main(ubuntu.lock_args()) == 0
    before = read_lock(ubuntu.lock_file)
    # Hours later: htop's update is resumed at 10 %, curl's has reached everyone (Launchpad drops the field).
    build_ubuntu_archive(ubuntu.archive.root, fixture_archive_factory, phased={"htop_3.3.0-4ubuntu0.1_amd64": 10})
    assert main(ubuntu.lock_args()) == 0  # conservative: same versions, the percentages of the new index
    after = read_lock(ubuntu.lock_file)
    assert _keys(after) == _keys(before)
    phased = {p.name: p.phased_update_percentage for p in after.packages if p.phased_update_percentage is not None}
    assert phased == {"htop": 10}
    assert after.companions[0].upstream.indices != before.companions[0].upstream.indices
