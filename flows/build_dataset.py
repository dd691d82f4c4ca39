"""Prefect flow ``build-dataset``: resolve the source → plan → make pairs in chunks → finalize.

    python -m flows.build_dataset data/samples data/demo --op edges
    python -m flows.build_dataset facades data/facades --base-url http://127.0.0.1:8000/datasets
    python -m flows.build_dataset urls.csv data/mine --chunk-threads 2
    python -m flows.build_dataset data/samples data/demo --overwrite --dask-local
    python -m flows.build_dataset data/samples data/dataset --params params.yaml   # the `build` section

Without a server this starts Prefect's temporary one (set PREFECT_API_URL to use yours) and
exits non-zero when the flow fails. Served as deployments by ``python -m flows.serve``.

Each task is a thin wrapper over one ``pix2pix`` function (``pix2pix/prepare/build.py``, ``chunked.py``). The pairs
are made by a subflow, ``build-pairs``, whose task runner is picked per run: threads (``chunk_threads``
of them), an existing Dask cluster (``dask_address``) or a local one (``use_dask_local``). The
subflow receives only the config, never the item list, so run parameters stay small in the API.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from flows.common import artifact_key, flow_parser, run_flow_cli
from pix2pix.dataset import REJECTED
from pix2pix.errors import ConfigError
from pix2pix.params import stage_values
from pix2pix.prepare import chunked
from pix2pix.prepare.build import BuildPlan, BuildSummary, finalize_build, plan_build
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.resolve import ResolvedSource, resolve_source
from pix2pix.prepare.scan import Item

# A local Dask cluster bound to loopback, one single-threaded process per core of a small machine.
LOCAL_DASK_CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
                      "dashboard_address": None}
# Rejections logged one per line; the rest are counted (rejected.jsonl has them all).
MAX_LOGGED_REJECTIONS = 50


# No retries here: the download library already retries each file (with backoff, a minimum rate
# and an optional deadline); retrying the task on top multiplied a stalled URL into 11 minutes.
# No cache: the library caches verified downloads.
@task(name="resolve-source", cache_policy=NO_CACHE)
def resolve(source: str, raw_dir: str, base_url: str | None, accept_licence: bool) -> ResolvedSource:
    """Find or download the source and return the local path the builder reads."""
    return resolve_source(source, Path(raw_dir), base_url=base_url, accept_licence=accept_licence)


# No caching on the tasks below: they write the dataset (a DVC output), and DVC decides what is stale.
@task(name="plan-build", cache_policy=NO_CACHE)
def plan(config: BuildConfig) -> BuildPlan:
    """Check the output, extract an archive, list the items and decide their splits."""
    return plan_build(config)


@task(name="build-chunk", task_run_name="build-chunk-{first}", cache_policy=NO_CACHE)
def build_chunk(plan: BuildPlan, jobs: list[tuple[Item, str]], first: int) -> list[dict]:
    """Make and write the pairs of one chunk (items `first`…); their manifest or rejection records."""
    return chunked.build_chunk(plan, jobs)


@task(name="finalize-build", cache_policy=NO_CACHE)
def finalize(plan: BuildPlan, records: list[dict], extra_rejected: list[dict], started: float) -> BuildSummary:
    """Drop duplicates, write manifest, rejections, dataset.json and preview, move into place."""
    return finalize_build(plan, records, extra_rejected=extra_rejected, started=started)


def chunk_task_runner(chunk_threads: int, dask_address: str | None, use_dask_local: bool) -> Any:
    """The task runner of the chunk tasks: an existing Dask cluster, a local one, or `chunk_threads` threads."""
    if dask_address and use_dask_local:
        raise ConfigError("dask_address and use_dask_local: give one or the other, not both")
    if dask_address or use_dask_local:
        from prefect_dask import DaskTaskRunner  # only runs that ask for Dask pay its import

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs=dict(LOCAL_DASK_CLUSTER))
    # Threads, not processes: decoding, resizing and encoding release the GIL (measured ~1.8x on 2
    # threads), and a process pool per chunk would pay its start-up every chunk.
    return ThreadPoolTaskRunner(max_workers=chunk_threads)


@flow(name="build-pairs")
def build_pairs(config: dict[str, Any], extra_rejected: list[dict], chunk_size: int = 256,
                progress_artifact: str | None = None, in_process: bool = False) -> dict[str, Any]:
    """Plan, make the pairs chunk by chunk on this flow's task runner, then finalize."""
    started = time.perf_counter()
    the_plan = plan(BuildConfig.from_dict(config))
    get_run_logger().info("%d items from a %s source in %s (%s)", len(the_plan.items), the_plan.kind,
                          the_plan.root, the_plan.source_reason)
    try:
        records = _run_chunks(the_plan, chunk_size, progress_artifact, in_process)
        summary = finalize(the_plan, records, extra_rejected, started)
    except BaseException:
        chunked.discard_build(the_plan)
        raise
    return chunked.summary_dict(summary)


