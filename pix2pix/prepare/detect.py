"""What a folder of images holds, told from the images: A|B pairs side by side or single photos.

``detect_from_images`` reads the headers of a sample of the images (spread over the folder),
decodes a few wide ones through the build's guarded loader and compares their halves
(``halves_score``); mixed evidence is a ``SourceError`` that names what was seen and which
``--source-type`` to pass. The layout-based part of detection is ``scan.detect_source``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pix2pix.errors import ImageRejected, SourceError
from pix2pix.imageio import load_rgb, open_image
from pix2pix.prepare.config import SPLITS

DETECT_SAMPLE = 64  # images whose headers are read, spread over the folder (~1 ms each)
DETECT_CHECKED = 8  # of those, images decoded to compare their halves
_DETECT_HEAD_BYTES = 512 << 10  # enough for the header of a JPEG, PNG, GIF, BMP, WebP
_DETECT_MAX_BYTES = 256 << 20  # a bigger file is no photo to look at; the build reports it
PAIR_SCORE = 0.2  # halves_score above this: the halves show one scene (calibrated in tests)


def halves_score(img: np.ndarray) -> float:
    """How much the two halves of an image look like one scene drawn twice (A|B), in [-1, 1].

    The correlation of the halves' gradient magnitudes (edges in the same places, whatever the
    colours: labels vs photo, edges vs photo) minus the same with one half mirrored, which keeps
    what a wide photo's halves share by chance (a horizon, sky above ground). About 0 for photos,
    0.3-0.9 for pairs. `img` is H×W×3 uint8 with W even.
    """
    import cv2

    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    half = g.shape[1] // 2
    maps = []
    for part in (g[:, :half], g[:, half : 2 * half]):
        small = cv2.resize(part, (64, 64), interpolation=cv2.INTER_AREA)
        gx, gy = cv2.Sobel(small, cv2.CV_32F, 1, 0), cv2.Sobel(small, cv2.CV_32F, 0, 1)
        maps.append(cv2.GaussianBlur(np.hypot(gx, gy), (5, 5), 1.0))
    left, right = maps

    def corr(x: np.ndarray, y: np.ndarray) -> float:
        x, y = x - x.mean(), y - y.mean()
        den = float(np.sqrt((x * x).sum() * (y * y).sum()))
        return float((x * y).sum() / den) if den > 1e-6 else 0.0

    m = 8  # compare the inner 48×48 at zero shift and at shifts of 8 px (1/8 of a side)
    inner = left[m:-m, m:-m]
    shifted = [corr(inner, right[m + dy : 64 - m + dy, m + dx : 64 - m + dx])
               for dy, dx in ((0, m), (0, -m), (m, 0), (-m, 0))]
    return corr(inner, right[m:-m, m:-m]) - float(np.mean(shifted))


@dataclass(frozen=True)
class Detection:
    """The kind of a source and the evidence, in words (`build` prints it, dataset.json keeps it)."""

    kind: str
    reason: str


def _sample(items: list[str], n: int) -> list[str]:
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(k * step)] for k in range(n)]


def detect_from_images(root: Path, images: list[str], max_pixels: int) -> Detection:
    if not images:
        return Detection("folder", "no image file names to look at")
    sample = _sample(images, DETECT_SAMPLE)
    sizes: dict[str, tuple[int, int]] = {}
    for f in sample:
        size = _image_size(root / f, max_pixels)
        if size is not None:
            sizes[f] = size
    n = len(sizes)
    if n == 0:
        return Detection("folder", f"none of the {len(sample)} image files looked at could be opened "
                                   "(each is reported in rejected.jsonl)")
    # Candidates: even width and wider than high (two halves side by side); a square or tall
    # image is a photo whatever its halves look like.
    even = [f for f, (w, h) in sizes.items() if w % 2 == 0 and w > h]
    (common, n_common), = Counter(sizes.values()).most_common(1)
    twice = sum(w == 2 * h for w, h in sizes.values())
    split_dirs = sorted({f.split("/")[0] for f in images if f.split("/")[0].lower() in SPLITS and "/" in f})
    scores = []
    for f in _sample(even, DETECT_CHECKED):
        data = _read_small(root / f)
        try:
            img = load_rgb(data or b"", max_pixels=max_pixels, min_size=(256, 128))
        except ImageRejected:
            continue
        if img.shape[1] % 2 == 0:
            scores.append(halves_score(img))
    paired = sum(s >= PAIR_SCORE for s in scores)
    w, h = common
    what = "decodable images" if len(sample) == len(images) else f"decodable images (sampled from {len(images)})"
    seen = (f"{n_common} of {n} {what} are {w}×{h}"
            + (f" (two halves of {w // 2}×{h})" if w % 2 == 0 else "")
            + f"; {len(even)} are wider than high with an even width"
            + f"; {paired} of {len(scores)} checked have halves that show one scene"
            + (f"; folders {', '.join(d + '/' for d in split_dirs)}" if split_dirs else ""))
    looks_paired = bool(scores) and paired >= 0.75 * len(scores)
    looks_single = not scores or paired <= 0.25 * len(scores)
    official_shape = twice == n and bool(split_dirs)
    if looks_paired and len(even) == n:
        if n_common == n:
            return Detection("ab", f"A|B: {n} of {n} {what} are two halves of {w // 2}×{h}, "
                                   f"{paired} of {len(scores)} checked show one scene in both halves")
        return Detection("ab", f"A|B: {n} of {n} {what} are two halves side by side, {paired} of "
                               f"{len(scores)} checked show one scene in both halves")
    if looks_single and not official_shape:
        return Detection("folder", f"single photos: {seen}")
    raise SourceError(
        f"{root}: cannot tell what this source holds: {seen}. Pass --source-type ab if every image is "
        "an A|B pair side by side, or --source-type folder if they are single photos"
    )


def _image_size(path: Path, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) from the header, read from the first 512 KiB when that is enough."""
    try:
        with open(path, "rb") as f:
            head = f.read(_DETECT_HEAD_BYTES)
    except OSError:
        return None
    for data in (head, None):
        if data is None:
            if len(head) < _DETECT_HEAD_BYTES:
                return None
            data = _read_small(path)  # e.g. a TIFF whose directory sits at the end
            if data is None:
                return None
        try:
            with open_image(data, max_pixels=max_pixels) as im:
                return im.size
        except ImageRejected:
            continue
    return None


def _read_small(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > _DETECT_MAX_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None
