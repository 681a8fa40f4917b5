"""The sources tree: loading, every located diagnostic, settings precedence, normalized inputs, writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import REPO_ROOT

from minimirror.errors import Diagnostic, DiagnosticsError, UsageError
from minimirror.sources.settings import SourceSettings
from minimirror.sources.tree import (
    check_sources,
    load_sources,
    normalized_inputs,
    render_source,
    split_comment,
    write_source,
)

DEBIAN_LINE = "http://127.0.0.1:8080/debian file:///usr/share/keyrings/debian-archive-keyring.gpg bookworm main"
NO_ENV: dict[str, str] = {}


def make_source(
    root: Path,
    source_id: str = "debian/bookworm",
    source_txt: str | None = DEBIAN_LINE + "\n",
    packages_txt: str | None = "curl\n",
    **extra: str,
) -> Path:
    """A source directory with the given file contents; ``None`` leaves a file out."""
    directory = root / source_id
    directory.mkdir(parents=True, exist_ok=True)
    files = {"source.txt": source_txt, "packages.txt": packages_txt}
    files.update({name.replace("_", "."): text for name, text in extra.items()})
    for name, text in files.items():
        if text is not None:
            (directory / name).write_bytes(text.encode("utf-8"))
    return directory


def only_problem(root: Path, environ: dict[str, str] | None = None) -> Diagnostic:
    diagnostics = check_sources(root, environ=NO_ENV if environ is None else environ)
    assert len(diagnostics) == 1, [d.render() for d in diagnostics]
    return diagnostics[0]


# --- a good tree --------------------------------------------------------------------------------------


def test_a_good_tree_loads_sorted_with_lines_and_defaults(tmp_path: Path) -> None:
    docker_line = "http://127.0.0.1:8080/docker http://127.0.0.1:8080/docker/gpg bookworm stable\n"
    make_source(tmp_path, "docker/bookworm", docker_line, "docker-ce\n")
    make_source(
        tmp_path,
        "debian/bookworm",
        "# the archive\n\n" + DEBIAN_LINE + " contrib  # trailing comment\n",
        '# header\ncurl\n\n  python3 (>= 3.11)   # why\nName (% "*#*")\n',
    )
    sources = load_sources(tmp_path, environ=NO_ENV)
    assert [s.source_id for s in sources] == ["debian/bookworm", "docker/bookworm"]
    debian = sources[0]
    assert (debian.prefix, debian.name, debian.directory) == ("debian", "bookworm", tmp_path / "debian/bookworm")
    assert debian.url == "http://127.0.0.1:8080/debian"
    assert debian.key_url == "file:///usr/share/keyrings/debian-archive-keyring.gpg"
    assert (debian.dist, debian.components) == ("bookworm", ("main", "contrib"))
    assert [(q.line, q.text, q.canonical) for q in debian.queries] == [
        (2, "curl", "curl"),
        (4, "python3 (>= 3.11)", "python3 (>= 3.11)"),
        (5, 'Name (% "*#*")', str(debian.queries[2].query)),
    ]
    assert debian.queries[0].path == tmp_path / "debian/bookworm/packages.txt"
    assert debian.settings == SourceSettings()
    assert debian.settings.architectures == ("amd64",)


def test_the_bundled_example_tree_is_valid() -> None:
    examples = REPO_ROOT / "examples" / "sources"
    (source,) = load_sources(examples, environ=NO_ENV)
    assert source.source_id == "debian/bookworm"
    assert "python3 (>= 3.11)" in {q.canonical for q in source.queries}
    assert all("Priority" not in q.text for q in source.queries)  # commented out on purpose


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("curl # why", "curl "),
        ("# all comment", ""),
        ('Name (~ "a#b") # c', 'Name (~ "a#b") '),
        ("Name (~ 'a#b')", "Name (~ 'a#b')"),
        ('Name (~ "a\\"#b")#c', 'Name (~ "a\\"#b")'),
    ],
)
def test_comments_start_at_a_hash_outside_quotes(line: str, code: str) -> None:
    assert split_comment(line) == code


# --- source.txt diagnostics ---------------------------------------------------------------------------


def rendered(path: Path, line: int, column: int, message: str) -> str:
    """What Diagnostic.render() must print: the headline, the file's line, a caret under the column."""
    text = path.read_text(encoding="utf-8").split("\n")[line - 1]
    return f"{path}:{line}:{column}: {message}\n    {text}\n    {' ' * (column - 1)}^"


