"""The pix2pix training loop: one function, read top to bottom.

    from pix2pix.training import TrainConfig, train
    result = train(TrainConfig.from_dict(preset="small"), "data/facades", "runs/demo")

Per batch, as in the paper: G(x) once; a D step on (x, y) vs (x, G(x).detach()); a G step on
D(x, G(x)) + λ·L1. Then log, snapshot (sample grid), and at the end of each epoch: LR schedule,
validation L1, checkpoint. ``resume=True`` continues from RUN_DIR/checkpoints/latest.pt exactly
(same weights as an uninterrupted run on CPU) unless the checkpoint's config or dataset differs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pix2pix.errors import EXIT_DIVERGED, ConfigError, Pix2PixError
from pix2pix.paths import check_disjoint
from pix2pix.training import checkpoint as ckpt_io
from pix2pix.training import distributed
from pix2pix.training.callbacks import CallbackList, EpochHistory, ProgressBar
from pix2pix.training.config import TrainConfig
from pix2pix.training.data import (
    DatasetError,
    EpochSampler,
    PairDataset,
    collate_pairs,
    dataset_fingerprint,
    from_model_range,
    seed_worker,
    to_model_range,
    worker_process_context,
)
from pix2pix.training.step import make_adam, pix2pix_step

ON_MISMATCH = ("stop", "fresh")


class TrainingDivergedError(Pix2PixError):
    """A loss became NaN or Inf; the last good checkpoint is kept (``checkpoint``)."""

    exit_code = EXIT_DIVERGED

    def __init__(self, message: str, checkpoint: Path | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    metrics: dict[str, Any]
    checkpoint: Path | None
    generator: Path
    resumed_from: Path | None = None
    # The trained networks (bare modules, on the training device) for callers that go on
    # using them in-process; everything durable is in run_dir.
    G: nn.Module | None = field(default=None, repr=False)
    D: nn.Module | None = field(default=None, repr=False)


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


@dataclass
class _Position:
    """Where the run is: ``epoch`` in progress, ``batch`` batches of it done, global ``step``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    history: dict[str, Any] = field(default_factory=dict)


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """LR multiplier for 0-based ``epoch``: 1 for ``n_epochs`` epochs, then linear towards 0.

    The official rule: 1 − max(0, epoch + 1 − n_epochs) / (n_epochs_decay + 1); the last epoch
    runs at 1/(n_epochs_decay + 1) and the next (never run) would be at 0.
    """
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """The one place that sets global state: process group, device, seeds, threads, backends."""
    if cfg.device == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        kind = cfg.device.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {cfg.device!r} asked for, but CUDA is not available")
    ctx = distributed.init_from_env(kind)
    if kind == "cuda":
        index = int(cfg.device.split(":")[1]) if ":" in cfg.device else ctx.local_rank
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
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


def build_models(cfg: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """G and D with the paper's N(0, 0.02) init, drawn from a generator seeded by ``seed``."""
    from pix2pix.models import build_generator, init_weights, patch_discriminator_for

    g = torch.Generator().manual_seed(cfg.seed)
    G = build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout,
                        in_channels=3, out_channels=3)
    D = patch_discriminator_for(cfg.d_receptive_field, in_channels=6, ndf=cfg.ndf, norm=cfg.norm)
    return init_weights(G, std=cfg.init_std, generator=g), init_weights(D, std=cfg.init_std,
                                                                          generator=g)


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


