"""Evaluate a trained generator on one split of an A|B dataset: the run that ties the parts.

    from pix2pix.evaluation.evaluate import EvalConfig, evaluate
    result = evaluate("runs/facades/generator.pt", "data/facades", "runs/facades/eval-test",
                      EvalConfig(split="test", eval_mode="model"))
    print(result.metrics["PSNR"], result.metrics["baselines"]["identity"]["PSNR"])

records (manifest) → model (``pix2pix.models.io``) → outputs (the inference engine of
``pix2pix.inference.translate``) → metrics (``metrics.py``, beside the ``baselines.py``) →
report (``report.py``). Output folder (written to a hidden sibling, renamed into place)::

    OUT/images/<id>.png   input | output | target, uint8, at the dataset's size
    OUT/metrics.json      split means (L1, PSNR, SSIM), Lab histogram intersections, the task,
                          dataset, model, test-time mode, build warnings; ``hole`` (inpainting:
                          the same inside the masked box) and ``baselines.identity`` /
                          ``baselines.telea`` (inpainting only), each with its own ``hole``
    OUT/scores.json       the scores of metrics.json alone (numbers: the model's, the hole's and
                          the baselines'), what ``dvc metrics show`` compares; no paths, names
                          or settings
    OUT/per_image.csv     id, L1, PSNR, SSIM (manifest order)
    OUT/per_image.jsonl   per image: the model's metrics, hole metrics and the baselines'
    OUT/plots/*.png       training curves (if RUN_DIR/history.jsonl exists), PSNR histogram
    OUT/report.html       self-contained report; image rows worst first by the model's L1

``eval_mode`` is the paper's test-time choice made explicit: ``train`` runs G as in training
(dropout on, BatchNorm on the batch's statistics), ``eval`` switches both off, ``model``
uses what the generator file stores (``checkpoint``, its old name, still works with a
``FutureWarning``). Test-time dropout draws from a generator seeded with
``EvalConfig.seed``, so a report is reproducible in either mode.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.atomic import claim, publish, release, sibling
from pix2pix.dataset import MANIFEST, read_jsonl
from pix2pix.errors import ConfigError, Pix2PixError
from pix2pix.evaluation import baselines
from pix2pix.evaluation.metrics import (
    HIST_BINS,
    LAB_CHANNELS,
    METRIC_KEYS,
    PSNR_CAP,
    box_metrics,
    histogram_intersection,
    lab_histogram,
    mean_metrics,
    pair_metrics,
    scale_box,
)
from pix2pix.evaluation.report import plot_psnr_histogram, plot_training_curves, render_report
from pix2pix.params import check_field_types
from pix2pix.paths import safe_join
from pix2pix.runtime import check_device_name, check_eval_mode

# The manifest's `op` → the task the report names.
TASKS = {"inpaint": "inpaint", "edges": "edges", "grayscale": "grayscale", "pair": "pairs", "ab": "pairs"}


class EvaluateError(Pix2PixError):
    """Evaluation cannot run or its inputs are malformed; the message names the file or value."""


class EmptySplitError(EvaluateError):
    """The requested split has no images; the message lists the splits that do."""


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how. Validated on construction (errors name the key)."""

    split: str = "test"
    eval_mode: str = "model"  # model (as stored with the generator) | train | eval
    batch_size: int = 1  # in "train" mode BatchNorm uses batch statistics: >1 changes outputs
    device: str = "auto"  # auto (CUDA if available, else CPU) | cpu | cuda | cuda:N
    max_images: int = 0  # 0 = the whole split, else the first N in manifest order
    seed: int = 0  # seeds test-time dropout
    report_rows: int = 16  # image rows shown in report.html (all are written to images/)
    num_threads: int = 0  # torch CPU threads, 0 = torch's choice
    direction: str = "model"  # model (as trained; AtoB for an official .pth) | AtoB | BtoA

    def __post_init__(self) -> None:
        check_field_types(self, "the `evaluate:` section of --params or its `pix2pix evaluate` flag")
        # frozen: the old name is replaced by the new one once, here (stacklevel: the caller of EvalConfig)
        object.__setattr__(self, "eval_mode", check_eval_mode(self.eval_mode, stacklevel=3))
        if not self.split:
            raise ConfigError(f"split: expected a split name such as 'test', got {self.split!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: expected an integer >= 1, got {self.batch_size!r}")
        for key in ("max_images", "report_rows", "num_threads", "seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: expected an integer >= 0, got {getattr(self, key)!r}")
        if self.direction not in ("model", "AtoB", "BtoA"):
            raise ConfigError(f"direction: expected model, AtoB or BtoA, got {self.direction!r}")
        check_device_name(self.device)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EvalConfig:
        """From a params.yaml ``evaluate:`` section (or any mapping); unknown keys are a
        ``ConfigError`` naming them and the known ones."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"evaluate: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)


@dataclass(frozen=True)
class EvalResult:
    out_dir: str
    count: int
    eval_mode: str
    metrics: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- inputs


def resolve_generator_path(path: str | Path) -> Path:
    """A run folder means ``RUN_DIR/generator.pt``; a file is used as given."""
    from pix2pix.models.io import ModelLoadError, resolve_model_path

    try:
        return resolve_model_path(path)
    except ModelLoadError as e:
        raise EvaluateError(str(e)) from e


def _split_records(dataset_dir: Path, split: str) -> list[dict]:
    from pix2pix.dataset import read_manifest

    records = read_manifest(dataset_dir)
    mine = [r for r in records if r["split"] == split]
    if not mine:
        counts = Counter(r["split"] for r in records)
        have = ", ".join(f"{s} ({n})" for s, n in sorted(counts.items())) or "none"
        raise EmptySplitError(
            f"{dataset_dir / MANIFEST}: split {split!r} has no images; splits with images: "
            f"{have}. Choose one with --split."
        )
    return mine


def _run_size(dataset_dir: Path, loaded: Any) -> int:
    """The dataset's image side (its dataset.json; the model's training size when it says none).

    A U-Net is fully convolutional, so it runs at any multiple of its ``size_multiple``; any other
    side would need resizing every image, which evaluate does not do silently.
    """
    from pix2pix.dataset import image_size

    size = image_size(dataset_dir) or loaded.size
    multiple = loaded.spec.size_multiple
    if size % multiple:
        raise EvaluateError(f"{dataset_dir}: its images are {size}x{size}, but {loaded.spec.generator} "
                            f"needs sides that are multiples of {multiple}; rebuild the dataset with "
                            f"`pix2pix build --size {max(multiple, round(size / multiple) * multiple)}`")
    return size


def task_of(records: list[dict]) -> str:
    """inpaint | edges | grayscale | pairs (the most common ``op`` of the records)."""
    op = Counter(r.get("op") for r in records).most_common(1)[0][0]
    return TASKS.get(op, str(op))


def dataset_info(dataset_dir: Path, records: list[dict], split: str) -> dict[str, Any]:
    """What the report says about the data: size, counts, source, and the build's warnings as
    sentences (from ``dataset.json`` when present; a dataset without one still evaluates).
    ``pix2pix.dataset.read_meta`` reads it: an old file is upgraded, a malformed or newer one is a
    ``DatasetError`` naming it (``_run_size`` has read it by then, so that already happened)."""
    from pix2pix.dataset import read_meta

    meta = read_meta(dataset_dir) or {}
    warnings = []
    for what, n in (meta.get("warnings") or {}).items():
        if n:
            warnings.append(f"{what}: {n} image(s) (see 'warnings' in manifest.jsonl)")
    across = (meta.get("near_duplicates") or {}).get("groups_across_splits")
    if across:
        warnings.append(f"{across} group(s) of near-duplicate images cross splits: test images may "
                        "have look-alikes in train")
    rejected = meta.get("rejected") or {}
    if rejected.get("total"):
        reasons = ", ".join(f"{k} {v}" for k, v in (rejected.get("by_reason") or {}).items())
        warnings.append(f"{rejected['total']} input(s) rejected by the build ({reasons}); see rejected.jsonl")
    in_split = sum(bool(r.get("warnings")) for r in records)
    if in_split:
        warnings.append(f"{in_split} image(s) of split {split} carry build warnings")
    if not meta:
        warnings.append("no dataset.json: not a `pix2pix build` output, so its settings are unknown")
    return {"size": meta.get("size"), "counts": meta.get("counts"), "total": meta.get("total"),
            "source": (meta.get("config") or {}).get("source"), "source_kind": meta.get("source_kind"),
            "warnings": warnings}


def _model_info(loaded: Any) -> dict[str, Any]:
    cfg = loaded.info.get("config") or {}
    epochs = (cfg["n_epochs"] + cfg["n_epochs_decay"]) if "n_epochs" in cfg and "n_epochs_decay" in cfg else None
    return {"generator": loaded.spec.generator, "ngf": loaded.spec.ngf, "ndf": cfg.get("ndf"),
            "norm": loaded.spec.norm, "dropout": loaded.spec.dropout, "epochs": epochs,
            "epoch": loaded.info.get("epoch"), "step": loaded.info.get("step"), "kind": loaded.kind}


# --------------------------------------------------------------------------- the evaluation


def evaluate(
    generator_path: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: EvalConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
) -> EvalResult:
    """Translate ``config.split`` of ``dataset_dir`` with the generator, write ``out_dir``.

    ``generator_path``: a ``generator.pt`` / training checkpoint, a run folder or an official
    ``latest_net_G.pth`` (see :mod:`pix2pix.models.io`). Refuses a non-empty ``out_dir`` unless
    ``overwrite``; never leaves a half-written ``out_dir``. ``progress``: a bar on stderr.
    """
    config = config or EvalConfig()
    gen_path = resolve_generator_path(generator_path)
    dataset_dir, out = Path(dataset_dir), Path(out_dir)
    # OUT may lie inside the run folder (the documented runs/x/eval-test): replacing it deletes
    # only an earlier report. It may not be, contain or lie inside the dataset or the generator.
    claim(out, inputs={"DATASET": dataset_dir, "generator run folder": gen_path.parent, "generator": gen_path},
          overwrite=overwrite, marker="metrics.json", allow_inside=("generator run folder",))
    try:
        return _evaluate(gen_path, dataset_dir, out, config, progress)
    finally:
        release(out)


class _Tally:
    """Per-image rows and the Lab histograms of the model and each baseline, summed."""

    def __init__(self, names: list[str]) -> None:
        self.rows: list[dict[str, Any]] = []
        self.hist = {n: np.zeros((3, HIST_BINS), np.int64) for n in ["target", "model", *names]}

    def add(self, rid: str, outputs: dict[str, np.ndarray], target: np.ndarray, box: list[int] | None) -> None:
        row: dict[str, Any] = {"id": rid}
        self.hist["target"] += lab_histogram(target)
        for name, img in outputs.items():
            m: dict[str, Any] = pair_metrics(img, target)
            if box is not None:
                m["hole"] = box_metrics(img, target, box)
            self.hist[name] += lab_histogram(img)
            if name == "model":
                row.update(m)
            else:
                row[name] = m
        self.rows.append(row)

    def summary(self, name: str) -> dict[str, Any]:
        rows = [r if name == "model" else r[name] for r in self.rows]
        out: dict[str, Any] = mean_metrics(rows)
        inter = histogram_intersection(self.hist[name], self.hist["target"])
        out["hist_intersection"] = {c: float(v) for c, v in zip(LAB_CHANNELS, inter)}
        if rows and "hole" in rows[0]:
            out["hole"] = mean_metrics([r["hole"] for r in rows])
        return out


def _evaluate(gen_path: Path, dataset_dir: Path, out: Path, config: EvalConfig, progress: bool) -> EvalResult:
    import torch

    from pix2pix.inference.translate import Engine
    from pix2pix.models.io import load_generator_file
    from pix2pix.runtime import pick_device
    from pix2pix.training.data import PairDataset, dataset_fingerprint

    records = _split_records(dataset_dir, config.split)
    device = pick_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    loaded = load_generator_file(gen_path, map_location=device)  # ours or an official .pth
    mode = loaded.eval_mode if config.eval_mode == "model" else config.eval_mode
    # An official state dict stores no direction: it maps the dataset's A to B unless told.
    size = _run_size(dataset_dir, loaded)
    direction = config.direction if config.direction != "model" else (loaded.direction or "AtoB")
    ds = PairDataset(dataset_dir, config.split, direction=direction, load_size=size, crop_size=size,
                     flip=False, train=False)
    n = len(records) if config.max_images == 0 else min(len(records), config.max_images)
    task = task_of(records)
    names = ["identity", "telea"] if task == "inpaint" else ["identity"]
    # fp32 and no tiling: metrics of the model as trained, at its size, batch by batch.
    engine = Engine(loaded.model, multiple=loaded.spec.size_multiple, size=size, device=device,
                    eval_mode=mode, precision="fp32", tile=0, batch_size=config.batch_size,
                    channels_last=False)

    staging = sibling(out, "tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    (staging / "plots").mkdir()
    try:
        tally = _Tally(names)
        _run_split(engine, ds, records[:n], tally, staging, dataset_dir, config, device, progress)
        try:
            same_data = dataset_fingerprint(dataset_dir) == loaded.info.get("dataset_fingerprint")
        except Pix2PixError:
            same_data = False
        model = tally.summary("model")
        metrics: dict[str, Any] = {
            "count": n,
            "split": config.split,
            "eval_mode": mode,
            # where the mode came from: the generator file or the config (a recorded field that
            # report.py reads; its values predate the rename of eval_mode's `model`)
            "eval_mode_source": "checkpoint" if config.eval_mode == "model" else "config",
            **{k: model[k] for k in METRIC_KEYS},
            "PSNR_cap": PSNR_CAP,
            "hist_intersection": model["hist_intersection"],
            "hist_bins": HIST_BINS,
            **({"hole": model["hole"]} if "hole" in model else {}),
            "baselines": {name: tally.summary(name) for name in names},
            "task": task,
            "generator": str(gen_path),
            "generator_kind": loaded.kind,
            "model": _model_info(loaded),
            "dataset": str(dataset_dir),
            "dataset_info": dataset_info(dataset_dir, records, config.split),
            "trained_on_this_dataset": same_data,
            "direction": direction,
            "size": size,
            "model_size": loaded.size,
            "step": loaded.info.get("step"),
            "epoch": loaded.info.get("epoch"),
            "device": str(device),
            "config": asdict(config),
        }
        _write_report(staging, metrics, tally.rows, gen_path, config.report_rows)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return EvalResult(out_dir=str(out), count=n, eval_mode=mode, metrics=metrics)


def _run_split(engine: Any, ds: Any, records: list[dict], tally: _Tally, staging: Path, dataset_dir: Path,
               config: EvalConfig, device: Any, progress: bool) -> None:
    """G (and the baselines) over the records in batches; writes images/<id>.png, fills ``tally``."""
    import torch
    from tqdm import tqdm

    ids = ds.ids()
    devices = [device.index or 0] if device.type == "cuda" else []
    size = engine.size
    # Forked RNG: seeding for test-time dropout does not touch the caller's random stream.
    with torch.random.fork_rng(devices=devices), tqdm(total=len(records), unit="img", desc="evaluate",
                                                      disable=not progress, file=sys.stderr) as bar:
        torch.manual_seed(config.seed)
        for start in range(0, len(records), config.batch_size):
            idx = list(range(start, min(len(records), start + config.batch_size)))
            pairs = [ds[i] for i in idx]
            xs = [x.permute(1, 2, 0).numpy() for x, _ in pairs]
            fakes = engine.run(xs)
            for i, x, fake, (_, y) in zip(idx, xs, fakes, pairs):
                t = y.permute(1, 2, 0).numpy()
                box = _box_at(records[i], size)
                outputs = {"model": fake, "identity": baselines.identity(x)}
                if "telea" in tally.hist:
                    outputs["telea"] = baselines.telea(x, box) if box else x
                tally.add(ids[i], outputs, t, box)
                _write_png(safe_join(staging / "images", f"{ids[i]}.png",
                                     what=f"{dataset_dir / MANIFEST}: record id"),
                           np.concatenate([x, fake, t], 1))
                bar.update(1)


def _box_at(record: dict, size: int) -> list[int] | None:
    """The record's inpainting box on the size×size image the model sees (``None``: no box)."""
    box = (record.get("op_params") or {}).get("box") if record.get("op") == "inpaint" else None
    if not box:
        return None
    w, h = record["size"][0] // 2, record["size"][1]
    return scale_box(box, (w, h), (size, size))


