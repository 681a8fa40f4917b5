"""OpenPGP verification of upstream Release files, the way apt does it: ``gpgv`` with one keyring.

apt itself calls ``gpgv`` (apt-key's successor, ``apt-pkg/contrib/gpgv.cc``); so do we, with the source's key
as the only keyring, in a temporary directory: the user's ``~/.gnupg`` is never read or written. A clear-signed
``InRelease`` must be exactly one signed message (apt's ``SplitClearSignedFile`` rules): nothing but blank
lines before it, nothing after its signature. What we parse is what ``gpgv --output`` says was signed, never
the raw file, so text outside the signature cannot reach the parser.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from minimirror.errors import SignatureError

__all__ = ["Verified", "dearmor", "verify_clearsigned", "verify_detached"]

log = logging.getLogger(__name__)

_BEGIN_SIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIGNATURE = b"-----BEGIN PGP SIGNATURE-----"
_END_SIGNATURE = b"-----END PGP SIGNATURE-----"
_ARMOR = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


@dataclass(frozen=True, slots=True)
class Verified:
    """Signed content and the primary fingerprints of every key whose signature on it is valid."""

    content: bytes
    fingerprints: tuple[str, ...]


def dearmor(key: bytes, *, name: str) -> bytes:
    """A binary OpenPGP keyring from an armored or binary public key (``name`` is used in errors)."""
    if _ARMOR not in key:
        if not key or key[0] & 0x80 == 0:
            raise SignatureError(f"{name}: not an OpenPGP public key (neither armored nor binary)")
        return key
    with tempfile.TemporaryDirectory(prefix="minimirror-gpg-") as home:
        done = subprocess.run(
            ["gpg", "--homedir", home, "--batch", "--quiet", "--dearmor"],
            input=key,
            capture_output=True,
            check=False,
        )
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode(errors="replace").strip()
        raise SignatureError(f"{name}: cannot read the armored key: {detail}")
    return done.stdout


def verify_clearsigned(inrelease: bytes, keyring: bytes, *, name: str) -> Verified:
    """Verify a clear-signed file (``InRelease``) and return what was signed."""
    _check_single_clearsigned_message(inrelease, name)
    with tempfile.TemporaryDirectory(prefix="minimirror-gpgv-") as tmp:
        signed = Path(tmp) / "InRelease"
        signed.write_bytes(inrelease)
        output = Path(tmp) / "content"
        fingerprints = _gpgv(Path(tmp), keyring, ["--output", str(output), str(signed)], name)
        return Verified(content=output.read_bytes(), fingerprints=fingerprints)


def verify_detached(data: bytes, signature: bytes, keyring: bytes, *, name: str) -> Verified:
    """Verify ``Release`` against ``Release.gpg``."""
    with tempfile.TemporaryDirectory(prefix="minimirror-gpgv-") as tmp:
        data_path = Path(tmp) / "Release"
        data_path.write_bytes(data)
        sig_path = Path(tmp) / "Release.gpg"
        sig_path.write_bytes(signature)
        fingerprints = _gpgv(Path(tmp), keyring, [str(sig_path), str(data_path)], name)
        return Verified(content=data, fingerprints=fingerprints)


def _check_single_clearsigned_message(text: bytes, name: str) -> None:
    lines = text.splitlines()
    stripped = [line.rstrip() for line in lines]
    starts = [i for i, line in enumerate(stripped) if line == _BEGIN_SIGNED]
    if len(starts) != 1:
        found = "no" if not starts else f"{len(starts)}"
        raise SignatureError(f"{name}: expected one clear-signed message, found {found}")
    if any(line.strip() for line in stripped[: starts[0]]):
        raise SignatureError(f"{name}: text before the signed message is not allowed")
    if stripped.count(_BEGIN_SIGNATURE) != 1 or stripped.count(_END_SIGNATURE) != 1:
        raise SignatureError(f"{name}: expected exactly one signature block")
    end = stripped.index(_END_SIGNATURE)
    if any(line.strip() for line in stripped[end + 1 :]):
        raise SignatureError(f"{name}: unsigned text after the signature is not allowed")


def _gpgv(tmp: Path, keyring: bytes, args: list[str], name: str) -> tuple[str, ...]:
    keyring_path = tmp / "keyring.gpg"
    keyring_path.write_bytes(keyring)
    done = subprocess.run(
        ["gpgv", "--status-fd", "1", "--keyring", str(keyring_path), *args],
        capture_output=True,
        check=False,
    )
    status = done.stdout.decode(errors="replace").splitlines()
    valid = sorted({line.split()[-1] for line in status if line.startswith("[GNUPG:] VALIDSIG ")})
    bad = [line for line in status if line.startswith(("[GNUPG:] BADSIG", "[GNUPG:] EXPKEYSIG"))]
    if bad or not valid or done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else f"gpgv exited with {done.returncode}"
        raise SignatureError(
            f"{name}: signature does not verify with the source's key ({reason}). "
            "Check source_key_url; if the archive rotated its key, fetch the new one from a trusted place."
        )
    log.debug("%s: good signature by %s", name, ", ".join(valid))
    return tuple(valid)
