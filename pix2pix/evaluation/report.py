"""The evaluation's plots and its self-contained HTML report (no scripts, no CDN, relative links).

    from pix2pix.evaluation.report import render_report, plot_psnr_histogram
    html = render_report(metrics, rows, [("plots/psnr_hist.png", "Per-image PSNR")])

``metrics`` is what ``metrics.json`` holds; ``rows`` are the per-image records in the order to
show (worst first); nothing here runs a model or computes a metric.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pix2pix.evaluation.metrics import LAB_CHANNELS

# Paper, "Reference numbers": colour realism on Cityscapes labels→photo (histogram intersection
# with ground truth in Lab). Comparable only for that task, so shown only next to it.
PAPER_HIST_INTERSECTION = {
    "L1": {"L": 0.81, "a": 0.69, "b": 0.70},
    "cGAN": {"L": 0.87, "a": 0.74, "b": 0.84},
    "L1+cGAN": {"L": 0.86, "a": 0.84, "b": 0.82},
}
PAPER_TASK = "Cityscapes labels→photo"
EVAL_MODE_MEANING = {
    "train": "as in training (the paper and the official code without --eval): dropout on, "
             "BatchNorm normalises with the statistics of the current batch (instance "
             "normalisation at batch size 1). Dropout is seeded, so the report is reproducible.",
    "eval": "dropout off, BatchNorm uses its running statistics from training: deterministic "
            "outputs (the official code's --eval).",
}
TASK_MEANING = {
    "inpaint": "inpainting: A is the photo with a box painted over, B the photo",
    "edges": "edges → photo: A is an edge map of B",
    "grayscale": "colourisation: A is B in grey",
    "pairs": "your own pairs (A and B given)",
}
BASELINE_MEANING = {
    "identity": "the input as the output (doing nothing)",
    "telea": "OpenCV's Telea inpainting of the box (cv2.inpaint, radius 3): a classical fill, no learning",
}


def paper_reference(metrics: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    """The paper's Lab histogram intersections when this evaluation is the task they were
    measured on (a Cityscapes dataset, labels → photo, i.e. BtoA), else ``None``."""
    source = str((metrics.get("dataset_info") or {}).get("source") or "")
    if "cityscapes" in Path(source).name.lower() and metrics.get("direction") == "BtoA":
        return PAPER_HIST_INTERSECTION
    return None


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
    """Histogram of per-image PSNR values (dB) → a PNG at ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.hist(values, bins=min(30, max(5, len(values))), color="#4a7ab0", edgecolor="white")
    ax.set_xlabel("PSNR (dB)")
    ax.set_ylabel("images")
    ax.set_title(f"per-image PSNR (n = {len(values)})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- HTML

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #eee; } figure { margin: 1em 0; } img { max-width: 100%; image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #444; } .note { color: #555; font-size: 0.9em; }
.better { font-weight: bold; } .warn { color: #8a4b00; }
"""


def _fmt(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}"


# (label, key, digits, lower is better)
_METRIC_ROWS = [("L1 ([−1, 1], as training val_L1)", "L1", 4, True), ("L1 (0–255)", "L1_255", 2, True),
                ("PSNR (dB)", "PSNR", 2, False), ("SSIM", "SSIM", 4, False)]


def _metrics_table(columns: Sequence[tuple[str, dict[str, Any] | None]], paper: dict | None) -> str:
    """Rows: metrics; columns: the model and each baseline (``None``: not computed). The best
    value of a row is bold."""
    e = html.escape
    head = "".join(f"<th>{e(name)}</th>" for name, _ in columns)
    if paper:
        head += f"<th>paper, L1+cGAN ({e(PAPER_TASK)})</th>"
    trs = []
    for label, key, digits, lower in _METRIC_ROWS:
        vals = [None if col is None else col.get(key) for _, col in columns]
        finite = [v for v in vals if v is not None and not math.isnan(v)]
        best = (min if lower else max)(finite) if len(finite) > 1 else None
        cells = "".join(f'<td class="better">{_fmt(v, digits)}</td>' if v == best else f"<td>{_fmt(v, digits)}</td>"
                        for v in vals)
        trs.append(f"<tr><td>{e(label)}</td>{cells}{'<td>—</td>' if paper else ''}</tr>")
    for c in LAB_CHANNELS:
        vals = [None if col is None or "hist_intersection" not in col else col["hist_intersection"][c]
                for _, col in columns]
        cells = "".join(f"<td>{_fmt(v, 3)}</td>" for v in vals)
        ref = f"<td>{paper['L1+cGAN'][c]:.2f}</td>" if paper else ""
        trs.append(f"<tr><td>Lab histogram intersection, {c}</td>{cells}{ref}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>\n" + "\n".join(trs) + "\n</table>"


def _hole_table(metrics: dict[str, Any], names: Sequence[str]) -> str:
    e = html.escape
    cols = [("this model", metrics.get("hole"))] + [(n, metrics["baselines"][n].get("hole")) for n in names]
    head = "".join(f"<th>{e(name)}</th>" for name, _ in cols)
    trs = []
    for label, key, digits, lower in _METRIC_ROWS:
        vals = [None if c is None else c.get(key) for _, c in cols]
        finite = [v for v in vals if v is not None and not math.isnan(v)]
        best = (min if lower else max)(finite) if len(finite) > 1 else None
        cells = "".join(f'<td class="better">{_fmt(v, digits)}</td>' if v == best else f"<td>{_fmt(v, digits)}</td>"
                        for v in vals)
        trs.append(f"<tr><td>{e(label)}</td>{cells}</tr>")
    return f"<table><tr><th>inside the box</th>{head}</tr>\n" + "\n".join(trs) + "\n</table>"


def _verdict(metrics: dict[str, Any]) -> str:
    """One sentence: does the model beat doing nothing (inside the box, for inpainting)?"""
    ident = metrics["baselines"]["identity"]
    where, mine, base = "over the whole image", metrics["L1"], ident["L1"]
    if metrics.get("hole") and ident.get("hole"):
        where, mine, base = "inside the masked box", metrics["hole"]["L1"], ident["hole"]["L1"]
    if mine < base:
        return (f"The model beats the identity baseline {where}: L1 {mine:.4f} vs {base:.4f} "
                f"({100 * (1 - mine / base):.0f}% lower).") if base else f"L1 {mine:.4f} {where}."
    return (f'<span class="warn">The model does not beat the identity baseline {where}: L1 {mine:.4f} '
            f"vs {base:.4f}. Train longer or on more data.</span>")


def _summary(metrics: dict[str, Any]) -> str:
    e = html.escape
    d, m = metrics.get("dataset_info") or {}, metrics.get("model") or {}
    counts = ", ".join(f"{k} {v}" for k, v in (d.get("counts") or {}).items())
    widths = f"ngf {m.get('ngf')}" + (f", ndf {m['ndf']}" if m.get("ndf") is not None else "")
    epochs = m.get("epochs")
    trained = f"epoch {m.get('epoch')}" + (f" of {epochs}" if epochs else "") + f", step {m.get('step')}"
    task = metrics.get("task", "?")
    rows = [
        ("task", f"{task}: {TASK_MEANING.get(task, task)}"),
        ("dataset", f"{metrics['dataset']} ({d.get('size', '?')}×{d.get('size', '?')}; {counts or 'counts unknown'}); "
                    f"this report: split {metrics['split']}, {metrics['count']} images"),
        ("model", f"{metrics['generator']} ({metrics.get('generator_kind')}): {m.get('generator')}, {widths}, "
                  f"norm {m.get('norm')}; {trained}; run at {metrics['size']}×{metrics['size']}, "
                  f"{metrics['direction']}"),
        ("trained on this dataset", "yes" if metrics.get("trained_on_this_dataset") else
         "no (or another version of it): the test split may overlap the model's training data"),
    ]
    trs = "\n".join(f"<tr><th>{e(a)}</th><td>{e(str(b))}</td></tr>" for a, b in rows)
    warns = d.get("warnings") or []
    warn_html = ("<p>Build warnings:</p><ul>" + "".join(f'<li class="warn">{e(w)}</li>' for w in warns) + "</ul>"
                 if warns else "<p>Build warnings: none.</p>")
    return f"<table>{trs}</table>\n{warn_html}"


def _image_rows(rows: Sequence[dict[str, Any]], baselines: Sequence[str]) -> str:
    e = html.escape
    out = []
    for r in rows:
        parts = [f"L1 {r['L1']:.3f} · PSNR {r['PSNR']:.2f} dB · SSIM {r['SSIM']:.3f}",
                 f"identity L1 {r['identity']['L1']:.3f}"]
        if r.get("hole"):
            hole = f"hole L1: model {r['hole']['L1']:.3f}, identity {r['identity']['hole']['L1']:.3f}"
            if "telea" in baselines:
                hole += f", telea {r['telea']['hole']['L1']:.3f}"
            parts.append(hole)
        out.append(f'<figure><img src="{quote("images/" + r["id"] + ".png")}" alt="{e(r["id"])}">'
                   f'<figcaption>{e(r["id"])}: {e(" · ".join(parts))}</figcaption></figure>')
    return "\n".join(out)


def render_report(metrics: dict[str, Any], rows: Sequence[dict[str, Any]],
                  plots: Sequence[tuple[str, str]]) -> str:
    """The self-contained HTML report (relative links to images/ and plots/, no scripts).

    ``rows``: per-image records (``id``, the model's metrics, ``identity``/``telea`` baselines,
    ``hole`` when the dataset is inpainting) in the order shown.
    """
    e = html.escape
    names = [n for n in ("identity", "telea") if n in metrics.get("baselines", {})]
    paper = paper_reference(metrics)
    mode = metrics["eval_mode"]
    source = ("stored in the generator file" if metrics["eval_mode_source"] == "checkpoint"
              else "chosen for this evaluation")
    columns = [("this model", metrics)] + [(n, metrics["baselines"][n]) for n in names]
    baselines_html = "<ul>" + "".join(f"<li><b>{e(n)}</b>: {e(BASELINE_MEANING[n])}</li>" for n in names) + "</ul>"
    hole_html = ""
    if metrics.get("hole"):
        hole_html = ("<h2>Inside the masked box (the pixels the model must invent)</h2>\n"
                     + _hole_table(metrics, names))
    paper_note = (f"Paper numbers: {PAPER_TASK}, L1 alone {'/'.join(f'{v:.2f}' for v in paper['L1'].values())}, "
                  f"cGAN alone {'/'.join(f'{v:.2f}' for v in paper['cGAN'].values())} (L/a/b). " if paper
                  else "The paper's numbers were measured on Cityscapes labels→photo and are not shown for this task. ")
    plot_html = "\n".join(f'<figure><img src="{quote(p)}" alt="{e(c)}"><figcaption>{e(c)}</figcaption></figure>'
                          for p, c in plots)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pix2pix evaluation: {e(metrics['split'])}</title>
<style>{_STYLE}</style></head><body>
<h1>pix2pix evaluation</h1>
{_summary(metrics)}
<p><b>{_verdict(metrics)}</b></p>
<h2>Test-time mode: {e(mode)}</h2>
<p>{e(mode)} ({e(source)}): {e(EVAL_MODE_MEANING[mode])}</p>
<h2>Metrics (means over the split)</h2>
<p>Baselines:</p>{baselines_html}
{_metrics_table(columns, paper)}
{hole_html}
<p class="note">{e(paper_note)}Histogram intersections are computed over the whole split
({metrics['hist_bins']} bins per channel, L ∈ [0, 100], a, b ∈ [−128, 127]). PSNR of identical
images is reported as {metrics['PSNR_cap']:g} dB. Per-image values:
<a href="per_image.csv">per_image.csv</a>, with the baselines <a href="per_image.jsonl">per_image.jsonl</a>;
all values: <a href="metrics.json">metrics.json</a>.</p>
<h2>Plots</h2>
{plot_html}
<h2>Images (input | output | target), worst {len(rows)} of {metrics['count']} by the model's L1</h2>
{_image_rows(rows, names)}
</body></html>
"""