@pytest.mark.parametrize(
    ("source_txt", "line", "column", "message"),
    [
        ("ftp://x/debian file:///k bookworm main\n", 1, 1,
         "source URL 'ftp://x/debian' is not a URL minimirror can read; expected http://, https://, file://"),
        ("# c\n  http://x/debian keyring.gpg bookworm main\n", 2, 19,
         "key URL 'keyring.gpg' is not a URL minimirror can read; expected http://, https://, file://"),
        ("http://x/debian file:///k bookworm\n", 1, 35,
         "missing component; expected 'source_url source_key_url dist component...'"),
        ("http://x/debian file:///k\n", 1, 26, "missing dist; expected 'source_url source_key_url dist component...'"),
        ("http://x/debian file:///k bookworm main contrib main # c\n", 1, 49, "component 'main' is listed twice"),
        ("http:///debian file:///k bookworm main\n", 1, 1, "source URL 'http:///debian' has no host"),
        ("http://x/debian file://k bookworm main\n", 1, 17, "key URL 'file://k' needs an absolute path (file:///path)"),
        ("http://x/debian file:///k bookworm main\nhttp://x/debian/ file:///k bookworm contrib\n", 2, 28,
         "suite 'bookworm' of http://x/debian/ is already on line 1"),
        ("# only a comment\n\n", 1, 1, "no source line; expected 'source_url source_key_url dist component...'"),
        ("http://x/vendor file:///k ./ main contrib\n", 1, 30,
         "a flat repository ('./') has no components; remove 'main' and what follows"),
        ("http://x/vendor file:///k\n", 1, 26, "missing dist; expected 'source_url source_key_url dist component...'"),
    ],
    ids=["scheme", "key-scheme", "no-component", "no-dist", "twice", "no-host", "relative-file", "dup", "empty",
         "flat-component", "flat-no-dist"],
)  # fmt: skip
def test_source_txt_problems_are_located_with_a_caret(
    tmp_path: Path, source_txt: str, line: int, column: int, message: str
) -> None:
    make_source(tmp_path, source_txt=source_txt)
    expected = rendered(tmp_path / "debian/bookworm/source.txt", line, column, message)
    assert only_problem(tmp_path).render() == expected


def test_a_rendered_diagnostic_shows_the_caret_under_the_column(tmp_path: Path) -> None:
    make_source(tmp_path, source_txt="# c\n  http://x/debian keyring.gpg bookworm main\n")
    assert (
        only_problem(tmp_path)
        .render()
        .endswith("\n      http://x/debian keyring.gpg bookworm main\n                      ^")
    )


def test_a_flat_repository_has_the_dist_dot_slash_and_no_component(tmp_path: Path) -> None:
    make_source(tmp_path, "vendor/flat", source_txt="http://vendor.example/apt file:///k ./  # flat\n")
    make_source(tmp_path, "vendor/sub", source_txt="http://vendor.example/apt file:///k sub/\n")
    flat, sub = load_sources(tmp_path, environ=NO_ENV)
    assert (flat.dist, flat.components, sub.dist, sub.components) == ("./", (), "sub/", ())
    assert '"components": []' in normalized_inputs(flat)
    files = render_source(
        url="http://vendor.example/apt", key_url="file:///k", dist="./", components=[], packages=["x"]
    )
    assert files["source.txt"].splitlines()[1] == "http://vendor.example/apt file:///k ./"
    with pytest.raises(UsageError, match="a flat repository has no components"):
        render_source(url="http://v.example/apt", key_url="file:///k", dist="./", components=["main"], packages=["x"])
    with pytest.raises(UsageError, match="empty fields"):
        render_source(url="http://v.example/apt", key_url="file:///k", dist="stable", components=[], packages=["x"])


def test_https_and_file_urls_are_accepted(tmp_path: Path) -> None:
    make_source(tmp_path, source_txt="file:///srv/archive https://archive.example/key.asc stable main\r\n")
    (source,) = load_sources(tmp_path, environ=NO_ENV)
    assert (source.url, source.key_url, source.dist) == (
        "file:///srv/archive",
        "https://archive.example/key.asc",
        "stable",
    )


# --- packages.txt diagnostics -------------------------------------------------------------------------


