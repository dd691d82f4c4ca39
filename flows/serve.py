"""Serve the pipeline's deployments from this process until Ctrl-C (what `pix2pix serve` runs).

    prefect server start --host 127.0.0.1 --port 4200 &
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    PREFECT_RUNNER_POLL_FREQUENCY=1 python -m flows.serve
    prefect deployment run 'build-dataset/default' --param source=data/samples --param out=data/demo --watch

Deployments: `build-dataset/default` (give `source` and `out`), one `build-dataset/<name>` per
named dataset (`source` preset, `out` = data/<name>; a mirror via $PIX2PIX_DATASETS_URL or the
`base_url` parameter), `train/default`, `evaluate/default`, `translate/default`,
`pipeline/default` and `dvc-repro/default` (`STAGE_FLOWS`). Relative paths
in parameters are relative to the directory this process runs in. Details: docs/flows.md.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect.deployments.runner import EntrypointType

from flows.build_dataset import build_dataset_flow
from pix2pix.errors import EXIT_USAGE
from pix2pix.prepare.catalog import NAMED_DATASETS


def build_deployments() -> list[Any]:
    """`build-dataset/default` plus one deployment per named dataset, with `source` preset."""
    # Module entrypoints: a run loads `flows.build_dataset` by import, whatever the working directory.
    kw = dict(entrypoint_type=EntrypointType.MODULE_PATH, tags=["pix2pix", "dataset"])
    deployments = [build_dataset_flow.to_deployment(
        name="default", description="Build an A|B dataset: give `source` (folder, archive, named dataset, "
        "archive URL or URL list) and `out`.", **kw)]
    for name, entry in NAMED_DATASETS.items():
        note = f" Needs accept_licence=true: {entry.licence}" if entry.licence else ""
        deployments.append(build_dataset_flow.to_deployment(
            name=name, parameters={"source": name, "out": f"data/{name}"},
            description=f"{entry.description} A = {entry.a}, B = {entry.b}; the paper trains "
            f"{entry.natural_direction} (~{entry.approx_size} download).{note}", **kw))
    return deployments


# (module, flow attribute, description, tags); each is served when its module imports.
STAGE_FLOWS: list[tuple[str, str, str, list[str]]] = [
    ("flows.train", "train", "Train pix2pix: give `dataset` and `run_dir` (preset: paper on CUDA, small on "
     "a CPU unless given).", ["pix2pix", "train"]),
    ("flows.evaluate", "evaluate_flow", "Evaluate a trained generator: give `generator`, `dataset`, `out`.",
     ["pix2pix", "evaluate"]),
    ("flows.translate", "translate_flow", "Translate images: give `model`, `inputs` (a list) and `out`.",
     ["pix2pix", "translate"]),
    ("flows.pipeline", "pipeline", "build-dataset -> train -> evaluate as subflows: give `source`, `dataset`, "
     "`run_dir`, `report_dir` (optional `preset`, and dicts `build`, `train`, `evaluate`).", ["pix2pix", "pipeline"]),
    ("flows.dvc_repro", "dvc_repro", "`dvc repro` in `repo` (default: the serving directory); stage outcomes "
     "and metrics as artifacts.", ["pix2pix", "dvc"]),
]
# Served only with training (they run torch): --no-train leaves them out.
TRAINING_FLOWS = {"flows.train", "flows.pipeline"}


def stage_deployments(*, include_train: bool = True) -> list[Any]:
    """`train/default`, `evaluate/default`, `translate/default`, `pipeline/default`, `dvc-repro/default`."""
    import importlib

    deployments = []
    for module, attr, description, tags in STAGE_FLOWS:
        if module in TRAINING_FLOWS and not include_train:
            continue
        try:
            flow_obj = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            print(f"not serving {module}: it does not import ({exc})", file=sys.stderr)
            continue
        deployments.append(flow_obj.to_deployment(name="default", entrypoint_type=EntrypointType.MODULE_PATH,
                                                  tags=tags, description=description))
    return deployments


def train_deployments() -> list[Any]:
    """`train/default` alone (kept for callers that serve only it)."""
    return [d for d in stage_deployments() if d.flow_name == "train"]


def serve_all(*, limit: int | None = None, include_train: bool = True) -> int:
    """Serve every deployment until interrupted; 2 when no Prefect server is configured or `limit` < 1."""
    if limit is not None and limit < 1:
        print(f"error: --limit: expected 1 or more runs, got {limit}", file=sys.stderr)
        return EXIT_USAGE
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # Without a server, serve would start a private temporary one that nothing else can reach.
        print("error: PREFECT_API_URL is not set. Start a server and point at it:\n"
              "  prefect server start --host 127.0.0.1 --port 4200\n"
              "  export PREFECT_API_URL=http://127.0.0.1:4200/api", file=sys.stderr)
        return EXIT_USAGE
    deployments = build_deployments() + stage_deployments(include_train=include_train)
    serve(*deployments, limit=limit)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.serve [--limit N] [--no-train]` (the same as `pix2pix serve`)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N runs at a time")
    p.add_argument("--no-train", action="store_true", help="do not serve train/default and pipeline/default")
    args = p.parse_args(argv)
    return serve_all(limit=args.limit, include_train=not args.no_train)


if __name__ == "__main__":
    sys.exit(main())
