"""Prefect flow ``evaluate``: a trained generator over one split, metrics and the HTML report.

    python -m flows.evaluate runs/demo data/dataset reports/demo --params params.yaml
    prefect deployment run 'evaluate/default' -p generator=runs/demo -p dataset=data/dataset -p out=reports/demo --watch

One task around ``pix2pix.evaluation.evaluate.evaluate``. The run ends with a markdown artifact
``eval-<out name>``: the metrics table, the baselines (when metrics.json has them) and the
report's path.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import artifact_key, flow_parser, run_flow_cli, stage_config

METRIC_KEYS = ("L1", "PSNR", "SSIM")


def _row(name: str, m: dict[str, Any], hole: bool) -> str:
    cells = [f"{m[k]:.4f}" if isinstance(m.get(k), (int, float)) else "" for k in METRIC_KEYS]
    h = m.get("hist_intersection") or {}
    cells.append("/".join(f"{h[c]:.3f}" for c in "Lab" if isinstance(h.get(c), (int, float))))
    if hole:  # inpainting: the same metrics inside the blanked box, where the task is
        inner = m.get("hole") or {}
        cells += [f"{inner[k]:.4f}" if isinstance(inner.get(k), (int, float)) else "" for k in ("L1", "PSNR")]
    return f"| {name} | " + " | ".join(cells) + " |"


def metrics_markdown(metrics: dict[str, Any], out_dir: str) -> str:
    """The metrics table, one row per baseline (metrics["baselines"]: name -> metrics) and the paths."""
    hole = isinstance(metrics.get("hole"), dict)
    lines = [f"# Evaluation `{out_dir}`", "",
             f"{metrics.get('count', '?')} `{metrics.get('split', '?')}` images, eval mode "
             f"`{metrics.get('eval_mode', '?')}`.", "",
             "| | L1 | PSNR (dB) | SSIM | Lab hist. intersection L/a/b |" + (" hole L1 | hole PSNR |" if hole else ""),
             "|---|---:|---:|---:|---|" + ("---:|---:|" if hole else ""), _row("**model**", metrics, hole)]
    baselines = metrics.get("baselines")
    if isinstance(baselines, dict):
        lines += [_row(str(name), m, hole) for name, m in baselines.items() if isinstance(m, dict)]
    elif isinstance(baselines, list):
        lines += [_row(str(m.get("name", i)), m, hole) for i, m in enumerate(baselines) if isinstance(m, dict)]
    if not baselines:
        lines += ["", "(no baselines in metrics.json)"]
    lines += ["", f"Report: `{Path(out_dir) / 'report.html'}` (open it in a browser); "
              f"`metrics.json`, `per_image.csv`, `images/`, `plots/` beside it."]
    return "\n".join(lines)


# No caching: the task writes a DVC output, and DVC decides what is stale.
@task(name="evaluate-generator", cache_policy=NO_CACHE)
def evaluate_task(generator: str, dataset: str, out: str, config: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Evaluate and return metrics.json's content with `out_dir`."""
    from pix2pix.evaluation.evaluate import EvalConfig, evaluate

    result = evaluate(generator, dataset, out, EvalConfig(**config), overwrite=overwrite)
    return {**result.metrics, "count": result.count, "eval_mode": result.eval_mode, "out_dir": str(result.out_dir)}


@flow(name="evaluate")
def evaluate_flow(generator: str, dataset: str, out: str, params: str | None = None,
                  overrides: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run `generator` (a run folder, generator.pt or official .pth) over a split of `dataset`
    into the report folder `out`. Settings: the params.yaml `evaluate` section (`params`) <
    `overrides` (any EvalConfig key, e.g. {"split": "val", "max_images": 50})."""
    from pix2pix.evaluation.evaluate import EvalConfig

    config = stage_config(EvalConfig, "evaluate", params, overrides)
    metrics = evaluate_task(generator, dataset, out, dataclasses.asdict(config), overwrite)
    get_run_logger().info("%d %s images: L1 %.4f, PSNR %.2f dB, SSIM %.4f; report %s/report.html",
                          metrics["count"], metrics.get("split"), metrics["L1"], metrics["PSNR"], metrics["SSIM"],
                          metrics["out_dir"])
    create_markdown_artifact(metrics_markdown(metrics, metrics["out_dir"]), key=artifact_key("eval", out),
                             description=f"metrics and report of {out}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in this process; the exit code of `pix2pix.errors.EXIT_CODES_HELP`."""
    p = flow_parser("evaluate", __doc__, params_section="evaluate", overwrite="replace an earlier report in OUT")
    p.add_argument("generator", help="run folder, generator.pt or official .pth")
    p.add_argument("dataset")
    p.add_argument("out", help="report folder")
    return run_flow_cli(lambda: vars(p.parse_args(argv)), evaluate_flow,
                        done=lambda m: print(f"report: {m['out_dir']}/report.html"))


if __name__ == "__main__":
    sys.exit(main())
