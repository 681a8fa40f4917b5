"""Signing a published ``Release`` (Debian RepositoryFormat: ``InRelease``, ``Release.gpg``) and making signing keys.

OpenPGP (RFC 4880) through python-gnupg, always in a temporary GnuPG home of our own (mode 0700, under the
system temporary directory so the agent's socket path stays short): the user's ``~/.gnupg`` is never read or
written. The home's ``gpg-agent`` is killed and the home deleted when the signer closes, also on error.

The passphrase only ever reaches gpg through python-gnupg's passphrase channel (``--passphrase-fd 0`` with
``--pinentry-mode loopback``): it is never an argument, never logged, never written to a file.

Signatures are made with ``--faked-system-time T!`` and ``--digest-algo SHA512``. Ed25519 (and RSA PKCS#1 v1.5)
signatures are a function of the key, the data and the signature time, so a fixed ``T`` gives byte-identical
``InRelease`` and ``Release.gpg``. ``T`` is ``SOURCE_DATE_EPOCH``, or the key's creation time when the key is
newer than that (gpg and apt refuse a signature older than its key); either way a function of the inputs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gnupg

from minimirror.atomic import write_atomically
from minimirror.errors import SignatureError, UsageError
from minimirror.upstream.signature import verify_clearsigned, verify_detached

__all__ = [
    "GeneratedKey",
    "GpgSigner",
    "Signer",
    "generate_key",
    "open_signer",
    "read_secret_key",
    "write_generated_key",
]

log = logging.getLogger(__name__)

DEFAULT_UID = "minimirror release signing key"
_SECRET_ARMOR = b"-----BEGIN PGP PRIVATE KEY BLOCK-----"
_UID = re.compile(r"\s*(?P<name>[^<>]*?)\s*(?:<(?P<email>[^<>\s]+)>)?\s*\Z")
_TIMEOUT = 60


class Signer(Protocol):
    """What the publisher needs from a signer: two signatures and the public key to ship."""

    @property
    def fingerprint(self) -> str: ...

    def clearsign(self, data: bytes) -> bytes: ...

    def detach_sign(self, data: bytes) -> bytes: ...

    def public_key(self, *, armor: bool) -> bytes: ...


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A new signing key: the armored secret (protected when a passphrase was given) and public halves."""

    fingerprint: str
    secret_armored: bytes
    public_armored: bytes


