"""The pix2pix training loop: ``train`` reads top to bottom on one screen; its steps follow.

    from pix2pix.training import TrainConfig, train
    result = train(TrainConfig.from_dict(preset="small"), "data/facades", "runs/demo")

Per batch, as in the paper: G(x) once; a D step on (x, y) vs (x, G(x).detach()); a G step on
D(x, G(x)) + λ·L1. Then log, snapshot (sample grid), and at the end of each epoch: LR schedule,
validation L1, checkpoint. ``resume=True`` continues from RUN_DIR/checkpoints/latest.pt exactly
(same weights as an uninterrupted run on CPU) unless the checkpoint's config or dataset differs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pix2pix.atomic import atomic_path, atomic_write_text
from pix2pix.dataset import MANIFEST, image_size
from pix2pix.errors import EXIT_DIVERGED, ConfigError, Pix2PixError
from pix2pix.paths import check_disjoint
from pix2pix.training import checkpoint as ckpt_io
from pix2pix.training import distributed
from pix2pix.training.callbacks import CallbackList, EpochHistory, EpochProgress, ProgressBar
from pix2pix.training.compute import Runtime, setup_runtime
from pix2pix.training.config import TrainConfig, check_dataset_size
from pix2pix.training.data import (
    DatasetError,
    EpochSampler,
    PairDataset,
    collate_pairs,
    dataset_fingerprint,
    seed_worker,
    to_model_range,
    worker_process_context,
)
from pix2pix.training.step import make_adam, pix2pix_step
from pix2pix.training.validation import sample_grid, validate

ON_MISMATCH = ("stop", "fresh")
# The losses metrics.json reports (with step, epoch and the validation history).
METRIC_KEYS = ("G_GAN", "G_L1", "D_real", "D_fake")


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
    # run_info.json: last lr, seconds, device, world size, dataset fingerprint, resumed_from.
    info: dict[str, Any] = field(default_factory=dict)
    # The trained networks (bare modules, on the training device) for callers that go on
    # using them in-process; everything durable is in run_dir.
    G: nn.Module | None = field(default=None, repr=False)
    D: nn.Module | None = field(default=None, repr=False)


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


def build_models(cfg: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """G and D with the paper's N(0, 0.02) init, drawn from a generator seeded by ``seed``."""
    from pix2pix.models import build_generator, init_weights, patch_discriminator_for

    g = torch.Generator().manual_seed(cfg.seed)
    G = build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout,
                        in_channels=3, out_channels=3)
    D = patch_discriminator_for(cfg.d_receptive_field, in_channels=6, ndf=cfg.ndf, norm=cfg.norm)
    return init_weights(G, std=cfg.init_std, generator=g), init_weights(D, std=cfg.init_std,
                                                                          generator=g)


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
    check_dataset_size(cfg, image_size(dataset_dir), str(dataset_dir))
    fingerprint = dataset_fingerprint(dataset_dir)
    train_ds = PairDataset(dataset_dir, "train", direction=cfg.direction, load_size=cfg.load_size,
                           crop_size=cfg.crop_size, flip=cfg.flip, train=True, seed=cfg.seed,
                           in_memory_mb=cfg.in_memory_mb)
    if len(train_ds) == 0:
        raise DatasetError(f"{dataset_dir / MANIFEST}: no pairs in the 'train' split")
    val_ds = PairDataset(dataset_dir, "val", direction=cfg.direction, crop_size=cfg.crop_size,
                         load_size=cfg.crop_size, train=False)
    preview_ds = val_ds if len(val_ds) else PairDataset(
        dataset_dir, "train", direction=cfg.direction, crop_size=cfg.crop_size, load_size=cfg.crop_size,
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


@dataclass
class _Nets:
    """G and D with what trains them; ``*_train`` are the modules the step runs through."""

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: torch.optim.lr_scheduler.LambdaLR
    sched_D: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    G_train: nn.Module | None = None
    D_train: nn.Module | None = None
    D_for_G: nn.Module | None = None

    def state_objects(self) -> dict[str, Any]:
        """What a checkpoint saves and restores (``checkpoint.STATE_OBJECTS``)."""
        return {k: getattr(self, k) for k in ckpt_io.STATE_OBJECTS}


def _make_nets(cfg: TrainConfig, rt: Runtime) -> _Nets:
    """G and D built, initialised and moved; Adam, the LR schedule and the loss scaler."""
    G, D = build_models(cfg)
    if cfg.init_generator:
        from pix2pix.models.io import load_weights_into

        load_weights_into(G, cfg.init_generator)
    G, D = G.to(rt.device), D.to(rt.device)
    if rt.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_G, opt_D = (make_adam(m, cfg.lr, (cfg.beta1, cfg.beta2), cfg.adam) for m in (G, D))
    rule = functools.partial(lr_factor, n_epochs=cfg.n_epochs, n_epochs_decay=cfg.n_epochs_decay)
    return _Nets(G, D, opt_G, opt_D, torch.optim.lr_scheduler.LambdaLR(opt_G, rule),
                 torch.optim.lr_scheduler.LambdaLR(opt_D, rule),
                 torch.amp.GradScaler(rt.device.type, enabled=rt.use_scaler))


def _restore(nets: _Nets, state: dict[str, Any], cfg: TrainConfig, rank: int) -> _Position:
    """Load a checkpoint into ``nets`` (and this rank's RNG); the LR follows ``cfg``'s epochs."""
    saved = ckpt_io.restore_training_state(state, nets.state_objects(), rank=rank)
    pos = _Position(step=saved["step"], epoch=saved["epoch"], batch=saved["batch"],
                    history=saved["history"])
    # The epoch counts may have changed (extending a run): the LR follows the new ones.
    for opt in (nets.opt_G, nets.opt_D):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(pos.epoch, cfg.n_epochs, cfg.n_epochs_decay)
    return pos


def _wrap_for_training(nets: _Nets, cfg: TrainConfig, rt: Runtime) -> None:
    """DDP and ``torch.compile`` wrappers, after any restore (DDP broadcasts rank 0's weights)."""
    # D is used through DDP for its own step; the G step runs the bare module (its parameters
    # are frozen then, so DDP would wait forever for their gradients).
    nets.G_train = distributed.wrap(nets.G, rt.dist, rt.device, sync_bn=cfg.sync_bn)
    nets.D_train = distributed.wrap(nets.D, rt.dist, rt.device, sync_bn=cfg.sync_bn)
    nets.D_for_G = nets.D_train.module if rt.dist.enabled else nets.D_train
    if cfg.compile:
        # One compiled D when D_for_G is D_train (no DDP): compiling it twice compiles twice.
        same = nets.D_for_G is nets.D_train
        nets.G_train, nets.D_train = torch.compile(nets.G_train), torch.compile(nets.D_train)
        nets.D_for_G = nets.D_train if same else torch.compile(nets.D_for_G)


@dataclass
class _Run:
    """One training session: what the loop's helpers below read and update."""

    cfg: TrainConfig
    rt: Runtime
    run_dir: Path
    data: _Data
    nets: _Nets
    pos: _Position
    log: Callable[[str], None]
    resumed_from: Path | None = None
    last_ckpt: Path | None = None
    step_metrics: dict[str, float] = field(default_factory=dict)
    cbs: CallbackList = field(default_factory=lambda: CallbackList([]))
    window_start: float = field(default_factory=time.perf_counter)
    window_images: int = 0

    @property
    def main(self) -> bool:
        return self.rt.dist.is_main


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
    whose config (all keys but ``RUNTIME_KEYS``) or dataset fingerprint differs, or that has
    trained more epochs than this run's schedule, is never resumed silently:
    ``on_mismatch="stop"`` raises ``ResumeMismatchError`` naming the keys, ``"fresh"`` says
    why and starts over. Raises ``TrainingDivergedError`` on a NaN/Inf loss. ``progress``: a
    bar on a terminal, else one line per epoch with the rate and ETA. Callbacks (see
    ``callbacks.py``) run on rank 0; under torchrun every rank calls this.
    """
    if on_mismatch not in ON_MISMATCH:
        raise ConfigError(f"on_mismatch: expected one of {list(ON_MISMATCH)}, got {on_mismatch!r}")
    cfg, dataset_dir, run_dir = config, Path(dataset_dir), Path(run_dir)
    check_disjoint(run_dir, {"DATASET": dataset_dir}, what="RUN_DIR")  # run files never land in the data
    threads_before = torch.get_num_threads()
    rt = setup_runtime(cfg)
    log = _log if rt.dist.is_main else _quiet
    cbs = CallbackList([])
    try:
        data = _make_data(cfg, dataset_dir, rt.dist, rt.device)  # the manifest decides the splits
        nets = _make_nets(cfg, rt)
        state = ckpt_io.start_or_resume(ckpt_io.checkpoint_dir(run_dir), resume, on_mismatch,
                                        cfg, data.fingerprint, log=log, ctx=rt.dist)
        run = _Run(cfg, rt, run_dir, data, nets, _Position(), log)
        if state is not None:
            run.pos = _restore(nets, state, cfg, rt.dist.rank)
            run.resumed_from = run.last_ckpt = Path(state["_path"])
            run.step_metrics = dict(state.get("step_metrics", {}))
            log(f"resumed from {run.resumed_from} at epoch {run.pos.epoch}, step {run.pos.step}")
            del state
        _wrap_for_training(nets, cfg, rt)
        cbs = run.cbs = _open_outputs(run, callbacks, progress)
        started = time.perf_counter()
        while run.pos.epoch < cfg.total_epochs:
            _train_epoch(run)
        metrics, info = _finish(run, time.perf_counter() - started)
    finally:
        cbs.on_end()
        distributed.shutdown(rt.dist)
        torch.set_num_threads(threads_before)
    return TrainResult(run_dir=run_dir, step=run.pos.step, epoch=run.pos.epoch, metrics=metrics,
                       info=info, checkpoint=run.last_ckpt, generator=run_dir / ckpt_io.GENERATOR_FILE,
                       resumed_from=run.resumed_from, G=nets.G, D=nets.D)


def _log(msg: str) -> None:
    print(f"[train] {msg}", flush=True)


def _quiet(msg: str) -> None:
    pass


def _open_outputs(run: _Run, callbacks: Iterable[Any], progress: bool) -> CallbackList:
    """Rank 0: the samples folder, config.json, the callbacks (started) and the opening line."""
    cfg, pos, data, rt = run.cfg, run.pos, run.data, run.rt
    if not run.main:
        return CallbackList([])
    samples = run.run_dir / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    if run.resumed_from is None:
        # samples/ persists across DVC re-runs: grids of a discarded run must not mix in.
        for old in samples.glob("step-*.png"):
            old.unlink()
    total_steps = cfg.total_epochs * data.steps_per_epoch
    # A bar where someone watches a terminal; elsewhere (dvc repro, CI, a log file) a plain
    # line per epoch with the rate and the ETA.
    bar = progress and sys.stderr.isatty()
    cbs = CallbackList([
        *callbacks,
        EpochHistory(run.run_dir / "history.jsonl", keep_until=pos.epoch),
        ProgressBar(total_steps, pos.step) if bar else
        EpochProgress(total_steps, pos.step, cfg.total_epochs, data.steps_per_epoch, _log),
    ])
    atomic_write_text(run.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    for cb in cbs.callbacks:
        if hasattr(cb, "on_start"):
            cb.on_start({"resumed": run.resumed_from is not None, "step": pos.step,
                         "epoch": pos.epoch, "run_dir": str(run.run_dir)})
    ctx = rt.dist
    run.log(f"{len(data.train_ds)} train / {len(data.val_ds)} val pairs"
            f"{' (in memory)' if data.train_ds.in_memory else f', {data.workers} loader workers'}; "
            f"device {rt.device}{f' x{ctx.world_size} processes' if ctx.enabled else ''}; "
            f"{data.steps_per_epoch} steps/epoch, epochs {pos.epoch}->{cfg.total_epochs}")
    return cbs


def _train_epoch(run: _Run) -> None:
    """The rest of epoch ``run.pos.epoch``: steps, logs, snapshots; then ``_end_epoch``."""
    cfg, rt, pos, nets, data = run.cfg, run.rt, run.pos, run.nets, run.data
    epoch_start, epoch_images = time.perf_counter(), 0
    data.sampler.set_epoch(pos.epoch, start=pos.batch * cfg.batch_size)
    nets.G_train.train()
    nets.D_train.train()
    check = functools.partial(_check_finite, run)
    for xy_u8 in data.loader:
        # uint8 -> [-1, 1] on the device (the one conversion, data.py)
        xy = xy_u8.to(rt.device, non_blocking=True)
        real_a, real_b = to_model_range(xy[:, :3]), to_model_range(xy[:, 3:])
        if rt.channels_last:
            real_a = real_a.contiguous(memory_format=torch.channels_last)
            real_b = real_b.contiguous(memory_format=torch.channels_last)
        m = pix2pix_step(nets.G_train, nets.D_train, nets.opt_G, nets.opt_D, real_a, real_b,
                         gan_mode=cfg.gan_mode, lambda_l1=cfg.lambda_l1, D_for_G=nets.D_for_G,
                         scaler=nets.scaler, autocast=rt.autocast, check=check)
        pos.step += 1
        pos.batch += 1
        images = xy_u8.shape[0] * rt.dist.world_size
        run.window_images += images
        epoch_images += images
        run.step_metrics = {**m, "lr": nets.opt_G.param_groups[0]["lr"]}
        if pos.step % cfg.log_every == 0:
            now = time.perf_counter()
            run.step_metrics["images_per_s"] = run.window_images / max(now - run.window_start, 1e-9)
            run.window_start, run.window_images = now, 0
            run.cbs.on_step(run.step_metrics, pos.step)
        if run.main and cfg.sample_every and pos.step % cfg.sample_every == 0:
            _snapshot(run)
        if cfg.checkpoint_every and pos.step % cfg.checkpoint_every == 0:
            _save_checkpoint(run)
    _end_epoch(run, time.perf_counter() - epoch_start, epoch_images)


def _end_epoch(run: _Run, seconds: float, images: int) -> None:
    """LR schedule, validation (best val_L1 kept in the history), callbacks, checkpoint."""
    cfg, pos = run.cfg, run.pos
    run.nets.sched_G.step()
    run.nets.sched_D.step()
    pos.epoch += 1
    pos.batch = 0
    metrics = {k: v for k, v in run.step_metrics.items() if k != "images_per_s"}
    metrics["epoch_seconds"] = seconds
    metrics["epoch_images_per_s"] = images / max(seconds, 1e-9)
    if run.main and len(run.data.val_ds) and cfg.val_every and pos.epoch % cfg.val_every == 0:
        metrics["val_L1"] = validate(run.nets.G, run.data.val_ds, run.rt, cfg)
        pos.history["val_L1"] = metrics["val_L1"]
        best = pos.history.get("best_val_L1")
        if best is None or metrics["val_L1"] < best:
            pos.history["best_val_L1"] = metrics["val_L1"]
            pos.history["best_val_epoch"] = pos.epoch
    run.cbs.on_epoch(metrics, pos.epoch)
    _save_checkpoint(run)


def _finish(run: _Run, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Final sample grid, generator file, metrics.json and run_info.json (rank 0)."""
    pos, nets, rt = run.pos, run.nets, run.rt
    distributed.sync_buffers(nets.G, rt.dist)
    distributed.sync_buffers(nets.D, rt.dist)
    if run.main:
        # Also when a finished run is "resumed" (e.g. a DVC re-run that only changed an
        # execution key): the run folder always ends with a grid of the final G.
        if run.cfg.sample_every and not _sample_path(run).exists():
            _snapshot(run)
        _save_generator(run)
    # metrics.json holds what an experiment is compared by (what `dvc metrics show` lists);
    # where and how it ran goes to run_info.json.
    metrics = {"step": pos.step, "epoch": pos.epoch,
               **{k: v for k, v in run.step_metrics.items() if k in METRIC_KEYS}, **pos.history}
    info = {
        "lr_last": run.step_metrics.get("lr"),
        "train_seconds_this_session": seconds,
        "device": str(rt.device), "world_size": rt.dist.world_size,
        "dataset_fingerprint": run.data.fingerprint,
        "resumed_from": str(run.resumed_from) if run.resumed_from else None,
    }
    if run.main:
        for name, content in (("run_info.json", info), ("metrics.json", metrics)):
            atomic_write_text(run.run_dir / name, json.dumps(content, indent=2) + "\n")
        run.log(f"done: {pos.step} steps, {pos.epoch} epochs -> {run.run_dir}")
    return metrics, info


def _sample_path(run: _Run) -> Path:
    return run.run_dir / "samples" / f"step-{run.pos.step:07d}.png"


def _snapshot(run: _Run) -> None:
    """A sample grid of the preview pairs: to samples/ and to the callbacks."""
    grid = sample_grid(run.nets.G, run.data.preview, run.rt, run.cfg.eval_mode, run.cfg.seed)
    _write_png(_sample_path(run), grid)
    run.cbs.on_images("samples", grid, run.pos.step)


def _save_generator(run: _Run) -> None:
    ckpt_io.save_generator(run.nets.G, run.cfg.to_dict(), run.run_dir, step=run.pos.step,
                           epoch=run.pos.epoch, fingerprint=run.data.fingerprint)


def _save_checkpoint(run: _Run) -> None:
    """Full state to checkpoints/ (every rank's RNG gathered) and the generator file (rank 0)."""
    rngs = _gather_rng(run.rt.dist)  # each rank continues its own dropout stream
    if not run.main:
        return
    cfg, pos = run.cfg, run.pos
    state = ckpt_io.training_state(
        run.nets.state_objects(), step=pos.step, epoch=pos.epoch, batch=pos.batch,
        rng_per_rank=rngs, history=pos.history, step_metrics=run.step_metrics,
        config=cfg.to_dict(), resume_key=cfg.resume_key(), fingerprint=run.data.fingerprint,
        world_size=run.rt.dist.world_size)
    run.last_ckpt = ckpt_io.write_checkpoint(state, ckpt_io.checkpoint_dir(run.run_dir),
                                             step=pos.step, keep_last=cfg.keep_last)
    _save_generator(run)
    run.cbs.on_checkpoint(run.last_ckpt)


def _check_finite(run: _Run, metrics: dict[str, float]) -> None:
    """Raise ``TrainingDivergedError`` (on every rank) if any rank's loss is NaN/Inf."""
    finite = all(math.isfinite(v) for v in metrics.values())
    if distributed.all_true(finite, run.rt.dist, run.rt.device):
        return
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    last = run.last_ckpt
    raise TrainingDivergedError(
        f"loss became non-finite at step {run.pos.step + 1} (epoch {run.pos.epoch}): "
        f"{bad or 'on another rank'}; lower lr or check the data. "
        + (f"Last good checkpoint: {last}" if last else "No checkpoint was written."),
        checkpoint=last,
    )

def _gather_rng(ctx: distributed.DistContext) -> list[dict[str, Any]]:
    mine = ckpt_io.capture_rng_state()
    if not ctx.enabled:
        return [mine]
    out: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, mine)
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