def _start_or_resume(
    cfg: TrainConfig, run_dir: Path, resume: bool | str | Path, on_mismatch: str,
    fingerprint: str, log: Any, ctx: distributed.DistContext,
) -> dict[str, Any] | None:
    """The checkpoint to continue from, or None for a fresh start (after the checks)."""
    ckpt_dir = run_dir / "checkpoints"
    latest = ckpt_dir / "latest.pt"
    existing = latest.exists() or bool(ckpt_io.list_checkpoints(ckpt_dir))
    if resume is False or resume is None:
        if existing:
            raise ckpt_io.CheckpointError(
                f"{ckpt_dir}: holds checkpoints of an earlier run; pass --resume to continue it "
                f"or choose a new run folder"
            )
        return None
    if resume is True:
        # latest.pt damaged or missing: the newest good ckpt-<step>.pt, said out loud.
        found = ckpt_io.find_resumable(ckpt_dir, warn=log)
        if found is None:
            log(f"no checkpoint in {ckpt_dir}: starting fresh")
            return None
        path, state = found
    else:
        path = Path(resume)
        state = ckpt_io.load_checkpoint(path)
    diffs = ckpt_io.compare_for_resume(state, cfg.resume_key(), fingerprint)
    if not diffs:
        return state | {"_path": str(path)}
    why = ckpt_io.describe_differences(diffs)
    if on_mismatch == "stop":
        raise ckpt_io.ResumeMismatchError(
            f"{path}: not resuming, this run differs from the checkpoint: {why}. "
            f"Use --on-mismatch fresh to start over (discards {ckpt_dir}) or a new run folder.",
            diffs,
        )
    log(f"{path}: starting fresh, this run differs from the checkpoint: {why}")
    distributed.barrier(ctx)  # every rank has read the checkpoint before rank 0 removes it
    if ctx.is_main:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    distributed.barrier(ctx)
    return None


@dataclass
class _Data:
    fingerprint: str
    train_ds: PairDataset
    val_ds: PairDataset
    preview: list[tuple[torch.Tensor, torch.Tensor]]
    sampler: EpochSampler
    loader: DataLoader
    workers: int
    steps_per_epoch: int


def _make_data(cfg: TrainConfig, dataset_dir: Path, ctx: distributed.DistContext,
               device: torch.device) -> _Data:
    """The splits, the preview pairs and this rank's loader; the fingerprint for checkpoints."""
    fingerprint = dataset_fingerprint(dataset_dir)
    train_ds = PairDataset(dataset_dir, "train", direction=cfg.direction, load_size=cfg.load_size,
                           crop_size=cfg.size, flip=cfg.flip, train=True, seed=cfg.seed,
                           in_memory_mb=cfg.in_memory_mb)
    if len(train_ds) == 0:
        raise DatasetError(f"{dataset_dir / 'manifest.jsonl'}: no pairs in the 'train' split")
    val_ds = PairDataset(dataset_dir, "val", direction=cfg.direction, crop_size=cfg.size,
                         load_size=cfg.size, train=False)
    preview_ds = val_ds if len(val_ds) else PairDataset(
        dataset_dir, "train", direction=cfg.direction, crop_size=cfg.size, load_size=cfg.size,
        train=False)
    preview = [preview_ds[i] for i in range(min(cfg.num_samples, len(preview_ds)))]
    sampler = EpochSampler(len(train_ds), seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size)
    # A dataset held in memory is served by this process (jitter alone is ~1 ms a pair; workers
    # would each get a copy). From disk, workers start from a fresh process ("forkserver"):
    # forking a process whose OpenCV/OpenMP thread pools are running can deadlock the child.
    workers = 0 if train_ds.in_memory else cfg.num_workers
    loader = DataLoader(
        train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
        collate_fn=collate_pairs, persistent_workers=workers > 0,
        # No worker outlives this process, even after kill -9 (see worker_process_context).
        worker_init_fn=functools.partial(seed_worker, trainer_pid=os.getpid()),
        multiprocessing_context=worker_process_context() if workers > 0 else None,
        # Its own generator: the loader must not draw from the global RNG (dropout's).
        generator=torch.Generator().manual_seed(cfg.seed), pin_memory=device.type == "cuda",
    )
    steps_per_epoch = math.ceil(sampler.per_rank / cfg.batch_size)
    return _Data(fingerprint, train_ds, val_ds, preview, sampler, loader, workers, steps_per_epoch)


