"""What a pattern or field query leaves out, judged by dose-distcheck: the packages of an index that no system can
install (a missing dependency, a dependency that is itself broken, a conflict the package cannot avoid) are listed
with their reason and not locked; a query that names such a package still fails."""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fixtures import REPO_ROOT
from fixtures import FixturePackage as P
from fixtures.plugin import ArchiveFactory

from minimirror.errors import ResolveError
from minimirror.lock.installable import uninstallable
from minimirror.lock.resolve import Resolution, ResolveOptions, Root, resolve
from minimirror.package import Package
from minimirror.sources.query import parse_query
from minimirror.upstream.index import PackageIndex, iter_packages

BROKEN_AND_NOT = [
    P("lib", "1.0"),
    P("fine", "1.0", depends="lib"),
    P("needs-gone", "1.0", depends="gone (>= 2)"),
    P("chain", "1.0", depends="fine, needs-gone"),
    P("either", "1.0", depends="needs-gone | lib"),  # the first alternative is broken, the second is not
    P("cycle-a", "1.0", depends="cycle-b"),
    P("cycle-b", "1.0", depends="cycle-a"),
    P("breaker", "2.0", breaks="victim (<< 2)"),
    P("victim", "1.0", depends="breaker"),  # must install breaker, which breaks it
    P("via-victim", "1.0", depends="victim"),
    P("old-lib-user", "1.0", depends="lib (<< 1.0)"),  # no version is old enough
    P("mta-user", "1.0", depends="mail-transport-agent"),
    P("postfix", "3.7", provides="mail-transport-agent"),
]
BROKEN = {"needs-gone", "chain", "victim", "via-victim", "old-lib-user"}


