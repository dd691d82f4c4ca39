"""Running G during training without disturbing it: validation L1 and the sample grids."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from pix2pix.training.compute import Runtime
from pix2pix.training.config import TrainConfig
from pix2pix.training.data import PairDataset, from_model_range, to_model_range


@contextlib.contextmanager
def inference_context(G: nn.Module, eval_mode: str, seed: int, device: torch.device) -> Iterator:
    """Run G for validation/samples without disturbing training.

    ``eval_mode="train"`` (the paper) keeps dropout and batch statistics on; BatchNorm's running
    statistics are restored afterwards, and the global RNG is forked and re-seeded so that
    validation neither consumes training randomness nor varies between calls.
    """
    was_training = G.training
    saved = {k: b.clone() for k, b in G.named_buffers()}
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        G.train(eval_mode == "train")
        try:
            yield G
        finally:
            G.train(was_training)
            for k, b in G.named_buffers():
                b.copy_(saved[k])


def sample_grid(G: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], rt: Runtime,
                eval_mode: str, seed: int) -> np.ndarray:
    """Rows of input | output | target for each (uint8 CHW) pair → (H, W, 3) uint8."""
    rows = []
    with inference_context(G, eval_mode, seed, rt.device):
        for x, y in pairs:
            xin = to_model_range(x[None].to(rt.device))
            with rt.autocast():
                out = G(xin)
            row = torch.cat([x[None].to(rt.device), from_model_range(out), y[None].to(rt.device)], 3)
            rows.append(row[0])
    return torch.cat(rows, 1).permute(1, 2, 0).cpu().numpy()


def validate(G: nn.Module, ds: PairDataset, rt: Runtime, cfg: TrainConfig) -> float:
    """Mean |G(x) − y| over (up to ``val_max_images``) validation pairs, in [−1, 1] units."""
    n = len(ds) if cfg.val_max_images == 0 else min(len(ds), cfg.val_max_images)
    total = 0.0
    with inference_context(G, cfg.eval_mode, cfg.seed, rt.device):
        for i in range(n):
            x, y = ds[i]
            with rt.autocast():
                out = G(to_model_range(x[None].to(rt.device)))
            total += (out.float() - to_model_range(y[None].to(rt.device))).abs().mean().item()
    return total / max(n, 1)
