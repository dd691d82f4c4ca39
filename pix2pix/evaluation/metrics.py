"""Pure metric functions on uint8 images: L1, PSNR, SSIM, Lab colour histograms, box crops.

    from pix2pix.evaluation.metrics import pair_metrics, box_metrics
    pair_metrics(output, target)            # {"L1", "L1_255", "PSNR", "SSIM"}
    box_metrics(output, target, box)        # the same inside an inpainting box

Inputs are (H, W, 3) uint8 RGB arrays; nothing here reads files or runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PSNR_CAP = 100.0  # dB reported for identical images (MSE 0), so JSON stays valid and means finite
HIST_BINS = 64
LAB_RANGES = ((0.0, 100.0), (-128.0, 127.0), (-128.0, 127.0))  # L, a, b
LAB_CHANNELS = ("L", "a", "b")
METRIC_KEYS = ("L1", "L1_255", "PSNR", "SSIM")
# SSIM's default window is 7×7; smaller regions (a tiny inpainting box) use the largest odd
# window that fits, down to 3.
_SSIM_WIN = 7


def pair_metrics(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Metrics of one (H, W, 3) uint8 output against its uint8 target.

    ``L1``: mean |output − target| in the model's [−1, 1] units (training's ``val_L1`` is the
    same quantity on the unrounded output; the two differ by at most 1/255). ``L1_255``: the same
    in 0–255 units. ``PSNR`` in dB with peak 255, capped at ``PSNR_CAP`` for identical images.
    ``SSIM``: ``skimage.metrics.structural_similarity`` over the RGB channels, data_range 255
    (window 7, or the largest odd size ≥ 3 that fits a smaller image). Raises ``ValueError`` for
    arrays of different shapes or not uint8.
    """
    from skimage.metrics import structural_similarity

    if output.shape != target.shape or output.dtype != np.uint8 or target.dtype != np.uint8:
        raise ValueError(f"expected two uint8 images of one shape, got {output.dtype}{output.shape} "
                         f"and {target.dtype}{target.shape}")
    diff = output.astype(np.float64) - target.astype(np.float64)
    l1_255 = float(np.mean(np.abs(diff)))
    mse = float(np.mean(diff**2))
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))
    side = min(output.shape[:2])
    win = min(_SSIM_WIN, side if side % 2 else side - 1)
    if win >= 3:
        ssim = float(structural_similarity(output, target, channel_axis=-1, data_range=255, win_size=win))
    else:  # too small for any window: SSIM is undefined
        ssim = float("nan")
    # [-1, 1] units: x / 127.5 - 1, so differences scale by 1 / 127.5.
    return {"L1": l1_255 / 127.5, "L1_255": l1_255, "PSNR": psnr, "SSIM": ssim}


def crop_box(img: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The ``(x0, y0, x1, y1)`` region (pixels, x1/y1 exclusive: the builder's ``op_params.box``)
    of an (H, W, ...) array, clipped to the image. Raises ``ValueError`` for an empty region."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = img.shape[:2]
    x0, x1 = max(0, x0), min(w, x1)
    y0, y1 = max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {list(box)} is empty inside a {w}×{h} image")
    return img[y0:y1, x0:x1]


def box_metrics(output: np.ndarray, target: np.ndarray, box: Sequence[int]) -> dict[str, float]:
    """``pair_metrics`` of the ``box`` region only (the masked hole of an inpainting pair)."""
    return pair_metrics(crop_box(output, box), crop_box(target, box))


def scale_box(box: Sequence[int], from_size: tuple[int, int], to_size: tuple[int, int]) -> list[int]:
    """A box given on a ``from_size`` (W, H) image mapped onto a ``to_size`` (W, H) image of the
    same content (when the model runs at another size than the dataset's)."""
    if tuple(from_size) == tuple(to_size):
        return [int(v) for v in box]
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    x0, y0, x1, y1 = box
    return [round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)]


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Means of ``METRIC_KEYS`` over rows (NaN SSIMs of tiny regions left out)."""
    out = {}
    for k in METRIC_KEYS:
        vals = [r[k] for r in rows if not math.isnan(r[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


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