def _run_chunks(the_plan: BuildPlan, chunk_size: int, progress_artifact: str | None, in_process: bool) -> list[dict]:
    """Submit one task per chunk, report progress as they finish, return all records in plan order."""
    logger = get_run_logger()
    starts, jobs = zip(*chunked.chunks(the_plan, chunk_size)) if the_plan.items else ((), ())
    futures = list(build_chunk.map(unmapped(chunked.chunk_plan(the_plan, in_process=in_process)), jobs, starts))
    for done, future in enumerate(as_completed(futures), 1):
        if progress_artifact:
            update_progress_artifact(UUID(progress_artifact), 100.0 * done / len(futures),
                                     description=f"{done} of {len(futures)} chunks of {chunk_size} images")
        if future.state.is_completed():
            logger.info("chunk %d/%d: %d pairs, %d rejected", done, len(futures),
                        *chunked.chunk_counts(future.result()))
    return [r for f in futures for r in f.result()]  # raises the first failed chunk's error


def dataset_card(summary: dict[str, Any], source: ResolvedSource) -> str:
    """The markdown dataset card of a build from `source` (see `pix2pix.prepare.chunked.dataset_card`)."""
    return chunked.dataset_card(summary, source.origin, source.kind)


def describe(summary: dict[str, Any]) -> str:
    """The library's few lines for a person, from a summary dict."""
    return chunked.summary_from_dict(summary).describe()


def log_rejections(rejected_jsonl: Path, limit: int = MAX_LOGGED_REJECTIONS) -> None:
    """Log one line per rejection (source and reason) up to `limit`, then how many more there are."""
    logger = get_run_logger()
    rows = chunked.read_rejections(rejected_jsonl)
    for row in rows[:limit]:
        logger.warning("rejected %s: %s", row.get("source", row.get("id", "?")), row.get("reason", row.get("kind")))
    if len(rows) > limit:
        logger.warning("... and %d more rejections; all are in %s", len(rows) - limit, rejected_jsonl)


@flow(name="build-dataset")
def build_dataset_flow(
    source: str,
    out: str,
    op: str = "inpaint",
    size: int = 256,
    fit: str = "crop",
    split: str | list[float] = "0.8,0.1,0.1",
    seed: int = 0,
    chunk_threads: int = 1,
    workers: int = 1,
    overwrite: bool = False,
    swap: bool = False,
    resplit: bool = False,
    image_format: str = "jpg",
    source_type: str = "auto",
    options: dict[str, Any] | None = None,
    base_url: str | None = None,
    accept_licence: bool = False,
    raw_dir: str = "data/raw",
    chunk_size: int = 256,
    dask_address: str | None = None,
    use_dask_local: bool = False,
) -> dict[str, Any]:
    """Build an A|B dataset from a folder, archive, named dataset, archive URL or URL list.

    `options` takes any other `BuildConfig` setting (e.g. {"quality": 90, "pad_color": "0,0,0"}).
    `chunk_threads` threads run the chunk tasks unless `dask_address` (tcp://host:8786) or
    `use_dask_local` is set; each chunk task makes its pairs with `workers` processes (as
    `pix2pix build --workers`; 1 on Dask, whose workers are processes already).
    Returns the build summary (counts, rejections by reason, near-duplicates, output path).
    """
    # Validate everything before downloading anything (locals() here: the flow's arguments only).
    config = flow_config(locals())
    runner = chunk_task_runner(chunk_threads, dask_address, use_dask_local)

    logger = get_run_logger()
    resolved = resolve(source, raw_dir, base_url, accept_licence)
    if resolved.kind != "local":
        logger.info("source %s (%s) resolved to %s", resolved.origin, resolved.kind, resolved.path)
    if resolved.extra_rejected:
        logger.warning("%d URLs could not be downloaded; the build goes on without them (listed at the end)",
                       len(resolved.extra_rejected))
    config = dataclasses.replace(config, source=resolved.path)

    key = artifact_key("dataset", out)
    progress_id = create_progress_artifact(0.0, key=f"{key}-progress", description=f"building {out}")
    summary = build_pairs.with_options(task_runner=runner)(
        config.to_dict(), resolved.extra_rejected, chunk_size, str(progress_id),
        in_process=bool(dask_address or use_dask_local))

    log_rejections(Path(out) / REJECTED)
    create_markdown_artifact(dataset_card(summary, resolved), key=f"{key}-card",
                             description=f"dataset card of {out}")
    rows = [{"split": s, "pairs": n} for s, n in summary["counts"].items()]
    create_table_artifact(rows + [{"split": "total", "pairs": summary["total"]}], key=f"{key}-counts",
                          description=f"pairs per split in {out}")
    logger.info("%s", describe(summary))
    return {**summary, "source": source, "resolved_source": resolved.path, "source_resolution": resolved.kind,
            "downloaded": resolved.downloaded, "download_failures": len(resolved.extra_rejected)}


