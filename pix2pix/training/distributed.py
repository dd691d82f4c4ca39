"""Multi-process training through ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m pix2pix.cli.train DATASET RUN_DIR`` sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``init_from_env`` reads them and joins the group
(NCCL on CUDA, gloo on CPU). Without them it returns a single-process context and nothing
here does anything. Batch size is per process; gradients are averaged across processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes samples and checkpoints."""
        return self.rank == 0


def init_from_env(device_kind: str) -> DistContext:
    """Join the process group described by torchrun's environment (or return a 1-process one).

    ``device_kind`` is "cuda" or "cpu" and picks the backend (NCCL / gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    ctx = DistContext(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return ctx


def wrap(module: nn.Module, ctx: DistContext, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """``module`` for training: DDP-wrapped (optionally with SyncBatchNorm) when distributed."""
    if not ctx.enabled:
        return module
    if sync_bn:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    # broadcast_buffers: BatchNorm running stats follow rank 0, so every rank computes the
    # same eval-mode outputs and checkpoints from rank 0 describe all ranks.
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=True)


def sync_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to every rank, e.g. at the end."""
    if ctx.enabled:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_true(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank iff ``flag`` is true on every rank (e.g. "losses are finite")."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
