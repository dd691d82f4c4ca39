"""Prefect flow ``translate``: image files through a trained generator (``pix2pix.inference``).

    python -m flows.translate runs/demo photos/ out/translated
    prefect deployment run 'translate/default' -p model=runs/demo -p 'inputs=["photos/"]' -p out=out/t --watch

One task around ``pix2pix.inference.translate``; the run ends with a markdown artifact
``translate-<out name>``: counts, rejected inputs with their reasons, where the outputs are.
A rejected input fails nothing (the rest are written) but is listed and logged.
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


@task(name="translate-images", cache_policy=NO_CACHE)
def translate_task(model: str, inputs: list[str], out: str, config: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Translate and return counts, rejections and notes."""
    from pix2pix.inference import TranslateConfig, translate

    result = translate(model, inputs, out, TranslateConfig(**config), overwrite=overwrite, progress=False)
    return dataclasses.asdict(result)


def summary_markdown(result: dict[str, Any]) -> str:
    """Counts, rejected inputs with reasons, and the paths of the outputs."""
    out = Path(result["out_dir"])
    lines = [f"# Translated `{out}`", "", f"{result['count']} image(s) in `{result['eval_mode']}` mode, "
             f"{len(result['rejected'])} rejected.", ""]
    if result["rejected"]:
        lines += ["| input | reason |", "|---|---|"]
        lines += [f"| `{r['input']}` | {r['reason']} |" for r in result["rejected"]] + [""]
    lines += [f"Outputs under `{out}`; one record per image (paths, sha256, mode, seed) in "
              f"`{out / 'translate.jsonl'}`."]
    return "\n".join(lines)


@flow(name="translate")
def translate_flow(model: str, inputs: list[str], out: str, params: str | None = None,
                   overrides: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Translate `inputs` (files, folders, globs) with `model` (a run folder, generator.pt or official
    .pth) into `out`. Settings: the params.yaml `translate` section (`params`) < `overrides` (any
    TranslateConfig key, e.g. {"eval_mode": "eval", "tile": 512})."""
    from pix2pix.inference import TranslateConfig

    if isinstance(inputs, str):
        inputs = [inputs]  # a single path given as a string parameter
    config = stage_config(TranslateConfig, "translate", params, overrides)
    result = translate_task(model, inputs, out, dataclasses.asdict(config), overwrite)
    logger = get_run_logger()
    for r in result["rejected"]:
        logger.warning("rejected %s: %s", r["input"], r["reason"])
    logger.info("%d image(s) translated, %d rejected: %s/translate.jsonl", result["count"],
                len(result["rejected"]), result["out_dir"])
    create_markdown_artifact(summary_markdown(result), key=artifact_key("translate", out),
                             description=f"translation into {out}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in this process; the exit code of `pix2pix.errors.EXIT_CODES_HELP`."""
    p = flow_parser("translate", __doc__, params_section="translate",
                    overwrite="replace an earlier translation in OUT")
    p.add_argument("model", help="run folder, generator.pt or official .pth")
    p.add_argument("inputs", nargs="+", help="image files, folders or globs")
    p.add_argument("out", help="output folder")
    return run_flow_cli(lambda: vars(p.parse_args(argv)), translate_flow,
                        done=lambda r: print(f"{r['count']} image(s): {r['out_dir']}"))


if __name__ == "__main__":
    sys.exit(main())
