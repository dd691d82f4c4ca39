"""Training callbacks: how the loop reports, without knowing who listens.

A callback is any object with these methods (``Callback`` provides no-op defaults)::

    on_step(metrics: dict[str, float], step: int)       every ``log_every`` steps
    on_epoch(metrics: dict[str, float], epoch: int)     after each epoch (incl. val_L1)
    on_images(name: str, image: np.ndarray, step: int)  sample grids, (H, W, 3) uint8
    on_checkpoint(path: Path)                           after a checkpoint is written
    on_end()                                            once, also after a failure

Callbacks run on rank 0 only. The DVCLive adapter lives in ``flows/dvclive_logger.py`` so the
library does not import DVC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pix2pix.atomic import atomic_write_text
from pix2pix.dataset import read_jsonl
from pix2pix.errors import Pix2PixError


@runtime_checkable
class TrainCallback(Protocol):
    def on_step(self, metrics: dict[str, float], step: int) -> None: ...
    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None: ...
    def on_images(self, name: str, image: np.ndarray, step: int) -> None: ...
    def on_checkpoint(self, path: Path) -> None: ...
    def on_end(self) -> None: ...


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_step(self, metrics: dict[str, float], step: int) -> None:
        pass

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        pass

    def on_images(self, name: str, image: np.ndarray, step: int) -> None:
        pass

    def on_checkpoint(self, path: Path) -> None:
        pass

    def on_end(self) -> None:
        pass


class CallbackList(Callback):
    """Fans each hook out to every callback that has it."""

    def __init__(self, callbacks: Iterable[Any]) -> None:
        self.callbacks = list(callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    def on_step(self, metrics: dict[str, float], step: int) -> None:
        self._call("on_step", metrics, step)

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        self._call("on_epoch", metrics, epoch)

    def on_images(self, name: str, image: np.ndarray, step: int) -> None:
        self._call("on_images", name, image, step)

    def on_checkpoint(self, path: Path) -> None:
        self._call("on_checkpoint", path)

    def on_end(self) -> None:
        self._call("on_end")


class ProgressBar(Callback):
    """A tqdm bar over all steps of the run (rate and ETA), losses in the postfix."""

    def __init__(self, total: int, initial: int = 0, *, disable: bool = False) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                        disable=disable, smoothing=0.1)
        self._last = initial

    def on_step(self, metrics: dict[str, float], step: int) -> None:
        self.bar.update(step - self._last)
        self._last = step
        self.bar.set_postfix({k: f"{metrics[k]:.3g}" for k in ("G_GAN", "G_L1", "D_real", "D_fake")
                              if k in metrics}, refresh=False)

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        if "val_L1" in metrics:
            self.bar.write(f"epoch {epoch}: val_L1 {metrics['val_L1']:.4f}")

    def on_end(self) -> None:
        self.bar.close()


class EpochProgress(Callback):
    """One plain line per epoch, for logs and pipes (``dvc repro``) where a bar cannot redraw::

        epoch 3/80 (step 36/960): 1.92 steps/s, ETA 8m01s; G_L1 21.3, val_L1 0.214

    The rate counts this session's steps only (a resumed run's earlier steps took no time here).
    """

    def __init__(self, total_steps: int, initial_step: int, total_epochs: int,
                 steps_per_epoch: int, write: Any = print) -> None:
        import time

        self._clock = time.perf_counter
        self.total_steps, self.total_epochs = total_steps, total_epochs
        self.steps_per_epoch, self.write = steps_per_epoch, write
        self._start_step, self._start = initial_step, self._clock()

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        step = min(epoch * self.steps_per_epoch, self.total_steps)
        rate = (step - self._start_step) / max(self._clock() - self._start, 1e-9)
        eta = format_duration((self.total_steps - step) / rate) if rate > 0 else "?"
        shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("G_L1", "val_L1") if k in metrics)
        self.write(f"epoch {epoch}/{self.total_epochs} (step {step}/{self.total_steps}): "
                   f"{rate:.3g} steps/s, ETA {eta}" + (f"; {shown}" if shown else ""))


def format_duration(seconds: float) -> str:
    """``3h04m``, ``8m01s``, ``12s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class EpochHistory(Callback):
    """Appends each epoch's metrics to ``RUN_DIR/history.jsonl`` (one JSON object a line).

    Lines of epochs after ``keep_until`` (left by a run that died after its last checkpoint)
    are dropped first, so a resumed run does not list an epoch twice.
    """

    def __init__(self, path: Path, *, keep_until: int = 0) -> None:
        self.path = path
        rows = read_jsonl(path, error=Pix2PixError) if path.exists() else []
        # Atomic: a crash here must not lose the epochs that are kept.
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows if r.get("epoch", 0) <= keep_until))

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"epoch": epoch, **metrics}) + "\n")
