"""The dataset builder: any source in, an A|B dataset out (see docs/dataset-format.md).

    from pix2pix.prepare.build import build_dataset
    from pix2pix.prepare.config import BuildConfig
    summary = build_dataset(BuildConfig(source="photos/", out="data/pairs", op="edges"))

The build is a stream in three steps that the Prefect flow also calls one by one:
`plan_build` (check the output, extract archives, list the items, decide splits),
`process_items` (decode → fit → make A → write, in worker processes, chunk by chunk; `pairs.py`)
and `finalize_build` (drop exact duplicates, keep near-duplicates in one split (`splits.py`), write
manifest, rejections, dataset.json and preview, then move the finished folder into place in one
rename).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pix2pix import __version__, dataset
from pix2pix.atomic import claim, publish, release, sibling
from pix2pix.errors import ConfigError, NothingUsableError, SourceError
from pix2pix.prepare.archive import extract_archive, is_archive
from pix2pix.prepare.config import SPLITS, BuildConfig
from pix2pix.prepare.pairs import process_items, warm_pool
from pix2pix.prepare.scan import Item, scan_source
from pix2pix.prepare.splits import dedup_key, group_splits, near_duplicate_groups, split_for, split_key


@dataclass
class BuildPlan:
    """Everything the workers and the finalizer need; plain values so it pickles (Dask, spawn)."""

    config: BuildConfig
    kind: str
    root: str
    staging: str
    workdir: str | None
    items: list[tuple[Item, str]]
    rejected: list[dict] = field(default_factory=list)
    source_reason: str = ""


@dataclass
class BuildSummary:
    """What a finished build wrote."""

    out: str
    counts: dict[str, int]
    rejected: dict[str, int]
    duplicates: int
    near_duplicates: int
    near_duplicates_across_splits: int
    seconds: float
    source_kind: str
    near_duplicates_moved: int = 0
    warnings: int = 0
    source_reason: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """A few lines for a person: where the dataset is and what it contains."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lines = [f"dataset: {self.out}", f"pairs: {self.total} ({counts}) from a {self.source_kind} source"]
        if self.source_reason:
            lines.append(f"source: {self.source_reason}")
        n_rej = sum(self.rejected.values())
        if n_rej:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items()))
            lines.append(f"rejected: {n_rej} ({reasons}); see {Path(self.out) / dataset.REJECTED}")
        if self.near_duplicates:
            leak = (f", {self.near_duplicates_across_splits} still across the source's own splits (possible test "
                    "leakage)" if self.near_duplicates_across_splits else "")
            lines.append(
                f"near-duplicates: {self.near_duplicates} groups of look-alike images, each kept in one split "
                f"({self.near_duplicates_moved} images moved){leak}; see {Path(self.out) / dataset.NEAR_DUPLICATES}"
            )
        if self.warnings:
            lines.append(f"warnings: {self.warnings} small images kept (enlarged more than --min-side allows); "
                         f"see 'warnings' in {Path(self.out) / dataset.MANIFEST}")
        lines.append(f"preview: {Path(self.out) / dataset.PREVIEW}")
        return "\n".join(lines)


def plan_build(config: BuildConfig) -> BuildPlan:
    """Check the output, extract an archive source, list the items and decide their splits."""
    out = Path(config.out)
    src = Path(config.source)
    if not src.exists():
        raise SourceError(f"{src}: source does not exist")
    claim(out, inputs={"SOURCE": src}, overwrite=config.overwrite, marker=dataset.DATASET_JSON)  # released by _cleanup
    try:
        return _plan(config, out, src)
    except BaseException:
        shutil.rmtree(sibling(out, "extract"), ignore_errors=True)  # no leftover of an archive source
        release(out)
        raise


def _plan(config: BuildConfig, out: Path, src: Path) -> BuildPlan:
    workdir = None
    archive_rejected: list[dict] = []  # members the extraction skipped (links, duplicate names)
    kind = config.source_type
    if src.is_file():
        if not (is_archive(src) or kind == "archive"):
            raise SourceError(f"{src}: a file source must be a .tar.gz, .tgz, .tar or .zip archive")
        workdir = sibling(out, "extract")
        shutil.rmtree(workdir, ignore_errors=True)
        extracted = extract_archive(src, workdir, max_pixels=config.max_pixels)
        root, archive_rejected = extracted.root, extracted.rejected
        kind = "auto"
    elif kind == "archive":
        raise SourceError(f"{src}: --source-type archive needs an archive file, got a folder")
    else:
        root = src
    scan = scan_source(root, kind, keep_splits=not config.resplit, max_pixels=config.max_pixels)
    if config.crops_per_image and scan.kind != "folder":
        raise ConfigError(f"crops_per_image: cuts crops from single photos, but {src} holds {scan.kind} "
                          "pairs; set crops_per_image to 0 (or --crops 0) for this source")
    items = []
    for item in scan.items:
        given = item.given_split if not config.resplit else None
        split = given or split_for(split_key(item), config.seed, config.split)
        # Crops are split by their photo (the same key): no photo has crops in two splits.
        items.extend((replace(item, id=f"{item.id}-c{k}", crop=k), split) for k in range(config.crops_per_image))
        if not config.crops_per_image:
            items.append((item, split))
    staging = sibling(out, "partial")
    shutil.rmtree(staging, ignore_errors=True)
    for s in SPLITS:
        (staging / s).mkdir(parents=True)
    return BuildPlan(config, scan.kind, str(root), str(staging), workdir and str(workdir), items,
                     archive_rejected + scan.rejected, scan.reason)


