"""Prefect flow ``train``: one task around ``pix2pix.training.train``.

    python -m flows.train data/facades runs/facades --params params.yaml
    python -m flows.train data/demo runs/demo --preset small

Runs in-process without a server (Prefect starts a temporary one) and exits non-zero when the
flow fails. Resumes from RUN_DIR/checkpoints when it can (what a persisted DVC stage needs);
a checkpoint whose config or dataset differs stops the run (``on_mismatch="stop"``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import run_flow_cli


# No caching: the task writes DVC outputs, and DVC decides what is stale.
@task(name="train-pix2pix", cache_policy=NO_CACHE)
def train_task(config: dict[str, Any], dataset: str, run_dir: str, resume: bool,
               on_mismatch: str, dvclive: bool) -> dict[str, Any]:
    """Train and return the run summary (metrics.json's content)."""
    from pix2pix.training import TrainConfig, train

    callbacks = []
    if dvclive:
        from flows.dvclive_logger import DVCLiveCallback

        callbacks.append(DVCLiveCallback(Path(run_dir) / "dvclive"))
    result = train(TrainConfig.from_dict(config), dataset, run_dir, callbacks=callbacks,
                   resume=resume, on_mismatch=on_mismatch)
    return result.metrics


@flow(name="train")
def train(dataset: str, run_dir: str, params: str | None = None, preset: str = "paper",
          overrides: dict[str, Any] | None = None, resume: bool = True,
          on_mismatch: str = "stop", dvclive: bool = True) -> dict[str, Any]:
    """Resolve the config (preset < params.yaml `train` section < overrides), then train."""
    from pix2pix.training import TrainConfig, load_train_config

    if params:
        config = load_train_config(params, section="train", preset=preset, overrides=overrides)
    else:
        config = TrainConfig.from_dict(overrides, preset=preset)
    return train_task(config.to_dict(), dataset, run_dir, resume, on_mismatch, dvclive)


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in this process; the exit code of `pix2pix.errors.EXIT_CODES_HELP`."""
    p = argparse.ArgumentParser(prog="python -m flows.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("run_dir")
    p.add_argument("--params", help="params.yaml with a `train` section")
    p.add_argument("--preset", default="paper", choices=["paper", "small"])
    p.add_argument("--fresh", action="store_true", help="do not resume from RUN_DIR")
    p.add_argument("--on-mismatch", default="stop", choices=["stop", "fresh"])
    p.add_argument("--no-dvclive", action="store_true")

    def arguments() -> dict[str, Any]:
        a = p.parse_args(argv)
        return dict(dataset=a.dataset, run_dir=a.run_dir, params=a.params, preset=a.preset,
                    resume=not a.fresh, on_mismatch=a.on_mismatch, dvclive=not a.no_dvclive)

    return run_flow_cli(arguments, train)


if __name__ == "__main__":
    sys.exit(main())
