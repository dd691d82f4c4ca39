"""A build in independent chunks (what a scheduler such as Prefect or Dask runs in parallel).

    plan = plan_build(config)
    light = chunk_plan(plan, in_process=False)        # what each chunk task gets (small pickle)
    records = [r for first, jobs in chunks(plan, 256) for r in build_chunk(light, jobs)]
    summary = finalize_build(plan, records)           # or discard_build(plan) when a chunk failed

Records come back in plan order whatever order the chunks finish in, so the dataset is
byte-identical to `build_dataset`'s (tests/test_flows.py checks it). `dataset_card` is the
markdown summary of a finished build (the flow publishes it as an artifact).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from pix2pix.atomic import release
from pix2pix.dataset import NEAR_DUPLICATES, REJECTED, read_jsonl
from pix2pix.prepare.build import BuildPlan, BuildSummary
from pix2pix.prepare.pairs import process_items
from pix2pix.prepare.scan import Item


def chunk_plan(plan: BuildPlan, *, in_process: bool = False) -> BuildPlan:
    """The plan each chunk task receives: absolute paths, no item list (each chunk has its own).

    Absolute paths because a worker may run elsewhere on a shared file system. `in_process`:
    the chunk runs where it cannot start processes of its own (a daemonic Dask worker), so
    `workers` becomes 1.
    """
    config = dataclasses.replace(plan.config, workers=1) if in_process else plan.config
    return dataclasses.replace(plan, config=config, root=str(Path(plan.root).resolve()),
                               staging=str(Path(plan.staging).resolve()), items=[], rejected=[])


def chunks(plan: BuildPlan, chunk_size: int) -> list[tuple[int, list[tuple[Item, str]]]]:
    """`(first item index, jobs)` per chunk of at most `chunk_size` items, in plan order."""
    return [(s, plan.items[s : s + chunk_size]) for s in range(0, len(plan.items), chunk_size)]


def build_chunk(plan: BuildPlan, jobs: list[tuple[Item, str]]) -> list[dict]:
    """Make and write the pairs of one chunk with `plan.config.workers` processes; their records."""
    return list(process_items(plan.config, plan.root, plan.staging, jobs, workers=plan.config.workers))


def chunk_counts(records: list[dict]) -> tuple[int, int]:
    """(pairs made, inputs rejected) among one chunk's records."""
    rejected = sum("kind" in r for r in records)
    return len(records) - rejected, rejected


def discard_build(plan: BuildPlan) -> None:
    """Remove the staging and extraction folders of a build that failed and free its output."""
    for path in (plan.staging, plan.workdir):
        if path:
            shutil.rmtree(path, ignore_errors=True)
    release(plan.config.out)


def summary_dict(summary: BuildSummary) -> dict[str, Any]:
    """A build summary as plain values (with `total`), e.g. a flow's JSON-able result."""
    return {**dataclasses.asdict(summary), "total": summary.total}


def summary_from_dict(values: dict[str, Any]) -> BuildSummary:
    """The inverse of `summary_dict` (extra keys are ignored)."""
    return BuildSummary(**{f.name: values[f.name] for f in dataclasses.fields(BuildSummary) if f.name in values})


def read_rejections(rejected_jsonl: Path) -> list[dict]:
    """The records of a dataset's rejected.jsonl (empty when it does not exist)."""
    if not rejected_jsonl.exists():
        return []
    return read_jsonl(rejected_jsonl)


def dataset_card(summary: dict[str, Any], origin: str, resolution: str) -> str:
    """The markdown dataset card: counts per split, rejections by reason, near-duplicates, paths.

    `origin` is the source as given, `resolution` how it was found (local, named, url, ...).
    """
    out = Path(summary["out"])
    lines = [f"# Dataset `{out}`", "", f"{summary['total']} pairs from a {summary['source_kind']} source "
             f"(`{origin}`, {resolution}), built in {summary['seconds']:.1f} s.", "",
             "| split | pairs |", "|---|---:|"]
    lines += [f"| {split} | {n} |" for split, n in summary["counts"].items()]
    rejected = summary["rejected"]
    lines += ["", f"## Rejected: {sum(rejected.values())}", ""]
    if rejected:
        lines += ["| reason | inputs |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rejected.items()]
        lines += ["", f"Every rejection with its reason: `{out / REJECTED}`."]
    lines += ["", "## Near-duplicates", "",
              f"{summary['near_duplicates']} groups of kept images look alike (each moved into one split "
              "unless the source fixed them), "
              f"{summary['near_duplicates_across_splits']} of them across splits (possible test leakage); "
              f"see `{out / NEAR_DUPLICATES}`.", "",
              f"Files: `{out}` (`manifest.jsonl`, `dataset.json`, `preview.jpg`)."]
    return "\n".join(lines)
