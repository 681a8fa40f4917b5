"""``minimirror publish``: a signed, reproducible APT repository from the locks and the cache, judged by apt."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import replace
from pathlib import Path

import pytest
from debian.deb822 import Deb822
from fixtures import FixturePackage as P
from fixtures import dose_distcheck
from fixtures.archive import FixtureArchive
from fixtures.gpgkeys import SigningKey, generate_signing_key
from fixtures.plugin import AptFactory, ArchiveFactory, ServerFactory
from fixtures.server import LoopbackServer

from minimirror.cli import main
from minimirror.errors import IntegrityError, MinimirrorError
from minimirror.lock.lockfile import Lock, LockedPackage, read_lock, read_locks
from minimirror.publish.packages_index import DebInfo
from minimirror.publish.repository import (
    PublishError,
    PublishOptions,
    ReleaseOverrides,
    plan_publish,
    plan_repository,
    write_tree,
)
from minimirror.upstream.cache import Cache
from minimirror.upstream.debfile import ControlStanza, read_control

PACKAGES = [
    P("web", "1.0", depends="libssl (>= 3), webcommon", source="web-src (1.0)", description="a web server\n long text"),
    P("webcommon", "1.0", architecture="all", source="web-src (1.0)"),
    P("libssl", "3.0.1"),
    P("libssl", "3.0.2"),
    P("shell", "5.2", depends="libc"),
    P("libc", "2.37"),
]
EPOCH = 1_717_200_000  # the fixture archive's Date


class Work:
    """A locked fixture source, its cache filled from the archive's pool, and the publish arguments."""

    def __init__(self, root: Path, archive: FixtureArchive, server: LoopbackServer, key: SigningKey) -> None:
        assert archive.key is not None
        self.root, self.archive = root, archive
        source = root / "sources" / "fixture" / "stable"
        source.mkdir(parents=True)
        (source / "source.txt").write_text(f"{server.url} file://{archive.key.public_key_asc_path} stable main\n")
        (source / "packages.txt").write_text("web\nshell\n")
        self.locks, self.cache, self.out = root / "locks", root / "cache", root / "public"
        lock_args = ["lock", "--sources", str(root / "sources"), "--locks", str(self.locks), "--cache", str(self.cache)]
        assert main(lock_args) == 0
        self.key_file = root / "release.key"
        self.key_file.write_text(key.secret_key_armored)
        self.fill_cache()

    def fill_cache(self, cache: Path | None = None, *, reverse: bool = False) -> None:
        packages = sorted(read_lock(self.locks / "fixture" / "stable.lock").packages, key=lambda p: p.sha256)
        for package in reversed(packages) if reverse else packages:
            Cache(cache or self.cache).put_blob((self.archive.root / package.filename).read_bytes())

    def args(self, *extra: str, out: Path | None = None, cache: Path | None = None) -> list[str]:
        where = ["--locks", str(self.locks), "--cache", str(cache or self.cache), "--out", str(out or self.out)]
        return ["publish", *where, *extra]


@pytest.fixture
def work(
    tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory, signing_key: SigningKey
) -> Work:
    archive = fixture_archive_factory({"main": PACKAGES})
    return Work(tmp_path, archive, http_server(archive.root), signing_key)


