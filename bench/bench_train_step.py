"""Training-step speed: U-Net 256 + 70×70 PatchGAN, paper widths (ngf = ndf = 64).

    python bench/bench_train_step.py            # batch 1 and 4, ≈ 2–3 minutes on 2 CPU cores
    python bench/bench_train_step.py --batch 1 --iters 5

For each batch size it measures, in the same process:
- bare: the pix2pix step on pre-made tensors (G forward once, D step, G step, Adam), nothing
  else: the floor for these networks on this device;
- loop: ``pix2pix.training.train`` on an in-memory dataset of 512×256 JPEG pairs, timed between
  consecutive ``on_step`` callbacks (data, jitter, [-1,1], the step, loss floats, NaN checks);
and prints iterations/s, effective GFLOP/s (one batch-1 iteration ≈ 86.9 GFLOP, PAPER.md) and
loop/bare. Variants of the bare step (channels_last; recomputing G(x) for the G step, as a
naive port would) show what those choices are worth here. Runs unchanged on CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pix2pix.training import TrainConfig, losses, train
from pix2pix.training.loop import build_models, set_requires_grad

GFLOP_PER_ITER = 86.9  # one iteration at batch 1 (G fwd, D step, G step), PAPER.md


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step_times(batch: int, iters: int, device: torch.device, *, channels_last: bool = False,
                    recompute_fake: bool = False) -> list[float]:
    cfg = TrainConfig()
    G, D = (m.to(device) for m in build_models(cfg))
    if channels_last:
        G, D = (m.to(memory_format=torch.channels_last) for m in (G, D))
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    a = torch.rand(batch, 3, 256, 256, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
    b = torch.rand(batch, 3, 256, 256, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
    times = []
    for _ in range(iters + 1):  # +1: the first iteration (allocations, kernel choice) is dropped
        sync(device)
        t0 = time.perf_counter()
        fake = G(a)
        set_requires_grad(D, True)
        opt_D.zero_grad(set_to_none=True)
        loss_D = 0.5 * (losses.gan_loss(D(torch.cat([a, fake.detach()], 1)), False, "vanilla")
                        + losses.gan_loss(D(torch.cat([a, b], 1)), True, "vanilla"))
        loss_D.backward()
        opt_D.step()
        set_requires_grad(D, False)
        opt_G.zero_grad(set_to_none=True)
        if recompute_fake:
            fake = G(a)
        loss_G = (losses.gan_loss(D(torch.cat([a, fake], 1)), True, "vanilla")
                  + 100 * torch.nn.functional.l1_loss(fake, b))
        loss_G.backward()
        opt_G.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times[1:]


class StepTimer:
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step(self, metrics: dict, step: int) -> None:
        self.stamps.append(time.perf_counter())


def loop_step_times(batch: int, iters: int, workdir: Path) -> list[float]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dsfactory import make_dataset

    n = batch * (iters + 2)
    ds = make_dataset(workdir / f"ds{batch}", n_train=n, n_val=0, size=256)
    timer = StepTimer()
    cfg = TrainConfig.from_dict({"n_epochs": 1, "n_epochs_decay": 0, "batch_size": batch,
                                 "num_workers": 0, "sample_every": 0, "log_every": 1,
                                 "keep_last": 1})
    train(cfg, ds, workdir / f"run{batch}", callbacks=[timer], progress=False)
    gaps = np.diff(timer.stamps).tolist()
    return gaps[1:]  # drop the first gap (includes the warm-up iteration)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="*", default=[1, 4])
    p.add_argument("--iters", type=int, default=0, help="timed iterations (default 6 at b1, 3 at b4)")
    p.add_argument("--variants", action="store_true", help="also channels_last / recompute G(x)")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in a.batch:
            iters = a.iters or (6 if batch == 1 else 3)
            bare = statistics.median(bare_step_times(batch, iters, device))
            loop = statistics.median(loop_step_times(batch, iters, Path(tmp)))
            rows.append((f"bare step, batch {batch}", batch, bare))
            rows.append((f"train() loop, batch {batch}", batch, loop))
            rows.append((f"  loop / bare = {loop / bare:.3f}", None, None))
            if a.variants:
                cl = statistics.median(bare_step_times(batch, iters, device, channels_last=True))
                rc = statistics.median(bare_step_times(batch, iters, device, recompute_fake=True))
                rows.append((f"bare, channels_last, batch {batch}", batch, cl))
                rows.append((f"bare, G(x) computed twice, batch {batch}", batch, rc))
    print(f"\n| {'what':<40} | {'s/iter':>7} | {'iter/s':>7} | {'img/s':>6} | {'GFLOP/s':>7} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 9}|")
    for name, batch, t in rows:
        if t is None:
            print(f"| {name:<40} | {'':>7} | {'':>7} | {'':>6} | {'':>7} |")
            continue
        print(f"| {name:<40} | {t:7.3f} | {1 / t:7.3f} | {batch / t:6.2f} | "
              f"{GFLOP_PER_ITER * batch / t:7.1f} |")


if __name__ == "__main__":
    main()
