"""The resolver is judged by apt: for the same index and query, it must choose exactly what
``apt-get install -s`` chooses onto an empty system, on fixture archives and on real Debian data."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fixtures import REPO_ROOT
from fixtures import FixturePackage as P
from fixtures.apt import PrivateApt
from fixtures.archive import FixtureArchive
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory

from minimirror.errors import ResolveError
from minimirror.lock.resolve import Resolution, ResolveOptions, Root, resolve
from minimirror.sources.query import parse_query
from minimirror.upstream.index import PackageIndex, iter_packages

Triple = tuple[str, str, str]

# A small archive with the shapes that trip resolvers up.
TRICKY = [
    P("app", "1.0", depends="liba (>= 2) | libold, mta, python3:any, data", pre_depends="base"),
    P("liba", "1.0"),
    P("liba", "2.0", depends="libc"),
    P("liba", "3.0", depends="libc"),
    P("libold", "1.0"),
    P("libc", "2.36", multi_arch="same"),
    P("base", "1.0", essential=True, priority="required"),
    # three providers of a virtual package: apt ranks by Priority before index order
    P("exim4", "4.96", provides="mta", priority="extra"),
    P("postfix", "3.7", provides="mta", priority="optional"),
    P("dma", "0.13", provides="mta", priority="optional"),
    P("python3", "3.11.2", multi_arch="allowed"),
    P("data", "1.0", architecture="all", depends="libc"),
    # versioned provides: only a versioned Provides satisfies a versioned dependency
    P("tool", "1.0", depends="logind (>= 2) | fallback"),
    P("systemd-logind", "252", provides="logind (= 252)"),
    P("elogind", "246", provides="logind"),
    P("fallback", "1.0"),
    # an or-group already satisfied by something chosen earlier takes nothing new
    P("editor", "1.0", depends="vim | nano"),
    P("vim", "9.0"),
    P("nano", "7.2"),
    P("needs-nano", "1.0", depends="nano, editor"),
    P("rec", "1.0", depends="libc", recommends="postfix", suggests="exim4"),
]


@pytest.fixture(scope="module")
def tricky_index(tmp_path_factory: pytest.TempPathFactory, signing_key: object, deb_cache: Path) -> PackageIndex:
    from fixtures.archive import build_archive

    archive = build_archive(tmp_path_factory.mktemp("tricky"), {"main": TRICKY}, key=signing_key, deb_cache=deb_cache)
    return _index(archive)


def _index(archive: FixtureArchive) -> PackageIndex:
    return PackageIndex.build([("main", iter_packages(archive.index_path("main", "amd64")))])


def _resolve(index: PackageIndex, *queries: str, **options: object) -> Resolution:
    roots = [Root(text, parse_query(text), origin=f"packages.txt:{n}") for n, text in enumerate(queries, 1)]
    return resolve(index, roots, ResolveOptions(("amd64",), **options))  # type: ignore[arg-type]


def _triples(resolution: Resolution) -> set[Triple]:
    return {(r.package.name, r.package.version, r.package.architecture) for r in resolution.packages}


def test_newest_version_meeting_the_constraint_real_before_virtual_and_apt_provider_order(
    tricky_index: PackageIndex,
) -> None:
    assert _triples(_resolve(tricky_index, "app")) == {
        ("app", "1.0", "amd64"),
        ("base", "1.0", "amd64"),
        ("liba", "3.0", "amd64"),
        ("libc", "2.36", "amd64"),
        # optional beats extra; between the two optional ones the later index entry wins, as in apt
        ("postfix", "3.7", "amd64"),
        ("python3", "3.11.2", "amd64"),
        ("data", "1.0", "all"),
    }


def test_versioned_provides_and_satisfied_or_groups(tricky_index: PackageIndex) -> None:
    assert _triples(_resolve(tricky_index, "tool")) == {("tool", "1.0", "amd64"), ("systemd-logind", "252", "amd64")}
    chosen = _triples(_resolve(tricky_index, "needs-nano"))
    assert ("nano", "7.2", "amd64") in chosen and not any(name == "vim" for name, _, _ in chosen)


def test_reasons_record_query_lines_and_dependents(tricky_index: PackageIndex) -> None:
    resolution = _resolve(tricky_index, "needs-nano", "nano")
    reasons = {r.package.name: (r.queries, r.required_by) for r in resolution.packages}
    assert reasons["needs-nano"] == (("needs-nano",), ())
    assert reasons["nano"] == (("nano",), ("editor/amd64", "needs-nano/amd64"))
    assert reasons["editor"] == ((), ("needs-nano/amd64",))


def test_recommends_and_suggests_are_opt_in(tricky_index: PackageIndex) -> None:
    names = lambda **o: {name for name, _, _ in _triples(_resolve(tricky_index, "rec", **o))}  # noqa: E731
    assert names() == {"rec", "libc"}
    assert names(recommends=True) == {"rec", "libc", "postfix"}
    assert names(recommends=True, suggests=True) == {"rec", "libc", "postfix", "exim4"}


def test_all_variants_takes_every_alternative(tricky_index: PackageIndex) -> None:
    names = {name for name, _, _ in _triples(_resolve(tricky_index, "editor", all_variants=True))}
    assert names == {"editor", "vim", "nano"}


def test_field_query_on_version_keeps_every_matching_version(tricky_index: PackageIndex) -> None:
    chosen = _triples(_resolve(tricky_index, "Name (liba), $Version (>= 2.0)"))
    assert {v for n, v, _ in chosen if n == "liba"} == {"2.0", "3.0"}


def test_previous_lock_versions_are_kept_while_they_satisfy(tricky_index: PackageIndex) -> None:
    kept = _triples(_resolve(tricky_index, "app", prefer={("liba", "amd64"): "2.0"}))
    assert ("liba", "2.0", "amd64") in kept
    # a preferred version that no longer satisfies the constraint is replaced by the newest that does
    moved = _triples(_resolve(tricky_index, "app", prefer={("liba", "amd64"): "1.0"}))
    assert ("liba", "3.0", "amd64") in moved


def test_a_constraint_met_later_moves_the_version_back(tricky_index: PackageIndex) -> None:
    # liba is first chosen at 3.0 for app, then "Name (pin)"-style constraint liba (<< 3) must move it to 2.0
    index = tricky_index
    chosen = _triples(_resolve(index, "app", "liba (<< 3)"))
    assert {v for n, v, _ in chosen if n == "liba"} == {"2.0"}


def test_unsatisfiable_dependency_prints_the_chain(fixture_archive_factory: ArchiveFactory) -> None:
    archive = fixture_archive_factory(
        {"main": [P("top", "1", depends="middle"), P("middle", "1", depends="gone (>= 2)")]}
    )
    with pytest.raises(ResolveError) as caught:
        _resolve(_index(archive), "top")
    rendered = caught.value.render()
    assert "cannot satisfy gone (>= 2): no package gone in the index" in rendered
    assert "-> query: top" in rendered and "-> top_1_amd64" in rendered and "-> middle_1_amd64" in rendered
    assert "-> needs gone (>= 2)" in rendered


def test_unmeetable_pins_name_both_constraints(fixture_archive_factory: ArchiveFactory) -> None:
    archive = fixture_archive_factory(
        {"main": [P("a", "1", depends="lib (>= 2)"), P("b", "1", depends="lib (<< 2)"), P("lib", "1"), P("lib", "2")]}
    )
    with pytest.raises(ResolveError) as caught:
        _resolve(_index(archive), "a", "b")
    message = caught.value.render()
    assert "lib_2_amd64 is already chosen" in message and "lib (>= 2) (from a_1_amd64)" in message


def test_a_query_matching_nothing_names_its_line(tricky_index: PackageIndex) -> None:
    with pytest.raises(ResolveError, match=r"packages.txt:2: the query 'nosuch' matches no package for amd64"):
        _resolve(tricky_index, "app", "nosuch")


def test_same_answer_whatever_the_query_order(tricky_index: PackageIndex) -> None:
    queries = ["app", "tool", "needs-nano", "rec"]
    first = _resolve(tricky_index, *queries)
    assert _resolve(tricky_index, *reversed(queries)) == first


# --- apt as the judge ------------------------------------------------------------------------------------------


@pytest.fixture
def judged(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, private_apt: AptFactory
) -> tuple[PackageIndex, PrivateApt]:
    archive = fixture_archive_factory({"main": TRICKY})
    server = http_server(archive.root)
    apt = private_apt()
    apt.add_source(archive.source_line(server.url))
    apt.update()
    return _index(archive), apt


@pytest.mark.parametrize(
    "names", [["app"], ["tool"], ["needs-nano"], ["editor"], ["app", "tool", "needs-nano", "rec"], ["rec"]]
)
def test_fixture_sets_equal_apt(judged: tuple[PackageIndex, PrivateApt], names: list[str]) -> None:
    index, apt = judged
    assert _triples(_resolve(index, *names)) == apt.simulate_install(names)


def test_fixture_recommends_equal_apt(judged: tuple[PackageIndex, PrivateApt]) -> None:
    index, apt = judged
    assert _triples(_resolve(index, "rec", "app", recommends=True)) == apt.simulate_install(
        ["rec", "app"], no_recommends=False
    )


# Providers equal on every rule but apt's last, the cache ID: the name apt's cache met *later* wins, and a name
# is met in other stanzas' relations as much as in its own stanza. Indices list stanzas by name (x-0 first).
TIES = [
    *(P(f"{x}-alpha", "1.0", provides=f"v{x}") for x in "abcde"),
    *(P(f"{x}-want", "1.0", depends=f"v{x}") for x in "abcdef"),
    *(P(f"{x}-zulu", "1.0", provides=f"v{x}") for x in "abcd"),
    P("a-0", "1.0", suggests="a-zulu"),  # an earlier stanza's Suggests names a-zulu first
    P("b-0", "1.0", depends="b-alpha", pre_depends="b-zulu"),  # the text has Depends first; apt reads Pre-Depends first
    P("c-0", "1.0", replaces="c-alpha", suggests="c-zulu"),  # the text has Replaces first; apt reads Suggests first
    P("d-0", "1.0", suggests="d-zulu | d-alpha"),  # left to right, alternatives included
    P("e-0", "1.0", suggests="e-zulu:any"),  # names the pseudo package e-zulu:any, not e-zulu
    P("e-zulu", "1.0", provides="ve", multi_arch="allowed"),
    # apt's Important flag is the Important: yes field, and it comes before Priority
    P("f-alpha", "1.0", provides="vf", priority="important"),
    P("f-zulu", "1.0", provides="vf", extra={"Important": "yes"}),
]
TIE_PICKS = {"a-want": "a-alpha", "b-want": "b-alpha", "c-want": "c-alpha", "d-want": "d-alpha", "e-want": "e-zulu"}
TIE_PICKS |= {"f-want": "f-zulu"}
# Two index files: the one read first holds the lower IDs, and a name met in its relations counts there.
TWO_FILES = {
    "main": [
        P("g-zulu", "1.0", provides="vg"),
        P("g-want", "1.0", depends="vg"),
        P("h-0", "1.0", suggests="h-alpha"),
        P("h-zulu", "1.0", provides="vh"),
        P("h-want", "1.0", depends="vh"),
    ],
    "contrib": [P("g-alpha", "1.0", provides="vg"), P("h-alpha", "1.0", provides="vh")],
}


def _picks(index: PackageIndex, wants: Sequence[str]) -> dict[str, str]:
    """The provider each ``*-want`` package gets, resolved alone."""
    return {want: min({r.package.name for r in _resolve(index, want).packages} - {want}) for want in wants}


def test_equal_providers_go_to_the_name_apt_met_later(fixture_archive_factory: ArchiveFactory) -> None:
    assert _picks(_index(fixture_archive_factory({"main": TIES})), list(TIE_PICKS)) == TIE_PICKS


@pytest.mark.parametrize(
    ("order", "picks"),
    [
        (("main", "contrib"), {"g-want": "g-alpha", "h-want": "h-zulu"}),
        (("contrib", "main"), {"g-want": "g-zulu", "h-want": "h-zulu"}),
    ],
)
def test_equal_providers_in_two_index_files_follow_the_order_apt_reads_them_in(
    fixture_archive_factory: ArchiveFactory,
    http_server: ServerFactory,
    private_apt: AptFactory,
    order: tuple[str, str],
    picks: dict[str, str],
) -> None:
    archive = fixture_archive_factory({component: TWO_FILES[component] for component in order})
    index = PackageIndex.build([(c, iter_packages(archive.index_path(c, "amd64"))) for c in order])
    assert _picks(index, list(picks)) == picks
    apt = private_apt()
    apt.add_source(archive.source_line(http_server(archive.root).url))  # components in the same order
    apt.update()
    for want in picks:
        assert _triples(_resolve(index, want)) == apt.simulate_install([want])


def test_equal_providers_equal_apt(
    fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    archive = fixture_archive_factory({"main": TIES})
    apt = private_apt()
    apt.add_source(archive.source_line(http_server(archive.root).url))
    apt.update()
    index = _index(archive)
    for want in TIE_PICKS:
        assert _triples(_resolve(index, want)) == apt.simulate_install([want]), want
    assert _triples(_resolve(index, *TIE_PICKS)) == apt.simulate_install(list(TIE_PICKS))


REAL = REPO_ROOT.parent / "shared" / "data" / "debian-bookworm"

REAL_SETS: Sequence[tuple[str, ...]] = (
    ("curl", "git", "openssh-server", "python3", "vim-tiny"),
    ("nginx", "postgresql", "python3-pip"),
    ("libvirt-daemon-system", "qemu-system-x86", "ceph-common"),
    ("build-essential", "default-jdk-headless"),
    ("gnome-core",),
    # container-network-stack: netavark and containernetworking-plugins tie on every rule but apt's cache ID,
    # and apt meets netavark first (in aardvark-dns's Depends), long before either package's own stanza
    ("podman", "buildah", "skopeo"),
)


@pytest.fixture(scope="module")
def real_judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PackageIndex, PrivateApt]]:
    if not (REAL / "dists").is_dir():
        pytest.skip(f"real Debian index not found at {REAL} (../shared/data is not beside this checkout)")
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if not keyring.is_file():
        pytest.skip("debian-archive-keyring is not installed")
    index = PackageIndex.build([("main", iter_packages(REAL / "dists/bookworm/main/binary-amd64/Packages.xz"))])
    handler = functools.partial(_QuietHandler, directory=str(REAL))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        apt = PrivateApt(tmp_path_factory.mktemp("apt"))
        apt.add_source(f"deb [signed-by={keyring}] http://127.0.0.1:{server.server_address[1]}/ bookworm main")
        apt.update(allow_warnings=True)  # the snapshot has no by-hash copies; apt falls back with a notice
        yield index, apt
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("names", REAL_SETS, ids="+".join)
def test_real_debian_sets_equal_apt(real_judged: tuple[PackageIndex, PrivateApt], names: tuple[str, ...]) -> None:
    index, apt = real_judged
    assert _triples(_resolve(index, *names)) == apt.simulate_install(list(names))


def test_real_debian_recommends_equal_apt(real_judged: tuple[PackageIndex, PrivateApt]) -> None:
    index, apt = real_judged
    names = ["curl", "git", "openssh-server", "python3", "vim-tiny"]
    assert _triples(_resolve(index, *names, recommends=True)) == apt.simulate_install(names, no_recommends=False)


@pytest.mark.parametrize("query", ["Priority (required)", "Name (~ ^python3-requests)"])
def test_real_debian_field_queries_equal_apt_on_the_names_they_select(
    real_judged: tuple[PackageIndex, PrivateApt], query: str
) -> None:
    index, apt = real_judged
    resolution = _resolve(index, query)
    selected = sorted({r.package.name for r in resolution.packages if r.queries})
    assert len(selected) > 5
    assert _triples(resolution) == apt.simulate_install(selected)