def test_a_query_error_column_counts_leading_whitespace(tmp_path: Path) -> None:
    make_source(tmp_path, packages_txt="curl\r\n\t  python3 (>= 3.11   # newest\r\n")
    problem = only_problem(tmp_path)
    assert (problem.path, problem.line, problem.column) == (tmp_path / "debian/bookworm/packages.txt", 2, 12)
    assert problem.render().endswith(
        "packages.txt:2:12: unclosed '(': add ')' to close the condition\n"
        "    \t  python3 (>= 3.11   # newest\n"
        "    \t          ^"
    )


def test_every_bad_query_of_a_file_is_reported(tmp_path: Path) -> None:
    make_source(tmp_path, packages_txt="curl |\ngood\na, (b\n")
    diagnostics = check_sources(tmp_path, environ=NO_ENV)
    assert [(d.line, d.column) for d in diagnostics] == [(1, 7), (3, 4)]


def test_a_packages_txt_without_queries_is_an_error(tmp_path: Path) -> None:
    make_source(tmp_path, packages_txt="# nothing yet\n\n")
    problem = only_problem(tmp_path)
    assert problem.headline() == (
        f"{tmp_path / 'debian/bookworm/packages.txt'}:1:1: "
        "no package queries; write one a line, e.g. 'curl' or 'python3 (>= 3.11)'"
    )


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    directory = make_source(tmp_path)
    (directory / "packages.txt").write_bytes(b"curl\n\xff\n")
    assert "not UTF-8 text" in only_problem(tmp_path).message


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    make_source(tmp_path, source_txt="\ufeff" + DEBIAN_LINE, packages_txt="\ufeffcurl")
    (source,) = load_sources(tmp_path, environ=NO_ENV)
    assert [q.canonical for q in source.queries] == ["curl"]


# --- the tree's shape ---------------------------------------------------------------------------------


def test_a_missing_sources_directory_is_a_diagnostic(tmp_path: Path) -> None:
    problem = only_problem(tmp_path / "nowhere")
    assert problem.headline().startswith(f"{tmp_path / 'nowhere'}:1:1: sources directory does not exist")


def test_an_empty_tree_has_no_sources(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # hidden directories are not prefixes
    assert only_problem(tmp_path).message.startswith("no sources;")


def test_missing_files_are_named_at_line_one(tmp_path: Path) -> None:
    make_source(tmp_path, "a/one", source_txt=None)
    make_source(tmp_path, "a/two", packages_txt=None)
    headlines = [d.headline() for d in check_sources(tmp_path, environ=NO_ENV)]
    holds = "a source directory holds source.txt and packages.txt"
    assert headlines == [
        f"{tmp_path / 'a/one/source.txt'}:1:1: missing source.txt; {holds}",
        f"{tmp_path / 'a/two/packages.txt'}:1:1: missing packages.txt; {holds}",
    ]


def test_unsafe_names_empty_prefixes_and_misplaced_files(tmp_path: Path) -> None:
    make_source(tmp_path, "deb ian/bookworm")
    make_source(tmp_path, "debian/book worm")
    (tmp_path / "empty").mkdir()
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "source.txt").write_text(DEBIAN_LINE)
    messages = {
        (Path(str(d.path)).relative_to(tmp_path).as_posix(), d.message) for d in check_sources(tmp_path, environ=NO_ENV)
    }
    assert messages == {
        ("deb ian", "prefix directory name 'deb ian' contains whitespace"),
        ("debian/book worm", "source directory name 'book worm' contains whitespace"),
        ("empty", "prefix directory has no source directories"),
        ("flat", "prefix directory has no source directories"),
        ("flat/source.txt", f"source.txt belongs in a source directory: {tmp_path / 'flat'}/<name>/source.txt"),
    }


def test_two_sources_of_one_prefix_cannot_serve_the_same_dist(tmp_path: Path) -> None:
    make_source(tmp_path, "debian/main")
    make_source(tmp_path, "debian/security", "# c\nhttp://127.0.0.1:8080/security file:///k bookworm main\n")
    problem = only_problem(tmp_path)
    assert (problem.path, problem.line, problem.column) == (tmp_path / "debian/security/source.txt", 2, 42)
    assert "already served by debian/main" in problem.message


