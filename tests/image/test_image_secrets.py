"""Issue 8.4 for the image stage: ``build --image`` signs with a passphrase-protected key and the image keeps no secret.

``minimirror -vv build --image OUT`` (the key from ``--sign-key``, or ``$RELEASE_SIGN_KEY_PATH``) runs in a child
for both formats, with ``RELEASE_SIGN_KEY_PASSPHRASE`` set and ``TMPDIR`` a folder of the test's own. Then the
passphrase (raw, base64 padded and not, hex lower and upper case), the armor header of a secret key and a line of
the secret key's own armored body are looked for in what it printed, in every blob of the OCI layout (every gzip
layer is unpacked and every file of it read: the OCI image-spec's layer format), in the config, manifest and index,
in the SBOM beside the image and inside it, and in the docker-archive and each of its uncompressed layers.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.gpgkeys import SigningKey, generate_signing_key
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_image import EPOCH, Mirror, busybox_bytes, mirror_packages
from test_secrets import PASSPHRASE, forms

SECRET_ARMOR = b"-----BEGIN PGP PRIVATE KEY BLOCK-----"


@pytest.fixture(scope="module")
def protected_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    key = generate_signing_key(tmp_path_factory.mktemp("protected"), name="Protected Key", passphrase=PASSPHRASE)
    yield key
    key.close()


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


def secrets_of(key: SigningKey) -> tuple[bytes, ...]:
    """The passphrase's forms, the secret-key armor header and one body line of the secret key."""
    body = [line for line in key.secret_key_armored.splitlines() if len(line) >= 60]
    return (*forms(PASSPHRASE), SECRET_ARMOR, body[len(body) // 2].encode())


def unpacked(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """``data`` itself, and every file inside it when it is a tar or a gzip of one, recursively."""
    yield name, data
    if data[:2] == b"\x1f\x8b":
        yield from unpacked(f"{name}!gunzip", gzip.decompress(data))
        return
    if len(data) >= 512 and data[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    yield from unpacked(f"{name}!{member.name}", handle.read())


def found(root: Path, secrets: tuple[bytes, ...]) -> tuple[list[str], int]:
    """Where any secret occurs under ``root`` (a file or a folder), and how many files were read."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    hits, read = [], 0
    for path in files:
        for name, data in unpacked(str(path), path.read_bytes()):
            read += 1
            hits += [f"{name}: {secret[:12]!r}" for secret in secrets if secret in data or secret in name.encode()]
    return hits, read


def test_the_scan_finds_a_planted_passphrase_in_a_layer(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:") as archive:
        data = PASSPHRASE.encode().hex().encode()
        info = tarfile.TarInfo("srv/leak")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (tmp_path / "blob").write_bytes(gzip.compress(raw.getvalue()))
    hits, _ = found(tmp_path, forms(PASSPHRASE))
    assert any("srv/leak" in hit for hit in hits)


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_build_image_with_a_protected_key_keeps_no_secret_in_the_image(
    mirror: Mirror, protected_key: SigningKey, tmp_path: Path, fmt: str
) -> None:
    key_file = tmp_path / "release.key"
    key_file.write_text(protected_key.secret_key_armored)
    tmpdir, public = tmp_path / "tmp", tmp_path / "public"
    tmpdir.mkdir()
    out = tmp_path / ("image" if fmt == "oci" else "image.tar")
    where = ["--locks", str(mirror.locks), "--cache", str(mirror.cache), "--out", str(public)]
    args = ["-vv", "build", *where, "--image", str(out), "--format", fmt]
    env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "TMPDIR": str(tmpdir), "SOURCE_DATE_EPOCH": str(EPOCH)}
    env["RELEASE_SIGN_KEY_PASSPHRASE"] = PASSPHRASE
    if fmt == "oci":  # the key both ways: as an option, and from the environment
        args += ["--sign-key", str(key_file)]
    else:
        env["RELEASE_SIGN_KEY_PATH"] = str(key_file)
    done = subprocess.run([sys.executable, "-m", "minimirror", *args], env=env, capture_output=True, check=False)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed.decode(errors="replace")
    secrets = secrets_of(protected_key)
    assert not [s for s in secrets if s in printed], "the run printed a secret"
    assert (public / "fixture" / "dists" / "stable" / "InRelease").is_file()  # it did sign
    hits, read = found(out, secrets)
    sbom_hits, _ = found(out.with_name(out.name + ".spdx.json"), secrets)
    assert hits + sbom_hits == []
    tmp_hits, _ = found(tmpdir, secrets)
    assert tmp_hits == []
    print(f"{fmt}: {read} files and members read (layers unpacked), no secret found")
    assert read > 20  # the layers were unpacked, not only the outer files read
