"""No process of a training run outlives it (issue 8): kill -9 the trainer, its DataLoader
workers and the fork server are gone within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from dsfactory import make_dataset

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