def test_every_problem_of_the_tree_is_reported_in_one_run(tmp_path: Path) -> None:
    make_source(tmp_path, "a/one", source_txt="ftp://x file:///k d main\n")
    make_source(tmp_path, "a/two", packages_txt="curl (>= \n")
    make_source(tmp_path, "b/three", minimirror_toml="labl = 'x'\n")
    make_source(tmp_path, "c/four")  # fine
    with pytest.raises(DiagnosticsError) as caught:
        load_sources(tmp_path, environ=NO_ENV)
    files = [Path(str(d.path)).relative_to(tmp_path).as_posix() for d in caught.value.diagnostics]
    assert files == ["a/one/source.txt", "a/two/packages.txt", "b/three/minimirror.toml"]
    assert caught.value.render().endswith("3 problems in 3 files; fix them and run `minimirror sources check` again")


# --- settings -----------------------------------------------------------------------------------------


def test_aptly_config_path_is_the_default_and_a_per_source_file_replaces_it(tmp_path: Path) -> None:
    global_conf = tmp_path / "aptly.conf"
    global_conf.write_text(
        json.dumps({"rootDir": "/x", "architectures": ["amd64", "arm64"], "dependencyFollowRecommends": True})
    )
    make_source(tmp_path / "src", "debian/bookworm")
    make_source(
        tmp_path / "src", "docker/bookworm", aptly_conf='{"dependencyFollowSource": true, "gpgDisableVerify": true}'
    )
    debian, docker = load_sources(tmp_path / "src", environ={"APTLY_CONFIG_PATH": str(global_conf)})
    assert debian.settings.architectures == ("amd64", "arm64")
    assert debian.settings.follow_recommends is True
    # the per-source file replaces the global one as a whole, as it would for aptly itself
    assert docker.settings.architectures == ("amd64",)
    assert docker.settings.follow_recommends is False
    assert (docker.settings.follow_source, docker.settings.gpg_disable_verify) == (True, True)
    assert load_sources(tmp_path / "src", environ=NO_ENV)[0].settings == SourceSettings()
    # an empty variable means unset
    unset = {"APTLY_CONFIG_PATH": ""}
    assert load_sources(tmp_path / "src", environ=unset)[0].settings == SourceSettings()


def test_minimirror_toml_overrides_aptly_architectures(tmp_path: Path) -> None:
    make_source(
        tmp_path,
        aptly_conf='{"architectures": ["i386"], "downloadSourcePackages": true}',
        minimirror_toml=(
            'architectures = ["arm64", "amd64"]\nlabel = "Ours"\nallow-expired = true\n'
            'fallback-url = "http://snapshot.example/archive/debian/20240101T000000Z"\n'
        ),
    )
    (source,) = load_sources(tmp_path, environ=NO_ENV)
    assert source.settings.architectures == ("arm64", "amd64")
    assert source.settings.download_source_packages is True
    assert (source.settings.label, source.settings.allow_expired) == ("Ours", True)
    assert source.settings.fallback_url == "http://snapshot.example/archive/debian/20240101T000000Z"


def test_a_missing_aptly_config_path_file_is_reported_once(tmp_path: Path) -> None:
    make_source(tmp_path, "a/one")
    make_source(tmp_path, "b/two", "http://x/d file:///k trixie main")
    problem = only_problem(tmp_path, {"APTLY_CONFIG_PATH": str(tmp_path / "nope.conf")})
    assert "$APTLY_CONFIG_PATH names" in problem.message


def test_aptly_conf_json_errors_are_located(tmp_path: Path) -> None:
    make_source(tmp_path, aptly_conf='{\n  "rootDir": "/x",\n  "architectures": ["amd64",]\n}\n')
    problem = only_problem(tmp_path)
    assert problem.render().endswith(
        "aptly.conf:3:29: aptly.conf is not valid JSON: Expecting value\n"
        '      "architectures": ["amd64",]\n'
        "                                ^"
    )


def test_aptly_conf_type_errors_point_at_the_value(tmp_path: Path) -> None:
    text = (
        '{\n  "FileSystemPublishEndpoints": {"architectures": 1},\n'
        '  "architectures": "amd64",\n  "gpgDisableVerify": "no"\n}\n'
    )
    make_source(tmp_path, aptly_conf=text)
    diagnostics = check_sources(tmp_path, environ=NO_ENV)
    assert [(d.line, d.column) for d in diagnostics] == [(3, 20), (4, 23)]
    assert diagnostics[0].message.startswith("aptly.conf key 'architectures' must be a non-empty list")
    assert (
        diagnostics[1]
        .render()
        .endswith(
            "aptly.conf key 'gpgDisableVerify' must be true or false, not 'no'\n"
            '      "gpgDisableVerify": "no"\n'
            "                          ^"
        )
    )


