"""Helpers to make real image files for tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def noise(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random picture (blocks upscaled) that survives resizing and JPEG recognisably."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR))


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def manifest(root: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def rejected(root: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (root / "rejected.jsonl").read_text().splitlines()]
