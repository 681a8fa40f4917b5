"""Signing (``minimirror.publish.sign``), ``minimirror key generate`` and reading a .deb's control stanza."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures import FixturePackage, build_deb

from minimirror.cli import main
from minimirror.errors import IntegrityError, SignatureError, UsageError
from minimirror.publish.sign import open_signer, read_secret_key
from minimirror.upstream.debfile import parse_control, read_control
from minimirror.upstream.signature import verify_clearsigned, verify_detached

EPOCH = 1_717_200_000


def test_key_generate_writes_a_private_secret_and_a_public_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELEASE_SIGN_KEY_PASSPHRASE", "s3cret words")
    out = tmp_path / "keys" / "release.key"
    assert main(["key", "generate", "--out", str(out), "--uid", "Mirror Team <mirror@archive.example>"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    public = Path(f"{out}.pub.asc").read_text()
    assert public.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "s3cret" not in capsys.readouterr().out + out.read_text()
    assert main(["key", "generate", "--out", str(out)]) == 2  # never overwrites a key
    assert "already exists" in capsys.readouterr().err
    secret = read_secret_key(out)
    with (
        pytest.raises(SignatureError, match="missing passphrase"),
        open_signer(secret, epoch=EPOCH, passphrase=None, name=str(out)),
    ):
        pass
    with open_signer(secret, epoch=EPOCH, passphrase="s3cret words", name=str(out)) as signer:
        keyring = signer.public_key(armor=False)
        signed = signer.clearsign(b"Origin: test\n")
    assert verify_clearsigned(signed, keyring, name="InRelease").content == b"Origin: test\n"


def test_signatures_are_deterministic_and_verify(tmp_path: Path) -> None:
    assert main(["-q", "key", "generate", "--out", str(tmp_path / "k")]) == 0
    secret = read_secret_key(tmp_path / "k")
    data = b"Suite: stable\nDate: Sat, 01 Jun 2024 00:00:00 UTC\n"
    outputs = []
    for _ in range(2):
        with open_signer(secret, epoch=EPOCH, passphrase=None, name="k") as signer:
            outputs.append((signer.clearsign(data), signer.detach_sign(data), signer.public_key(armor=False)))
    assert outputs[0] == outputs[1]
    inrelease, detached, keyring = outputs[0]
    assert b"Hash: SHA512" in inrelease
    assert verify_detached(data, detached, keyring, name="Release.gpg").fingerprints


def _signature_time(signature: bytes) -> int:
    packets = subprocess.run(["gpg", "--list-packets"], input=signature, capture_output=True, check=True).stdout
    return int(re.findall(rb"created (\d+)", packets)[0])


def test_no_signature_is_begun_in_the_second_it_is_dated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gpg keeps the real clock when --faked-system-time names the second it starts in, so a signature begun late
    in that second is dated a second later (this test's sibling above failed so, once in CI): no gpg signs then."""
    import gnupg

    assert main(["-q", "key", "generate", "--out", str(tmp_path / "k")]) == 0
    secret = read_secret_key(tmp_path / "k")
    begun: list[float] = []
    real_sign = gnupg.GPG.sign

    def noted(self: gnupg.GPG, *args: Any, **kwargs: Any) -> Any:
        begun.append(time.time())
        return real_sign(self, *args, **kwargs)

    monkeypatch.setattr(gnupg.GPG, "sign", noted)
    at = int(time.time()) + 2  # SOURCE_DATE_EPOCH two seconds ahead, newer than the key
    with open_signer(secret, epoch=at, passphrase=None, name="k") as signer:
        time.sleep(max(0.0, at - time.time()) + 0.2)  # the clock now in second `at`
        signature = signer.detach_sign(b"Suite: stable\n")
    assert begun and all(int(moment) != at for moment in begun)
    assert _signature_time(signature) == at


def test_not_a_secret_key_is_refused(tmp_path: Path) -> None:
    public = tmp_path / "pub.asc"
    public.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n-----END PGP PUBLIC KEY BLOCK-----\n")
    with pytest.raises(UsageError, match="not an armored OpenPGP secret key"):
        read_secret_key(public)
    with pytest.raises(UsageError, match="no such signing key"):
        read_secret_key(tmp_path / "absent.key")


def test_read_control_from_a_real_deb(tmp_path: Path) -> None:
    package = FixturePackage("tool", "1:2.0-1", depends="libc (>= 2)", description="short\n long line\n .\n more")
    deb = build_deb(package, tmp_path)
    control = read_control(deb)
    assert control.identity == ("tool", "1:2.0-1", "amd64")
    assert control.get("depends") == "libc (>= 2)"
    assert control.get("Description") == "short\n long line\n .\n more"


def test_parse_control_refuses_malformed_stanzas() -> None:
    with pytest.raises(IntegrityError, match="twice"):
        parse_control(b"Package: a\nVersion: 1\nArchitecture: all\npackage: b\n", name="x.deb")
    with pytest.raises(IntegrityError, match="no valid Version"):
        parse_control(b"Package: a\nArchitecture: all\n", name="x.deb")
    with pytest.raises(IntegrityError, match="not a Debian package"):
        read_control(Path(__file__), name="x.deb")


def test_a_signing_home_left_by_a_killed_run_is_removed_with_its_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing_key: object
) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    probe = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = subprocess.run(probe, capture_output=True, text=True, check=True)  # its pid is free once it exits
    stale = tmp_path / "mm-gpg-killedrun"
    stale.mkdir(mode=0o700)
    (stale / "owner.pid").write_text(dead.stdout)
    subprocess.run(["gpgconf", "--homedir", str(stale), "--launch", "gpg-agent"], check=True, capture_output=True)
    agent = subprocess.run(["pgrep", "-f", f"gpg-agent.*{stale}"], capture_output=True, text=True, check=False)
    assert agent.stdout.strip(), "the test could not start an agent in the stale home"
    alive = tmp_path / "mm-gpg-running"
    alive.mkdir(mode=0o700)
    (alive / "owner.pid").write_text(f"{os.getppid()}\n")  # a live process: its home is left alone
    secret = signing_key.secret_key_armored.encode()  # type: ignore[attr-defined]
    with open_signer(secret, epoch=EPOCH, passphrase=None, name="key") as signer:
        assert signer.fingerprint
    assert not stale.exists() and alive.exists()
    assert subprocess.run(["pgrep", "-f", f"gpg-agent.*{stale}"], capture_output=True, check=False).returncode == 1
    assert sorted(p.name for p in tmp_path.glob("mm-gpg-*")) == ["mm-gpg-running"]  # the signer's own home is gone