def read_secret_key(path: Path) -> bytes:
    """The armored secret key at ``path``; a clear error when it is missing or not a secret key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(
            f"{path}: no such signing key; give --sign-key FILE or $RELEASE_SIGN_KEY_PATH "
            "(create one with `minimirror key generate --out FILE`)"
        ) from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the signing key: {exc.strerror}") from exc
    if _SECRET_ARMOR not in data:
        raise UsageError(f"{path}: not an armored OpenPGP secret key (expected {_SECRET_ARMOR.decode()})")
    return data


class GpgSigner:
    """Signs with one secret key, imported into a private GnuPG home; use through :func:`open_signer`."""

    def __init__(self, gpg: gnupg.GPG, fingerprint: str, passphrase: str | None, *, name: str, at: int) -> None:
        self._gpg = gpg
        self._fingerprint = fingerprint
        self._passphrase = passphrase
        self._name = name
        self._at = at

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def clearsign(self, data: bytes) -> bytes:
        """``data`` clear-signed: an ``InRelease``."""
        return self._sign(data, clearsign=True)

    def detach_sign(self, data: bytes) -> bytes:
        """An armored detached signature of ``data``: a ``Release.gpg``."""
        return self._sign(data, clearsign=False)

    def public_key(self, *, armor: bool) -> bytes:
        """The public key, armored (``.asc``) or binary (``.gpg``, for apt's ``signed-by=``)."""
        exported: Any = self._gpg.export_keys(self._fingerprint, armor=armor, minimal=True)
        data = exported.encode("ascii") if isinstance(exported, str) else bytes(exported)
        if not data:
            raise SignatureError(f"{self._name}: gpg exported no public key for {self._fingerprint}")
        return data

    def _sign(self, data: bytes, *, clearsign: bool) -> bytes:
        _outside_second(self._at)
        result = self._gpg.sign(
            data,
            keyid=self._fingerprint,
            passphrase=self._passphrase,
            clearsign=clearsign,
            detach=not clearsign,
            extra_args=["--digest-algo", "SHA512"],
        )
        if not result.data or result.status != "signature created":
            raise SignatureError(_sign_failure(self._name, str(result.stderr or ""), self._passphrase is not None))
        return bytes(result.data)


# gpg honours --faked-system-time=T! only when T is not the second it starts in: for that second it keeps the real
# clock (GnuPG's gnupg_set_time: "current == newtime" means no time warp), so a signature begun at the end of
# second T can carry T+1. T is the key's creation time when the key is newer than SOURCE_DATE_EPOCH, so signing
# right after `minimirror key generate` met it, and two publishes of the same inputs differed in their signatures.
_MARGIN = 5  # seconds before T in which a gpg started now could still reach second T on a slow, loaded machine


def _outside_second(at: int) -> None:
    """Wait until the clock is past second ``at`` when it is at, or close before, it (at most ``_MARGIN`` + 1 s;
    only for a key made this very second or a SOURCE_DATE_EPOCH of now)."""
    while at - _MARGIN <= (now := time.time()) < at + 1:  # ends: the clock reaches at + 1
        time.sleep(at + 1 - now + 0.01)


def _sign_failure(name: str, stderr: str, had_passphrase: bool) -> str:
    if re.search(r"passphrase|pinentry|ioctl", stderr, flags=re.IGNORECASE):
        hint = "wrong" if had_passphrase else "missing"
        return f"{name}: cannot sign: {hint} passphrase; set $RELEASE_SIGN_KEY_PASSPHRASE to the key's passphrase"
    failed = [line for line in stderr.splitlines() if line.startswith("gpg:") and "failed" in line]
    detail = failed[-1] if failed else "no signature produced"
    return f"{name}: gpg could not sign ({detail}); check that the file holds a signing key"


@contextmanager
def open_signer(secret_key: bytes, *, epoch: int, passphrase: str | None, name: str) -> Iterator[GpgSigner]:
    """A signer for ``secret_key`` signing at ``max(epoch, key creation)``; the GnuPG home is removed on exit.

    ``name`` (the key file) is used in errors. The signer's output is verified with ``gpgv`` before use.
    """
    if passphrase is not None and ("\n" in passphrase or "\r" in passphrase):
        raise UsageError("$RELEASE_SIGN_KEY_PASSPHRASE must be one line (gpg reads it up to a newline)")
    with _private_home(cheap_s2k=True) as home:
        fingerprint, created = _import(home, secret_key, passphrase, name)
        at = max(epoch, created)
        if at != epoch:
            log.info("%s was created after SOURCE_DATE_EPOCH; signing at its creation time %d", name, at)
        gpg = _gpg(home, [f"--faked-system-time={at}!"])
        signer = GpgSigner(gpg, fingerprint, passphrase or None, name=name, at=at)
        _self_check(signer, name)
        yield signer


def _self_check(signer: GpgSigner, name: str) -> None:
    """Sign a probe and verify it as apt would (gpgv, the exported key only): fails early on a broken key."""
    keyring = signer.public_key(armor=False)
    probe = b"minimirror signing probe\n"
    verify_clearsigned(signer.clearsign(probe), keyring, name=f"{name} (self-check)")
    verify_detached(probe, signer.detach_sign(probe), keyring, name=f"{name} (self-check)")


def _gpg(home: Path, options: list[str] | None = None) -> gnupg.GPG:
    # loopback always: without a passphrase gpg must fail at once, never pop up a pinentry on the terminal
    base = ["--no-tty", "--pinentry-mode", "loopback"]
    gpg = gnupg.GPG(gnupghome=str(home), options=[*base, *(options or [])], encoding="utf-8")
    gpg.encoding = "utf-8"
    return gpg


_HOME_PREFIX = "mm-gpg-"
_OWNER = "owner.pid"


@contextmanager
def _private_home(*, cheap_s2k: bool) -> Iterator[Path]:
    _sweep_abandoned_homes(Path(tempfile.gettempdir()))
    home = Path(tempfile.mkdtemp(prefix=_HOME_PREFIX))
    (home / _OWNER).write_text(f"{os.getpid()}\n")
    try:
        if cheap_s2k:
            # The agent re-protects imported keys; this home is deleted at the end, so a cheap S2K is enough here
            # (otherwise each signature with a passphrase-protected key costs ~0.5 s of key stretching). Never
            # for a key that is exported: that keeps gpg's calibrated S2K.
            (home / "gpg-agent.conf").write_text("s2k-count 65536\n")
        yield home
    finally:
        _stop_and_remove(home)


def _stop_and_remove(home: Path) -> None:
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False, timeout=_TIMEOUT
    )
    shutil.rmtree(home, ignore_errors=True)