# The flow's own parameters that are BuildConfig settings; `options` carries the others.
CONFIG_PARAMETERS = ("source", "out", "op", "size", "fit", "split", "seed", "workers", "overwrite", "swap",
                     "resplit", "image_format", "source_type")


def flow_config(arguments: Mapping[str, Any]) -> BuildConfig:
    """The checked BuildConfig of the flow's `arguments` (all its parameters): the flow runs it
    first, and `python -m flows.build_dataset` before Prefect starts, so a bad value is one
    `error:` line naming the key (exit 2), never a Prefect parameter-validation failure."""
    options = arguments.get("options") or {}
    named = {k: arguments[k] for k in CONFIG_PARAMETERS} | {"progress": False}
    clash = sorted(set(options) & set(named))
    if clash:
        raise ConfigError(f"options: {', '.join(clash)}: set by the flow's own parameters, not in options")
    chunk_size = arguments["chunk_size"]
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size: expected 1 or more images per task, got {chunk_size!r}")
    return BuildConfig.from_dict({**named, **options})


def make_parser() -> argparse.ArgumentParser:
    """Arguments of `python -m flows.build_dataset`: the flow's parameters as flags."""
    p = flow_parser("build_dataset", __doc__)
    p.add_argument("source", nargs="?", help="folder, archive, named dataset (facades, ...), archive URL or URL list "
                   "(or `source` in --params)")
    p.add_argument("out", nargs="?", help="output dataset folder, written atomically (or `out` in --params)")
    p.add_argument("--params", metavar="YAML", help="read settings from a params.yaml section (flags win)")
    p.add_argument("--params-section", default="build", metavar="NAME", help="section of --params (build)")
    # SUPPRESS: a flag that is not given leaves the --params value (or the flow's default) alone.
    add = lambda *a, **k: p.add_argument(*a, default=argparse.SUPPRESS, **k)  # noqa: E731
    add("--op", help="inpaint, edges or grayscale (single photos only)")
    add("--size", type=int)
    add("--fit", help="crop, pad or stretch")
    add("--split", help="train,val,test fractions (default 0.8,0.1,0.1)")
    add("--seed", type=int)
    add("--chunk-threads", type=int, help="threads running the chunk tasks without Dask (default 1)")
    add("--workers", type=int, help="processes making the pairs of each chunk task (default 1)")
    add("--overwrite", action="store_true")
    add("--swap", action="store_true", help="write B|A")
    add("--resplit", action="store_true", help="ignore train/val/test folders of the source")
    add("--format", dest="image_format", help="jpg or png")
    add("--source-type", help="auto, folder, paired, ab or archive")
    add("--base-url", help="mirror of the named datasets (default: $PIX2PIX_DATASETS_URL)")
    add("--accept-licence", action="store_true", help="accept a named dataset's own licence (cityscapes)")
    add("--raw-dir", help="where downloads go (default data/raw)")
    add("--chunk-size", type=int, help="images per task (default 256)")
    add("--dask-address", help="run the chunks on this Dask scheduler (tcp://host:8786)")
    add("--dask-local", dest="use_dask_local", action="store_true", help="run the chunks on a local Dask cluster")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other build setting, e.g. --option quality=90 (repeatable; VALUE is JSON or text)")
    return p


def _parse_options(specs: list[str]) -> dict[str, Any]:
    options = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep:
            raise ConfigError(f"--option {spec!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value  # a bare string such as 0,0,0 or random
    return options


def flow_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The flow's keyword arguments from parsed flags, --params and --option (flags win)."""
    flags = {k: v for k, v in vars(args).items() if k not in ("params", "params_section", "option", "source", "out")}
    values = stage_values(args.params, args.params_section, flags=flags,
                          positional={"source": args.source, "out": args.out}, required=("source", "out"))
    kwargs = flow_kwargs(values, _parse_options(args.option))
    bound = inspect.signature(build_dataset_flow.fn).bind(**kwargs)
    bound.apply_defaults()
    flow_config(bound.arguments)  # checked here, before Prefect starts (and again in the run)
    return kwargs


def flow_kwargs(values: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Split build settings into the flow's own parameters and `options` (every other BuildConfig key)."""

    values = {k: v for k, v in values.items() if k != "progress"}  # a flow reports progress as an artifact
    own = set(inspect.signature(build_dataset_flow.fn).parameters) - {"options"}
    extra = {k: v for k, v in values.items() if k not in own and k != "options"}
    extra |= dict(values.get("options") or {}) | (options or {})
    return {k: v for k, v in values.items() if k in own} | {"options": extra or None}


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in this process; the exit code of `pix2pix.errors.EXIT_CODES_HELP`."""
    return run_flow_cli(lambda: flow_arguments(make_parser().parse_args(argv)), build_dataset_flow,
                        done=lambda summary: print(describe(summary)))


if __name__ == "__main__":
    sys.exit(main())
