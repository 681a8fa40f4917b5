"""``minimirror.pipeline.report``: signing from the environment, a build of the offline example, tree summaries and the
reproducibility proof (which must say DIFFERENT, naming the files, when a build changes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimirror.pipeline.example import static_elf_stub, write_example
from minimirror.pipeline.report import (
    BuildConfig,
    Reproducibility,
    SigningChoice,
    TreeComparison,
    area_of,
    build,
    check_reproducibility,
    compare_trees,
    prepare_build,
    rebuild_twice,
    signing_from_environment,
    summarize_tree,
)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> BuildConfig:
    example = write_example(tmp_path_factory.mktemp("ex") / "example", busybox=static_elf_stub())
    root = tmp_path_factory.mktemp("build")
    return BuildConfig(example.locks_dir, example.cache_dir, root / "public", root / "image", SigningChoice(None))


def test_signing_comes_from_the_environment_and_never_shows_the_passphrase() -> None:
    unsigned = signing_from_environment({"RELEASE_SIGN_KEY_PASSPHRASE": "hunter2"})
    assert unsigned == SigningChoice(None) and unsigned.describe().startswith("UNSIGNED: $RELEASE_SIGN_KEY_PATH")
    signed = signing_from_environment({"RELEASE_SIGN_KEY_PATH": "/k.asc", "RELEASE_SIGN_KEY_PASSPHRASE": "hunter2"})
    assert signed.key_path == Path("/k.asc") and signed.passphrase == "hunter2"
    assert "hunter2" not in repr(signed) and "hunter2" not in signed.describe()
    assert signing_from_environment({"RELEASE_SIGN_KEY_PATH": ""}).key_path is None


def test_area_of_groups_pool_dists_and_top_level_files() -> None:
    assert area_of("debian/pool/main/h/hello/hello_1_amd64.deb") == "debian/pool"
    assert area_of("debian/dists/stable/main/binary-amd64/Packages") == "debian/dists/stable"
    assert area_of("signing-key.asc") == "signing-key.asc"


def test_build_publishes_unsigned_and_the_summary_counts_every_file(config: BuildConfig) -> None:
    outcome = build(config)
    assert outcome.published.fingerprint is None and outcome.image is not None
    assert outcome.fetched.reused == 3 and outcome.fetched.downloaded == 0
    summary = summarize_tree(config.out_dir)
    assert len(summary.files) == outcome.published.files
    rows = {str(row["area"]): row for row in summary.by_area()}
    assert sorted(rows) == ["example/dists/stable", "example/pool"] and rows["example/pool"]["files"] == 3
    assert summary.total_bytes == sum(int(str(row["bytes"])) for row in rows.values())
    assert summary.line().startswith(f"{config.out_dir}: {outcome.published.files} files, ")


def test_rebuilding_twice_is_identical(config: BuildConfig) -> None:
    proof = rebuild_twice(config)
    assert proof.identical and proof.digests[0] is not None and proof.digests[0] == proof.digests[1]
    assert proof.verdict().startswith("IDENTICAL: ") and proof.digests[0] in proof.verdict()


def test_a_different_epoch_is_caught_file_by_file(config: BuildConfig, tmp_path: Path) -> None:
    first = build(config.elsewhere(tmp_path / "a"))
    later = config.elsewhere(tmp_path / "b")
    second = build(BuildConfig(later.locks_dir, later.cache_dir, later.out_dir, later.image_path, later.signing, 1))
    proof = check_reproducibility(first, second)
    assert not proof.identical and proof.digests[0] != proof.digests[1]
    verdict = proof.verdict()
    assert verdict.startswith("DIFFERENT: published tree: different bytes: example/dists/stable/Release")
    assert "image manifest digests differ" in verdict and "example/pool" not in verdict


def test_compare_trees_names_missing_extra_and_changed_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "d").mkdir(parents=True)
        (root / "d" / "same").write_bytes(b"x" * 3_000_000)
    (a / "d" / "changed").write_bytes(b"one")
    (b / "d" / "changed").write_bytes(b"two")
    (a / "only-a").write_bytes(b"")
    (b / "only-b").write_bytes(b"")
    (a / "d" / "link").symlink_to("same")
    (b / "d" / "link").symlink_to("changed")
    assert compare_trees(a, b) == TreeComparison(3, ("only-a",), ("only-b",), ("d/changed", "d/link"))
    assert compare_trees(a / "d", a / "d").identical
    assert compare_trees(a / "d" / "same", b / "d" / "same") == TreeComparison(1)


def test_the_verdict_shows_ten_paths_and_counts_the_rest() -> None:
    paths = tuple(f"f{i:02}" for i in range(12))
    verdict = Reproducibility(TreeComparison(12, different=paths), None, (None, None)).verdict()
    assert "f09" in verdict and "f10" not in verdict and "and 2 more" in verdict


def test_prepare_build_defaults_to_the_example_under_scratch(tmp_path: Path) -> None:
    prepared = prepare_build(None, None, None, None, scratch=tmp_path, signing=SigningChoice(None))
    assert prepared.example is not None and prepared.config.locks_dir == tmp_path / "example" / "locks"
    assert prepared.config.cache_dir == prepared.example.cache_dir
    assert (prepared.config.out_dir, prepared.config.image_path) == (tmp_path / "public", tmp_path / "image")
    assert "bundled offline example" in prepared.describe() and "UNSIGNED" in prepared.describe()
    given = prepare_build("L", "O", "I", "C", scratch=tmp_path, signing=SigningChoice(None))
    assert given.example is None and given.config.locks_dir == Path("L") and given.config.cache_dir == Path("C")