def _dose(packages: Path) -> set[str]:
    done = subprocess.run(
        ["dose-distcheck", "--deb-native-arch=amd64", "-f", f"deb://{packages}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report = (yaml.safe_load(done.stdout) or {}).get("report") or []
    return {f"{entry['package']}_{entry['version']}_{entry['architecture']}" for entry in report}


def _resolve(index: PackageIndex, *queries: str) -> Resolution:
    roots = [Root(text, parse_query(text), origin=f"packages.txt:{n}") for n, text in enumerate(queries, 1)]
    return resolve(index, roots, ResolveOptions(("amd64",)))


@pytest.fixture
def archive_index(fixture_archive_factory: ArchiveFactory, tmp_path: Path) -> tuple[PackageIndex, Path]:
    archive = fixture_archive_factory({"main": BROKEN_AND_NOT})
    plain = tmp_path / "Packages"
    plain.write_bytes(lzma.decompress(archive.index_path("main", "amd64", "xz").read_bytes()))
    return PackageIndex.build([("main", iter_packages(plain))]), plain


@pytest.mark.skipif(shutil.which("dose-distcheck") is None, reason="dose-distcheck is not installed")
def test_the_left_out_set_is_dose_distchecks(archive_index: tuple[PackageIndex, Path]) -> None:
    index, plain = archive_index
    found = uninstallable(index, list(index), "amd64")
    assert {p.name for p in found} == BROKEN
    assert {str(p) for p in found} == _dose(plain)


def test_a_selection_locks_what_can_be_installed_and_lists_the_rest(archive_index: tuple[PackageIndex, Path]) -> None:
    index, _ = archive_index
    resolution = _resolve(index, "Name (% *)")
    locked = {r.package.name for r in resolution.packages}
    assert locked == {p.name for p in BROKEN_AND_NOT} - BROKEN
    reasons = {item.package.name: item.reason for item in resolution.left_out}
    assert set(reasons) == BROKEN
    assert all(item.queries == ("Name (% *)",) for item in resolution.left_out)
    assert reasons["needs-gone"] == "needs gone (>= 2), which no package of amd64 or all satisfies"
    assert reasons["chain"].startswith("needs needs-gone: needs-gone_1.0_amd64 cannot be installed (needs gone")
    assert "breaker_2.0_amd64 conflicts with victim (<< 2)" in reasons["victim"]
    either = next(r for r in resolution.packages if r.package.name == "either")
    lib = next(r for r in resolution.packages if r.package.name == "lib")
    assert "either/amd64" in lib.required_by and either.queries == ("Name (% *)",)


def test_a_narrower_selection_takes_the_alternative_that_can_be_installed(
    archive_index: tuple[PackageIndex, Path],
) -> None:
    index, _ = archive_index
    resolution = _resolve(index, "Name (% e*)")
    assert {r.package.name for r in resolution.packages} == {"either", "lib"}
    assert not resolution.left_out


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("victim", "packages.txt:1: victim_1.0_amd64 cannot be installed: must install"),
        ("via-victim (>= 1)", "via-victim_1.0_amd64 cannot be installed: must install breaker_2.0_amd64"),
        ("needs-gone", "cannot satisfy gone (>= 2): no package gone in the index"),
    ],
)
def test_a_named_package_that_cannot_be_installed_is_still_an_error(
    archive_index: tuple[PackageIndex, Path], query: str, problem: str
) -> None:
    index, _ = archive_index
    with pytest.raises(ResolveError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        _resolve(index, query, "Name (% *)")


REAL = REPO_ROOT.parent / "shared" / "data" / "debian-bookworm"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dose-distcheck") is None, reason="dose-distcheck is not installed")
def test_debian_12_main_leaves_out_what_dose_distcheck_finds_broken(tmp_path: Path) -> None:
    index_file = REAL / "dists/bookworm/main/binary-amd64/Packages.xz"
    if not index_file.is_file():
        pytest.skip(f"real Debian index not found at {REAL} (../shared/data is not beside this checkout)")
    plain = tmp_path / "Packages"
    plain.write_bytes(lzma.decompress(index_file.read_bytes()))
    index = PackageIndex.build([("main", iter_packages(plain))])
    resolution = _resolve(index, "Name (% *)")
    left_out = {str(item.package) for item in resolution.left_out}
    assert left_out == _dose(plain)
    assert len(left_out) >= 10 and "console-setup-freebsd_1.221_all" in left_out
    newest = {(p.name, p.architecture) for p in index if p.architecture in ("amd64", "all")}
    assert len(resolution.packages) + len(left_out) == len(newest)  # the newest version of every other package


def test_an_all_package_left_out_on_one_architecture_but_locked_on_another(
    fixture_archive_factory: ArchiveFactory,
) -> None:
    archive = fixture_archive_factory(
        {"main": [P("tool", "1.0", architecture="all", depends="helper"), P("helper", "1.0")]},
        architectures=("amd64", "arm64"),
    )
    amd64 = iter_packages(archive.index_path("main", "amd64"))
    arm64 = [p for p in iter_packages(archive.index_path("main", "arm64")) if p.name != "helper"]
    index = PackageIndex.build([("main", [*amd64, *arm64])])
    roots = [Root("Name (% *)", parse_query("Name (% *)"))]
    resolution = resolve(index, roots, ResolveOptions(("amd64", "arm64")))
    assert {str(r.package) for r in resolution.packages} == {"tool_1.0_all", "helper_1.0_amd64"}
    assert not resolution.left_out


def test_a_selected_package_only_the_walk_finds_uninstallable_is_left_out_not_an_error() -> None:
    # The check looks at each group alone, so app's "x (>= 2)" and y's "x (<< 2)" both look satisfiable; the walk,
    # which installs one version of x, finds the clash, and the selection leaves out the package it started from.
    packages = [
        Package("app", "1.0", "amd64", {"Depends": "x (>= 2), y"}),
        Package("x", "1.0", "amd64"),
        Package("x", "2.0", "amd64"),
        Package("y", "1.0", "amd64", {"Depends": "x (<< 2)"}),
        Package("another", "1.0", "amd64", {"Depends": "y"}),
    ]
    resolution = _resolve(PackageIndex.build([("main", packages)]), "Name (% a*)")
    assert [str(r.package) for r in resolution.packages] == ["another_1.0_amd64", "x_1.0_amd64", "y_1.0_amd64"]
    (item,) = resolution.left_out
    assert str(item.package) == "app_1.0_amd64" and "cannot satisfy x (<< 2)" in item.reason
