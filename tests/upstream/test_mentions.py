"""Where apt's cache first meets a name (the order of its package IDs), from indices in memory and from the
parsed cache, which answer the same. apt itself judges the resolver's use of it in tests/lock/test_resolve.py."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fixtures import REPO_ROOT

from minimirror.upstream.index import FirstMention, IndexPart, PackageIndex, iter_records
from minimirror.upstream.indexcache import load_index_part

MakeIndex = Callable[[Sequence[str]], PackageIndex]


def stanza(name: str, arch: str = "amd64", version: str = "1.0", **fields: str) -> str:
    extra = "".join(f"{key.replace('_', '-').title()}: {value}\n" for key, value in fields.items())
    return f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}\n"


@pytest.fixture(params=["memory", "parsed-cache"])
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> MakeIndex:
    """An index of one part per text, in order: from records in memory, or read back from the parsed cache."""

    def make(texts: Sequence[str]) -> PackageIndex:
        parts = []
        for number, text in enumerate(texts):
            data = text.encode()
            if request.param == "memory":
                parts.append(IndexPart(f"c{number}", f"part{number}", tuple(iter_records(data))))
            else:
                digest = hashlib.sha256(data).hexdigest()
                load_index_part(data, digest, tmp_path, component=f"c{number}")  # cold: writes the cache
                parts.append(load_index_part(data, digest, tmp_path, component=f"c{number}", name=f"part{number}"))
        return PackageIndex(parts)

    return make


def test_a_name_is_met_in_its_own_stanza_or_in_an_earlier_stanzas_relations(make_index: MakeIndex) -> None:
    index = make_index(
        [stanza("early", suggests="later") + stanza("other", description="x\n mentions alone in prose")
        + stanza("alone") + stanza("later")]
    )  # fmt: skip
    assert index.first_mention("alone", "amd64") == FirstMention(0, 2, 0, 0)
    assert index.first_mention("later", "amd64") == FirstMention(0, 0, 6, 0)  # Suggests, before its own stanza
    assert index.first_mention("early", "amd64") < index.first_mention("alone", "amd64")


def test_within_a_stanza_apt_reads_the_fields_in_its_own_order_not_the_texts(make_index: MakeIndex) -> None:
    # The text lists Replaces, Depends, Suggests, Conflicts, Pre-Depends, Provides, Enhances; apt reads Pre-Depends,
    # Depends, Conflicts, Breaks, Recommends, Suggests, Replaces, Enhances, then Provides.
    fields = {
        "replaces": "r",
        "depends": "d1 (>= 1) | d2, d3 [amd64]",
        "suggests": "s",
        "conflicts": "c",
        "pre_depends": "p",
        "provides": "v (= 1)",
        "enhances": "e",
    }
    index = make_index([stanza("m", **fields)])
    met = {name: index.first_mention(name, "amd64") for name in ("r", "d1", "d2", "d3", "s", "c", "p", "v", "e")}
    assert sorted(met, key=met.__getitem__) == ["p", "d1", "d2", "d3", "c", "s", "r", "e", "v"]
    assert met["d2"] == FirstMention(0, 0, 2, 1)  # the second name of Depends, alternatives included


def test_any_and_other_architectures_do_not_create_the_native_package(make_index: MakeIndex) -> None:
    index = make_index(
        [stanza("m", depends="a:any, b:arm64, c:amd64, d:native") + stanza("f", "arm64", depends="e")
        + stanza("g", "all", depends="h") + stanza("a") + stanza("b") + stanza("e")]
    )  # fmt: skip
    assert index.first_mention("a", "amd64") == FirstMention(0, 3, 0, 0)  # a:any is the pseudo package a:any
    assert index.first_mention("b", "amd64") == FirstMention(0, 4, 0, 0)
    assert index.first_mention("b", "arm64") == FirstMention(0, 0, 2, 1)
    assert index.first_mention("c", "amd64") == FirstMention(0, 0, 2, 2)
    assert index.first_mention("d", "amd64") == FirstMention(0, 0, 2, 3)
    assert index.first_mention("e", "amd64") == FirstMention(0, 5, 0, 0)  # an arm64 stanza names e for arm64
    assert index.first_mention("h", "amd64") == FirstMention(0, 2, 2, 0)  # Architecture: all counts as native


def test_only_whole_names_in_relations_count(make_index: MakeIndex) -> None:
    index = make_index(
        [stanza("m", depends="foo-bar, libfoo, foo.x", description="foo\n foo, foo | foo",
                filename="pool/main/f/foo/foo_1.0_amd64.deb", source="foo", homepage="https://foo.example/foo")
        + stanza("foo")]
    )  # fmt: skip
    assert index.first_mention("foo", "amd64") == FirstMention(0, 1, 0, 0)


def test_the_index_files_are_read_in_order(make_index: MakeIndex) -> None:
    first, second = stanza("a") + stanza("m", suggests="b"), stanza("b") + stanza("c")
    index = make_index([first, second])
    assert index.first_mention("b", "amd64") == FirstMention(0, 1, 6, 0)  # named in the first file
    assert index.first_mention("c", "amd64") == FirstMention(1, 1, 0, 0)
    assert index.first_mention("a", "amd64") < index.first_mention("c", "amd64")
    swapped = make_index([second, first])
    assert swapped.first_mention("a", "amd64") > swapped.first_mention("c", "amd64")


def test_a_version_read_before_is_merged_without_its_relations(make_index: MakeIndex) -> None:
    # apt adds a file to a version it has already read (an "all" package in each binary-<arch>, a package in two
    # suites) without parsing its relations again.
    index = make_index([stanza("dup"), stanza("dup", suggests="x") + stanza("x")])
    assert index.first_mention("x", "amd64") == FirstMention(1, 1, 0, 0)
    newer = make_index([stanza("dup"), stanza("dup", version="2.0", suggests="x") + stanza("x")])
    assert newer.first_mention("x", "amd64") == FirstMention(1, 0, 6, 0)


def test_a_name_without_a_stanza_is_met_in_relations_or_after_everything(make_index: MakeIndex) -> None:
    index = make_index([stanza("a"), stanza("b", provides="virtual")])
    assert index.first_mention("virtual", "amd64") == FirstMention(1, 0, 9, 0)
    assert index.first_mention("nowhere", "amd64") == FirstMention(2, 0, 0, 0)


REAL_INDEX = REPO_ROOT.parent / "shared" / "data" / "debian-bookworm" / "dists/bookworm/main/binary-amd64/Packages.xz"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_INDEX.is_file(), reason=f"the real Debian index is not at {REAL_INDEX}")
def test_the_real_index_from_the_parsed_cache(tmp_path: Path) -> None:
    # The tie of podman's container-network-stack: apt meets netavark in aardvark-dns's Depends (stanza 46), and
    # containernetworking-plugins in containerd's Suggests (stanza 4744), both long before their own stanzas.
    digest = hashlib.sha256(REAL_INDEX.read_bytes()).hexdigest()
    load_index_part(REAL_INDEX, digest, tmp_path, component="main")
    index = PackageIndex([load_index_part(REAL_INDEX, digest, tmp_path, component="main")])
    assert index.first_mention("netavark", "amd64") == FirstMention(0, 46, 2, 2)
    assert index.first_mention("containernetworking-plugins", "amd64") == FirstMention(0, 4744, 6, 0)
    assert index.by_name("aardvark-dns")[0].field("Depends") == "libc6 (>= 2.34), libgcc-s1 (>= 4.2), netavark (>> 1.4)"
