"""Prefect flow ``dvc-repro``: `dvc repro` in a repository folder, so `dvc.lock` stays the record.

    prefect deployment run 'dvc-repro/default' -p repo=. --watch
    python -m flows.dvc_repro . [--force] [TARGET ...]

Runs `dvc repro` as a subprocess (its output goes to the run's log), then reports each stage's
outcome (ran / unchanged / failed) as a table artifact and `dvc metrics show` as another. A
failed `dvc repro` fails the run, with DVC's last lines in the error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.common import flow_parser, run_flow_cli
from pix2pix.errors import ConfigError, Pix2PixError

_RAN = re.compile(r"^Running stage '([^']+)'")
_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")
_FAILED = re.compile(r"failed to reproduce '([^']+)'")


class DvcReproError(Pix2PixError):
    """`dvc repro` exited non-zero; the message has its last lines."""


def dvc_command() -> list[str]:
    """The `dvc` beside this Python (the project's venv), else the one on PATH."""
    local = Path(sys.executable).with_name("dvc")
    if local.exists():
        return [str(local)]
    found = shutil.which("dvc")
    if not found:
        raise ConfigError("dvc is not installed: `pip install -e '.[dvc]'` (or put dvc on PATH)")
    return [found]


def stage_outcomes(output: str) -> dict[str, str]:
    """Stage name -> ran | unchanged | failed, from `dvc repro`'s output, in the order they appear."""
    outcomes: dict[str, str] = {}
    for line in output.splitlines():
        line = line.strip()
        if m := _RAN.match(line):
            outcomes[m.group(1)] = "ran"
        elif m := _SKIPPED.match(line):
            outcomes[m.group(1)] = "unchanged"
        elif m := _FAILED.search(line):
            outcomes[m.group(1)] = "failed"
    return outcomes


def metrics_rows(show_json: str) -> list[dict[str, Any]]:
    """`dvc metrics show --json` flattened to rows (file, metric, value)."""
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any, file: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, file)
        else:
            rows.append({"file": file, "metric": prefix, "value": value})

    for rev in (json.loads(show_json or "{}") or {}).values():
        for file, entry in ((rev or {}).get("data") or {}).items():
            walk("", (entry or {}).get("data"), file)
    return rows


@flow(name="dvc-repro")
def dvc_repro(repo: str = ".", targets: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Run `dvc repro [--force] [targets]` in `repo`; returns each stage's outcome and the metrics."""
    logger = get_run_logger()
    folder = Path(repo)
    if not (folder / "dvc.yaml").is_file():
        raise ConfigError(f"{folder / 'dvc.yaml'}: not found; `repo` must be a DVC repository folder")
    cmd = [*dvc_command(), "repro", *(["--force"] if force else []), *(targets or [])]
    logger.info("running %s in %s", " ".join(cmd), folder.resolve())
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    for line in output.splitlines():
        if line.strip():
            logger.info("%s", line)
    outcomes = stage_outcomes(output)
    if proc.returncode != 0 and not any(v == "failed" for v in outcomes.values()) and outcomes:
        last = next(reversed([k for k, v in outcomes.items() if v == "ran"]), None)
        if last:
            outcomes[last] = "failed"
    create_table_artifact([{"stage": k, "outcome": v} for k, v in outcomes.items()], key="dvc-repro-stages",
                          description=f"dvc repro in {folder.resolve()}: exit {proc.returncode}")
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise DvcReproError(f"dvc repro in {folder} exited with {proc.returncode}:\n{tail}")
    shown = subprocess.run([*dvc_command(), "metrics", "show", "--json"], cwd=folder, capture_output=True, text=True)
    rows = metrics_rows(shown.stdout) if shown.returncode == 0 else []
    if rows:
        create_table_artifact(rows, key="dvc-metrics", description=f"dvc metrics show in {folder.resolve()}")
    return {"stages": outcomes, "metrics": rows}


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in this process; the exit code of `pix2pix.errors.EXIT_CODES_HELP`."""
    p = flow_parser("dvc_repro", __doc__)
    p.add_argument("repo", nargs="?", default=".", help="DVC repository folder (default .)")
    p.add_argument("targets", nargs="*", help="stages to reproduce (default: all)")
    p.add_argument("--force", action="store_true", help="run stages even when nothing changed")

    def arguments() -> dict[str, Any]:
        a = p.parse_args(argv)
        return dict(repo=a.repo, targets=a.targets or None, force=a.force)

    return run_flow_cli(arguments, dvc_repro, done=lambda r: print(json.dumps(r["stages"])))


if __name__ == "__main__":
    sys.exit(main())