def _sweep_abandoned_homes(parent: Path) -> list[Path]:
    """Stop the agent of, and remove, every GnuPG home a killed signer left behind (its owner pid is gone).

    A signer killed with SIGKILL cannot clean up: its home holds the imported secret key and its agent keeps
    running. The next signer on the machine removes such homes; only ours (our prefix, an owner.pid, our uid).
    """
    removed = []
    for home in sorted(parent.glob(f"{_HOME_PREFIX}*")):
        try:
            if home.stat().st_uid != os.getuid():
                continue
            pid = int((home / _OWNER).read_text().strip())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        _stop_and_remove(home)
        log.warning("removed %s, a signing home left by a killed run (pid %d)", home, pid)
        removed.append(home)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _import(home: Path, secret_key: bytes, passphrase: str | None, name: str) -> tuple[str, int]:
    """Import the key; return its primary fingerprint and the newest creation time of its (sub)keys."""
    gpg = _gpg(home)
    result = gpg.import_keys(secret_key, passphrase=passphrase or None)
    secrets: list[dict[str, Any]] = list(gpg.list_keys(secret=True))
    if not secrets:
        detail = "; ".join(str(r.get("text", "")).strip() for r in result.results) or "nothing imported"
        raise UsageError(f"{name}: holds no usable OpenPGP secret key ({detail})")
    if len(secrets) > 1:
        raise UsageError(f"{name}: holds {len(secrets)} secret keys; give a file with exactly one")
    key = secrets[0]
    dates = [int(key["date"]), *(int(info["date"]) for info in key.get("subkey_info", {}).values())]
    return str(key["fingerprint"]), max(dates)


# --- key generation -------------------------------------------------------------------------------------


def generate_key(uid: str = DEFAULT_UID, *, passphrase: str | None = None) -> GeneratedKey:
    """A new Ed25519 signing key that never expires, protected by ``passphrase`` when given."""
    match = _UID.match(uid)
    if not uid.strip() or match is None or not match.group("name"):
        raise UsageError(f"--uid {uid!r}: expected 'Name' or 'Name <email>'")
    if passphrase is not None and ("\n" in passphrase or "\r" in passphrase):
        raise UsageError("$RELEASE_SIGN_KEY_PASSPHRASE must be one line (gpg reads it up to a newline)")
    with _private_home(cheap_s2k=False) as home:
        gpg = _gpg(home)
        lines = ["Key-Type: EDDSA", "Key-Curve: ed25519", "Key-Usage: sign", f"Name-Real: {match.group('name')}"]
        if match.group("email"):
            lines.append(f"Name-Email: {match.group('email')}")
        lines += ["Expire-Date: 0", f"Passphrase: {passphrase}" if passphrase else "%no-protection", "%commit"]
        generated = gpg.gen_key("\n".join(lines) + "\n")
        fingerprint = str(generated.fingerprint or "")
        if not fingerprint:
            raise SignatureError(f"gpg could not generate a key: {generated.status or generated.stderr}")
        secret: Any = gpg.export_keys(
            fingerprint, secret=True, armor=True, passphrase=passphrase or None, expect_passphrase=bool(passphrase)
        )
        public: Any = gpg.export_keys(fingerprint, armor=True)
    return GeneratedKey(fingerprint, str(secret).encode("ascii"), str(public).encode("ascii"))


def write_generated_key(out: Path, key: GeneratedKey, *, force: bool = False) -> tuple[Path, Path]:
    """Write the secret to ``out`` (mode 0600) and the public key to ``out.pub.asc``; return both paths."""
    public_path = out.with_name(out.name + ".pub.asc")
    if not force:
        for path in (out, public_path):
            if path.exists():
                raise UsageError(f"{path}: already exists; choose another --out (a key is never overwritten)")
    write_atomically(out, key.secret_armored, mode=0o600, durable=True)
    write_atomically(public_path, key.public_armored, durable=True)
    return out, public_path
