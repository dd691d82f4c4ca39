"""The checkpoint layout, in one place: what a run folder holds, written and read here.

Run folder::

    RUN_DIR/checkpoints/ckpt-<step>.pt   full state (``training_state``), the last ``keep_last``
                                         kept (default 3; resume needs only the newest)
    RUN_DIR/checkpoints/latest.pt        hard link to the newest (a copy where links fail)
    RUN_DIR/generator.pt                 G only, fp32, + the config needed to rebuild it

A full checkpoint holds G, D, both optimisers and schedulers, the loss scaler, step / epoch /
position in the epoch, every rank's RNG states (torch, CUDA, numpy, python) as tensors, the
resolved config as a dict, the resume key and the dataset fingerprint (sha256 of
manifest.jsonl), and a checksum. Nothing in it is pickled code (``weights_only=True`` loads it).
``start_or_resume`` decides whether a run continues one.

This module writes both formats; reading them (the format names, ``read_weights``, the checksum
and ``load_generator``) lives in ``pix2pix.models.weights``, below every stage that loads G.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.errors import EXIT_IO, EXIT_MISMATCH
from pix2pix.models.weights import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    GENERATOR_FORMAT,
    CheckpointError,
    payload_checksum,
    read_weights,
    verify_payload,
)
from pix2pix.training import distributed

_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
LATEST = "latest.pt"
GENERATOR_FILE = "generator.pt"
# The objects whose state_dict a full checkpoint holds, under these keys.
STATE_OBJECTS = ("G", "D", "opt_G", "opt_D", "sched_G", "sched_D", "scaler")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


class CheckpointWriteError(CheckpointError):
    """Writing a checkpoint failed (disk full, read-only): a system problem, not the run's."""

    exit_code = EXIT_IO