def train(
    config: TrainConfig,
    dataset_dir: str | Path,
    run_dir: str | Path,
    *,
    callbacks: Iterable[Any] = (),
    resume: bool | str | Path = False,
    on_mismatch: str = "stop",
    progress: bool = True,
) -> TrainResult:
    """Train pix2pix on ``dataset_dir`` (an A|B dataset), writing everything to ``run_dir``.

    ``resume``: False = fresh (refuses a run folder that has checkpoints), True = continue from
    ``run_dir/checkpoints/latest.pt`` if there is one, or a path to a checkpoint. A checkpoint
    whose config (all keys but ``RUNTIME_KEYS``) or dataset fingerprint differs is never
    resumed silently: ``on_mismatch="stop"`` raises ``ResumeMismatchError`` naming the keys,
    ``"fresh"`` says why and starts over. Raises ``TrainingDivergedError`` on a NaN/Inf loss.
    Callbacks (see ``callbacks.py``) run on rank 0; under torchrun every rank calls this.
    """
    if on_mismatch not in ON_MISMATCH:
        raise ConfigError(f"on_mismatch: expected one of {list(ON_MISMATCH)}, got {on_mismatch!r}")
    cfg = config
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    check_disjoint(run_dir, {"DATASET": dataset_dir}, what="RUN_DIR")  # run files never land in the data
    threads_before = torch.get_num_threads()
    rt = setup_runtime(cfg)
    ctx, device = rt.dist, rt.device
    main = ctx.is_main
    log = (lambda msg: print(f"[train] {msg}", flush=True)) if main else (lambda msg: None)

    # ---- data: the manifest decides the splits; the fingerprint goes into every checkpoint
    data = _make_data(cfg, dataset_dir, ctx, device)
    fingerprint, train_ds, val_ds, preview = data.fingerprint, data.train_ds, data.val_ds, data.preview
    sampler, loader, workers, steps_per_epoch = data.sampler, data.loader, data.workers, data.steps_per_epoch

    # ---- models and optimisers: build, init, move (then maybe restore from a checkpoint)
    G, D = build_models(cfg)
    if cfg.init_generator:
        from pix2pix.models.io import load_weights_into

        load_weights_into(G, cfg.init_generator)
    G, D = G.to(device), D.to(device)
    if rt.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_G, opt_D = (make_adam(m, cfg.lr, (cfg.beta1, cfg.beta2), cfg.adam) for m in (G, D))

    def rule(e: int) -> float:
        return lr_factor(e, cfg.n_epochs, cfg.n_epochs_decay)

    sched_G = torch.optim.lr_scheduler.LambdaLR(opt_G, rule)
    sched_D = torch.optim.lr_scheduler.LambdaLR(opt_D, rule)
    scaler = torch.amp.GradScaler(device.type, enabled=rt.use_scaler)

    pos = _Position()
    resumed_metrics: dict[str, float] = {}
    state = _start_or_resume(cfg, run_dir, resume, on_mismatch, fingerprint, log, ctx)
    resumed_from = Path(state["_path"]) if state else None
    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        sched_G.load_state_dict(state["sched_G"])
        sched_D.load_state_dict(state["sched_D"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        pos = _Position(step=state["step"], epoch=state["epoch"], batch=state["batch"],
                        history=dict(state.get("history", {})))
        resumed_metrics = dict(state.get("step_metrics", {}))
        # The epoch counts may have changed (extending a run): the LR follows the new ones.
        for opt in (opt_G, opt_D):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * rule(pos.epoch)
        rng = state["rng_per_rank"][ctx.rank] if ctx.rank < len(state["rng_per_rank"]) else None
        if rng is not None:
            ckpt_io.restore_rng_state(rng)
        log(f"resumed from {resumed_from} at epoch {pos.epoch}, step {pos.step}")
        del state

    # D is used through DDP for its own step; the G step runs the bare module (its parameters
    # are frozen then, so DDP would wait forever for their gradients).
    G_train = distributed.wrap(G, ctx, device, sync_bn=cfg.sync_bn)
    D_train = distributed.wrap(D, ctx, device, sync_bn=cfg.sync_bn)
    D_for_G = D_train.module if ctx.enabled else D_train
    if cfg.compile:
        # One compiled D when D_for_G is D_train (no DDP): compiling it twice compiles twice.
        same = D_for_G is D_train
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
        D_for_G = D_train if same else torch.compile(D_for_G)

    # ---- outputs and callbacks (rank 0)
    cbs = CallbackList([])
    if main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        cbs = CallbackList([
            *callbacks,
            EpochHistory(run_dir / "history.jsonl", keep_until=pos.epoch),
            ProgressBar(cfg.total_epochs * steps_per_epoch, pos.step, disable=not progress),
        ])
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        for cb in cbs.callbacks:
            if hasattr(cb, "on_start"):
                cb.on_start({"resumed": resumed_from is not None, "step": pos.step,
                             "epoch": pos.epoch, "run_dir": str(run_dir)})
        log(f"{len(train_ds)} train / {len(val_ds)} val pairs"
            f"{' (in memory)' if train_ds.in_memory else f', {workers} loader workers'}; "
            f"device {device}"
            f"{f' x{ctx.world_size} processes' if ctx.enabled else ''}; "
            f"{steps_per_epoch} steps/epoch, epochs {pos.epoch}->{cfg.total_epochs}")

    last_ckpt: Path | None = resumed_from
    step_metrics: dict[str, float] = resumed_metrics

    def snapshot() -> None:
        grid = sample_grid(G, preview, rt, cfg.eval_mode, cfg.seed)
        _write_png(run_dir / "samples" / f"step-{pos.step:07d}.png", grid)
        cbs.on_images("samples", grid, pos.step)

    def save_checkpoint() -> None:
        nonlocal last_ckpt
        # Every rank's RNG state is gathered so each continues its own dropout stream.
        rngs = _gather_rng(ctx)
        if not main:
            return
        state = {
            "format": ckpt_io.CHECKPOINT_FORMAT, "version": ckpt_io.FORMAT_VERSION,
            "G": G.state_dict(), "D": D.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
            "sched_G": sched_G.state_dict(), "sched_D": sched_D.state_dict(),
            "scaler": scaler.state_dict() if rt.use_scaler else {},
            "step": pos.step, "epoch": pos.epoch, "batch": pos.batch,
            "rng_per_rank": rngs, "history": pos.history, "step_metrics": step_metrics,
            # The data order needs no state of its own: it is a function of (seed, epoch).
            "data_order": {"seed": cfg.seed, "epoch": pos.epoch,
                           "samples_done": pos.batch * cfg.batch_size},
            "config": cfg.to_dict(), "resume_key": cfg.resume_key(),
            "dataset_fingerprint": fingerprint, "world_size": ctx.world_size,
        }
        last_ckpt = ckpt_io.write_checkpoint(state, run_dir / "checkpoints", step=pos.step,
                                             keep_last=cfg.keep_last)
        ckpt_io.atomic_save(ckpt_io.generator_payload(G, cfg.to_dict(), step=pos.step,
                                                      epoch=pos.epoch, fingerprint=fingerprint),
                            run_dir / "generator.pt")
        cbs.on_checkpoint(last_ckpt)

    def check_finite(metrics: dict[str, float]) -> None:
        finite = all(math.isfinite(v) for v in metrics.values())
        if distributed.all_true(finite, ctx, device):
            return
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        raise TrainingDivergedError(
            f"loss became non-finite at step {pos.step + 1} (epoch {pos.epoch}): "
            f"{bad or 'on another rank'}; lower lr or check the data. "
            + (f"Last good checkpoint: {last_ckpt}" if last_ckpt else "No checkpoint was written."),
            checkpoint=last_ckpt,
        )

    started = time.perf_counter()
    window_start, window_images = time.perf_counter(), 0
    try:
        while pos.epoch < cfg.total_epochs:
            epoch_start, epoch_images = time.perf_counter(), 0
            sampler.set_epoch(pos.epoch, start=pos.batch * cfg.batch_size)
            G_train.train()
            D_train.train()
            for xy_u8 in loader:
                # ---- batch: uint8 -> [-1, 1] on the device (the one conversion, data.py)
                xy = xy_u8.to(device, non_blocking=True)
                real_a, real_b = to_model_range(xy[:, :3]), to_model_range(xy[:, 3:])
                if rt.channels_last:
                    real_a = real_a.contiguous(memory_format=torch.channels_last)
                    real_b = real_b.contiguous(memory_format=torch.channels_last)
                m = pix2pix_step(G_train, D_train, opt_G, opt_D, real_a, real_b,
                                 gan_mode=cfg.gan_mode, lambda_l1=cfg.lambda_l1, D_for_G=D_for_G,
                                 scaler=scaler, autocast=rt.autocast, check=check_finite)
                pos.step += 1
                pos.batch += 1
                window_images += xy_u8.shape[0] * ctx.world_size
                epoch_images += xy_u8.shape[0] * ctx.world_size

                # ---- log
                step_metrics = {**m, "lr": opt_G.param_groups[0]["lr"]}
                if pos.step % cfg.log_every == 0:
                    now = time.perf_counter()
                    step_metrics["images_per_s"] = window_images / max(now - window_start, 1e-9)
                    window_start, window_images = now, 0
                    cbs.on_step(step_metrics, pos.step)

                # ---- snapshot: sample grid every `sample_every` steps, optional mid-epoch ckpt
                if main and cfg.sample_every and pos.step % cfg.sample_every == 0:
                    snapshot()
                if cfg.checkpoint_every and pos.step % cfg.checkpoint_every == 0:
                    save_checkpoint()

            # ---- end of epoch: LR schedule, validate, checkpoint
            sched_G.step()
            sched_D.step()
            pos.epoch += 1
            pos.batch = 0
            epoch_metrics = {k: v for k, v in step_metrics.items() if k != "images_per_s"}
            epoch_seconds = time.perf_counter() - epoch_start
            epoch_metrics["epoch_seconds"] = epoch_seconds
            epoch_metrics["epoch_images_per_s"] = epoch_images / max(epoch_seconds, 1e-9)
            if main and len(val_ds) and cfg.val_every and pos.epoch % cfg.val_every == 0:
                epoch_metrics["val_L1"] = validate(G, val_ds, rt, cfg)
                pos.history["val_L1"] = epoch_metrics["val_L1"]
                best = pos.history.get("best_val_L1")
                if best is None or epoch_metrics["val_L1"] < best:
                    pos.history["best_val_L1"] = epoch_metrics["val_L1"]
                    pos.history["best_val_epoch"] = pos.epoch
            cbs.on_epoch(epoch_metrics, pos.epoch)
            save_checkpoint()

        # ---- end of run: final samples, generator file, summary
        distributed.sync_buffers(G, ctx)
        distributed.sync_buffers(D, ctx)
        if main:
            # Also when a finished run is "resumed" (e.g. a DVC re-run that only changed an
            # execution key): the run folder always ends with a grid of the final G.
            if cfg.sample_every and not (run_dir / "samples" / f"step-{pos.step:07d}.png").exists():
                snapshot()
            ckpt_io.atomic_save(ckpt_io.generator_payload(G, cfg.to_dict(), step=pos.step,
                                                          epoch=pos.epoch, fingerprint=fingerprint),
                                run_dir / "generator.pt")
        summary = {
            "step": pos.step, "epoch": pos.epoch,
            **{k: v for k, v in step_metrics.items() if k != "images_per_s"},
            **pos.history,
            "train_seconds_this_session": time.perf_counter() - started,
            "device": str(device), "world_size": ctx.world_size,
            "dataset_fingerprint": fingerprint,
            "resumed_from": str(resumed_from) if resumed_from else None,
        }
        if main:
            (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
            log(f"done: {pos.step} steps, {pos.epoch} epochs -> {run_dir}")
    finally:
        cbs.on_end()
        distributed.shutdown(ctx)
        torch.set_num_threads(threads_before)
    return TrainResult(run_dir=run_dir, step=pos.step, epoch=pos.epoch, metrics=summary,
                       checkpoint=last_ckpt, generator=run_dir / "generator.pt",
                       resumed_from=resumed_from, G=G, D=D)


def _gather_rng(ctx: distributed.DistContext) -> list[dict[str, Any]]:
    mine = ckpt_io.capture_rng_state()
    if not ctx.enabled:
        return [mine]
    out: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, mine)
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    tmp.replace(path)
