"""No process of a training run outlives it (issue 8): kill -9 the trainer, its DataLoader
workers and the fork server are gone within seconds. Ctrl-C during a multi-worker build (F10):
one `interrupted` line, no worker traceback, no output, no leftovers, no process left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from dsfactory import make_dataset
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_trainer_leaves_no_worker_alive(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", n_train=8, n_val=0, size=128)
    cmd = [sys.executable, "-m", "pix2pix.cli", "train", str(ds), str(tmp_path / "run"),
           "--generator", "unet_128", "--size", "128", "--ngf", "4", "--ndf", "4", "--epochs", "500",
           "--epochs-decay", "0", "--workers", "2", "--threads", "1", "--no-progress", "--no-dvclive",
           "--set", "in_memory_mb=0", "--sample-every", "0", "--val-every", "0"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        children: list[int] = []
        while time.monotonic() < deadline:  # the fork server and 2 workers (its children)
            children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            if len(children) >= 3:
                break
            assert proc.poll() is None, "training ended before its workers started"
            time.sleep(0.5)
        assert len(children) >= 3, children
        time.sleep(1.0)  # workers are in their loop
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(children) == [], "worker processes outlived the killed trainer"
    finally:
        for pid in alive([proc.pid, *children]) if "children" in dir() else []:
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the fork server, the pool workers, the resource tracker), from
    /proc: the parent pids as the kernel reports them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended while we looked
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def photos(folder: Path, n: int) -> Path:
    """`n` distinct smooth photos with grain (not near-blank, not near-duplicates), 600x450 JPEG."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((600, 450), Image.BICUBIC))
        grain = rng.integers(-20, 21, smooth.shape)
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(folder / f"p{i:03d}.jpg", quality=90)
    return folder


def interrupt_build(src: Path, out: Path, *extra: str) -> tuple[int, str, list[int]]:
    """`pix2pix build SRC OUT --workers 2` in its own process group; SIGINT to the group (what a
    terminal's Ctrl-C does) once the workers have written pairs into staging. Returns the exit
    code, stderr and the pids of every process below the build."""
    cmd = [sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--workers", "2", "--no-progress", *extra]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    staging = out.parent / f".{out.name}.partial"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(1 for _ in staging.rglob("*.jpg")) < 4:
            assert proc.poll() is None, f"build ended before it was interrupted: {proc.stderr.read()}"
            time.sleep(0.01)
        below = descendants(proc.pid)
        assert len(below) >= 3, below  # the fork server and two workers are running
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err, below


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_of_a_multi_worker_build_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    src = photos(tmp_path / "src", 300)
    out = tmp_path / "out"
    code, err, below = interrupt_build(src, out)
    assert (code, err) == (130, "interrupted; no partial output was left under the final name\n")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no staging, no lock
    deadline = time.monotonic() + 10
    while alive(below) and time.monotonic() < deadline:  # the fork server ends when its parent has
        time.sleep(0.1)
    assert alive(below) == []

    # over an earlier dataset (--overwrite): it is left exactly as it was
    assert subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--workers", "2",
                           "--no-progress"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err, below = interrupt_build(src, out, "--overwrite")
    assert (code, err) == (130, "interrupted; no partial output was left under the final name\n")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    deadline = time.monotonic() + 10
    while alive(below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(below) == []
