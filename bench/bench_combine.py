"""Time combining paired A/ and B/ folders into an A|B dataset (the combine_A_and_B.py job).

    .venv/bin/python bench/bench_combine.py [--n 200]

Makes N pairs of 600×400 JPEGs (A: an edge-like drawing, B: a photo crop), then builds the
dataset with 1 and 2 workers and prints pairs/s. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix.build import build_dataset  # noqa: E402
from pix2pix.config import BuildConfig  # noqa: E402
from pix2pix.samples import write_samples  # noqa: E402


def make_pairs(root: Path, n: int) -> None:
    if (root / f".done-{n}").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    photos = [np.asarray(Image.open(p).convert("RGB").resize((600, 400))) for p in write_samples(root / "samples")]
    for d in ("A", "B"):
        (root / "pairs" / d).mkdir(parents=True)
    for i in range(n):
        b = photos[i % len(photos)].copy()
        b[:32, :32] = np.random.default_rng(i).integers(0, 256, (32, 32, 3))
        a = 255 - b
        Image.fromarray(a).save(root / "pairs" / "A" / f"{i:04d}.jpg", quality=90)
        Image.fromarray(b).save(root / "pairs" / "B" / f"{i:04d}.jpg", quality=90)
    (root / f".done-{n}").touch()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--work", default="/tmp/pix2pix-bench-combine")
    args = ap.parse_args()
    work = Path(args.work)
    make_pairs(work, args.n)
    print(f"{args.n} pairs of 600x400 JPEGs in A/ and B/ -> 256x256 A|B")
    for workers in (1, 2):
        t = time.perf_counter()
        s = build_dataset(BuildConfig(source=str(work / "pairs"), out=str(work / "out"), workers=workers,
                                      overwrite=True, progress=False))
        dt = time.perf_counter() - t
        assert s.total == args.n, s.describe()
        print(f"workers {workers}: {dt:6.2f} s  {args.n / dt:7.1f} pairs/s")


if __name__ == "__main__":
    main()
