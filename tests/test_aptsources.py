"""Reading the host's APT configuration: one-line and deb822 sources, options, inline keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimirror.aptsources import plan_sources, read_apt_sources, suites_for_packages
from minimirror.errors import DiagnosticsError

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
    assert (sources / "debian/bookworm/source.txt").read_text().splitlines()[-1] == (
        f"http://archive.example/debian file://{KEY} bookworm main contrib"
    )
    assert (sources / "debian/bookworm/packages.txt").read_text() == "curl\ngit\n"
    assert not (sources / "debian/bookworm-updates").exists()
    assert "skipped" in capsys.readouterr().err
    assert main(["sources", "check", "--sources", str(sources)]) == 0
    # a second run keeps what is there
    (sources / "debian/bookworm/packages.txt").write_text("vim\n")
    assert main(args) == 0
    assert (sources / "debian/bookworm/packages.txt").read_text() == "vim\n"


def test_init_without_signed_by_gathers_the_globally_trusted_keys(tmp_path: Path, signing_key: object) -> None:
    from minimirror.aptsources import init_from_apt
    from minimirror.signature import dearmor

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
