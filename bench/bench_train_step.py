"""Training-step speed: U-Net 256 + 70×70 PatchGAN, paper widths (ngf = ndf = 64).

    python bench/bench_train_step.py            # batch 1 and 4, ≈ 2–3 minutes on 2 CPU cores
    python bench/bench_train_step.py --batch 1 --iters 5

For each batch size it measures, in the same process:
- bare: the pix2pix step on pre-made tensors (G forward once, D step, G step, Adam), nothing
  else: the floor for these networks on this device;
- loop: ``pix2pix.training.train`` on an in-memory dataset of 512×256 JPEG pairs, timed between
  consecutive ``on_step`` callbacks (data, jitter, [-1,1], the step, loss floats, NaN checks);
and prints iterations/s, effective GFLOP/s (one batch-1 iteration ≈ 86.9 GFLOP, PAPER.md) and
loop/bare, from the fastest iteration of each (on a shared machine, other processes only
ever slow a step down; the bare step is timed before and after the loop). Variants of the
bare step (``--variants``: channels_last; recomputing G(x) for the G step, as a naive port
would; torch's per-tensor Adam instead of the fused one) are timed round-robin with the bare
step so they see the same load. Then the official train loop's method (``official_loop_times``:
its DataLoader with 4 workers and PIL transforms, default Adam) and the ratios official / ours by
fastest and by median iteration. Runs unchanged on CUDA.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pix2pix.training import TrainConfig, train
from pix2pix.training.loop import build_models
from pix2pix.training.step import make_adam, pix2pix_step

GFLOP_PER_ITER = 86.9  # one iteration at batch 1 (G fwd, D step, G step), PAPER.md


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BareStep:
    """The pix2pix step on fixed tensors: G forward once, D step, G step, Adam."""

    def __init__(self, batch: int, device: torch.device, *, channels_last: bool = False,
                 recompute_fake: bool = False, fused_adam: bool = True) -> None:
        cfg = TrainConfig()
        G, D = (m.to(device) for m in build_models(cfg))
        if channels_last:
            G, D = (m.to(memory_format=torch.channels_last) for m in (G, D))
        self.G, self.D, self.device, self.recompute_fake = G, D, device, recompute_fake
        impl = "fused" if fused_adam else "foreach"  # foreach: torch's default (per-tensor on CPU)
        self.opt_G, self.opt_D = (make_adam(m, cfg.lr, (cfg.beta1, cfg.beta2), impl)
                                  for m in (G, D))
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.a, self.b = (torch.rand(batch, 3, 256, 256, device=device).mul(2).sub(1)
                          .contiguous(memory_format=fmt) for _ in range(2))
        self.times: list[float] = []

    def step(self) -> None:
        G, D, a, b = self.G, self.D, self.a, self.b
        sync(self.device)
        t0 = time.perf_counter()
        if self.recompute_fake:
            _naive_step(G, D, self.opt_G, self.opt_D, a, b)
        else:  # the function train() runs
            pix2pix_step(G, D, self.opt_G, self.opt_D, a, b)
        sync(self.device)
        self.times.append(time.perf_counter() - t0)


def _naive_step(G, D, opt_G, opt_D, a, b) -> None:
    """A naive port for comparison: G(x) computed again for the G step."""
    from pix2pix.training import losses
    from pix2pix.training.step import set_requires_grad

    set_requires_grad(D, True)
    opt_D.zero_grad(set_to_none=True)
    loss_D, _ = losses.discriminator_loss(D(torch.cat([a, b], 1)),
                                          D(torch.cat([a, G(a).detach()], 1)), "vanilla")
    loss_D.backward()
    opt_D.step()
    set_requires_grad(D, False)
    opt_G.zero_grad(set_to_none=True)
    fake = G(a)
    loss_G, _ = losses.generator_loss(D(torch.cat([a, fake], 1)), fake, b, "vanilla", 100.0)
    loss_G.backward()
    opt_G.step()


def run_round_robin(steps: dict[str, BareStep], iters: int) -> None:
    """One iteration of each variant in turn, so load from other processes hits all alike."""
    for _ in range(iters):
        for s in steps.values():
            s.step()


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


def official_loop_times(batch: int, iters: int, dataset: Path, workers: int) -> list[float]:
    """The official train loop's method: AlignedDataset-style items (PIL open, BICUBIC resize,
    crop, flip, ToTensor, Normalize) through a shuffling torch DataLoader with ``workers``
    processes (the official default 4), then forward, backward_D, optimizer_D, backward_G,
    optimizer_G with torch's default Adam (tests/reference/official_method.py). The networks are
    ours with the official N(0, 0.02) init (the same module trees). Timed per iteration, data
    wait included, as ours is.
    """
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
    from official_method import GANLoss, official_item, official_step
    from torch.utils.data import DataLoader, Dataset

    from pix2pix.training.data import read_manifest

    paths = [str(dataset / r["path"]) for r in read_manifest(dataset, "train")]

    class Aligned(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> dict:
            A, B = official_item(paths[i])
            return {"A": A, "B": B}

    cfg = TrainConfig()
    G, D = build_models(cfg)
    opt_G, opt_D = (torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
                    for m in (G, D))
    crit = GANLoss()
    loader = DataLoader(Aligned(), batch_size=batch, shuffle=True, num_workers=workers)
    stamps = [time.perf_counter()]
    for data in loader:
        official_step(G, D, opt_G, opt_D, data["A"], data["B"], 100.0, crit)
        stamps.append(time.perf_counter())
    return np.diff(stamps).tolist()[1:]  # the first includes worker start-up and warm-up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="*", default=[1, 4])
    p.add_argument("--iters", type=int, default=0, help="timed iterations (default 5 at b1, 3 at b4)")
    p.add_argument("--variants", action="store_true", help="also channels_last / recompute G(x)")
    p.add_argument("--official-workers", type=int, default=4,
                   help="DataLoader workers of the official loop (its default: 4)")
    p.add_argument("--no-official", action="store_true", help="skip the official loop")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
          f"load avg {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in a.batch:
            iters = a.iters or (5 if batch == 1 else 3)
            steps = {"bare step": BareStep(batch, device)}
            if a.variants:
                steps["bare, channels_last"] = BareStep(batch, device, channels_last=True)
                steps["bare, G(x) computed twice"] = BareStep(batch, device, recompute_fake=True)
                steps["bare, Adam not fused"] = BareStep(batch, device, fused_adam=False)
            run_round_robin(steps, 1)  # warm-up: first-call allocations and kernel choice
            for s in steps.values():
                s.times.clear()
            run_round_robin(steps, iters)
            loop = loop_step_times(batch, iters, Path(tmp))
            official = ([] if a.no_official else
                        official_loop_times(batch, iters, Path(tmp) / f"ds{batch}", a.official_workers))
            run_round_robin({"bare step": steps["bare step"]}, iters)  # bare again, after the loop
            del steps["bare step"].G, steps["bare step"].D
            bare = steps.pop("bare step").times
            rows.append((f"bare step, batch {batch}", batch, bare))
            rows.append((f"train() loop, batch {batch}", batch, loop))
            rows.append((f"  loop / bare (best) = {min(loop) / min(bare):.3f}", None, None))
            if official:
                rows.append((f"official loop ({a.official_workers} workers), batch {batch}", batch,
                             official))
                rows.append((f"  official / loop: best {min(official) / min(loop):.2f}x, "
                             f"median {statistics.median(official) / statistics.median(loop):.2f}x",
                             None, None))
            for name, s in steps.items():
                rows.append((f"{name}, batch {batch}", batch, s.times))
            steps.clear()
    print(f"\n| {'what':<52} | {'best s':>6} | {'median':>6} | {'iter/s':>6} | {'img/s':>5} | "
          f"{'GFLOP/s':>7} |")
    print(f"|{'-' * 54}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 7}|{'-' * 9}|")
    for name, batch, times in rows:
        if times is None:
            print(f"| {name:<52} | {'':>6} | {'':>6} | {'':>6} | {'':>5} | {'':>7} |")
            continue
        t = min(times)
        print(f"| {name:<52} | {t:6.3f} | {statistics.median(times):6.3f} | {1 / t:6.3f} | "
              f"{batch / t:5.2f} | {GFLOP_PER_ITER * batch / t:7.1f} |")
    print(f"(best = fastest iteration; other processes on the machine only ever slow a step down."
          f" load avg at end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
