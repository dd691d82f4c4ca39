"""Evaluate a trained generator on one split of an A|B dataset: images, metrics, plots, report.

    from pix2pix.evaluation.evaluate import EvalConfig, evaluate
    result = evaluate("runs/facades/generator.pt", "data/facades", "runs/facades/eval-test",
                      EvalConfig(split="test", eval_mode="checkpoint"))
    print(result.metrics["PSNR"], result.metrics["hist_intersection"])

Output folder (written to a hidden sibling, renamed into place at the end)::

    OUT/images/<id>.png   input | output | target, uint8, at the generator's training size
    OUT/metrics.json      split means (L1, PSNR, SSIM), Lab histogram intersections, what ran
    OUT/per_image.csv     id, L1, PSNR, SSIM
    OUT/plots/*.png       training curves (if RUN_DIR/history.jsonl exists), PSNR histogram
    OUT/report.html       self-contained report (relative links only, no JS, no CDN)

``eval_mode`` is the paper's test-time choice made explicit: ``train`` runs G as in training
(dropout on, BatchNorm on the batch's statistics), ``eval`` switches both off, ``checkpoint``
uses what the generator file stores. Test-time dropout draws from a generator seeded with
``EvalConfig.seed``, so a report is reproducible in either mode.
"""

from __future__ import annotations

import csv
import html
import json
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from pix2pix.atomic import claim, publish, release, sibling
from pix2pix.errors import ConfigError, Pix2PixError
from pix2pix.paths import safe_join

EVAL_MODES = ("checkpoint", "train", "eval")
PSNR_CAP = 100.0  # dB reported for identical images (MSE 0), so JSON stays valid and means finite
HIST_BINS = 64
LAB_RANGES = ((0.0, 100.0), (-128.0, 127.0), (-128.0, 127.0))  # L, a, b
LAB_CHANNELS = ("L", "a", "b")
# Paper, "Reference numbers": colour realism on Cityscapes labels→photo (histogram intersection
# with ground truth in Lab). Comparable only for that task; shown for orientation.
PAPER_HIST_INTERSECTION = {
    "L1": {"L": 0.81, "a": 0.69, "b": 0.70},
    "cGAN": {"L": 0.87, "a": 0.74, "b": 0.84},
    "L1+cGAN": {"L": 0.86, "a": 0.84, "b": 0.82},
}
EVAL_MODE_MEANING = {
    "train": "as in training (the paper and the official code without --eval): dropout on, "
             "BatchNorm normalises with the statistics of the current batch (instance "
             "normalisation at batch size 1). Dropout is seeded, so the report is reproducible.",
    "eval": "dropout off, BatchNorm uses its running statistics from training: deterministic "
            "outputs (the official code's --eval).",
}


class EvaluateError(Pix2PixError):
    """Evaluation cannot run or its inputs are malformed; the message names the file or value."""


class EmptySplitError(EvaluateError):
    """The requested split has no images; the message lists the splits that do."""


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how. Validated on construction (errors name the key)."""

    split: str = "test"
    eval_mode: str = "checkpoint"  # checkpoint | train | eval
    batch_size: int = 1  # in "train" mode BatchNorm uses batch statistics: >1 changes outputs
    device: str = "auto"  # auto (CUDA if available, else CPU) | cpu | cuda | cuda:N
    max_images: int = 0  # 0 = the whole split, else the first N in manifest order
    seed: int = 0  # seeds test-time dropout
    report_rows: int = 16  # image rows shown in report.html (all are written to images/)
    num_threads: int = 0  # torch CPU threads, 0 = torch's choice
    direction: str = "model"  # model (as trained; AtoB for an official .pth) | AtoB | BtoA

    def __post_init__(self) -> None:
        if self.eval_mode not in EVAL_MODES:
            raise ConfigError(f"eval_mode: expected one of {', '.join(EVAL_MODES)}, got {self.eval_mode!r}")
        if not self.split or not isinstance(self.split, str):
            raise ConfigError(f"split: expected a split name such as 'test', got {self.split!r}")
        for key in ("batch_size",):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"{key}: expected an integer >= 1, got {getattr(self, key)!r}")
        for key in ("max_images", "report_rows", "num_threads", "seed"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ConfigError(f"{key}: expected an integer >= 0, got {getattr(self, key)!r}")
        if self.direction not in ("model", "AtoB", "BtoA"):
            raise ConfigError(f"direction: expected model, AtoB or BtoA, got {self.direction!r}")
        kind = self.device.split(":")[0]
        if kind not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True)
class EvalResult:
    out_dir: str
    count: int
    eval_mode: str
    metrics: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- pure metrics


def _to_unit(img: np.ndarray) -> Any:
    import torch

    from pix2pix.training.data import to_model_range

    return to_model_range(torch.from_numpy(np.ascontiguousarray(img)))


def pair_metrics(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Metrics of one (H, W, 3) uint8 output against its uint8 target.

    ``L1``: mean |output − target| in the model's [−1, 1] units (training's ``val_L1`` is the
    same quantity on the unrounded output; the two differ by at most 1/255). ``L1_255``: the same
    in 0–255 units. ``PSNR`` in dB with peak 255, capped at ``PSNR_CAP`` for identical images.
    ``SSIM``: ``skimage.metrics.structural_similarity`` over the RGB channels, data_range 255.
    """
    from skimage.metrics import structural_similarity

    if output.shape != target.shape or output.dtype != np.uint8 or target.dtype != np.uint8:
        raise ValueError(f"expected two uint8 images of one shape, got {output.dtype}{output.shape} "
                         f"and {target.dtype}{target.shape}")
    l1 = float((_to_unit(output) - _to_unit(target)).abs().mean())
    diff = output.astype(np.float64) - target.astype(np.float64)
    mse = float(np.mean(diff**2))
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))
    ssim = float(structural_similarity(output, target, channel_axis=-1, data_range=255))
    return {"L1": l1, "L1_255": float(np.mean(np.abs(diff))), "PSNR": psnr, "SSIM": ssim}