def tree_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root``: bytes and mode; directories by mode only."""
    found: dict[str, tuple[bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() else b"<dir>"
        found[str(path.relative_to(root))] = (data, path.stat().st_mode & 0o7777)
    return found


def test_apt_accepts_the_signed_repository_and_downloads_every_package(
    work: Work, http_server: ServerFactory, private_apt: AptFactory
) -> None:
    assert main(work.args("--sign-key", str(work.key_file))) == 0
    server = http_server(work.out / "fixture")
    apt = private_apt()
    apt.add_repository(server.url, "stable", ["main"], signed_by=work.out / "signing-key.gpg")
    apt.update()  # fails on any W:/E:/Err: line
    locked = read_lock(work.locks / "fixture" / "stable.lock").packages
    names = sorted({p.name for p in locked})
    downloaded = apt.download([f"{p.name}={p.version}" for p in locked], work.root / "dl")
    assert sorted(p.name.split("_")[0] for p in downloaded) == sorted(p.name for p in locked)
    assert apt.simulate_install(["web"]) == {
        ("web", "1.0", "amd64"), ("webcommon", "1.0", "all"), ("libssl", "3.0.2", "amd64")
    }  # fmt: skip
    packages = work.out / "fixture/dists/stable/main/binary-amd64/Packages"
    assert dose_distcheck(packages) == []
    assert main(["verify", str(work.out)]) == 0  # signatures, every hash, by-hash copies, dependencies
    assert names == ["libc", "libssl", "shell", "web", "webcommon"]


def test_release_and_indices(work: Work) -> None:
    assert main(work.args("--sign-key", str(work.key_file))) == 0
    dist = work.out / "fixture/dists/stable"
    release = Deb822((dist / "Release").read_text())
    assert release["Date"] == "Sat, 01 Jun 2024 00:00:00 UTC"
    assert (release["Origin"], release["Suite"], release["Codename"]) == ("Fixture", "stable", "stable")
    assert (release["Acquire-By-Hash"], release["No-Support-for-Architecture-all"]) == ("yes", "Packages")
    assert (release["Architectures"], release["Components"]) == ("amd64", "main")
    listed = {line.split()[2]: line.split()[0] for line in release["SHA256"].strip().splitlines()}
    assert sorted(listed) == [f"main/binary-amd64/{n}" for n in ("Packages", "Packages.gz", "Packages.xz", "Release")]
    for rel, sha in listed.items():
        assert (dist / rel).is_file()
        if "Packages" in rel:
            assert (dist / "main/binary-amd64/by-hash/SHA256" / sha).read_bytes() == (dist / rel).read_bytes()
    text = (dist / "main/binary-amd64/Packages").read_text()
    stanzas = [Deb822(s) for s in text.split("\n\n")]
    assert [(s["Package"], s["Version"]) for s in stanzas] == [
        ("libc", "2.37"), ("libssl", "3.0.2"), ("shell", "5.2"), ("web", "1.0"), ("webcommon", "1.0")
    ]  # fmt: skip
    web = stanzas[3]
    assert list(web)[:2] == ["Package", "Source"] and list(web)[-4:] == ["Filename", "Size", "MD5sum", "SHA256"]
    assert web["Description"] == "a web server\n long text"
    assert (dist / "main/binary-amd64/Release").read_text().splitlines()[-2:] == [
        "Component: main",
        "Architecture: amd64",
    ]
    assert (work.out / "signing-key.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_byte_identical_under_another_umask_tz_locale_and_cache_order(work: Work) -> None:
    assert main(work.args("--sign-key", str(work.key_file))) == 0
    other_cache, other_out = work.root / "cache2", work.root / "public2"
    work.fill_cache(other_cache, reverse=True)
    env = {**os.environ, "TZ": "Pacific/Kiritimati", "LC_ALL": "C", "LANG": "fr_FR.UTF-8"}
    env["RELEASE_SIGN_KEY_PATH"] = str(work.key_file)
    script = (
        "import os, sys, runpy; os.umask(0o077); sys.argv = ['minimirror', *sys.argv[1:]]; "
        "runpy.run_module('minimirror', run_name='__main__')"
    )
    cmd = [sys.executable, "-c", script, *work.args(out=other_out, cache=other_cache)]
    done = subprocess.run(cmd, env=env, cwd=work.root, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    first, second = tree_files(work.out), tree_files(other_out)
    assert sorted(first) == sorted(second)
    assert [path for path in first if first[path] != second[path]] == []
    assert all(mode in (0o644, 0o755) for _, mode in first.values())


def test_a_killed_publish_leaves_the_previous_tree_whole(work: Work) -> None:
    assert main(work.args("--no-sign")) == 0
    before = tree_files(work.out)
    cmd = [sys.executable, "-m", "minimirror", *work.args("--sign-key", str(work.key_file))]
    started = time.monotonic()
    subprocess.run(cmd, capture_output=True, check=True, timeout=120)  # a whole run, to time the kill points
    full = time.monotonic() - started
    assert main(work.args("--no-sign")) == 0
    hit_mid_write = 0
    gpg_homes_before = set(Path(tempfile.gettempdir()).glob("mm-gpg-*"))
    for when in ("staging", 0.6, 0.8, 0.9, 0.97):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if when == "staging":  # the moment the new tree starts being written
                deadline = time.monotonic() + 30
                while not list(work.root.glob("public.new-*")) and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.001)
            else:
                time.sleep(full * float(when))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            _remove_gnupg_homes_left_by_kill(gpg_homes_before)
        hit_mid_write += bool(list(work.root.glob("public.new-*")))
        now = tree_files(work.out)
        assert now == before or (work.out / "fixture/dists/stable/InRelease").is_file(), "neither old nor new tree"
        assert main(work.args("--no-sign")) == 0  # cleans up, and resets to the unsigned tree
        assert tree_files(work.out) == before
    assert hit_mid_write >= 1
    assert main(work.args("--sign-key", str(work.key_file))) == 0
    assert (work.out / "fixture/dists/stable/InRelease").is_file()
    assert sorted(p.name for p in work.root.iterdir() if p.name.startswith("public")) == ["public"]


def _remove_gnupg_homes_left_by_kill(before: set[Path]) -> None:
    """A publish killed while signing cannot remove its GnuPG home or stop its agent; do it for it."""
    for home in set(Path(tempfile.gettempdir()).glob("mm-gpg-*")) - before:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_interrupted_between_renames_is_restored(work: Work) -> None:
    assert main(work.args("--no-sign")) == 0
    before = tree_files(work.out)
    work.out.rename(work.root / "public.old-0123")
    (work.root / "public.new-4567" / "half").mkdir(parents=True)
    plan = plan_publish(read_locks(work.locks), Cache(work.cache), PublishOptions())
    write_tree(plan, work.out)
    assert tree_files(work.out) == before
    assert sorted(p.name for p in work.root.iterdir() if p.name.startswith("public")) == ["public"]


def test_passphrase_protected_key_signs_and_the_passphrase_leaks_nowhere(
    work: Work, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "correct horse battery staple 42"
    key = generate_signing_key(tmp_path, name="Protected", passphrase=secret)
    try:
        protected = tmp_path / "protected.key"
        protected.write_text(key.secret_key_armored)
        monkeypatch.setenv("RELEASE_SIGN_KEY_PASSPHRASE", secret)
        assert main(["-vv", *work.args("--sign-key", str(protected))]) == 0
        output = capfd.readouterr()
        assert secret not in output.out + output.err
        for path in work.out.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes()
        assert key.fingerprint in output.out
        monkeypatch.setenv("RELEASE_SIGN_KEY_PASSPHRASE", "wrong")
        assert main(work.args("--sign-key", str(protected))) == 2
        err = capfd.readouterr().err
        assert "wrong passphrase" in err and "Traceback" not in err
    finally:
        key.close()


def test_no_sign_warns_and_neither_flag_is_a_usage_error(
    work: Work, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RELEASE_SIGN_KEY_PATH", raising=False)
    assert main(work.args()) == 2
    assert "give --sign-key FILE" in capsys.readouterr().err and not work.out.exists()
    assert main(work.args("--no-sign", "--sign-key", str(work.key_file))) == 2
    assert "not both" in capsys.readouterr().err
    assert main(work.args("--no-sign")) == 0
    assert "UNSIGNED" in capsys.readouterr().err
    assert not (work.out / "fixture/dists/stable/InRelease").exists()
    monkeypatch.setenv("RELEASE_SIGN_KEY_PATH", str(work.key_file))
    assert main(work.args()) == 0
    assert (work.out / "fixture/dists/stable/InRelease").exists()


def test_missing_pool_files_name_the_files_and_fetch(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(work.cache / "blobs")
    assert main(work.args("--no-sign", "--no-fetch")) == 2
    err = capsys.readouterr().err
    assert "run `minimirror fetch`" in err and "pool/main/w/web-src/web_1.0_amd64.deb" in err


def test_publish_fetches_what_the_cache_lacks(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(work.cache / "blobs")
    assert main(work.args("--no-sign")) == 0
    assert "downloaded 5 files" in capsys.readouterr().out
    assert (work.out / "fixture/pool/main/w/web-src/web_1.0_amd64.deb").is_file()


def test_hostile_pool_path_is_refused(work: Work) -> None:
    (lock,) = read_locks(work.locks)
    first = replace(lock.packages[0], filename="pool/../../../etc/evil.deb")
    hostile = replace(lock, packages=(first, *lock.packages[1:]))
    with pytest.raises(PublishError, match="could leave the published tree"):
        plan_publish([hostile], Cache(work.cache), PublishOptions())


def test_two_dists_share_one_pool_and_overrides_apply(work: Work) -> None:
    (lock,) = read_locks(work.locks)
    other = replace(lock, source=replace(lock.source, id="fixture/testing", dist="testing"))
    options = PublishOptions(
        epoch=EPOCH + 60, overrides={"fixture/testing": ReleaseOverrides(origin="Ours", codename="t")}
    )
    plan = plan_publish([lock, other], Cache(work.cache), options)
    releases = {d.dist: Deb822(plan.file(d.release).data.decode()) for d in plan.dists}  # type: ignore[union-attr]
    assert (releases["testing"]["Origin"], releases["testing"]["Codename"]) == ("Ours", "t")
    assert (releases["stable"]["Origin"], releases["stable"]["Date"]) == ("Fixture", "Sat, 01 Jun 2024 00:01:00 UTC")
    pool = [f.path for f in plan.all_files() if "/pool/" in f.path]
    assert len(pool) == len(lock.packages) and all(p.startswith("fixture/pool/") for p in pool)
    clash = replace(other.packages[0], sha256="0" * 64)
    with pytest.raises(MinimirrorError):
        plan_publish([lock, replace(other, packages=(clash, *other.packages[1:]))], Cache(work.cache), options)


def test_a_cache_blob_unlike_its_lock_entry_is_refused_before_anything_is_written(work: Work) -> None:
    """The cache is trusted only as far as the lock vouches for it: each .deb's size and sha256, and the identity
    its control file gives, are checked against the lock; a blob absent or of another size is named as missing."""
    (lock,) = read_locks(work.locks)
    cache = Cache(work.cache)
    web = next(p for p in lock.packages if p.name == "web")
    blob = cache.blob_path(web.sha256)
    original = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(bytes(len(original)))  # same size, other bytes
    with pytest.raises(IntegrityError, match=r"web_1\.0_amd64\.deb .*differ from fixture/stable's lock"):
        plan_publish([lock], cache, PublishOptions())
    blob.write_bytes(original)
    renamed = replace(lock, packages=tuple(replace(p, name="webx") if p is web else p for p in lock.packages))
    with pytest.raises(
        IntegrityError, match=r"the package says it is web_1\.0_amd64, the lock fixture/stable says webx"
    ):
        plan_publish([renamed], cache, PublishOptions())
    blob.write_bytes(original[:-1])
    cache.blob_path(lock.packages[0].sha256).unlink()
    with pytest.raises(PublishError, match=r"2 locked pool file\(s\) are not in the cache") as caught:
        plan_publish([lock], cache, PublishOptions())
    assert web.filename in str(caught.value) and lock.packages[0].filename in str(caught.value)
    assert main(work.args("--no-sign", "--no-fetch")) == 2
    assert not work.out.exists()


def test_each_control_file_is_let_go_once_its_stanza_is_written(work: Work) -> None:
    """Publish memory stays flat in the number of packages: a .deb is read when its stanza is due, and nothing
    of it outlives the stanza (the control files are tracked with weak references)."""

    class Tracked(ControlStanza):  # a subclass without __slots__, so that it can be weakly referenced
        pass

    cache = Cache(work.cache)
    controls: list[weakref.ref[Tracked]] = []
    alive_at_each_read: list[int] = []

    def read(lock: Lock, package: LockedPackage) -> DebInfo:
        data = cache.blob_path(package.sha256).read_bytes()
        control = Tracked(read_control(cache.blob_path(package.sha256)).fields)
        alive_at_each_read.append(sum(ref() is not None for ref in controls))
        controls.append(weakref.ref(control))
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return DebInfo(hashlib.sha256(data).hexdigest(), md5, len(data), control)

    locks = read_locks(work.locks)
    plan = plan_repository(locks, read, PublishOptions(), cache)
    assert alive_at_each_read == [0] * len(locks[0].packages)
    write_tree(plan, work.out)
    packages = (work.out / "fixture/dists/stable/main/binary-amd64/Packages").read_text()
    assert [Deb822(s)["Package"] for s in packages.split("\n\n")] == ["libc", "libssl", "shell", "web", "webcommon"]
    assert plan.pool.count == len(locks[0].packages) == sum("/pool/" in f.path for f in plan.all_files())


def test_every_folder_and_written_file_is_dated_source_date_epoch(work: Work) -> None:
    assert main(work.args("--sign-key", str(work.key_file))) == 0
    dated = [work.out, *(p for p in work.out.rglob("*") if p.is_dir() or "/pool/" not in str(p))]
    assert len(dated) > 20 and {int(p.lstat().st_mtime) for p in dated} == {EPOCH}
