"""Where and how a training run computes: device, process group, seeds, threads, precision.

``setup_runtime(cfg)`` is the one place that sets global state (seeds, thread count, backend
flags); ``Runtime`` carries the result to the loop.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import numpy as np
import torch

from pix2pix.errors import ConfigError
from pix2pix.runtime import pick_device
from pix2pix.training import distributed
from pix2pix.training.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    """Where and how the run computes; made by ``setup_runtime`` only."""

    device: torch.device
    dist: distributed.DistContext
    amp_dtype: torch.dtype | None = None  # None: fp32
    use_scaler: bool = False  # fp16 needs loss scaling, bf16 does not
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """The one place that sets global state: process group, device, seeds, threads, backends."""
    ctx = distributed.init_from_env(pick_device(cfg.device).type)
    device = pick_device(cfg.device, index=ctx.local_rank)  # cuda without an index: this rank's GPU
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.sync_bn and ctx.enabled and device.type != "cuda":
        raise ConfigError("sync_bn: SyncBatchNorm runs on CUDA only; leave it off on CPU")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # Dropout masks differ per rank (as independent GPUs would); model init does not use this.
    seed = cfg.seed + ctx.rank
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)

    amp_dtype, use_scaler = None, False
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if cfg.amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
            amp_dtype = torch.bfloat16
        elif cfg.amp in ("auto", "fp16", "bf16"):
            amp_dtype, use_scaler = torch.float16, True
    elif cfg.amp in ("bf16", "fp16"):
        # CPU autocast: the CUDA code paths (autocast, GradScaler) on a CPU, for testing them.
        amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
        use_scaler = cfg.amp == "fp16"
    channels_last = (device.type == "cuda" if cfg.memory_format == "auto"
                     else cfg.memory_format == "channels_last")
    return Runtime(device=device, dist=ctx, amp_dtype=amp_dtype, use_scaler=use_scaler,
                   channels_last=channels_last)