def lab_histogram(img: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """(3, bins) int64 counts of an (H, W, 3) uint8 RGB image's L, a, b values over the fixed
    ranges ``LAB_RANGES`` (values outside are clipped into the edge bins). Sum counts over many
    images and compare them with ``histogram_intersection``."""
    from skimage.color import rgb2lab

    lab = rgb2lab(img)
    out = np.empty((3, bins), np.int64)
    for c, (lo, hi) in enumerate(LAB_RANGES):
        out[c] = np.histogram(np.clip(lab[..., c], lo, hi), bins=bins, range=(lo, hi))[0]
    return out


def histogram_intersection(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row sum(min(p, q)) of the two histograms, each row normalised to sum 1 → values in
    [0, 1], 1 = identical distributions. ``p``, ``q``: (..., bins) counts."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms of different shapes: {p.shape} vs {q.shape}")
    ps, qs = p.sum(-1, keepdims=True), q.sum(-1, keepdims=True)
    if np.any(ps == 0) or np.any(qs == 0):
        raise ValueError("an empty histogram has no intersection")
    return np.minimum(p / ps, q / qs).sum(-1)


# --------------------------------------------------------------------------- inputs


def resolve_generator_path(path: str | Path) -> Path:
    """A run folder means ``RUN_DIR/generator.pt``; a file is used as given."""
    from pix2pix.models.io import ModelLoadError, resolve_model_path

    try:
        return resolve_model_path(path)
    except ModelLoadError as e:
        raise EvaluateError(str(e)) from e


def _split_records(dataset_dir: Path, split: str) -> list[dict]:
    from pix2pix.training.data import read_manifest

    records = read_manifest(dataset_dir)
    mine = [r for r in records if r["split"] == split]
    if not mine:
        counts = Counter(r["split"] for r in records)
        have = ", ".join(f"{s} ({n})" for s, n in sorted(counts.items())) or "none"
        raise EmptySplitError(
            f"{dataset_dir / 'manifest.jsonl'}: split {split!r} has no images; splits with images: "
            f"{have}. Choose one with --split."
        )
    return mine


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available")
    return torch.device(name)


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of ``history.jsonl`` (one JSON object per epoch); an error names file and line."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvaluateError(f"{path}:{n}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise EvaluateError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the evaluation


def evaluate(
    generator_path: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: EvalConfig | None = None,
    *,
    overwrite: bool = False,
) -> EvalResult:
    """Translate ``config.split`` of ``dataset_dir`` with the generator, write ``out_dir``.

    ``generator_path``: a ``generator.pt`` / training checkpoint, a run folder or an official
    ``latest_net_G.pth`` (see :mod:`pix2pix.models.io`). Refuses a
    non-empty ``out_dir`` unless ``overwrite``; never leaves a half-written ``out_dir``.
    """
    config = config or EvalConfig()
    gen_path = resolve_generator_path(generator_path)
    dataset_dir, out = Path(dataset_dir), Path(out_dir)
    # OUT may lie inside the run folder (the documented runs/x/eval-test): replacing it deletes
    # only an earlier report. It may not be, contain or lie inside the dataset or the generator.
    claim(out, inputs={"DATASET": dataset_dir, "generator run folder": gen_path.parent, "generator": gen_path},
          overwrite=overwrite, marker="metrics.json", allow_inside=("generator run folder",))
    try:
        return _evaluate(gen_path, dataset_dir, out, config)
    finally:
        release(out)


def _evaluate(gen_path: Path, dataset_dir: Path, out: Path, config: EvalConfig) -> EvalResult:
    import torch

    from pix2pix.models.io import load_generator_file
    from pix2pix.training.data import PairDataset, collate_pairs, dataset_fingerprint, from_model_range, to_model_range

    records = _split_records(dataset_dir, config.split)
    device = _device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)

    loaded = load_generator_file(gen_path, map_location=device)  # ours or an official .pth
    G, info = loaded.model, loaded.info
    mode = loaded.eval_mode if config.eval_mode == "checkpoint" else config.eval_mode
    loaded.set_mode(mode)
    # An official state dict stores no direction: it maps the dataset's A to B unless told.
    size = loaded.size
    direction = config.direction if config.direction != "model" else (loaded.direction or "AtoB")
    ds = PairDataset(dataset_dir, config.split, direction=direction, load_size=size, crop_size=size,
                     flip=False, train=False)
    n = len(records) if config.max_images == 0 else min(len(records), config.max_images)

    staging = sibling(out, "tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    (staging / "plots").mkdir()
    try:
        per_image: list[dict[str, Any]] = []
        hist_out = np.zeros((3, HIST_BINS), np.int64)
        hist_tgt = np.zeros((3, HIST_BINS), np.int64)
        ids = ds.ids()
        devices = [device.index or 0] if device.type == "cuda" else []
        # Forked RNG: seeding for test-time dropout does not touch the caller's random stream.
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(config.seed)
            for start in range(0, n, config.batch_size):
                idx = list(range(start, min(n, start + config.batch_size)))
                batch = collate_pairs([ds[i] for i in idx]).to(device)
                x, y = batch[:, :3], batch[:, 3:]
                fake = from_model_range(G(to_model_range(x)))
                rows = torch.cat([x, fake, y], 3).permute(0, 2, 3, 1).cpu().numpy()
                for k, i in enumerate(idx):
                    row = rows[k]
                    o, t = row[:, size : 2 * size], row[:, 2 * size :]
                    _write_png(safe_join(staging / "images", f"{ids[i]}.png",
                                         what=f"{dataset_dir / 'manifest.jsonl'}: record id"), row)
                    per_image.append({"id": ids[i], **pair_metrics(o, t)})
                    hist_out += lab_histogram(o)
                    hist_tgt += lab_histogram(t)

        inter = histogram_intersection(hist_out, hist_tgt)
        try:
            same_data = dataset_fingerprint(dataset_dir) == info.get("dataset_fingerprint")
        except Pix2PixError:
            same_data = False
        metrics: dict[str, Any] = {
            "count": n,
            "split": config.split,
            "eval_mode": mode,
            "eval_mode_source": "checkpoint" if config.eval_mode == "checkpoint" else "config",
            **{k: float(np.mean([r[k] for r in per_image])) for k in ("L1", "L1_255", "PSNR", "SSIM")},
            "PSNR_cap": PSNR_CAP,
            "hist_intersection": {c: float(v) for c, v in zip(LAB_CHANNELS, inter)},
            "hist_bins": HIST_BINS,
            "generator": str(gen_path),
            "generator_kind": loaded.kind,
            "dataset": str(dataset_dir),
            "trained_on_this_dataset": same_data,
            "direction": direction,
            "size": size,
            "step": info.get("step"),
            "epoch": info.get("epoch"),
            "device": str(device),
            "config": asdict(config),
        }
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        with (staging / "per_image.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "L1", "PSNR", "SSIM"])
            for r in per_image:
                w.writerow([r["id"], f"{r['L1']:.6f}", f"{r['PSNR']:.4f}", f"{r['SSIM']:.6f}"])

        plots = []
        history_path = gen_path.parent / "history.jsonl"
        if history_path.is_file():
            history = read_history(history_path)
            if history:
                plot_training_curves(history, staging / "plots" / "training_curves.png")
                plots.append(("plots/training_curves.png", f"Training curves from {history_path}"))
        plot_psnr_histogram([r["PSNR"] for r in per_image], staging / "plots" / "psnr_hist.png")
        plots.append(("plots/psnr_hist.png", "Per-image PSNR over the split"))
        (staging / "report.html").write_text(
            render_report(metrics, per_image[: config.report_rows], plots), encoding="utf-8")
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return EvalResult(out_dir=str(out), count=n, eval_mode=mode, metrics=metrics)


def _write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(img)).save(path)


# --------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Losses and val_L1 per epoch (keys missing from the history are left out)."""
    plt = _pyplot()
    panels = [("GAN losses", ("G_GAN", "D_real", "D_fake")), ("G_L1 (λ·L1)", ("G_L1",)),
              ("validation L1 ([−1, 1] units)", ("val_L1",))]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, keys) in zip(axes, panels):
        for k in keys:
            pts = [(r["epoch"], r[k]) for r in history if k in r and "epoch" in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_psnr_histogram(values: Sequence[float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.hist(values, bins=min(30, max(5, len(values))), color="#4a7ab0", edgecolor="white")
    ax.set_xlabel("PSNR (dB)")
    ax.set_ylabel("images")
    ax.set_title(f"per-image PSNR (n = {len(values)})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- report


def render_report(metrics: dict[str, Any], rows: Sequence[dict[str, Any]],
                  plots: Sequence[tuple[str, str]]) -> str:
    """The self-contained HTML report (relative links to images/ and plots/, no scripts)."""
    e = html.escape
    ref = PAPER_HIST_INTERSECTION["L1+cGAN"]
    table = [
        ("L1 ([−1, 1], as training val_L1)", f"{metrics['L1']:.4f}", "—"),
        ("L1 (0–255)", f"{metrics['L1_255']:.2f}", "—"),
        ("PSNR (dB)", f"{metrics['PSNR']:.2f}", "—"),
        ("SSIM", f"{metrics['SSIM']:.4f}", "—"),
    ] + [
        (f"Lab histogram intersection, {c}", f"{metrics['hist_intersection'][c]:.3f}", f"{ref[c]:.2f}")
        for c in LAB_CHANNELS
    ]
    trs = "\n".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in table)
    l1 = PAPER_HIST_INTERSECTION["L1"]
    cg = PAPER_HIST_INTERSECTION["cGAN"]
    mode = metrics["eval_mode"]
    source = ("stored in the generator file" if metrics["eval_mode_source"] == "checkpoint"
              else "chosen for this evaluation")
    plot_html = "\n".join(f'<figure><img src="{quote(p)}" alt="{e(c)}"><figcaption>{e(c)}</figcaption></figure>'
                          for p, c in plots)
    grid = "\n".join(
        f'<figure><img src="{quote("images/" + r["id"] + ".png")}" alt="{e(r["id"])}">'
        f'<figcaption>{e(r["id"])}: L1 {r["L1"]:.3f} · PSNR {r["PSNR"]:.2f} dB · SSIM {r["SSIM"]:.3f}'
        f"</figcaption></figure>"
        for r in rows
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pix2pix evaluation: {e(metrics['split'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; }}
th {{ background: #eee; }} figure {{ margin: 1em 0; }} img {{ max-width: 100%; image-rendering: pixelated; }}
figcaption {{ font-size: 0.9em; color: #444; }} .note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>pix2pix evaluation</h1>
<p>Generator <code>{e(metrics['generator'])}</code> (step {e(str(metrics['step']))}, epoch
{e(str(metrics['epoch']))}, {e(metrics['direction'])}, {metrics['size']}×{metrics['size']}) on split
<b>{e(metrics['split'])}</b> of <code>{e(metrics['dataset'])}</code>: {metrics['count']} images.</p>
<h2>Inference mode: {e(mode)}</h2>
<p>{e(mode)} ({e(source)}): {e(EVAL_MODE_MEANING[mode])}</p>
<h2>Metrics (means over the split)</h2>
<table><tr><th>metric</th><th>this model</th><th>paper, L1+cGAN</th></tr>
{trs}
</table>
<p class="note">Paper numbers are for Cityscapes labels→photo and comparable only on that task.
Histogram intersections are computed over the whole split ({metrics['hist_bins']} bins per channel,
L ∈ [0, 100], a, b ∈ [−128, 127]); the paper's other rows: L1 alone {l1['L']:.2f}/{l1['a']:.2f}/{l1['b']:.2f},
cGAN alone {cg['L']:.2f}/{cg['a']:.2f}/{cg['b']:.2f} (L/a/b). PSNR of identical images is reported as
{metrics['PSNR_cap']:g} dB. Per-image values: <a href="per_image.csv">per_image.csv</a>; all values:
<a href="metrics.json">metrics.json</a>.</p>
<h2>Plots</h2>
{plot_html}
<h2>Images (input | output | target), first {len(rows)} of {metrics['count']}</h2>
{grid}
</body></html>
"""