def finalize_build(
    plan: BuildPlan, records: Iterable[dict], *, extra_rejected: Sequence[dict] = (), started: float | None = None
) -> BuildSummary:
    """Deduplicate, write the metadata files and move the finished dataset into place.

    `records` are what `pairs.process_items` yielded, in plan order. `extra_rejected` lets a caller add
    inputs it could not even fetch (failed downloads). Raises `NothingUsableError` (and removes
    the staging folder) when no pair could be made.
    """
    cfg, staging, out = plan.config, Path(plan.staging), Path(plan.config.out)
    kept: list[dict] = []
    rejected: list[dict] = list(extra_rejected) + list(plan.rejected)
    by_sha: dict[str, dict] = {}
    for r in records:
        if "kind" in r:
            rejected.append(r)
        elif dedup_key(r) in by_sha:
            first = by_sha[dedup_key(r)]
            (staging / r["path"]).unlink()
            rejected.append({
                "id": r["id"], "source": " + ".join(r["source"].values()), "kind": "exact duplicate",
                "reason": f"exact duplicate of {' + '.join(first['source'].values())} (same bytes); kept once",
            })
        else:
            by_sha[dedup_key(r)] = r
            kept.append(r)
    rejected.sort(key=lambda r: (r.get("source", ""), r.get("kind", "")))
    by_kind = dict(sorted(Counter(r["kind"] for r in rejected).items()))
    report = rejected_report_path(out)
    if not kept:
        _cleanup(plan)
        raise NothingUsableError(_nothing_usable(cfg.source, rejected, by_kind, report))
    report.unlink(missing_ok=True)  # a failed earlier build's list would only mislead now
    near, near_stats = group_splits(kept, near_duplicate_groups(kept, cfg.near_duplicate_bits), staging, cfg.seed)
    for r in kept:
        del r["_dhash"], r["_thumb"], r["_fixed"]
    counts = {s: sum(r["split"] == s for r in kept) for s in SPLITS}
    manifest_sha = dataset.write_manifest(staging, kept)
    dataset.write_jsonl(staging / dataset.REJECTED, rejected)
    dataset.write_jsonl(staging / dataset.NEAR_DUPLICATES, near)
    dataset.write_meta(staging, {
        "tool": "pix2pix-pipeline",
        "tool_version": __version__,
        "config": cfg.to_dict(for_output=True),
        "source_kind": plan.kind,
        "source_detection": plan.source_reason,
        "size": cfg.size,
        "image_format": cfg.image_format,
        "counts": counts,
        "total": len(kept),
        "rejected": {"total": len(rejected), "by_reason": by_kind},
        "near_duplicates": near_stats,
        "warnings": {"small image kept": sum(bool(r.get("warnings")) for r in kept)},
        "manifest_sha256": manifest_sha,
    })
    from pix2pix.prepare.preview import write_preview

    write_preview(staging, kept, staging / dataset.PREVIEW, per_split=cfg.preview_per_split)
    publish(staging, out)
    _cleanup(plan)
    return BuildSummary(
        out=str(out),
        counts=counts,
        rejected=by_kind,
        duplicates=by_kind.get("exact duplicate", 0),
        near_duplicates=near_stats["groups"],
        near_duplicates_across_splits=near_stats["groups_across_splits"],
        near_duplicates_moved=near_stats["images_moved"],
        warnings=sum(bool(r.get("warnings")) for r in kept),
        seconds=time.perf_counter() - started if started else 0.0,
        source_kind=plan.kind,
        source_reason=plan.source_reason,
    )



NOTHING_USABLE_SHOWN = 20  # rejections listed in the error; the file beside OUT has all


def rejected_report_path(out: Path) -> Path:
    """Where a build that made no pair lists every rejection: `OUT.rejected.jsonl` beside OUT."""
    return out.parent / f"{out.name}.rejected.jsonl"


def _nothing_usable(source: str, rejected: list[dict], by_kind: dict[str, int], report: Path) -> str:
    reasons = "; ".join(f"{k}: {v}" for k, v in by_kind.items()) or "no inputs"
    lines = [f"no usable pair in {source} ({len(rejected)} inputs rejected: {reasons}); no dataset was written"]
    if rejected:
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            dataset.write_jsonl(report, rejected)
            lines[0] += f"; every rejection is listed in {report}"
        except OSError as exc:
            lines[0] += f" (could not write {report}: {exc.strerror})"
        for r in rejected[:NOTHING_USABLE_SHOWN]:
            lines.append(f"  {r.get('source', r.get('id', '?'))}: {r.get('reason', r.get('kind'))}")
        if len(rejected) > NOTHING_USABLE_SHOWN:
            lines.append(f"  ... and {len(rejected) - NOTHING_USABLE_SHOWN} more")
    return "\n".join(lines)


def _cleanup(plan: BuildPlan) -> None:
    shutil.rmtree(plan.staging, ignore_errors=True)
    if plan.workdir:
        shutil.rmtree(plan.workdir, ignore_errors=True)
    release(plan.config.out)


def build_dataset(config: BuildConfig, *, extra_rejected: Sequence[dict] = ()) -> BuildSummary:
    """Build a whole dataset from `config` (plan → process → finalize); the library entry point."""
    started = time.perf_counter()
    if config.workers > 1:
        warm_pool()  # the workers' parent process starts while the source is scanned
    plan = plan_build(config)
    stream = process_items(config, plan.root, plan.staging, plan.items, workers=config.workers,
                           progress=config.progress)
    try:
        records = list(stream)
        return finalize_build(plan, records, extra_rejected=extra_rejected, started=started)
    except BaseException:
        stream.close()  # stops the worker pool now: no worker may write into staging after it is removed
        _cleanup(plan)
        raise
