"""Reading the host's APT configuration: one-line and deb822 sources, options, inline keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimirror.errors import DiagnosticsError
from minimirror.sources.hostapt import (
    attach_companions,
    companion_base,
    init_from_apt,
    plan_sources,
    read_apt_sources,
    suites_for_packages,
)

KEY = "/usr/share/keyrings/example-archive-keyring.gpg"


def _etc(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "etc" / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_deb822_sources_expand_uris_and_suites_and_skip_disabled(tmp_path: Path) -> None:
    root = _etc(
        tmp_path,
        {
            "sources.list.d/example.sources": (
                "Types: deb deb-src\n"
                "URIs: http://archive.example/debian\n"
                "Suites: bookworm bookworm-updates\n"
                "Components: main contrib\n"
                f"Signed-By: {KEY}\n"
                "\n"
                "Types: deb\n"
                "URIs: http://archive.example/other\n"
                "Suites: bookworm\n"
                "Components: main\n"
                "Enabled: no\n"
            )
        },
    )
    entries = read_apt_sources(root)
    assert [(e.uri, e.suite, e.components, e.signed_by) for e in entries] == [
        ("http://archive.example/debian", "bookworm", ("main", "contrib"), KEY),
        ("http://archive.example/debian", "bookworm-updates", ("main", "contrib"), KEY),
    ]


def test_one_line_entries_with_options_and_comments(tmp_path: Path) -> None:
    root = _etc(
        tmp_path,
        {
            "sources.list": (
                "# a comment\n"
                f"deb [arch=amd64,arm64 signed-by={KEY}] http://archive.example/debian bookworm main\n"
                "deb-src http://archive.example/debian bookworm main\n"
                "deb http://archive.example/debian-security bookworm-security main # trailing\n"
            )
        },
    )
    entries = read_apt_sources(root)
    assert [(e.uri, e.suite, e.architectures, e.signed_by) for e in entries] == [
        ("http://archive.example/debian", "bookworm", ("amd64", "arm64"), KEY),
        ("http://archive.example/debian-security", "bookworm-security", (), None),
    ]
    assert entries[0].origin.endswith("sources.list:2")


def test_plan_names_prefix_after_the_uri_and_keeps_only_release_suites_for_packages(tmp_path: Path) -> None:
    root = _etc(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates\n"
                f"Components: main\nSigned-By: {KEY}\n\n"
                "Types: deb\nURIs: http://archive.example/debian-security\nSuites: bookworm-security\n"
                f"Components: main\nSigned-By: {KEY}\n"
            )
        },
    )
    planned = plan_sources(read_apt_sources(root))
    assert [(p.prefix, p.name, p.key_url) for p in planned] == [
        ("debian", "bookworm", f"file://{KEY}"),
        ("debian", "bookworm-updates", f"file://{KEY}"),
        ("debian-security", "bookworm-security", f"file://{KEY}"),
    ]
    assert suites_for_packages(planned) == {("debian", "bookworm")}


def test_inline_signed_by_key_is_unfolded(tmp_path: Path) -> None:
    root = _etc(
        tmp_path,
        {
            "sources.list.d/inline.sources": (
                "Types: deb\nURIs: http://archive.example/x\nSuites: stable\nComponents: main\n"
                "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n -----END PGP PUBLIC KEY BLOCK-----\n"
            )
        },
    )
    (planned,) = plan_sources(read_apt_sources(root))
    assert planned.key_url == ""
    assert planned.inline_key == (
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF\n-----END PGP PUBLIC KEY BLOCK-----\n"
    )


def test_a_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    root = _etc(tmp_path, {"sources.list.d/bad.list": "\ndeb http://archive.example/debian\n"})
    with pytest.raises(DiagnosticsError) as caught:
        read_apt_sources(root)
    assert (
        caught.value.diagnostics[0]
        .headline()
        .endswith("bad.list:2:1: expected: deb [options] URI suite [component...]")
    )


def test_init_from_apt_writes_a_tree_that_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from minimirror.cli import main

    root = _etc(
        tmp_path / "host",
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates\n"
                f"Components: main contrib\nSigned-By: {KEY}\n"
            )
        },
    )
    sources = tmp_path / "sources"
    args = ["init", "--from-apt", "--apt-root", str(root), "--sources", str(sources), "--packages", "curl git"]
    assert main(args) == 0
    assert (sources / "debian/bookworm/source.txt").read_text().splitlines()[1:] == [
        f"http://archive.example/debian file://{KEY} bookworm main contrib",
        f"http://archive.example/debian file://{KEY} bookworm-updates main contrib",
    ]
    assert (sources / "debian/bookworm/packages.txt").read_text() == "curl\ngit\n"
    assert not (sources / "debian/bookworm-updates").exists()
    output = capsys.readouterr()
    assert output.out == f"wrote {sources}/debian/bookworm  (bookworm main contrib + bookworm-updates)\n"
    assert output.err == ""
    assert main(["sources", "check", "--sources", str(sources)]) == 0
    # a second run keeps what is there
    (sources / "debian/bookworm/packages.txt").write_text("vim\n")
    capsys.readouterr()
    assert main(args) == 0
    assert (sources / "debian/bookworm/packages.txt").read_text() == "vim\n"
    assert capsys.readouterr().err == (
        f"skipped {sources}/debian/bookworm (+ bookworm-updates): exists (use --force to replace it)\n"
    )


def test_init_without_signed_by_gathers_the_globally_trusted_keys(tmp_path: Path, signing_key: object) -> None:
    from minimirror.upstream.signature import dearmor

    armored = signing_key.public_key_armored  # type: ignore[attr-defined]
    root = _etc(
        tmp_path / "host",
        {"sources.list": "deb http://archive.example/debian stable main\n", "trusted.gpg.d/archive.asc": armored},
    )
    result = init_from_apt(tmp_path / "sources", packages=["hello"], apt_root=root)
    (plan,) = result.written
    key_file = tmp_path / "sources" / "debian" / "stable" / "signing-key.gpg"
    assert key_file.read_bytes() == dearmor(armored.encode(), name="test")
    assert f"file://{key_file.resolve()}" in (key_file.parent / "source.txt").read_text()
    assert plan.dist == "stable"


# --- companion suites ---------------------------------------------------------------------------------

SECURITY_KEY = "/usr/share/keyrings/example-security-keyring.gpg"


@pytest.mark.parametrize(
    ("dist", "base"),
    [
        ("bookworm", None),
        ("bookworm-updates", "bookworm"),
        ("bookworm-security", "bookworm"),
        ("buster/updates", "buster"),
        ("bookworm-proposed-updates", "bookworm"),
        ("bookworm-backports", "bookworm"),
        ("bookworm-backports-sloppy", "bookworm"),
        ("jammy-proposed", "jammy"),
        ("stable-updates", "stable"),
        ("-updates", None),
    ],
)
def test_companion_base(dist: str, base: str | None) -> None:
    assert companion_base(dist) == base


def test_updates_and_security_join_their_release_suite_in_one_source_txt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minimirror.cli import main
    from minimirror.sources.tree import Suite, load_sources

    root = _etc(
        tmp_path / "host",
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm-updates bookworm\n"
                f"Components: main contrib\nSigned-By: {KEY}\n\n"
                "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
                f"Components: main\nSigned-By: {SECURITY_KEY}\n"
            )
        },
    )
    sources = tmp_path / "sources"
    args = ["init", "--from-apt", "--apt-root", str(root), "--sources", str(sources), "--packages", "curl"]
    assert main(args) == 0
    assert sorted(str(p.relative_to(sources)) for p in sources.rglob("*") if p.is_file()) == [
        "debian/bookworm/packages.txt",
        "debian/bookworm/source.txt",
    ]
    assert (sources / "debian/bookworm/source.txt").read_text() == (
        "# source_url source_key_url dist component...\n"
        f"http://archive.example/debian file://{KEY} bookworm main contrib\n"
        f"http://security.example/debian-security file://{SECURITY_KEY} bookworm-security main\n"
        f"http://archive.example/debian file://{KEY} bookworm-updates main contrib\n"
    )
    output = capsys.readouterr()
    assert output.out == (
        f"wrote {sources}/debian/bookworm  (bookworm main contrib + bookworm-security, bookworm-updates)\n"
    )
    assert output.err == ""
    (source,) = load_sources(sources, environ={})
    assert (source.source_id, source.dist, source.key_url) == ("debian/bookworm", "bookworm", f"file://{KEY}")
    assert source.companions == (
        Suite("http://security.example/debian-security", f"file://{SECURITY_KEY}", "bookworm-security", ("main",)),
        Suite("http://archive.example/debian", f"file://{KEY}", "bookworm-updates", ("main", "contrib")),
    )


def test_the_old_security_layout_joins_its_release_suite(tmp_path: Path) -> None:
    root = _etc(
        tmp_path / "host",
        {
            "sources.list": (
                f"deb [signed-by={KEY}] http://security.example/debian-security buster/updates main\n"
                f"deb [signed-by={KEY}] http://archive.example/debian buster main\n"
            )
        },
    )
    result = init_from_apt(tmp_path / "sources", packages=["curl"], apt_root=root)
    assert result.skipped == ()
    assert (tmp_path / "sources/debian/buster/source.txt").read_text().splitlines()[1:] == [
        f"http://archive.example/debian file://{KEY} buster main",
        f"http://security.example/debian-security file://{KEY} buster/updates main",
    ]


def test_a_companion_without_its_release_suite_and_backports_are_skipped_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minimirror.cli import main

    root = _etc(
        tmp_path / "host",
        {
            "sources.list": (
                f"deb [signed-by={KEY}] http://archive.example/debian bookworm main\n"
                f"deb [signed-by={KEY}] http://archive.example/debian bookworm-backports main\n"
                f"deb [signed-by={KEY}] http://security.example/debian-security trixie-security main\n"
            )
        },
    )
    sources = tmp_path / "sources"
    assert main(["init", "--from-apt", "--apt-root", str(root), "--sources", str(sources)]) == 0
    assert (sources / "debian/bookworm/source.txt").read_text().splitlines()[1:] == [
        f"http://archive.example/debian file://{KEY} bookworm main"
    ]
    assert sorted(p.name for p in sources.iterdir()) == ["debian"]
    assert capsys.readouterr().err.splitlines() == [
        "skipped bookworm-backports of http://archive.example/debian: backports are opt-in in apt (a package is taken "
        "from there only when asked for), so it is not resolved with 'bookworm'; add the line to that source.txt by "
        "hand if you want it",
        "skipped trixie-security of http://security.example/debian-security: its release suite 'trixie' is not among "
        "the host's APT entries; add the line by hand",
    ]


def test_a_companion_joins_the_release_suite_of_its_own_prefix_first(tmp_path: Path) -> None:
    root = _etc(
        tmp_path / "host",
        {
            "sources.list": (
                f"deb [signed-by={KEY}] http://archive.example/debian bookworm main\n"
                f"deb [signed-by={KEY}] http://mirror.example/mirror bookworm main\n"
                f"deb [signed-by={KEY}] http://mirror.example/mirror bookworm-updates main\n"
                f"deb [signed-by={SECURITY_KEY}] http://mirror.example/security bookworm-security main\n"
                f"deb [signed-by={SECURITY_KEY}] http://archive.example/debian-security bookworm-security main\n"
            )
        },
    )
    releases, skipped = attach_companions(plan_sources(read_apt_sources(root)))
    assert skipped == ()
    assert [(r.prefix, [(c.prefix, c.dist) for c in r.companions]) for r in releases] == [
        # no release in the security prefixes, no key in common: the first on the same host
        ("debian", [("debian-security", "bookworm-security")]),
        ("mirror", [("security", "bookworm-security"), ("mirror", "bookworm-updates")]),
    ]


def test_without_signed_by_the_release_and_its_companions_share_the_gathered_keyring(
    tmp_path: Path, signing_key: object
) -> None:
    from minimirror.upstream.signature import dearmor

    armored = signing_key.public_key_armored  # type: ignore[attr-defined]
    root = _etc(
        tmp_path / "host",
        {
            "sources.list": (
                "deb http://archive.example/debian bookworm main\n"
                "deb http://archive.example/debian bookworm-updates main\n"
                "deb http://archive.example/debian-security bookworm-security main\n"
                f"deb [signed-by={KEY}] http://archive.example/other trixie main\n"
                "deb http://archive.example/other trixie-updates main\n"
            ),
            "trusted.gpg.d/archive.asc": armored,
        },
    )
    result = init_from_apt(tmp_path / "sources", packages=["hello"], apt_root=root)
    assert [(p.prefix, p.name) for p in result.written] == [("debian", "bookworm"), ("other", "trixie")]
    debian, other = (tmp_path / "sources" / d for d in ("debian/bookworm", "other/trixie"))
    shared = f"file://{(debian / 'signing-key.gpg').resolve()}"
    assert [line.split()[1] for line in (debian / "source.txt").read_text().splitlines()[1:]] == [shared] * 3
    # the release suite names its keyring: the companion without Signed-By gets the gathered one beside it
    assert [line.split()[1] for line in (other / "source.txt").read_text().splitlines()[1:]] == [
        f"file://{KEY}",
        f"file://{(other / 'signing-key.gpg').resolve()}",
    ]
    for directory in (debian, other):
        assert (directory / "signing-key.gpg").read_bytes() == dearmor(armored.encode(), name="test")


def test_a_companion_with_its_own_inline_key_gets_its_own_keyring_file(tmp_path: Path, signing_key: object) -> None:
    from minimirror.sources.tree import load_sources
    from minimirror.upstream.signature import dearmor

    armored: str = signing_key.public_key_armored  # type: ignore[attr-defined]
    folded = "".join(f" {line}\n" if line.strip() else " .\n" for line in armored.strip().splitlines())
    root = _etc(
        tmp_path / "host",
        {
            "sources.list.d/x.sources": (
                f"Types: deb\nURIs: http://archive.example/x\nSuites: stable\nComponents: main\nSigned-By: {KEY}\n\n"
                "Types: deb\nURIs: http://archive.example/x-security\nSuites: stable-security\nComponents: main\n"
                f"Signed-By:\n{folded}"
            )
        },
    )
    init_from_apt(tmp_path / "sources", packages=["hello"], apt_root=root)
    directory = tmp_path / "sources" / "x" / "stable"
    key_file = directory / "signing-key-stable-security.gpg"
    assert key_file.read_bytes() == dearmor(armored.encode(), name="test")
    (source,) = load_sources(tmp_path / "sources", environ={})
    assert source.key_url == f"file://{KEY}"
    assert [c.key_url for c in source.companions] == [f"file://{key_file.resolve()}"]


def test_a_release_suite_with_an_inline_key_leaves_signing_key_gpg_to_it(tmp_path: Path, signing_key: object) -> None:
    from minimirror.upstream.signature import dearmor

    armored: str = signing_key.public_key_armored  # type: ignore[attr-defined]
    folded = "".join(f" {line}\n" if line.strip() else " .\n" for line in armored.strip().splitlines())
    root = _etc(
        tmp_path / "host",
        {
            "sources.list.d/x.sources": (
                f"Types: deb\nURIs: http://archive.example/x\nSuites: stable stable-updates\nComponents: main\n"
                f"Signed-By:\n{folded}\n"
                "Types: deb\nURIs: http://archive.example/x\nSuites: stable-security\nComponents: main\n"
            ),
            "trusted.gpg.d/global.asc": armored,
        },
    )
    init_from_apt(tmp_path / "sources", packages=["hello"], apt_root=root)
    directory = tmp_path / "sources" / "x" / "stable"
    assert sorted(p.name for p in directory.iterdir()) == [
        "packages.txt",
        "signing-key-stable-security.gpg",
        "signing-key.gpg",
        "source.txt",
    ]
    inline, global_ = (
        f"file://{(directory / n).resolve()}" for n in ("signing-key.gpg", "signing-key-stable-security.gpg")
    )
    assert [line.split()[1:3] for line in (directory / "source.txt").read_text().splitlines()[1:]] == [
        [inline, "stable"],
        [global_, "stable-security"],
        [inline, "stable-updates"],
    ]
    assert (directory / "signing-key-stable-security.gpg").read_bytes() == dearmor(armored.encode(), name="test")
