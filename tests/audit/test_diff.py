"""``minimirror.audit.diff`` classification, the three formats, ``git:REF`` inputs and ``minimirror diff``."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures_locks import HERE, KEY_A, KEY_EVIL, pairs, pkg, sha, source, upstream, write_pairs

from minimirror.audit.diff import DATAFRAME_COLUMNS, KINDS, LockDiff, PackageChange, diff_locks
from minimirror.audit.refs import GitRef, LocalRef, lock_paths, parse_ref, read_lock_ref
from minimirror.audit.render import format_size, plot_size_deltas, render_json, render_markdown, summary_line
from minimirror.cli import main
from minimirror.errors import LockError, UsageError
from minimirror.lock.lockcache import read_lock_tables
from minimirror.lock.lockfile import Lock, dumps_lock, lock_path, write_lock

BASIC = HERE / "basic"
KEYROTATION = HERE / "keyrotation"


def basic() -> LockDiff:
    old, new = pairs()["basic"]
    return diff_locks(old, new)


def one(diff: LockDiff, name: str, kind: str | None = None) -> PackageChange:
    found = [c for c in diff.packages if c.name == name and (kind is None or c.kind == kind)]
    assert len(found) == 1, found
    return found[0]


def stable(*packages: object, **upstream_args: object) -> Lock:
    """A one-source lock over the given packages (the first carries the query)."""
    return Lock(source("t/s", ("a",)), upstream(1, "1", **upstream_args), tuple(packages))  # type: ignore[arg-type]


# --- classification -------------------------------------------------------------------------------------


def test_every_kind_is_classified() -> None:
    diff = basic()
    assert one(diff, "libssl3").kind == "upgraded"
    assert (one(diff, "libssl3").old_version, one(diff, "libssl3").new_version) == ("3.0.1", "3.0.2")
    assert one(diff, "tool").kind == "downgraded"  # 2.0-1 -> 1.9-1 in Debian order
    assert one(diff, "oldlib").kind == "removed" and one(diff, "oldlib").new is None
    assert one(diff, "legacy").kind == "removed" and one(diff, "legacy").source == "fixture/gone"
    assert one(diff, "editor").kind == "added" and one(diff, "extra-tool").kind == "added"
    tz = one(diff, "tzdata")
    assert tz.kind == "moved" and tz.detail == "component, filename" and tz.size_delta == 0
    assert {c.name for c in diff.packages} == {
        "docker-ce", "editor", "editor-common", "extra-tool", "legacy", "libssl3", "oldlib", "shell", "tool", "tzdata"
    }  # fmt: skip
    assert diff.counts() == {"rebuilt": 1, "downgraded": 1, "added": 4, "removed": 3, "upgraded": 1, "moved": 1}


def test_same_version_with_a_new_hash_is_rebuilt_and_flagged() -> None:
    diff = basic()
    shell = one(diff, "shell")
    assert shell.kind == "rebuilt" and shell.flagged
    assert shell.old_version == shell.new_version == "5.2" and shell.detail == "sha256"
    assert [c.name for c in diff.flagged()] == ["shell", "tool"]  # rebuilt first, then downgraded
    assert "1 REBUILT (same version, new hash)" in summary_line(diff)


def test_a_size_change_alone_is_a_rebuild_too() -> None:
    base = pkg("a", "1.0", queries=["a"])
    diff = diff_locks([stable(base)], [stable(replace(base, size=base.size + 1))])
    assert one(diff, "a").kind == "rebuilt" and one(diff, "a").detail == "size" and diff.size_delta == 1


def test_equal_locks_give_an_empty_diff() -> None:
    old, _ = pairs()["basic"]
    diff = diff_locks(old, tuple(reversed(old)))
    assert diff.is_empty and diff.packages == () and diff.trust == ()
    assert summary_line(diff) == "no changes" and len(diff.to_dataframe()) == 0


def test_several_versions_are_compared_as_sets() -> None:
    docker = [c for c in basic().packages if c.name == "docker-ce"]
    # {24.0.9, 24.0.10} -> {24.0.10, 24.0.11}: 24.0.10 stayed (not reported), the others left or arrived
    assert [(c.kind, c.old_version, c.new_version) for c in docker] == [
        ("removed", "5:24.0.9-1", ""),
        ("added", "", "5:24.0.11-1"),
    ]


def test_a_single_version_on_each_side_pairs_as_upgrade_even_with_epochs() -> None:
    old = stable(pkg("a", "1:0.9", queries=["a"]))
    new = stable(pkg("a", "2.0", queries=["a"]))  # epoch 1 beats 2.0: this is a downgrade
    assert one(diff_locks([old], [new]), "a").kind == "downgraded"
    assert one(diff_locks([new], [old]), "a").kind == "upgraded"


def test_the_same_name_on_two_architectures_is_two_changes() -> None:
    old = stable(pkg("a", "1.0", queries=["a"]), pkg("a", "1.0", arch="arm64", queries=["a"]))
    new = stable(pkg("a", "1.1", queries=["a"]), pkg("a", "1.0", arch="arm64", queries=["a"]))
    diff = diff_locks([old], [new])
    assert [(c.name, c.architecture, c.kind) for c in diff.packages] == [("a", "amd64", "upgraded")]


def test_added_packages_say_why_and_sizes_add_up() -> None:
    diff = basic()
    assert one(diff, "editor").reason == "query: editor"
    assert one(diff, "editor-common").reason == "required by editor/amd64"
    assert one(diff, "editor").size_delta == 1_200_000
    added = 1_200_000 + 400_000 + 25_000 + 20_005_000
    removed = 10_000 + 40_000 + 20_000_000
    assert diff.size_delta == sum(c.size_delta for c in diff.packages) == added - removed + 100_000 - 10_000
    assert ("fixture/stable", "vim") in diff.new_source_packages
    assert ("fixture/stable", "openssl") not in diff.new_source_packages
    groups = diff.by_source_package()
    assert [c.name for c in groups["fixture/stable", "vim"]] == ["editor", "editor-common"]
    assert list(groups) == sorted(groups)


def test_trust_changes_cover_sources_keys_and_release_fields() -> None:
    diff = basic()
    trust = {(t.source, t.field): t for t in diff.trust}
    assert trust["fixture/extra", "source"].description == "source added"
    assert trust["fixture/gone", "source"].description == "source REMOVED" and trust["fixture/gone", "source"].flagged
    assert trust["fixture/stable", "version"].description == "12.1 -> 12.2"
    assert trust["fixture/stable", "queries"].added == ("editor",)
    assert not trust["fixture/stable", "date"].flagged
    assert ("fixture/stable", "inputs-sha256") in trust
    old, new = pairs()["keyrotation"]
    keys = next(t for t in diff_locks(old, new).trust if t.field == "signed-by")
    assert keys.flagged and keys.added == (KEY_EVIL,) and KEY_A in keys.removed


def test_source_field_changes_are_trust_changes() -> None:
    before = stable(pkg("a", "1.0", queries=["a"]))
    moved = replace(before.source, url="http://archive.example/other/", dist="testing", architectures=("arm64",))
    rotated = replace(before.upstream, signed_by=(KEY_EVIL,), codename="trixie", suite="testing")
    diff = diff_locks([before], [Lock(moved, rotated, before.packages)])
    fields = {t.field: t.flagged for t in diff.trust}
    assert fields == {
        "url": True, "dist": True, "architectures": False, "signed-by": True, "codename": True, "suite": False
    }  # fmt: skip
    assert diff.packages == () and not diff.is_empty
    assert [t.field for t in diff.trust] == ["url", "dist", "architectures", "signed-by", "codename", "suite"]


def test_one_side_holding_a_source_twice_is_refused() -> None:
    lock = stable(pkg("a", "1.0", queries=["a"]))
    with pytest.raises(ValueError, match="t/s"):
        diff_locks([lock, lock], [])


# --- dataframe ------------------------------------------------------------------------------------------


def test_to_dataframe_has_one_row_per_change_with_the_documented_columns() -> None:
    diff = basic()
    frame = diff.to_dataframe()
    import pandas

    assert tuple(frame.columns) == DATAFRAME_COLUMNS and len(frame) == len(diff.packages)
    shell = frame[frame["package"] == "shell"].iloc[0]
    assert shell["kind"] == "rebuilt" and bool(shell["flagged"]) and shell["size_delta"] == 0
    editor = frame[frame["package"] == "editor"].iloc[0]
    assert (
        pandas.isna(editor["old_version"])
        and pandas.isna(editor["old_size"])
        and editor["new_size"] == 1_200_000
        and editor["source_package"] == "vim"
    )
    assert editor["reason"] == "query: editor"
    assert int(frame["size_delta"].sum()) == diff.size_delta
    assert set(frame[frame["flagged"]]["package"]) == {"shell", "tool"}


def test_size_plot_has_one_bar_per_change() -> None:
    figure = plot_size_deltas(basic())
    (axes,) = figure.axes
    assert len(axes.patches) == len(basic().packages)
    assert "+1.6 MiB" in axes.get_title()


# --- formats --------------------------------------------------------------------------------------------


def test_markdown_puts_the_summary_first_then_trust_then_details() -> None:
    text = render_markdown(basic())
    first = text.splitlines()[0]
    assert first.startswith("**minimirror lock diff**: 4 added, 3 removed, 1 upgraded, 1 DOWNGRADED, 1 REBUILT")
    assert first.endswith("6 trust changes (2 flagged), +1.6 MiB")
    assert text.index("### Chain of trust") < text.index("<details")
    assert text.count("<details") == text.count("</details>") == len(KINDS)
    assert "<details open><summary><b>1 REBUILT (same version, new hash)</b>" in text
    assert text.index("REBUILT (same") < text.index("added</b>")
    assert "| `fixture/stable` | `vim` | `editor` | `amd64` | `9.0` | +1.1 MiB | `query: editor` |" in text


def test_markdown_keeps_hostile_lock_text_inside_code_spans() -> None:
    query = "evil | `</details>` <b>"
    lock = Lock(source("t/s", (query,)), upstream(1, "1"), (pkg("a", "1.0", queries=[query]),))
    text = render_markdown(diff_locks([], [lock]))
    assert "| `` query: evil \\| `</details>` <b> `` |" in text
    assert text.count("</details>\n") == 1


def test_json_is_stable_sorted_and_round_trips() -> None:
    diff = basic()
    text = render_json(diff)
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert data["schema"] == 1 and data["empty"] is False
    assert data["summary"]["rebuilt"] == 1 and data["summary"]["size_delta"] == diff.size_delta
    shell = next(p for p in data["packages"] if p["package"] == "shell")
    assert shell["old_sha256"] != shell["new_sha256"] and shell["flagged"] is True
    old, new = pairs()["basic"]
    assert render_json(diff_locks(tuple(reversed(old)), tuple(reversed(new)))) == text


def test_format_size() -> None:
    assert format_size(0, signed=True) == "±0 B" and format_size(-512, signed=True) == "-512 B"
    assert format_size(12_897_484, signed=True) == "+12.3 MiB" and format_size(1536) == "1.5 KiB"


# --- references -----------------------------------------------------------------------------------------


def test_parse_ref_forms() -> None:
    assert parse_ref("locks") == LocalRef(Path("locks"))
    assert parse_ref("git:HEAD~1") == GitRef("HEAD~1", "locks")
    assert parse_ref("git:origin/main:deploy/locks/") == GitRef("origin/main", "deploy/locks")
    for bad in ("git:", "git:--output=x", "git:HEAD:../etc", ""):
        with pytest.raises(UsageError):
            parse_ref(bad)


def test_lock_paths_keeps_only_locks_at_their_places() -> None:
    listing = "\0".join(
        f"100644 blob {i:040x}\t{name}"
        for i, name in enumerate(
            ["locks/a/b.lock", "locks/a/c.txt", "locks/a/b/c.lock", "locks/.x/y.lock", "lockz/a.lock"]
        )
    )
    assert lock_paths(listing + "\0", "locks") == {"locks/a/b.lock": f"{0:040x}"}
    assert lock_paths(listing, "locks/a/b.lock") == {"locks/a/b.lock": f"{0:040x}"}


def test_the_committed_fixture_pairs_are_what_the_builder_writes(tmp_path: Path) -> None:
    for written in write_pairs(tmp_path):
        committed = HERE / written.relative_to(tmp_path)
        assert committed.read_text() == written.read_text(), "regenerate: cd tests && python -m fixtures_locks"


def test_a_missing_path_and_a_bad_lock_are_named(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="nowhere: no such lock file or directory"):
        read_lock_ref(str(tmp_path / "nowhere"))
    bad = tmp_path / "bad.lock"
    bad.write_text(dumps_lock(pairs()["keyrotation"][0][0]).replace("size = 50000", 'size = "big"'))
    with pytest.raises(LockError, match=r"bad\.lock:\d+:\d+: .*size"):
        read_lock_ref(str(bad))


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@archive.example", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@archive.example", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env)
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose HEAD~1 has the basic pair's old locks and whose HEAD and work tree the new."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for side in ("old", "new"):
        shutil.rmtree(root / "locks", ignore_errors=True)
        shutil.copytree(BASIC / side, root / "locks")
        git(root, "add", "-A", "locks")
        git(root, "commit", "-q", "-m", side)
    return root


def test_git_refs_read_the_committed_locks(repo: Path) -> None:
    old, new = pairs()["basic"]
    assert read_lock_ref("git:HEAD~1", repo=repo) == old
    assert read_lock_ref("git:HEAD", repo=repo) == read_lock_ref(str(repo / "locks")) == new
    assert read_lock_ref("git:HEAD~1:locks/fixture/gone.lock", repo=repo) == (old[0],)
    assert read_lock_ref("git:HEAD~1:not-there", repo=repo) == ()
    with pytest.raises(UsageError, match="'no-such-branch' is not a commit of the git repository"):
        read_lock_ref("git:no-such-branch", repo=repo)


def test_a_lock_at_the_wrong_place_in_git_is_refused(repo: Path) -> None:
    (repo / "locks" / "fixture" / "extra.lock").rename(repo / "locks" / "fixture" / "other.lock")
    git(repo, "add", "-A", "locks")
    git(repo, "commit", "-q", "-m", "moved")
    with pytest.raises(LockError, match=r"git:HEAD:locks/fixture/other\.lock:\d+:1: id 'fixture/extra'"):
        read_lock_ref("git:HEAD", repo=repo)


def test_cli_diffs_git_head_1_against_the_work_tree(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "locks" / "fixture" / "gone").mkdir()  # the work tree: HEAD's locks and an empty prefix
    code = main(["diff", "git:HEAD~1", str(repo / "locks"), "--repo", str(repo), "--format", "json", "--exit-code"])
    assert code == 1
    assert json.loads(capsys.readouterr().out) == json.loads(render_json(basic()))


# --- the command ----------------------------------------------------------------------------------------


def test_exit_code_is_1_on_changes_0_without(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(BASIC / "old"), str(BASIC / "new"), "--exit-code"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("4 added, 3 removed") and "REBUILT" in out and "chain of trust" in out
    assert main(["diff", str(BASIC / "old"), str(BASIC / "old"), "--exit-code"]) == 0
    assert capsys.readouterr().out.startswith("no changes")
    assert main(["diff", str(BASIC / "old"), str(BASIC / "new")]) == 0  # without --exit-code: always 0


def test_cli_markdown_for_a_single_lock_file(capsys: pytest.CaptureFixture[str]) -> None:
    old, new = (KEYROTATION / side / "mirror" / "main.lock" for side in ("old", "new"))
    assert main(["diff", str(old), str(new), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "**minimirror lock diff**: 1 REBUILT (same version, new hash), 2 trust changes (1 flagged), +512 B"
    )
    assert f"| ⚠️ | `mirror/main` | `signed-by` | `+{KEY_EVIL}" in out and "<details open>" in out


def test_cli_names_a_bad_lock_and_a_bad_ref(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.lock"
    bad.write_text("schema = 1\n[source\n")
    assert main(["diff", str(bad), str(BASIC / "new")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "Traceback" not in err
    assert main(["diff", "git:nope", str(BASIC / "new"), "--repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "git:nope:locks" in err and "not a commit" in err and "Traceback" not in err


def test_locks_from_the_parsed_lock_cache_diff_as_the_locks_do(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for name, (old, new) in pairs().items():
        for side, locks in (("old", old), ("new", new)):
            for lock in locks:
                write_lock(lock_path(tmp_path / name / side, lock.source.id), lock)
        sides = [read_lock_tables(tmp_path / name / side, cache) for side in ("old", "new")]  # cold: cached
        warm = [read_lock_tables(tmp_path / name / side, cache) for side in ("old", "new")]
        assert diff_locks(*warm) == diff_locks(*sides) == diff_locks(old, new)
        assert render_json(diff_locks(*warm)) == render_json(diff_locks(old, new))


def test_only_the_fields_that_make_a_change_are_compared() -> None:
    base = stable(pkg("a", "1.0", queries=("a",)), pkg("b", "1.0", required_by=("a/amd64",)))
    requeried = replace(base, packages=(replace(base.packages[0], queries=("a", "b")), base.packages[1]))
    assert diff_locks([base], [requeried]).packages == ()  # a new reason is not a change of the package


def test_sha_helper_is_stable() -> None:
    assert sha("x") == sha("x") != sha("y")