# Numbers in metrics.json that are settings or constants, not scores of this model.
_NOT_SCORES = frozenset({"config", "PSNR_cap", "hist_bins", "size", "step", "epoch", "dataset_info",
                         "model"})


def scores_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numeric leaves of ``metrics`` (nested dicts kept), minus settings and constants."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if k in _NOT_SCORES:
            continue
        if isinstance(v, dict):
            if inner := scores_of(v):
                out[k] = inner
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return out


def _write_report(staging: Path, metrics: dict[str, Any], rows: list[dict[str, Any]], gen_path: Path,
                  report_rows: int) -> None:
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (staging / "scores.json").write_text(json.dumps(scores_of(metrics), indent=2) + "\n")
    with (staging / "per_image.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "L1", "PSNR", "SSIM"])
        for r in rows:
            w.writerow([r["id"], f"{r['L1']:.6f}", f"{r['PSNR']:.4f}", f"{r['SSIM']:.6f}"])
    with (staging / "per_image.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    plots = []
    history_path = gen_path.parent / "history.jsonl"
    if history_path.is_file():
        history = read_jsonl(history_path, error=EvaluateError)
        if history:
            plot_training_curves(history, staging / "plots" / "training_curves.png")
            plots.append(("plots/training_curves.png", f"Training curves from {history_path}"))
    plot_psnr_histogram([r["PSNR"] for r in rows], staging / "plots" / "psnr_hist.png")
    plots.append(("plots/psnr_hist.png", "Per-image PSNR over the split"))
    worst_first = sorted(rows, key=lambda r: -r["L1"])
    (staging / "report.html").write_text(render_report(metrics, worst_first[:report_rows], plots), encoding="utf-8")


def _write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(img)).save(path)