def test_aptly_conf_must_be_an_object(tmp_path: Path) -> None:
    make_source(tmp_path, aptly_conf="[1]\n")
    assert only_problem(tmp_path).message == "aptly.conf must be a JSON object ({...})"


def test_minimirror_toml_rejects_unknown_keys_with_a_suggestion(tmp_path: Path) -> None:
    make_source(tmp_path, minimirror_toml='label = "x"\n  allow_expired = true\n[extra]\n')
    diagnostics = check_sources(tmp_path, environ=NO_ENV)
    assert [d.render().split(": ", 1)[1] for d in diagnostics] == [
        "unknown key 'allow_expired' in minimirror.toml; did you mean 'allow-expired'?\n"
        "      allow_expired = true\n      ^",
        "unknown key 'extra' in minimirror.toml; known keys: origin, label, suite, codename, description, "
        "architectures, allow-expired, fallback-url, resolve-with, pin-priority, missing-dependencies\n"
        "    [extra]\n    ^",
    ]


@pytest.mark.parametrize(
    ("toml", "line", "column", "message"),
    [
        ("architectures = []\n", 1, 1, "minimirror.toml key 'architectures' must be a non-empty list"),
        ('architectures = ["AMD64"]\n', 1, 1, "minimirror.toml key 'architectures' 'AMD64' is not an architecture"),
        ("origin = 3\n", 1, 1, "minimirror.toml key 'origin' must be a string, not 3"),
        ('\nfallback-url = "ftp://x/"\n', 2, 1, "minimirror.toml key 'fallback-url' 'ftp://x/' is not a URL"),
        ('label = "x"\nlabel = "y"\n', 2, 12, "minimirror.toml is not valid TOML: Cannot overwrite a value"),
    ],
)
def test_minimirror_toml_value_problems_are_located(
    tmp_path: Path, toml: str, line: int, column: int, message: str
) -> None:
    make_source(tmp_path, minimirror_toml=toml)
    problem = only_problem(tmp_path)
    assert (problem.line, problem.column) == (line, column)
    assert problem.message.startswith(message)


# --- normalized inputs --------------------------------------------------------------------------------


def inputs_of(root: Path, packages_txt: str, **extra: str) -> str:
    make_source(root, packages_txt=packages_txt, **extra)
    (source,) = load_sources(root, environ=NO_ENV)
    return normalized_inputs(source)


def test_crlf_comments_blank_lines_order_and_duplicates_do_not_change_the_inputs(tmp_path: Path) -> None:
    plain = inputs_of(tmp_path / "a", "curl\npython3 (>= 3.11)\nopenssh-server\n")
    messy = inputs_of(
        tmp_path / "b",
        "# servers\r\nopenssh-server   # sshd\r\n\r\n  python3  (>=3.11)\r\ncurl\r\ncurl\r\n",
    )
    assert plain == messy
    assert json.loads(plain)["queries"] == ["curl", "openssh-server", "python3 (>= 3.11)"]


def test_queries_settings_and_source_line_change_the_inputs(tmp_path: Path) -> None:
    base = inputs_of(tmp_path / "a", "curl\n")
    assert inputs_of(tmp_path / "b", "curl\nwget\n") != base
    assert inputs_of(tmp_path / "c", "curl\n", minimirror_toml='architectures = ["arm64"]\n') != base
    assert inputs_of(tmp_path / "d", "curl\n", aptly_conf='{"dependencyFollowSuggests": true}') != base
    make_source(tmp_path / "e", source_txt=DEBIAN_LINE + " contrib\n")
    assert normalized_inputs(load_sources(tmp_path / "e", environ=NO_ENV)[0]) != base
    # aptly keys minimirror ignores do not change anything
    assert inputs_of(tmp_path / "f", "curl\n", aptly_conf='{"rootDir": "/var/lib/aptly"}') == base


# --- writing ------------------------------------------------------------------------------------------


