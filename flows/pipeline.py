"""Prefect flow ``pipeline``: build-dataset → train → evaluate, each stage a subflow.

    prefect deployment run 'pipeline/default' --param source=data/samples --param dataset=data/ds \\
        --param run_dir=runs/x --param report_dir=reports/x --param preset=small \\
        --param train='{"n_epochs": 1, "n_epochs_decay": 0}' --watch

Each stage is the same flow as its own deployment, run as a subflow, so its artifacts (dataset
card, training progress and metrics, evaluation table) appear under it in the UI. `build`,
`train` and `evaluate` are dicts of overrides for each stage (any parameter of
build-dataset, any TrainConfig key, any EvalConfig key). Without `preset` the device decides
(paper on CUDA, small on a CPU; the train subflow logs which).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.build_dataset import build_dataset_flow, flow_kwargs
from flows.evaluate import evaluate_flow
from flows.train import train as train_flow
from pix2pix.errors import ConfigError


@flow(name="pipeline")
def pipeline(source: str, dataset: str, run_dir: str, report_dir: str, preset: str | None = None,
             params: str | None = None, build: dict[str, Any] | None = None,
             train: dict[str, Any] | None = None, evaluate: dict[str, Any] | None = None,
             overwrite: bool = False) -> dict[str, Any]:
    """Build `dataset` from `source`, train into `run_dir`, evaluate into `report_dir`.

    `params`: a params.yaml whose `train` and `evaluate` sections are read (overrides win).
    `overwrite`: replace an earlier dataset at `dataset` and an earlier report at `report_dir`
    (training resumes from `run_dir` when its config and data match, else stops).
    """
    for name, value in (("build", build), ("train", train), ("evaluate", evaluate)):
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a dict of overrides, e.g. {{\"n_epochs\": 1}}, got {value!r}")
    clash = sorted({"source", "out"} & set(build or {}))
    if clash:
        raise ConfigError(f"build: {', '.join(clash)} come from the pipeline's `source` and `dataset`")
    logger = get_run_logger()
    built = build_dataset_flow(source=source, out=dataset, **flow_kwargs({"overwrite": overwrite, **(build or {})}))
    logger.info("dataset %s: %d pairs", dataset, built["total"])
    trained = train_flow(dataset=dataset, run_dir=run_dir, params=params, preset=preset, overrides=train)
    logger.info("run %s: %s epochs", run_dir, trained.get("epoch"))
    evaluated = evaluate_flow(generator=run_dir, dataset=dataset, out=report_dir, params=params,
                              overrides=evaluate, overwrite=overwrite)
    logger.info("report %s/report.html", evaluated["out_dir"])
    return {"dataset": built, "train": trained, "evaluate": evaluated}
