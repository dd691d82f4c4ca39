"""Data-loading speed: 512×256 A|B JPEG pairs through ``PairDataset`` with the paper's jitter.

    python bench/bench_dataloader.py          # ≈ 1 minute

Pairs are cut from scikit-image's sample photos (A = grayscale, B = colour; JPEG q95, as
``pix2pix build`` writes). Measured: one process reading items directly (decode + split +
resize 286 + crop 256 + mirror + CHW uint8); side by side in the same run, the same items with
Pillow's ``Image.resize`` doing the resize (the earlier implementation; same pixels) and the
official ``AlignedDataset.__getitem__`` method (PIL open, crop halves, resize, crop, flip,
ToTensor, Normalize: tests/reference/official_method.py); then the in-memory cache (no decode)
and DataLoader throughput with 1 and 2 workers (batch 1). The target is ≥ 400 img/s per worker.
The [−1, 1] conversion happens on the training device, not here. Prints the device it would
train on; runs unchanged on CUDA.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pix2pix.training.data import EpochSampler, PairDataset, collate_pairs, seed_worker


def make_pairs(root: Path, n: int) -> Path:
    import hashlib
    import json

    from PIL import Image
    from skimage import data

    photos = [getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")]
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    records = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = min(h, w, 400)
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        b = np.asarray(Image.fromarray(photo[y:y + side, x:x + side]).resize((256, 256)))
        a = np.repeat(np.asarray(Image.fromarray(b).convert("L"))[..., None], 3, 2)
        rel = f"train/p{i:04d}.jpg"
        Image.fromarray(np.concatenate([a, b], 1)).save(root / rel, quality=95)
        sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        records.append({"id": f"p{i:04d}", "split": "train", "path": rel, "size": [512, 256],
                        "source": {"B": "x"}, "source_sha256": sha, "sha256": sha, "op": "pair",
                        "op_params": {}})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def pillow_resize(img, size, x=0, y=0, crop=None):
    """The earlier jitter resize: Pillow's whole ``Image.resize``, then the window."""
    from PIL import Image

    crop = size if crop is None else crop
    out = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.BICUBIC))
    return out[y:y + crop, x:x + crop]


def official_rate(root: Path, passes: int) -> float:
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
    from official_method import official_item

    paths = sorted(str(p) for p in (root / "train").glob("*.jpg"))
    random.seed(0)
    official_item(paths[0])
    t0 = time.perf_counter()
    for _ in range(passes):
        for p in paths:
            official_item(p)
    return passes * len(paths) / (time.perf_counter() - t0)


def direct_rate(ds: PairDataset, passes: int) -> float:
    n = len(ds)
    ds[(0, 0)]
    t0 = time.perf_counter()
    for e in range(passes):
        for i in range(n):
            ds[(e, i)]
    return passes * n / (time.perf_counter() - t0)


def loader_rate(ds: PairDataset, workers: int, passes: int) -> float:
    sampler = EpochSampler(len(ds), seed=0)
    loader = DataLoader(ds, batch_size=1, sampler=sampler, num_workers=workers,
                        collate_fn=collate_pairs, worker_init_fn=seed_worker, persistent_workers=True,
                        multiprocessing_context="forkserver",
                        generator=torch.Generator().manual_seed(0), prefetch_factor=8)
    for _ in loader:  # warm-up epoch: worker start-up is not throughput
        pass
    t0 = time.perf_counter()
    count = 0
    for e in range(1, passes + 1):
        sampler.set_epoch(e)
        for xy in loader:
            count += xy.shape[0]
    return count / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--passes", type=int, default=3)
    a = p.parse_args()
    import cv2

    cv2.setNumThreads(1)  # as in DataLoader workers (seed_worker)
    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device} | torch {torch.__version__} | {a.images} pairs 512x256 JPEG q95 "
          f"-> jitter 286/256 + mirror")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_pairs(Path(tmp), a.images)
        disk = PairDataset(root, "train", load_size=286, crop_size=256, in_memory_mb=0)
        mem = PairDataset(root, "train", load_size=286, crop_size=256, in_memory_mb=1024)
        import pix2pix.training.data as data_module

        def with_pillow(passes: int) -> float:
            fast = data_module.resize_bicubic
            data_module.resize_bicubic = pillow_resize
            try:
                return direct_rate(disk, passes)
            finally:
                data_module.resize_bicubic = fast

        # round-robin, best pass of each: all three see the same machine load
        best = {"ours": 0.0, "pillow": 0.0, "official": 0.0}
        for _ in range(a.passes):
            best["ours"] = max(best["ours"], direct_rate(disk, 1))
            best["pillow"] = max(best["pillow"], with_pillow(1))
            best["official"] = max(best["official"], official_rate(root, 1))
        ours, pil, official = best["ours"], best["pillow"], best["official"]
        rows.append(("1 process, from disk (decode + jitter)", 1, ours))
        rows.append(("  same, Pillow Image.resize (earlier)", 1, pil))
        rows.append(("  official AlignedDataset item (PIL)", 1, official))
        rows.append(("1 process, in memory (jitter only)", 1, direct_rate(mem, a.passes)))
        for workers in (1, 2):
            rows.append((f"DataLoader, {workers} worker(s), from disk", workers,
                         loader_rate(disk, workers, a.passes)))
    print(f"\n| {'what':<42} | {'img/s':>7} | {'img/s per worker':>16} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 18}|")
    for name, workers, rate in rows:
        print(f"| {name:<42} | {rate:7.0f} | {rate / workers:16.0f} |")
    print(f"\nfrom disk, one process: ours / Pillow resize = {ours / pil:.2f}x, "
          f"ours / official item = {ours / official:.2f}x (same run, best of round-robin passes)")


if __name__ == "__main__":
    main()
