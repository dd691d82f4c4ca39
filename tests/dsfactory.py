"""Tiny A|B datasets in the on-disk contract (docs/dataset-format.md), for training tests.

``make_dataset(root, n_train=6, n_val=2, size=64)`` writes ``train/ val/`` A|B images, a
``manifest.jsonl`` and a ``dataset.json`` without going through the builder. A is a smooth
random colour field with a few rectangles; B = 255 − A (an easy, learnable mapping).
``ext="png"`` makes the files lossless for exact pixel checks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix import dataset


def random_a(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth-ish (size, size, 3) uint8 image with a few flat rectangles."""
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR)).copy()
    for _ in range(3):
        x0, y0 = rng.integers(0, size - size // 4, 2)
        w, h = rng.integers(size // 8, size // 4, 2)
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


def write_pair(path: Path, a: np.ndarray, b: np.ndarray) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.concatenate([a, b], axis=1))
    if path.suffix == ".png":
        im.save(path)
    else:
        im.save(path, quality=95)
    return path.read_bytes()


def make_dataset(
    root: str | Path,
    *,
    n_train: int = 6,
    n_val: int = 2,
    n_test: int = 0,
    size: int = 64,
    seed: int = 0,
    ext: str = "jpg",
    pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """Write a dataset under ``root`` and return ``root``. ``pairs`` overrides the images
    (used in order: train first, then val, then test)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    records = []
    counts = {"train": n_train, "val": n_val, "test": n_test}
    k = 0
    for split, n in counts.items():
        for i in range(n):
            if pairs is not None:
                a, b = pairs[k]
            else:
                a = random_a(rng, size)
                b = 255 - a
            k += 1
            item_id = f"{split}{i:03d}"
            rel = f"{split}/{item_id}.{ext}"
            data = write_pair(root / rel, a, b)
            records.append({
                "id": item_id,
                "split": split,
                "path": rel,
                "size": [2 * a.shape[1], a.shape[0]],
                "source": {"B": f"src/{item_id}.png"},
                "source_sha256": hashlib.sha256(item_id.encode()).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "op": "pair",
                "op_params": {},
            })
    manifest_sha = dataset.write_manifest(root, records)
    dataset.write_meta(root, {
        "config": {"size": size, "seed": seed, "op": "pair"},
        "size": records[0]["size"][1] if records else size,
        "source_kind": "ab",
        "counts": counts,
        "total": len(records),
        "rejected": {"total": 0, "by_reason": {}},
        "manifest_sha256": manifest_sha,
    })
    dataset.write_jsonl(root / dataset.REJECTED, [])
    return root
