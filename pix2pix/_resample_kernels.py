"""numba kernels of ``pix2pix.resample`` (imported only there; needs numba, the ``train`` extra).

Both kernels work on (rows, columns, 3) uint8 arrays. A resampling pass runs along axis 0,
where rows are contiguous and the sum vectorises; the horizontal pass is that same kernel
between two transposes. Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_HALF = 1 << 21  # Resample.c: sums start at 2^(PRECISION_BITS - 1) to round
_SHIFT = 22  # PRECISION_BITS


def _jit(fn):
    """njit with the on-disk cache, or without it where numba finds no writable cache folder
    (a read-only install and a read-only $HOME: numba refuses cache=True there, at decoration)."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return njit(nogil=True)(fn)  # compiled again in each process (≈ 1 s), same code


@_jit
def resample_rows(src, first, bounds, coeffs, start, count):  # pragma: no cover - compiled
    """Rows ``start .. start+count`` of resampling ``src`` along axis 0 (Pillow's fixed point).

    ``src`` holds input rows ``first ..``; ``bounds``/``coeffs`` are ``bicubic_coefficients``.
    """
    h, w, c = src.shape
    flat = src.reshape(h, w * c)
    out = np.empty((count, w * c), np.uint8)
    acc = np.empty(w * c, np.int32)
    for i in range(count):
        lo = bounds[start + i, 0] - first
        for q in range(w * c):
            acc[q] = _HALF
        for t in range(bounds[start + i, 1]):
            k = coeffs[start + i, t]
            row = flat[lo + t]
            for q in range(w * c):
                acc[q] += np.int32(row[q]) * k
        for q in range(w * c):
            out[i, q] = min(max(acc[q] >> _SHIFT, 0), 255)
    return out.reshape(count, w, c)


@_jit
def transpose(src):  # pragma: no cover - compiled
    """(rows, columns, 3) → (columns, rows, 3), contiguous, in cache-sized blocks."""
    h, w, _ = src.shape
    out = np.empty((w, h, 3), np.uint8)
    block = 32
    for rb in range(0, h, block):
        for cb in range(0, w, block):
            for r in range(rb, min(rb + block, h)):
                for col in range(cb, min(cb + block, w)):
                    out[col, r, 0] = src[r, col, 0]
                    out[col, r, 1] = src[r, col, 1]
                    out[col, r, 2] = src[r, col, 2]
    return out
