"""Reading an A|B dataset (docs/dataset-format.md) for training.

- The manifest decides which files belong to a split (no globbing).
- The contract (manifest, A|B split, decoding) is ``pix2pix.dataset``'s; this module adds the
  training view of it.
- ``jitter_params`` / ``apply_jitter`` are the paper's jitter as pure functions: one crop/flip
  sample, drawn from an explicit generator, applied to input and target alike.
- ``to_model_range`` / ``from_model_range`` are the one place uint8 [0, 255] ↔ float [−1, 1].
- Per-sample randomness is drawn from ``np.random.default_rng((seed, epoch, index))``: the same
  sample gets the same jitter whatever the worker count, rank or resume point.

The dataset yields uint8 CHW tensors; the training loop converts them on the device (4× less
worker→trainer traffic than float32, and the conversion stays in one function).
"""

from __future__ import annotations

import math
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pix2pix.dataset import (  # noqa: F401 - re-exported: the training API names them
    MANIFEST,
    DatasetError,
    dataset_fingerprint,
    read_ab,
    read_manifest,
    split_ab,
)
from pix2pix.resample import resize_bicubic

# --------------------------------------------------------------------------- value range


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [−1, 1] (0 → −1, 255 → 1 exactly). Any shape, any device."""
    return x.float().div_(127.5).sub_(1.0)


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float [−1, 1] → uint8 [0, 255], rounded and clipped. Any shape, any device."""
    return x.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- pure image ops


