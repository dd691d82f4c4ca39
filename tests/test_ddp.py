"""DistributedDataParallel on CPU: 2 gloo processes on 127.0.0.1 end with identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
from dsfactory import make_dataset

from pix2pix.training import TrainConfig, load_checkpoint, train

TINY = {
    "generator": "unet_128",
    "size": 128,
    "ngf": 4,
    "ndf": 4,
    "n_epochs": 1,
    "n_epochs_decay": 1,
    "num_workers": 0,
    "num_threads": 1,
    "sample_every": 2,
    "log_every": 1,
    "seed": 3,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, ds: str, run: str, out: str, cfg: dict,
            resume: bool = False) -> None:
    # What torchrun would set for each process.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    result = train(TrainConfig.from_dict(cfg), ds, run, progress=False, resume=resume)
    torch.save({"G": result.G.state_dict(), "D": result.D.state_dict(), "step": result.step},
               Path(out) / f"rank{rank}.pt")


def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    ds = make_dataset(tmp_path / "ds", n_train=5, n_val=1, size=128)
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    mp.spawn(_worker, args=(2, free_port(), str(ds), str(run), str(out), TINY), nprocs=2,
             join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # 5 images over 2 ranks: 3 per rank (padded), batch 1 -> 3 steps per epoch, 2 epochs.
    assert r0["step"] == r1["step"] == 6
    for part in ("G", "D"):
        differing = [k for k in r0[part] if not torch.equal(r0[part][k], r1[part][k])]
        assert differing == [], part
    # Rank 0 wrote the checkpoint, and it holds those weights and both ranks' RNG states.
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng_per_rank"]) == 2
    assert all(torch.equal(ckpt["G"][k], r0["G"][k]) for k in r0["G"])
    assert sorted(p.name for p in (run / "samples").iterdir())[-1] == "step-0000006.png"


def test_torchrun_cli(tmp_path):
    """The documented command: torchrun ... -m pix2pix.cli.train DATASET RUN_DIR."""
    ds = make_dataset(tmp_path / "ds", n_train=4, n_val=1, size=128)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "pix2pix.cli.train", str(ds), str(tmp_path / "run"),
           "--generator", "unet_128", "--size", "128", "--ngf", "4", "--ndf", "4",
           "--epochs", "1", "--epochs-decay", "0", "--workers", "0", "--no-progress",
           "--no-dvclive"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 2


def test_ddp_resume_is_exact(tmp_path):
    """1 epoch + resume + 1 epoch under 2 ranks == 2 epochs straight (every rank's RNG is kept)."""
    ds = make_dataset(tmp_path / "ds", n_train=4, n_val=0, size=128)
    cfg = {**TINY, "sample_every": 0}
    straight, out1 = tmp_path / "straight", tmp_path / "out1"
    out1.mkdir()
    mp.spawn(_worker, args=(2, free_port(), str(ds), str(straight), str(out1), cfg), nprocs=2)
    resumed, out2 = tmp_path / "resumed", tmp_path / "out2"
    out2.mkdir()
    first = {**cfg, "n_epochs_decay": 0}
    mp.spawn(_worker, args=(2, free_port(), str(ds), str(resumed), str(out2), first), nprocs=2)
    mp.spawn(_worker, args=(2, free_port(), str(ds), str(resumed), str(out2), cfg, True),
             nprocs=2)
    a = load_checkpoint(straight / "checkpoints" / "latest.pt")
    b = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 4
    for part in ("G", "D"):
        assert [k for k in a[part] if not torch.equal(a[part][k], b[part][k])] == [], part
