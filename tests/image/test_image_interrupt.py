"""Issue 8.3 for the image stage: ``kill -9`` of ``minimirror image`` at random points, for both formats.

A first image (repository A) is written; then the repository changes (B: one more, incompressible file, so the
layer takes a while to write) and ``minimirror image`` runs in a child process killed after a delay drawn with a
fixed seed over its measured run time, until KILLS runs per format were killed (a run that finishes first shortens
the next delays), each run starting from what the last one left.
After every kill the output is image A or image B, byte for byte; or, for an OCI layout killed between the two
renames of its swap, the layout is missing and image A waits whole in ``.<out>.old.*/layout`` (the next run puts it
back). A final uninterrupted run completes and gives B's manifest digest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.plugin import ArchiveFactory, ServerFactory
from test_image import EPOCH, Mirror, busybox_bytes, mirror_packages

from minimirror.cli import main

KILLS = 10
"""Interruptions per format (20 in all; the figure in docs/reliability.md)."""
SEED = 8


def snapshot(out: Path) -> dict[str, bytes]:
    if out.is_file():
        return {"": out.read_bytes()}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def copy(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


def staged(out: Path) -> set[str]:
    """The staging folders beside ``out`` (``.<name>.*``): a run that made one had started writing."""
    return {p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")}


def manifest_digest(out: Path) -> str:
    if out.is_file():
        return ""
    digest: str = json.loads((out / "index.json").read_bytes())["manifests"][0]["digest"]
    return digest


def _env() -> dict[str, str]:
    return {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "SOURCE_DATE_EPOCH": str(EPOCH)}


def run_child(args: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "minimirror", *args], env=_env(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return time.monotonic() - start


@pytest.fixture
def mirror(tmp_path: Path, fixture_archive_factory: ArchiveFactory, http_server: ServerFactory) -> Mirror:
    archive = fixture_archive_factory({"main": mirror_packages(busybox_bytes())}, origin="Debian")
    return Mirror(tmp_path / "work", archive, http_server(archive.root).url)


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_image_survives_kill_9_and_a_rerun_gives_the_same_digest(mirror: Mirror, tmp_path: Path, fmt: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(mirror.archive.root, repo)
    out = tmp_path / ("image" if fmt == "oci" else "image.tar")
    # gzip: the write phase, which the kills must hit, takes a good part of a run (uncompressed, import dominates)
    compressed = ["--format", fmt, "--compression", "gzip"]
    assert main(mirror.image_args(out, *compressed, repo=repo)) == 0
    image_a = snapshot(out)
    (repo / "extra.bin").write_bytes(random.Random(SEED).randbytes(6 << 20))
    reference = tmp_path / ("reference" if fmt == "oci" else "reference.tar")
    duration = run_child(mirror.image_args(reference, *compressed, repo=repo))
    image_b = snapshot(reference)
    args = mirror.image_args(out, *compressed, repo=repo)
    saved_a = tmp_path / "saved-a"
    copy(out, saved_a)
    rng = random.Random(SEED)
    tally = {"killed": 0, "finished": 0, "mid-write": 0, "swap pending": 0}
    # The delays follow the measured run time; when the machine speeds up (other jobs end) runs finish before the
    # kill, so each finished run shortens the next delays. Bounded: at most 2 * KILLS runs.
    pace = 1.0
    for _ in range(2 * KILLS):
        if tally["killed"] >= KILLS:
            break
        copy(saved_a, out)  # every run starts from image A, so every kill can damage it
        staging = staged(out)
        child = subprocess.Popen([sys.executable, "-m", "minimirror", *args], env=_env(), stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.5, 1.1) * duration * pace)  # earlier, the child is still importing Python
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        _, err = child.communicate(timeout=60)
        assert child.returncode in (0, -signal.SIGKILL), err.decode()
        tally["killed" if child.returncode else "finished"] += 1
        if not child.returncode:
            pace *= 0.8
        tally["mid-write"] += bool(child.returncode) and staged(out) != staging
        if out.exists():
            assert snapshot(out) in (image_a, image_b), "the image output is neither the old image nor the new one"
        else:  # killed between the two renames of the swap: the old layout waits, whole, for the next run
            assert fmt == "oci" and [snapshot(w) for w in out.parent.glob(f".{out.name}.old.*/layout")] == [image_a]
            tally["swap pending"] += 1
    print(f"{fmt}: {tally}; a run took {duration:.2f} s")
    assert tally["killed"] >= KILLS // 2, "the delays are too long to interrupt anything"
    run_child(args)
    assert snapshot(out) == image_b
    assert manifest_digest(out) == manifest_digest(reference)
    print(f"{fmt}: {len(staged(out))} stale staging folders left beside the output by the kills")


def test_a_layout_moved_aside_by_a_killed_swap_is_restored_first(mirror: Mirror, tmp_path: Path) -> None:
    """The kill that the random points rarely hit: after ``out -> .out.old.X/layout``, before ``staged -> out``."""
    out = tmp_path / "image"
    assert main(mirror.image_args(out)) == 0
    before = snapshot(out)
    aside = tmp_path / ".image.old.killed"
    aside.mkdir()
    out.replace(aside / "layout")
    (mirror.archive.root / "extra.txt").write_text("B\n")
    assert main(mirror.image_args(tmp_path / "other", "--format", "docker-archive")) == 0
    assert not out.exists() and snapshot(aside / "layout") == before  # another output is not touched
    assert main(mirror.image_args(out)) == 0
    assert snapshot(out) != before and not aside.exists()  # restored, then replaced by the new image


def test_staging_left_by_killed_runs_is_removed_by_the_next_run(mirror: Mirror, tmp_path: Path) -> None:
    out = tmp_path / "image"
    abandoned = tmp_path / ".image.k1ll3d"
    (abandoned / "layout" / "blobs").mkdir(parents=True)
    (abandoned / "layout" / "blobs" / "half-written").write_bytes(b"\0" * 1024)
    assert main(mirror.image_args(out)) == 0
    assert not abandoned.exists()
    assert sorted(p.name for p in tmp_path.glob(".image.*")) == [".image.minimirror-lock"]  # only the lock file


def test_two_runs_on_one_output_take_turns(mirror: Mirror, tmp_path: Path) -> None:
    out = tmp_path / "image"
    args = [sys.executable, "-m", "minimirror", *mirror.image_args(out)]
    children = [subprocess.Popen(args, env=_env(), stderr=subprocess.PIPE) for _ in range(2)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    single = tmp_path / "single"
    assert main(mirror.image_args(single)) == 0
    assert manifest_digest(out) == manifest_digest(single)
    assert snapshot(out) == snapshot(single)
