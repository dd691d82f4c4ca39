"""DVCLive adapter for the training callbacks (kept out of ``pix2pix/``, which imports no DVC).

    from flows.dvclive_logger import DVCLiveCallback
    train(cfg, "data/facades", "runs/x", callbacks=[DVCLiveCallback("runs/x/dvclive")])

Writes ``train/<loss>`` every logged step (G_GAN, G_L1, D_real, D_fake, lr, images_per_s),
``epoch/<metric>`` after each epoch (val_L1, ...) and the latest sample grid as
``plots/images/samples.png``. ``Live(dir, dvcyaml=None)``: the dvc.yaml stage declares the
metrics and plots, so DVCLive must not rewrite it. The ``Live`` object is made when training
starts, so a resumed run appends (``resume=True``) and a fresh one starts clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class DVCLiveCallback:
    """Implements the ``pix2pix.training.callbacks`` protocol on top of ``dvclive.Live``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.live: Any = None
        self._step = 0

    def _ensure(self, resumed: bool = False) -> Any:
        if self.live is None:
            from dvclive import Live

            self.live = Live(str(self.directory), dvcyaml=None, resume=resumed,
                             save_dvc_exp=False)
        return self.live

    def on_start(self, info: dict[str, Any]) -> None:
        self._ensure(resumed=bool(info.get("resumed")))

    def _log(self, prefix: str, metrics: dict[str, float], step: int) -> None:
        live = self._ensure()
        live.step = step
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                live.log_metric(f"{prefix}/{name}", float(value))
        live.next_step()

    def on_step(self, metrics: dict[str, float], step: int) -> None:
        self._step = step
        self._log("train", metrics, step)

    def on_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        self._log("epoch", {"epoch": epoch, **metrics}, self._step)

    def on_images(self, name: str, image: np.ndarray, step: int) -> None:
        self._ensure().log_image(f"{name}.png", image)

    def on_checkpoint(self, path: Path) -> None:
        pass

    def on_end(self) -> None:
        if self.live is not None:
            self.live.step = self._step
            self.live.end()