def split_pair(ab: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """A|B image (H, 2W, 3) → (input, target) views (``pix2pix.dataset.split_ab``)."""
    return split_ab(ab, direction)


@dataclass(frozen=True)
class Jitter:
    """One jitter sample: crop offset (x, y) in the resized image and a mirror flag."""

    x: int
    y: int
    flip: bool


def jitter_params(rng: np.random.Generator, load_size: int, crop_size: int, flip: bool) -> Jitter:
    """Draw the paper's jitter: a uniform crop position and a fair mirror coin (if ``flip``)."""
    x = int(rng.integers(0, load_size - crop_size + 1))
    y = int(rng.integers(0, load_size - crop_size + 1))
    mirror = bool(rng.random() < 0.5) if flip else False
    return Jitter(x, y, mirror)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize of an (H, W, 3) uint8 image with Pillow's bicubic, as the official loader
    does (``Image.resize(..., Image.BICUBIC)``: a = −0.5, antialiased when shrinking): the
    same pixels bit for bit (``pix2pix.resample``). A no-op at the same size."""
    return resize_bicubic(img, size)


def apply_jitter(img: np.ndarray, load_size: int, crop_size: int, j: Jitter) -> np.ndarray:
    """Resize to ``load_size``, crop ``crop_size`` at (j.x, j.y), mirror if ``j.flip``.

    Only the crop window of the resized image is computed; its pixels are those of the whole
    resize (``pix2pix.resample.resize_bicubic``)."""
    out = resize_bicubic(img, load_size, j.x, j.y, crop_size)
    return out[:, ::-1] if j.flip else out


# --------------------------------------------------------------------------- dataset


class PairDataset(Dataset):
    """One split of an A|B dataset, as (input, target) uint8 tensors of shape (3, size, size).

    Items are addressed by ``(epoch, index)`` (see ``EpochSampler``) so the jitter of a sample
    is a pure function of (seed, epoch, index). ``train=False`` (validation) turns jitter off:
    each half is resized straight to ``crop_size``. When the split fits in ``in_memory_mb``
    (counted at the resized size: 2 halves of ``load_size``² × 3 bytes per pair, ``crop_size``
    without jitter), each pair is decoded and resized once and held as uint8: an item is then
    only a crop and a mirror of it (the resize does not depend on the epoch; the same pixels as
    from disk).
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        split: str,
        *,
        direction: str = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        seed: int = 0,
        in_memory_mb: int = 0,
    ) -> None:
        self.root = Path(dataset_dir)
        self.split = split
        self.records = read_manifest(self.root, split)
        self.direction = direction
        self.load_size, self.crop_size = load_size, crop_size
        self.flip, self.train, self.seed = flip, train, seed
        for rec in self.records:
            if not (self.root / rec["path"]).is_file():
                raise DatasetError(f"{self.root / rec['path']}: listed in the manifest, missing")
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        side = load_size if train else crop_size
        if self.records and in_memory_mb > 0 and len(self.records) * 2 * side * side * 3 <= in_memory_mb * 2**20:
            self._cache = [self._resized(i, side) for i in range(len(self.records))]

    @property
    def in_memory(self) -> bool:
        return self._cache is not None

    def __len__(self) -> int:
        return len(self.records)

    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    def _read(self, i: int) -> np.ndarray:
        return read_ab(self.root / self.records[i]["path"])

    def _resized(self, i: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = split_pair(self._read(i), self.direction)
        return np.ascontiguousarray(resize(x, side)), np.ascontiguousarray(resize(y, side))

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        if not self.train:
            x, y = self._cache[i] if self._cache is not None else self._resized(i, self.crop_size)
            return _chw(x), _chw(y)
        j = jitter_params(
            np.random.default_rng((self.seed, epoch, i)), self.load_size, self.crop_size, self.flip,
        )
        if self._cache is not None:  # resized once: the jitter is a window of it
            c = self.crop_size
            x, y = (h[j.y : j.y + c, j.x : j.x + c] for h in self._cache[i])
            if j.flip:
                x, y = x[:, ::-1], y[:, ::-1]
        else:
            x, y = split_pair(self._read(i), self.direction)
            x = apply_jitter(x, self.load_size, self.crop_size, j)
            y = apply_jitter(y, self.load_size, self.crop_size, j)
        return _chw(x), _chw(y)


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Stack (x, y) samples into one N×6×H×W uint8 tensor: x in channels 0-2, y in 3-5.

    A DataLoader worker hands each tensor of a batch over in its own shared-memory block, and on
    a small CPU that hand-over, not the decoding, limits throughput: one tensor per batch instead
    of two moves ≈ 1.5× more batches per second (bench/bench_dataloader.py).
    """
    return torch.cat([torch.stack([x for x, _ in batch]), torch.stack([y for _, y in batch])], dim=1)


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` for one rank's share of a seeded per-epoch permutation.

    The order is a pure function of (seed, epoch): resuming needs only the epoch and how many
    samples of it were done (``set_epoch(epoch, start=...)``). Like ``DistributedSampler``, the
    permutation is padded to a multiple of ``world_size`` and rank r takes every world_size-th
    item, so every rank runs the same number of steps.
    """

    def __init__(
        self, n: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(n / world_size) if n else 0
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch`` (without the ``start`` offset)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        total = self.per_rank * self.world_size
        perm = (perm * math.ceil(total / max(len(perm), 1)))[:total]
        return perm[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.order(self.epoch)[self.start :]:
            yield self.epoch, i

    def __len__(self) -> int:
        return self.per_rank - self.start


def seed_worker(worker_id: int, trainer_pid: int | None = None) -> None:
    """DataLoader ``worker_init_fn``: seed numpy/random from the worker's torch seed.

    Jitter does not use these generators (it is keyed on (seed, epoch, index)); seeding them
    keeps any other randomness in a worker reproducible. One OpenCV thread per worker: the
    workers are the parallelism. (Safe only in a fresh process: the training loop starts its
    workers with "forkserver", never by forking a process whose thread pools run.)

    ``trainer_pid`` (pass it with ``functools.partial``): the worker ends as soon as that process
    does, however it ends (kill -9 included), instead of training data for no one.
    """
    _die_with_parent()
    if trainer_pid is not None:
        _die_with(trainer_pid)
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
    cv2.setNumThreads(1)


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGKILL when its parent (the fork server, which exits
    with the trainer) dies, so a kill -9 of the trainer leaves no worker behind. Elsewhere a no-op
    (torch's own watchdog still ends orphaned workers, only later)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call: the signal will never come
        os._exit(1)


def _die_with(pid: int) -> None:
    """End this process when process ``pid`` ends (a daemon thread waits on a pidfd).

    A forkserver worker's parent is the fork server, which stays alive while any worker does
    (each holds its liveness pipe), so watching the parent alone is not enough.
    """
    import select
    import signal
    import threading

    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or the trainer is already gone
        if not _pid_alive(pid):
            os._exit(1)
        return

    def wait() -> None:
        select.select([fd], [], [])  # readable once `pid` has exited (zombie included)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait, name="pix2pix-trainer-watch", daemon=True).start()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_process_context() -> Any:
    """The "forkserver" multiprocessing context for DataLoader workers, its server preloaded
    with ``pix2pix.training.forkserver_guard`` (the server dies with the trainer, Linux) and this
    module (workers start without re-importing torch/OpenCV, so they reach ``seed_worker``,
    where each ties its life to the trainer's, at once)."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pix2pix.training.forkserver_guard", "pix2pix.training.data"])
    return ctx
