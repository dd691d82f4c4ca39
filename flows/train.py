"""Prefect flow ``train``: one task around ``pix2pix.training.train``, visible while it trains.

    python -m flows.train data/facades runs/facades --params params.yaml
    python -m flows.train data/demo runs/demo --preset small

Runs in-process without a server (Prefect starts a temporary one) and exits non-zero when the
flow fails. Resumes from RUN_DIR/checkpoints when it can (what a persisted DVC stage needs);
a checkpoint whose config or dataset differs stops the run (``on_mismatch="stop"``). Without a
``preset`` the device decides (paper on CUDA, small on a CPU) and the log says which was used.
The UI shows per-epoch log lines, a progress artifact, the final metrics table and the path of
the sample grids (``flows/train_progress.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import artifact_key, flow_parser, run_flow_cli
from flows.train_progress import PrefectTrainReporter, metrics_table


# No caching: the task writes DVC outputs, and DVC decides what is stale.
@task(name="train-pix2pix", cache_policy=NO_CACHE)
def train_task(config: dict[str, Any], dataset: str, run_dir: str, resume: bool,
               on_mismatch: str, dvclive: bool) -> dict[str, Any]:
    """Train and return the run summary (metrics.json and run_info.json) plus `samples`, the newest grid."""
    from pix2pix.training import TrainConfig, train

    cfg = TrainConfig.from_dict(config)
    reporter = PrefectTrainReporter(cfg.total_epochs, key=artifact_key("train", run_dir), run_dir=run_dir)
    callbacks: list[Any] = [reporter]
    if dvclive:
        from flows.dvclive_logger import DVCLiveCallback

        callbacks.append(DVCLiveCallback(Path(run_dir) / "dvclive"))
    result = train(cfg, dataset, run_dir, callbacks=callbacks, resume=resume, on_mismatch=on_mismatch,
                   progress=False)
    samples = sorted((Path(run_dir) / "samples").glob("step-*.png"))
    return {**result.metrics, **result.info, "samples": str(samples[-1]) if samples else None}


def resolve_config(params: str | None, preset: str | None, overrides: dict[str, Any] | None,
                   dataset: str | None = None) -> Any:
    """The TrainConfig: preset (the device's when None, logged) < params.yaml `train` < overrides;
    crop_size, load_size and generator follow `dataset`'s size (dataset.json) unless given."""
    from pix2pix.dataset import image_size
    from pix2pix.params import stage_values
    from pix2pix.training import TrainConfig
    from pix2pix.training.config import preset_for_device

    values = stage_values(params, "train", flags=overrides)
    if preset is None:
        preset, why = preset_for_device(str(values.get("device", "auto")))
        get_run_logger().info("preset not given: using %r (%s)", preset, why)
    else:
        get_run_logger().info("preset %r", preset)
    size = image_size(dataset) if dataset and Path(dataset).is_dir() else None
    return TrainConfig.from_dict(values, preset=preset, dataset_size=size)


@flow(name="train")
def train(dataset: str, run_dir: str, params: str | None = None, preset: str | None = None,
          overrides: dict[str, Any] | None = None, resume: bool = True,
          on_mismatch: str = "stop", dvclive: bool = True) -> dict[str, Any]:
    """Train pix2pix on `dataset` into `run_dir`; returns metrics.json's content and the grids' path.

    Config: `preset` (paper | small; default: paper on CUDA, small on a CPU) < the params.yaml
    `train` section (`params`) < `overrides` (any TrainConfig key, e.g. {"n_epochs": 1}).
    """
    config = resolve_config(params, preset, overrides, dataset=dataset)
    metrics = train_task(config.to_dict(), dataset, run_dir, resume, on_mismatch, dvclive)
    key = artifact_key("train", run_dir)
    create_table_artifact(metrics_table(metrics), key=f"{key}-metrics", description=f"final metrics of {run_dir}")
    samples = metrics.get("samples")
    create_markdown_artifact(
        f"# Run `{run_dir}`\n\n{metrics.get('epoch')} epochs, {metrics.get('step')} steps.\n\n"
        f"- generator: `{Path(run_dir) / 'generator.pt'}`\n- sample grids: `{Path(run_dir) / 'samples'}`"
        + (f" (newest: `{samples}`)" if samples else "") + f"\n- metrics: `{Path(run_dir) / 'metrics.json'}`\n",
        key=f"{key}-files", description=f"files of {run_dir}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in this process; the exit code of `pix2pix.errors.EXIT_CODES_HELP`."""
    p = flow_parser("train", __doc__, params_section="train")
    p.add_argument("dataset")
    p.add_argument("run_dir")
    p.add_argument("--preset", default=None, choices=["paper", "small"],
                   help="default: paper on CUDA, small on a CPU (the log says which)")
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
