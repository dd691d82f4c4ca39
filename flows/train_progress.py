"""A training callback that makes a run visible in the Prefect UI while it trains.

    train(cfg, dataset, run_dir, callbacks=[PrefectTrainReporter(cfg.total_epochs, key="train-demo")])

Per epoch: one log line through the run logger (losses, val L1, images/s, ETA) and an update of
the progress artifact `<key>-progress` (epoch/step, ETA). The flow adds the final metrics
table when training returns (`metrics_table`). It must run inside a Prefect task or flow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext

LOSSES = ("G_GAN", "G_L1", "D_real", "D_fake")
# Rows of the final table: the keys of metrics.json and run_info.json worth a glance, in order.
TABLE_KEYS = ("epoch", "step", *LOSSES, "val_L1", "best_val_L1", "best_val_epoch", "lr_last",
              "train_seconds_this_session", "device")


def format_seconds(seconds: float) -> str:
    """`3725` -> `1h02m`, `65` -> `1m05s`, `4` -> `4s`."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class PrefectTrainReporter:
    """Log lines and a progress artifact per epoch; remembers the newest sample grid's path.

    Implements the hooks of `pix2pix.training.callbacks` it needs (the loop calls a hook only
    when a callback has it); no import of the training package, so serving does not load torch.
    """

    def __init__(self, total_epochs: int, *, key: str, run_dir: str | Path) -> None:
        self.total_epochs = total_epochs
        self.key = key
        self.run_dir = Path(run_dir)
        self.first_epoch = 0
        self.started = time.perf_counter()
        self.artifact: UUID | None = None
        self.last_samples: Path | None = None
        self.step = 0

    def on_start(self, info: dict[str, Any]) -> None:
        self.first_epoch, self.step = int(info.get("epoch", 0)), int(info.get("step", 0))
        self.started = time.perf_counter()
        if not self.in_run():
            return
        done = 100.0 * self.first_epoch / max(self.total_epochs, 1)
        self.artifact = create_progress_artifact(
            done, key=f"{self.key}-progress",
            description=f"epoch {self.first_epoch}/{self.total_epochs}, step {self.step}: starting")
        get_run_logger().info("training epochs %d->%d in %s%s", self.first_epoch, self.total_epochs, self.run_dir,
                              " (resumed)" if info.get("resumed") else "")

    @staticmethod
    def in_run() -> bool:
        """Inside a Prefect task or flow run (a task's `.fn()` called directly is not: it reports nothing)."""
        return TaskRunContext.get() is not None or FlowRunContext.get() is not None

    def on_step(self, metrics: dict[str, float], step: int) -> None:
        self.step = step

    def eta_seconds(self, epoch: int) -> float:
        """Seconds left at the mean pace of the epochs this session has trained."""
        done = max(epoch - self.first_epoch, 1)
        return (time.perf_counter() - self.started) / done * (self.total_epochs - epoch)

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        if not self.in_run():
            return
        eta = format_seconds(self.eta_seconds(epoch))
        losses = " ".join(f"{k} {metrics[k]:.3f}" for k in LOSSES if k in metrics)
        val = f", val L1 {metrics['val_L1']:.4f}" if "val_L1" in metrics else ""
        rate = f", {metrics['epoch_images_per_s']:.1f} img/s" if "epoch_images_per_s" in metrics else ""
        get_run_logger().info("epoch %d/%d: %s%s%s, ETA %s", epoch, self.total_epochs, losses, val, rate, eta)
        if self.artifact is not None:
            update_progress_artifact(self.artifact, 100.0 * epoch / max(self.total_epochs, 1),
                                     description=f"epoch {epoch}/{self.total_epochs}, step {self.step}, ETA {eta}")

    def on_images(self, name: str, image: np.ndarray, step: int) -> None:
        # The loop has written this grid before calling back (loop.snapshot).
        self.last_samples = self.run_dir / "samples" / f"step-{step:07d}.png"


def metrics_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The final metrics as table rows (metric, value), the keys of `TABLE_KEYS` that are present."""
    return [{"metric": k, "value": round(v, 6) if isinstance(v, float) else v}
            for k in TABLE_KEYS if (v := metrics.get(k)) is not None]
