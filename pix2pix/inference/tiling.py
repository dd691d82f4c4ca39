"""Image geometry for running a generator on any size: reflect padding and blended tiles.

    padded, (top, left) = pad_to_multiple(img, 256)        # then crop the output back
    ys = tile_starts(height, 1024, 256)                     # overlapping tile rows
    w = blend_window(1024, 1024 - tile_stride(ys, 1024), at_start=True, at_end=False)

Pure functions on numpy arrays; `translate.Engine` runs the network on what they cut.
"""

from __future__ import annotations

import numpy as np


def pad_to_multiple(img: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad an (H, W, C) array so both sides are multiples of ``multiple``, centred.

    Returns (padded, (top, left)). Pads wider than the image reflect repeatedly (numpy's rule),
    so a 64×64 image grows to 256×256 for a ``unet_256``.
    """
    h, w = img.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return img, (0, 0)
    top, left = ph // 2, pw // 2
    mode = "reflect" if min(h, w) > 1 else "edge"  # reflect needs two pixels to mirror
    return np.pad(img, ((top, ph - top), (left, pw - left), (0, 0)), mode=mode), (top, left)


def tile_starts(length: int, tile: int, multiple: int) -> list[int]:
    """Starts of tiles of side ``tile`` covering ``length`` with at least ``tile // 4`` overlap.

    Starts are multiples of ``multiple`` (so every tile sees the network's sampling grid of the
    whole image) and the last tile ends at ``length``. ``length`` and ``tile`` are multiples of
    ``multiple``; one tile when ``length <= tile``.
    """
    if length <= tile:
        return [0]
    step = max(multiple, (tile - tile // 4) // multiple * multiple)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def blend_window(length: int, ramp: int, *, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D weights: 1 inside, a raised-cosine ramp of ``ramp`` pixels at each edge that meets
    another tile (``at_start``/``at_end`` False at the image border). Strictly positive, so
    every pixel's weights sum to more than 0."""
    w = np.ones(length, np.float32)
    r = min(ramp, length // 2)
    if r > 0:
        rise = (0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)).astype(np.float32)
        if not at_start:
            w[:r] = rise
        if not at_end:
            w[-r:] = np.minimum(w[-r:], rise[::-1])
    return w


def tile_stride(starts: list[int], tile: int) -> int:
    """The regular spacing of `starts` (the last tile may sit closer): the blend ramp spans the overlap."""
    return starts[1] - starts[0] if len(starts) > 1 else tile

