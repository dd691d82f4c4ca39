"""What a model must beat: outputs made without learning, from the input alone.

    from pix2pix.evaluation.baselines import identity, telea
    identity(x)              # the input as the output (doing nothing)
    telea(x, box)            # OpenCV's Telea inpainting of the box (inpainting datasets)

Inputs and outputs are (H, W, 3) uint8 RGB arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TELEA_RADIUS = 3  # pixels around each point the fill looks at (OpenCV's sample value)


def identity(x: np.ndarray) -> np.ndarray:
    """The input itself: the score of a model that changes nothing."""
    return x


def inpaint_mask(shape: tuple[int, ...], box: Sequence[int]) -> np.ndarray:
    """(H, W) uint8 mask, 255 inside the ``(x0, y0, x1, y1)`` box (x1/y1 exclusive), else 0."""
    x0, y0, x1, y1 = (int(v) for v in box)
    mask = np.zeros(shape[:2], np.uint8)
    mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 255
    return mask


def telea(x: np.ndarray, box: Sequence[int], radius: int = TELEA_RADIUS) -> np.ndarray:
    """The box of ``x`` filled by ``cv2.inpaint(..., cv2.INPAINT_TELEA)`` from the pixels around it
    (the fast-marching method of Telea, 2004); pixels outside the box are unchanged."""
    import cv2

    return cv2.inpaint(np.ascontiguousarray(x), inpaint_mask(x.shape, box), radius, cv2.INPAINT_TELEA)
