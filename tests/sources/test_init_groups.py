"""``init --from-apt`` with third-party entries and pins: resolve-with, pin-priority, flat repositories.

apt is the judge of the pins: after a real ``apt-get update`` in a private root, ``apt-cache policy`` prints the
priority apt gives each source, and the ``pin-priority`` init writes must be the same.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from fixtures import FixturePackage as P
from fixtures.archive import FixtureArchive, format_date
from fixtures.gpgkeys import SigningKey
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory

from minimirror.cli import main
from minimirror.sources.groups import source_groups
from minimirror.sources.tree import load_sources

KEY = "/usr/share/keyrings/example-archive-keyring.gpg"
DOCKER_KEY = "/etc/apt/keyrings/docker.asc"


def _etc(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "etc" / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _toml(directory: Path) -> dict[str, object]:
    return tomllib.loads((directory / "minimirror.toml").read_text())


def _flat_repository(archive: FixtureArchive, key: SigningKey, *, label: str) -> None:
    """Turn an archive's root into a flat repository too (``deb URL ./``): Packages and a signed Release
    beside pool/, whose Filename paths are already relative to that root."""
    packages = gzip.decompress((archive.root / "dists/stable/main/binary-amd64/Packages.gz").read_bytes())
    (archive.root / "Packages").write_bytes(packages)
    digest = hashlib.sha256(packages).hexdigest()
    release = (
        f"Origin: Vendor\nLabel: {label}\nDate: {format_date(archive.settings.date)}\n"
        f"SHA256:\n {digest} {len(packages)} Packages\n"
    ).encode()
    (archive.root / "Release").write_bytes(release)
    (archive.root / "InRelease").write_bytes(key.clearsign(release))


def _apt_policy(apt_config: Path) -> dict[str, int]:
    """``apt-cache policy``: the priority apt gives each source URL (a package file's first line)."""
    env = {**os.environ, "APT_CONFIG": str(apt_config), "LC_ALL": "C.UTF-8"}
    out = subprocess.run(["apt-cache", "policy"], env=env, capture_output=True, text=True, check=True, timeout=60)
    found = re.findall(r"^ *(-?\d+) (http://\S+) ", out.stdout, re.MULTILINE)
    return {url.rstrip("/"): int(priority) for priority, url in found}


def test_third_party_entries_resolve_with_the_distribution_and_take_the_pins_apt_applies(
    tmp_path: Path,
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    signing_key: SigningKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    www = tmp_path / "www"
    debian = fixture_archive_factory(
        {"main": [P("libc6", "2.36")]}, root=www / "debian", dist="bookworm", origin="Distro"
    )
    docker = fixture_archive_factory(
        {"main": [P("docker-ce", "20.10", depends="libc6")]},
        root=www / "docker/linux/debian",
        dist="bookworm",
        origin="Docker",
        label="Docker CE",
    )
    vendor = fixture_archive_factory({"main": [P("tool", "1.0", depends="libc6")]}, root=www / "vendor")
    _flat_repository(vendor, signing_key, label="Vendor Tools")
    url = http_server(www).url.rstrip("/")
    keyring = signing_key.public_key_path
    apt = private_apt()
    apt.add_source(debian.source_line(f"{url}/debian"))
    _etc(
        apt.root,
        {
            "sources.list.d/docker.list": docker.source_line(f"{url}/docker/linux/debian") + "\n",
            "sources.list.d/vendor.sources": f"Types: deb\nURIs: {url}/vendor\nSuites: ./\nSigned-By: {keyring}\n",
            "preferences.d/docker.pref": "Package: *\nPin: release o=Docker\nPin-Priority: 990\n",
            "preferences.d/vendor": (
                "Explanation: matched against the Release file apt downloaded: the host name says nothing\n"
                "Package: *\nPin: release l=Vendor*\nPin-Priority: 100\n\n"
                "Package: tool\nPin: version 1.*\nPin-Priority: 1001\n"
            ),
        },
    )
    apt.update()
    sources = tmp_path / "sources"
    args = ["init", "--from-apt", "--apt-root", str(apt.root), "--sources", str(sources), "--packages", "tool"]
    assert main(args) == 0

    out, err = capsys.readouterr()
    vendor_pref = apt.root / "etc/apt/preferences.d/vendor"
    assert out.splitlines() == [
        f"wrote {sources}/debian/bookworm  (bookworm main)",
        f"wrote {sources}/docker/bookworm  (bookworm main; resolve-with debian/bookworm; pin-priority 990 from "
        f"{apt.root}/etc/apt/preferences.d/docker.pref:1)",
        f"wrote {sources}/vendor/flat  (./; resolve-with debian/bookworm; pin-priority 100 from {vendor_pref}:1)",
    ]
    assert err == (
        f"not imported: the APT pin at {vendor_pref}:6 (Package: tool; Pin: version 1.*; Pin-Priority: 1001): a "
        "per-package pin; minimirror pins whole sources (pin-priority in minimirror.toml)\n"
    )
    assert not (sources / "debian/bookworm/minimirror.toml").exists()
    assert _toml(sources / "docker/bookworm") == {"resolve-with": ["debian/bookworm"], "pin-priority": 990}
    assert _toml(sources / "vendor/flat") == {"resolve-with": ["debian/bookworm"], "pin-priority": 100}
    assert (sources / "vendor/flat/source.txt").read_text().splitlines()[1] == f"{url}/vendor file://{keyring} ./"

    # apt gives every source the priority init wrote (500, apt's default, where init wrote none)
    loaded = load_sources(sources, environ={})
    written = {source.url.rstrip("/"): source.settings.pin_priority for source in loaded}
    assert (
        _apt_policy(apt.config_path)
        == written
        == {
            f"{url}/debian": 500,
            f"{url}/docker/linux/debian": 990,
            f"{url}/vendor": 100,
        }
    )
    (group,) = source_groups(loaded)
    assert group.ids == ("debian/bookworm", "docker/bookworm", "vendor/flat")
    assert main(["sources", "check", "--sources", str(sources)]) == 0


def test_third_party_files_name_their_sources_and_pins_match_offline_as_documented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _etc(
        tmp_path / "host",
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://deb.debian.example/debian\nSuites: bookworm bookworm-updates\n"
                f"Components: main\nSigned-By: {KEY}\n"
            ),
            # Docker's URI ends in /debian like the distribution's: the file names the source
            "sources.list.d/docker.list": (
                f"deb [arch=amd64 signed-by={DOCKER_KEY}] https://download.docker.example/linux/debian "
                "bookworm stable\n"
                f"deb [signed-by={DOCKER_KEY}] https://mirror.docker.example/linux/debian bookworm stable\n"
            ),
            "preferences": (
                "Package: *\nPin: release o=Docker\nPin-Priority: 990\n\n"  # the host name's label, case-insensitively
                "Package: *\nPin: release n=bookworm\nPin-Priority: 700\n\n"  # not bookworm-updates: not imported
                "Package: nodejs\nPin: origin deb.nodesource.example\nPin-Priority: 600\n"
            ),
        },
    )
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    sources = tmp_path / "sources"
    assert main(["init", "--from-apt", "--apt-root", str(root), "--sources", str(sources), "--packages", "x"]) == 0
    assert sorted(str(p.relative_to(sources)) for p in sources.glob("*/*")) == [
        "debian/bookworm",
        "docker-2/bookworm",
        "docker/bookworm",
    ]
    for directory in ("docker/bookworm", "docker-2/bookworm"):
        assert _toml(sources / directory) == {"resolve-with": ["debian/bookworm"], "pin-priority": 990}
    assert (sources / "docker/bookworm/source.txt").read_text().splitlines()[1] == (
        f"https://download.docker.example/linux/debian file://{DOCKER_KEY} bookworm stable"
    )
    assert capsys.readouterr().err.splitlines() == [
        f"not imported: the APT pin at {root}/etc/apt/preferences:5 (Package: *; Pin: release n=bookworm; "
        "Pin-Priority: 700): selects only some lines of debian/bookworm, which would then need several priorities; "
        "minimirror pins whole sources",
        f"not imported: the APT pin at {root}/etc/apt/preferences:9 (Package: nodejs; Pin: origin "
        "deb.nodesource.example; Pin-Priority: 600): a per-package pin; minimirror pins whole sources "
        "(pin-priority in minimirror.toml)",
    ]
    (group,) = source_groups(load_sources(sources, environ={}))
    assert group.ids == ("debian/bookworm", "docker-2/bookworm", "docker/bookworm")


def test_a_broken_preferences_file_stops_init_with_its_location(tmp_path: Path) -> None:
    root = _etc(
        tmp_path / "host",
        {
            "sources.list": f"deb [signed-by={KEY}] http://deb.debian.example/debian bookworm main\n",
            "preferences.d/pins": "Package: *\nPin: release o=Docker\nPin-Priority: always\n",
        },
    )
    sources = tmp_path / "sources"
    assert main(["init", "--from-apt", "--apt-root", str(root), "--sources", str(sources)]) == 2
    assert not sources.exists()


def test_without_distribution_entries_third_party_sources_resolve_alone(tmp_path: Path) -> None:
    root = _etc(
        tmp_path / "host",
        {"sources.list.d/vendor.list": f"deb [signed-by={KEY}] http://vendor.example/apt ./\n"},
    )
    sources = tmp_path / "sources"
    assert main(["init", "--from-apt", "--apt-root", str(root), "--sources", str(sources), "--packages", "x"]) == 0
    (source,) = load_sources(sources, environ={})
    assert (source.source_id, source.dist, source.components, source.settings.resolve_with) == (
        "vendor/flat",
        "./",
        (),
        (),
    )