def test_write_source_round_trips_through_load_sources(tmp_path: Path) -> None:
    directory = write_source(
        tmp_path,
        "docker",
        "bookworm",
        url="http://127.0.0.1:8080/docker",
        key_url="http://127.0.0.1:8080/docker/gpg",
        dist="bookworm",
        components=["stable"],
        packages=["docker-ce (= 5:24.0.7-1~debian.12~bookworm)", "containerd.io"],
        settings_toml='label = "Docker"\n',
        aptly_conf={"architectures": ["amd64", "arm64"]},
    )
    assert directory == tmp_path / "docker" / "bookworm"
    assert sorted(p.name for p in directory.iterdir()) == [
        "aptly.conf",
        "minimirror.toml",
        "packages.txt",
        "source.txt",
    ]
    (source,) = load_sources(tmp_path, environ=NO_ENV)
    assert [q.canonical for q in source.queries] == ["docker-ce (= 5:24.0.7-1~debian.12~bookworm)", "containerd.io"]
    assert (source.settings.label, source.settings.architectures) == ("Docker", ("amd64", "arm64"))
    # writing again without settings leaves exactly the two required files (no stale settings)
    write_source(
        tmp_path,
        "docker",
        "bookworm",
        url=source.url,
        key_url=source.key_url,
        dist="bookworm",
        components=["stable"],
        packages=["docker-ce"],
    )
    assert sorted(p.name for p in directory.iterdir()) == ["packages.txt", "source.txt"]


@pytest.mark.parametrize(("prefix", "name"), [("..", "x"), ("a", "."), ("a b", "x"), ("a", "x/y"), ("", "x")])
def test_write_source_refuses_unsafe_names(tmp_path: Path, prefix: str, name: str) -> None:
    with pytest.raises(UsageError):
        write_source(
            tmp_path,
            prefix,
            name,
            url="http://x/",
            key_url="file:///k",
            dist="d",
            components=["main"],
            packages=["curl"],
        )
    assert list(tmp_path.iterdir()) == []


def test_render_source_without_companions_is_one_line_as_before() -> None:
    from minimirror.sources.tree import render_source

    files = render_source(url="http://x/debian", key_url="file:///k", dist="bookworm", components=["main"], packages=[])
    assert (
        files["source.txt"]
        == "# source_url source_key_url dist component...\nhttp://x/debian file:///k bookworm main\n"
    )


def test_write_source_with_companions_writes_a_line_a_suite_that_loads_back(tmp_path: Path) -> None:
    from minimirror.sources.tree import Suite

    companions = [
        Suite("http://x/debian-security", "file:///s", "bookworm-security", ("main",)),
        Suite("http://x/debian", "file:///k", "bookworm-updates", ("main", "contrib")),
    ]
    directory = write_source(
        tmp_path,
        "debian",
        "bookworm",
        url="http://x/debian",
        key_url="file:///k",
        dist="bookworm",
        components=["main", "contrib"],
        packages=["curl"],
        companions=companions,
    )
    assert (directory / "source.txt").read_text().splitlines()[1:] == [
        "http://x/debian file:///k bookworm main contrib",
        "http://x/debian-security file:///s bookworm-security main",
        "http://x/debian file:///k bookworm-updates main contrib",
    ]
    (source,) = load_sources(tmp_path, environ=NO_ENV)
    assert source.companions == tuple(companions)


@pytest.mark.parametrize(
    "companion",
    [
        ("http://x/debian", "", "bookworm-updates", ("main",)),
        ("http://x/debian", "file:///k", "bookworm updates", ("main",)),
        ("http://x/debian", "file:///k", "bookworm-updates", ()),
        ("http://x/debian/", "file:///k", "bookworm", ("main",)),
    ],
    ids=["no-key", "whitespace", "no-component", "the-release-again"],
)
def test_a_bad_companion_is_refused_before_anything_is_written(
    tmp_path: Path, companion: tuple[str, str, str, tuple[str, ...]]
) -> None:
    from minimirror.sources.tree import Suite

    with pytest.raises(UsageError, match="cannot write source line"):
        write_source(
            tmp_path,
            "debian",
            "bookworm",
            url="http://x/debian",
            key_url="file:///k",
            dist="bookworm",
            components=["main"],
            packages=["curl"],
            companions=[Suite(*companion)],
        )
    assert list(tmp_path.iterdir()) == []
