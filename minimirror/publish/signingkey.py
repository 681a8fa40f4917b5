"""Which key signs, from the seed's environment variables: ``$RELEASE_SIGN_KEY_PATH`` and
``$RELEASE_SIGN_KEY_PASSPHRASE``. The passphrase is read only from the environment and never shown: no option,
no notebook parameter (papermill writes those into the executed notebook), no ``repr``, no message.
Light on imports: the CLI reads the names at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KEY_ENV", "PASSPHRASE_ENV", "SigningChoice", "environment_passphrase", "signing_from_environment"]

KEY_ENV = "RELEASE_SIGN_KEY_PATH"
PASSPHRASE_ENV = "RELEASE_SIGN_KEY_PASSPHRASE"


@dataclass(frozen=True, slots=True)
class SigningChoice:
    """The key to sign with (None: unsigned) and its passphrase, which no repr or message shows."""

    key_path: Path | None
    passphrase: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        if self.key_path is None:
            return f"UNSIGNED: ${KEY_ENV} is not set (set it, and ${PASSPHRASE_ENV} if the key has one, to sign)"
        protected = f", passphrase from ${PASSPHRASE_ENV}" if self.passphrase else ""
        return f"signed with {self.key_path} (from ${KEY_ENV}{protected})"


def environment_passphrase(environ: Mapping[str, str] | None = None) -> str | None:
    """``$RELEASE_SIGN_KEY_PASSPHRASE``, or None when unset or empty."""
    return (os.environ if environ is None else environ).get(PASSPHRASE_ENV) or None


def signing_from_environment(environ: Mapping[str, str] | None = None) -> SigningChoice:
    """``$RELEASE_SIGN_KEY_PATH`` and ``$RELEASE_SIGN_KEY_PASSPHRASE``; unsigned when the key is unset or empty."""
    key = (os.environ if environ is None else environ).get(KEY_ENV) or None
    if key is None:
        return SigningChoice(None)
    return SigningChoice(Path(key), environment_passphrase(environ))
