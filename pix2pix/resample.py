"""Pillow's bicubic resize, bit for bit, ≈ 3.5× faster, computing only a crop window of it.

The official pix2pix loader resizes each half with ``Image.resize((load_size, load_size),
Image.BICUBIC)`` and then crops. ``resize_bicubic`` returns the same pixels (uint8, bit
identical) for any window of that resized image, without computing the rest of it.

How Pillow resizes (``src/libImaging/Resample.c``): two separable passes, each output pixel a
sum of ``ksize`` taps of the cubic kernel (a = −0.5, support 2, widened by the scale factor
when shrinking, i.e. antialiased). Per output position the taps are computed in double,
normalised to sum 1, and rounded to fixed point with 22 fractional bits (half away from
zero); sums start at 2^21 and are shifted right by 22 and clipped to 0..255. The first pass
writes uint8, which the second pass reads. Pillow 13 runs the vertical pass first when the
height shrinks much more than the width (python-pillow/Pillow#9549), so the pass order is
not fixed across versions; the order matching the installed Pillow is found once per
(height, width, size) on a random image, and Pillow itself is used if neither order matches.

The passes run in numba (the ``train`` extra installs it); without numba, or for shapes no
order reproduces, Pillow is called (same pixels, slower).
"""

from __future__ import annotations

import functools
import math
import operator
import threading

import numpy as np
from PIL import Image

PRECISION_BITS = 22  # Resample.c: 32 - 8 (result) - 2 (overflow headroom)


def _bicubic(x: float) -> float:
    # Resample.c bicubic_filter with a = -0.5, same operation order (bit-identical doubles).
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@functools.lru_cache(maxsize=128)
def bicubic_coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's fixed-point taps for resizing ``in_size`` → ``out_size`` samples (whole image).

    Returns ``bounds`` (out_size, 2) int32 — first input index and tap count per output — and
    ``coeffs`` (out_size, ksize) int32, scaled by 2^22 (``precompute_coeffs`` +
    ``normalize_coeffs_8bpc`` in Resample.c). Raises ``ValueError`` for sizes < 1.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"resize sizes must be >= 1, got {in_size} -> {out_size}")
    scale = filterscale = float(in_size) / out_size
    filterscale = max(filterscale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    ss = 1.0 / filterscale
    bounds = np.zeros((out_size, 2), np.int32)
    coeffs = np.zeros((out_size, ksize), np.int32)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C casts truncate toward zero, like int()
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = 0.0
        for w in weights:  # sequential sum: the C loop's rounding
            total += w
        for x, w in enumerate(weights):
            if total != 0.0:
                w = w / total
            scaled = w * (1 << PRECISION_BITS)
            coeffs[xx, x] = int(scaled - 0.5) if w < 0 else int(scaled + 0.5)
        bounds[xx] = (xmin, xmax)
    return bounds, coeffs


@functools.cache
def _kernels():
    """The numba kernels (compiled on first use, cached on disk), or None without numba."""
    try:
        from pix2pix import _resample_kernels
    except ImportError:
        return None
    return _resample_kernels


def _span(bounds: np.ndarray, start: int, count: int) -> tuple[int, int]:
    sel = bounds[start : start + count]
    return int(sel[0, 0]), int((sel[:, 0] + sel[:, 1]).max())


def _two_pass(img: np.ndarray, size: int, x: int, y: int, crop: int, vertical_first: bool) -> np.ndarray:
    k = _kernels()
    h, w = img.shape[:2]
    need_h, need_v = w != size, h != size
    hb, hk = bicubic_coefficients(w, size)
    vb, vk = bicubic_coefficients(h, size)
    c0, c1 = _span(hb, x, crop) if need_h else (x, x + crop)
    r0, r1 = _span(vb, y, crop) if need_v else (y, y + crop)
    region = img[r0:r1, c0:c1]
    if vertical_first:
        t = k.resample_rows(np.ascontiguousarray(region), r0, vb, vk, y, crop) if need_v else region
        t = k.transpose(t)  # (columns, rows)
        if need_h:
            t = k.resample_rows(t, c0, hb, hk, x, crop)
        return k.transpose(t)
    t = k.transpose(region)  # (columns, rows): the horizontal pass runs over contiguous rows
    if need_h:
        t = k.resample_rows(t, c0, hb, hk, x, crop)
    t = k.transpose(t)
    return k.resample_rows(t, r0, vb, vk, y, crop) if need_v else t


_order_lock = threading.Lock()
_orders: dict[tuple[int, int, int], str] = {}


def _pillow(img: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.BICUBIC))


def _order(h: int, w: int, size: int) -> str:
    """'hv', 'vh' or 'pillow': which computation equals the installed Pillow for this shape."""
    key = (h, w, size)
    found = _orders.get(key)
    if found is not None:
        return found
    with _order_lock:
        if key not in _orders:
            probe = np.random.default_rng(h * 7919 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
            want = _pillow(probe, size)
            found = "pillow"
            if _kernels() is not None:
                for order in ("hv", "vh"):
                    try:
                        same = np.array_equal(_two_pass(probe, size, 0, 0, size, order == "vh"), want)
                    except Exception:  # noqa: BLE001 - numba failing to compile here: Pillow does it
                        break
                    if same:
                        found = order
                        break
            _orders[key] = found
    return _orders[key]


def resize_bicubic(img: np.ndarray, size: int, x: int = 0, y: int = 0, crop: int | None = None) -> np.ndarray:
    """``Image.resize((size, size), Image.BICUBIC)`` of ``img``, then ``[y:y+crop, x:x+crop]``.

    ``img``: (H, W, 3) uint8, any strides (a view of one half of an A|B image is fine).
    Returns a (crop, crop, 3) uint8 array, bit-identical to the installed Pillow's result;
    ``crop`` defaults to ``size`` (the whole resized image). A no-op resize (H = W = size)
    returns the window of ``img`` itself. Raises ``ValueError`` for anything but an (H, W, 3)
    uint8 array, a size < 1 or a window outside the image; ``TypeError`` for non-integer sizes.
    """
    if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
        what = f"{img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"resize_bicubic needs an (H, W, 3) uint8 array, got {what}")
    size, x, y = operator.index(size), operator.index(x), operator.index(y)
    crop = size if crop is None else operator.index(crop)
    if size < 1:
        raise ValueError(f"resize size must be >= 1, got {size}")
    if not (0 <= x and 0 <= y and crop >= 1 and x + crop <= size and y + crop <= size):
        raise ValueError(f"crop window x={x}, y={y}, size {crop} is outside the {size}×{size} image")
    h, w = img.shape[:2]
    if h == size and w == size:
        return img[y : y + crop, x : x + crop]
    order = _order(h, w, size)
    if order == "pillow":
        return _pillow(img, size)[y : y + crop, x : x + crop]
    return _two_pass(img, size, x, y, crop, order == "vh")


def warm_up() -> None:
    """Load numba and both kernels' machine code now (from the disk cache after the first run):
    a process that forks workers calls it once, so that each worker does not."""
    if _kernels() is not None:
        probe = np.zeros((4, 6, 3), np.uint8)
        _two_pass(probe, 5, 0, 0, 5, False)