class ResumeMismatchError(CheckpointError):
    """The checkpoint was made with a different config or dataset; ``differences`` names them."""

    exit_code = EXIT_MISMATCH

    def __init__(self, message: str, differences: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.differences = differences


# --------------------------------------------------------------------------- RNG states


def capture_rng_state() -> dict[str, Any]:
    """All global RNG states as tensors / plain types (weights_only-loadable)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- writing


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then os.replace: never half a file.

    A checkpoint or generator payload gets a ``checksum`` (``payload_checksum``) that every
    loader verifies.
    """
    if isinstance(obj, dict) and obj.get("format") in (CHECKPOINT_FORMAT, GENERATOR_FORMAT):
        obj = {**obj, "checksum": payload_checksum(obj)}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except RuntimeError as e:  # torch's zip writer reports ENOSPC/EIO as a RuntimeError
        raise CheckpointWriteError(
            f"{path}: could not be written ({e}); is the disk full or read-only? Free space and "
            f"continue with --resume (earlier checkpoints are intact)") from e


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of ``ckpt-<step>.pt`` files, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def write_checkpoint(state: dict[str, Any], ckpt_dir: Path, *, step: int, keep_last: int) -> Path:
    """Write ``ckpt-<step>.pt``, point ``latest.pt`` at it, delete all but the last K."""
    path = ckpt_dir / f"ckpt-{step}.pt"
    atomic_save(state, path)
    with atomic_path(ckpt_dir / LATEST) as tmp:
        try:
            os.link(path, tmp)  # a hard link: no second copy on disk, survives pruning of `path`
        except OSError:
            shutil.copyfile(path, tmp)
    for _, old in list_checkpoints(ckpt_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def training_state(
    objects: dict[str, Any], *, step: int, epoch: int, batch: int,
    rng_per_rank: list[dict[str, Any]], history: dict[str, Any], step_metrics: dict[str, float],
    config: dict[str, Any], resume_key: dict[str, Any], fingerprint: str, world_size: int,
) -> dict[str, Any]:
    """The full checkpoint dict. ``objects``: ``STATE_OBJECTS`` → module / optimiser /
    scheduler / GradScaler; ``batch``: batches of ``epoch`` done (0 at an epoch's end)."""
    scaler = objects["scaler"]
    return {
        "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION,
        **{k: objects[k].state_dict() for k in STATE_OBJECTS if k != "scaler"},
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "step": step, "epoch": epoch, "batch": batch,
        "rng_per_rank": rng_per_rank, "history": history, "step_metrics": step_metrics,
        # The data order needs no state of its own: it is a function of (seed, epoch).
        "data_order": {"seed": config["seed"], "epoch": epoch,
                       "samples_done": batch * config["batch_size"]},
        "config": config, "resume_key": resume_key,
        "dataset_fingerprint": fingerprint, "world_size": world_size,
    }


def restore_training_state(state: dict[str, Any], objects: dict[str, Any], *,
                           rank: int = 0) -> dict[str, Any]:
    """Load ``state`` (from ``training_state``) into ``objects`` and restore ``rank``'s RNGs.

    Returns the position: step, epoch, batch, history, step_metrics.
    """
    for k in STATE_OBJECTS:
        if k != "scaler" or state.get("scaler"):
            objects[k].load_state_dict(state[k])
    rngs = state["rng_per_rank"]
    if rank < len(rngs) and rngs[rank] is not None:  # a new rank (more GPUs) starts its own
        restore_rng_state(rngs[rank])
    return {"step": state["step"], "epoch": state["epoch"], "batch": state["batch"],
            "history": dict(state.get("history", {})),
            "step_metrics": dict(state.get("step_metrics", {}))}


def save_generator(G: nn.Module, config: dict[str, Any], run_dir: Path, *, step: int,
                   epoch: int, fingerprint: str) -> Path:
    """Write ``RUN_DIR/generator.pt`` (``generator_payload``) atomically; returns its path."""
    path = Path(run_dir) / GENERATOR_FILE
    atomic_save(generator_payload(G, config, step=step, epoch=epoch, fingerprint=fingerprint), path)
    return path


def generator_payload(
    G: nn.Module, config: dict[str, Any], *, step: int, epoch: int, fingerprint: str
) -> dict[str, Any]:
    """The inference file: fp32 G weights plus what ``load_generator`` needs to rebuild G."""
    return {
        "format": GENERATOR_FORMAT,
        "version": FORMAT_VERSION,
        "state_dict": {k: v.detach().float().cpu().clone() if v.is_floating_point()
                       else v.detach().cpu().clone() for k, v in G.state_dict().items()},
        "model": {
            "generator": config["generator"],
            "ngf": config["ngf"],
            "norm": config["norm"],
            "dropout": config["dropout"],
            "in_channels": 3,
            "out_channels": 3,
        },
        "size": config.get("crop_size", config.get("size")),  # the image side G was trained at
        "direction": config["direction"],
        "eval_mode": config["eval_mode"],
        "config": config,
        "step": step,
        "epoch": epoch,
        "dataset_fingerprint": fingerprint,
    }


# --------------------------------------------------------------------------- reading


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a full checkpoint with ``weights_only=True`` and check its format."""
    path = Path(path)
    state = read_weights(path, what="checkpoint", map_location=map_location)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a pix2pix training checkpoint (format field)")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {state.get('version')}, expected {FORMAT_VERSION}"
        )
    verify_payload(state, path, finite=("G", "D"))
    return state


def find_resumable(ckpt_dir: Path, warn: Any = print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``ckpt_dir`` that reads and verifies: ``latest.pt``, then
    ``ckpt-<step>.pt`` newest first. Each damaged one is reported through ``warn`` and skipped.

    None when the folder holds no checkpoint at all. Raises ``CheckpointError`` listing every
    checkpoint and what is wrong with it when there are some but none is usable (never a
    silent fresh start that would prune them).
    """
    candidates = [ckpt_dir / LATEST] if (ckpt_dir / LATEST).exists() else []
    candidates += [p for _, p in reversed(list_checkpoints(ckpt_dir))]
    if not candidates:
        return None
    problems = []
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            warn(f"warning: {e}; trying an older checkpoint")
    raise CheckpointError(
        f"{ckpt_dir}: no usable checkpoint to resume from: " + "; ".join(problems)
        + ". Remove the damaged files to start over, or train into a new run folder")


def set_inference_mode(G: nn.Module, eval_mode: str) -> nn.Module:
    """``"train"``: dropout on, BatchNorm on batch statistics (the paper). ``"eval"``: off."""
    if eval_mode == "train":
        return G.train()
    if eval_mode == "eval":
        return G.eval()
    raise ValueError(f"eval_mode: expected 'train' or 'eval', got {eval_mode!r}")


def compare_for_resume(
    ckpt: dict[str, Any], resume_key: dict[str, Any], fingerprint: str,
    schedule: tuple[int, int] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """{key: (checkpoint value, current value)} for every difference that forbids resuming.

    ``schedule`` (n_epochs, n_epochs_decay) of this run: a longer schedule continues the
    checkpoint; one shorter than the epochs it has trained (or a different schedule of a run
    that has finished) cannot, since nothing would be trained and the old model would be
    reported under the new schedule. That difference is keyed ``"schedule"``.
    """
    diffs: dict[str, tuple[Any, Any]] = {}
    from pix2pix.training.config import upgrade_keys

    old = upgrade_keys(dict(ckpt.get("resume_key", {})))  # older checkpoints say `size`
    for k in sorted(set(old) | set(resume_key)):
        if old.get(k, "<absent>") != resume_key.get(k, "<absent>"):
            diffs[k] = (old.get(k, "<absent>"), resume_key.get(k, "<absent>"))
    if ckpt.get("dataset_fingerprint") != fingerprint:
        diffs["dataset_fingerprint"] = (ckpt.get("dataset_fingerprint"), fingerprint)
    if schedule is not None:
        cfg = ckpt.get("config", {})
        before = (cfg.get("n_epochs"), cfg.get("n_epochs_decay"))
        done, total = ckpt.get("epoch", 0), sum(schedule)
        if done > total or (done >= total and before != tuple(schedule)):
            diffs["schedule"] = ((done, *before), (total, *schedule))
    return diffs


def describe_differences(diffs: dict[str, tuple[Any, Any]]) -> str:
    parts = []
    for k, (old, new) in diffs.items():
        if k == "schedule":
            parts.append(f"schedule: the checkpoint has trained {old[0]} epochs (of n_epochs "
                         f"{old[1]} + n_epochs_decay {old[2]}), this run asks for {new[0]} "
                         f"(n_epochs {new[1]} + n_epochs_decay {new[2]}); a shorter or changed "
                         f"schedule cannot continue a run past it")
        elif k == "dataset_fingerprint":
            parts.append(f"dataset_fingerprint (manifest.jsonl sha256): checkpoint "
                         f"{str(old)[:12]}…, now {str(new)[:12]}…")
        else:
            parts.append(f"{k}: checkpoint {old!r}, now {new!r}")
    return "; ".join(parts)


def start_or_resume(
    ckpt_dir: Path, resume: bool | str | Path, on_mismatch: str, cfg: Any, fingerprint: str,
    *, log: Any = print, ctx: distributed.DistContext | None = None,
) -> dict[str, Any] | None:
    """The checkpoint state to continue from (with ``"_path"``), or None for a fresh start.

    ``resume``: False refuses a folder with checkpoints (``CheckpointError``); True takes the
    newest usable one (``find_resumable``), a path takes that file. A checkpoint that differs
    (``compare_for_resume`` with ``cfg``'s resume key and schedule) raises
    ``ResumeMismatchError`` (``on_mismatch="stop"``) or is removed with its folder after saying
    why (``"fresh"``).
    """
    existing = (ckpt_dir / LATEST).exists() or bool(list_checkpoints(ckpt_dir))
    if resume is False or resume is None:
        if existing:
            raise CheckpointError(
                f"{ckpt_dir}: holds checkpoints of an earlier run; pass --resume to continue it "
                f"or choose a new run folder"
            )
        return None
    if resume is True:
        # latest.pt damaged or missing: the newest good ckpt-<step>.pt, said out loud.
        found = find_resumable(ckpt_dir, warn=log)
        if found is None:
            log(f"no checkpoint in {ckpt_dir}: starting fresh")
            return None
        path, state = found
    else:
        path = Path(resume)
        state = load_checkpoint(path)
    diffs = compare_for_resume(state, cfg.resume_key(), fingerprint,
                               schedule=(cfg.n_epochs, cfg.n_epochs_decay))
    if not diffs:
        return state | {"_path": str(path)}
    why = describe_differences(diffs)
    if on_mismatch == "stop":
        raise ResumeMismatchError(
            f"{path}: not resuming, this run differs from the checkpoint: {why}. "
            f"Use --on-mismatch fresh to start over (discards {ckpt_dir}) or a new run folder.",
            diffs,
        )
    log(f"{path}: starting fresh, this run differs from the checkpoint: {why}")
    ctx = ctx or distributed.DistContext()
    distributed.barrier(ctx)  # every rank has read the checkpoint before rank 0 removes it
    if ctx.is_main:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    distributed.barrier(ctx)
    return None
