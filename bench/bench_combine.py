"""Combining paired A/ and B/ folders: `pix2pix build` against the official combine_A_and_B.py
method, side by side in one run, plus the start-up cost of a tiny build.

    .venv/bin/python bench/bench_combine.py [--n 1000] [--workers 2] [--repeat 3]

Makes N pairs of 600×400 JPEGs (A: the negative of B, B: a photo), then times, interleaved
`--repeat` times (best and median kept, as this shared machine's speed drifts):
- official: the method of pytorch-CycleGAN-and-pix2pix `datasets/combine_A_and_B.py`, as it is:
  `multiprocessing.Pool()` (one process per CPU), per pair `cv2.imread` A and B,
  `np.concatenate`, `cv2.imwrite` (JPEG q95). It keeps the source size (1200×400 A|B), so the
  trainer still has to resize every pair at every epoch; it checks nothing.
- official + resize: the same, plus a centre crop and `cv2.resize(INTER_AREA)` of each half to
  256×256 before the concatenation: the same output geometry as ours (like for like).
- `pix2pix build --workers N`: decode (guarded), aspect check, crop + area resize to 256, A|B,
  JPEG q95, sha256 of inputs and outputs, perceptual hash, quality filters, manifest, preview,
  atomic rename.
Then the CPU time per pair of each method in one process (less sensitive to a busy machine),
and the wall time of a 5-pair build through the CLI in a fresh process (what a user waits for on
a small set), beside `python -c "import cv2, PIL"`.
Prints pairs/s and ratios. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pix2pix.prepare.build import build_dataset  # noqa: E402
from pix2pix.prepare.config import BuildConfig  # noqa: E402
from pix2pix.prepare.pairs import keep_freed_memory  # noqa: E402
from pix2pix.prepare.samples import write_samples  # noqa: E402


def make_pairs(root: Path, n: int) -> Path:
    if (root / f".done-{n}").exists():
        return root / "pairs"
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
    return root / "pairs"


# --- the official method (datasets/combine_A_and_B.py), reimplemented ------------------------------


def image_write(path_A: str, path_B: str, path_AB: str) -> None:  # noqa: N803 - the official names
    im_A = cv2.imread(path_A, 1)  # noqa: N806
    im_B = cv2.imread(path_B, 1)  # noqa: N806
    im_AB = np.concatenate([im_A, im_B], 1)  # noqa: N806
    cv2.imwrite(path_AB, im_AB)


def _crop_resize(img: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(w, h)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def image_write_resized(path_A: str, path_B: str, path_AB: str) -> None:  # noqa: N803
    im_A = _crop_resize(cv2.imread(path_A, 1))  # noqa: N806
    im_B = _crop_resize(cv2.imread(path_B, 1))  # noqa: N806
    cv2.imwrite(path_AB, np.concatenate([im_A, im_B], 1))


def official(pairs: Path, out: Path, fn=image_write, initializer=None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    names = sorted(os.listdir(pairs / "A"))
    t = time.perf_counter()
    pool = multiprocessing.Pool(initializer=initializer)  # as the official script: one process per CPU
    for name in names:
        pool.apply_async(fn, args=(str(pairs / "A" / name), str(pairs / "B" / name), str(out / name)))
    pool.close()
    pool.join()
    return len(names) / (time.perf_counter() - t)


def ours(pairs: Path, out: Path, workers: int, n: int) -> float:
    t = time.perf_counter()
    s = build_dataset(BuildConfig(source=str(pairs), out=str(out), workers=workers, overwrite=True, progress=False))
    dt = time.perf_counter() - t
    assert s.total == n, s.describe()
    return n / dt


def cpu_per_pair(pairs: Path, work: Path, n: int = 200) -> dict[str, float]:
    """CPU milliseconds per pair in this one process (no pool): the per-pair cost of each method,
    less sensitive than wall time to other load on a shared machine."""
    from pix2pix.prepare.build import _cleanup, plan_build
    from pix2pix.prepare.pairs import process_item

    cv2.setNumThreads(1)
    names = sorted(os.listdir(pairs / "A"))[:n]
    out = work / "cpu"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    res = {}
    for label, fn in (("official", image_write), ("official + crop/resize", image_write_resized)):
        t = time.process_time()
        for name in names:
            fn(str(pairs / "A" / name), str(pairs / "B" / name), str(out / name))
        res[label] = (time.process_time() - t) / len(names) * 1000
    plan = plan_build(BuildConfig(source=str(pairs), out=str(work / "cpu-ours"), overwrite=True, progress=False))
    t = time.process_time()
    for item, split in plan.items[:n]:
        process_item(item, split, plan.config, Path(plan.root), Path(plan.staging))
    res["pix2pix build"] = (time.process_time() - t) / n * 1000
    _cleanup(plan)  # removes the staging folder and releases the output's lock
    return res


def startup(work: Path, pairs: Path) -> tuple[float, float]:
    """Seconds for a 5-pair `pix2pix build` in a fresh process, and for bare `import cv2, PIL`."""
    small = work / "five"
    if not small.exists():
        for d in ("A", "B"):
            (small / d).mkdir(parents=True)
            for name in sorted(os.listdir(pairs / d))[:5]:
                shutil.copy(pairs / d / name, small / d / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pix2pix.cli", "build", str(small), str(work / "five-out"), "--overwrite",
           "--no-progress", "--workers", "2"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    build = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cv2, numpy, PIL.Image"], check=True)
    return build, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions of each variant")
    ap.add_argument("--work", default="/tmp/pix2pix-bench-combine")
    args = ap.parse_args()
    work = Path(args.work)
    pairs = make_pairs(work, args.n)
    print(f"{args.n} pairs of 600x400 JPEGs in A/ and B/, {multiprocessing.cpu_count()} CPUs "
          f"(the official Pool() uses them all)")
    variants = {
        "official (1200x400 out, no resize)": lambda: official(pairs, work / "official"),
        "official + crop/resize to 256": lambda: official(pairs, work / "official256", image_write_resized),
        # the official method with our workers' allocator setting (pairs.keep_freed_memory): what
        # is left of the difference is the work per pair, not the kernel's page zeroing
        "official, workers keep freed memory": lambda: official(pairs, work / "official-m",
                                                                initializer=keep_freed_memory),
        f"pix2pix build --workers {args.workers}": lambda: ours(pairs, work / "out", args.workers, args.n),
    }
    rates: dict[str, list[float]] = {k: [] for k in variants}
    starts: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        for name, fn in variants.items():
            rates[name].append(fn())
        starts.append(startup(work, pairs))
    best = {k: max(v) for k, v in rates.items()}
    median = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    ours_name = list(variants)[-1]
    print(f"{'':40}{'best pairs/s':>13}{'median':>9}")
    for name in variants:
        print(f"{name:40}{best[name]:13.1f}{median[name]:9.1f}")
    for name in list(variants)[:3]:
        print(f"ratio ours / {name}: best {best[ours_name] / best[name]:.2f}, "
              f"median {median[ours_name] / median[name]:.2f}")
    cpus = [cpu_per_pair(pairs, work) for _ in range(args.repeat)]
    cpu = {k: min(c[k] for c in cpus) for k in cpus[0]}
    print("CPU per pair in one process: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu.items())
          + f"; official / ours {cpu['official'] / cpu['pix2pix build']:.2f}, "
          f"official + crop/resize / ours {cpu['official + crop/resize'] / cpu['pix2pix build']:.2f}")
    b, imp = min(s[0] for s in starts), min(s[1] for s in starts)
    print(f"start-up: a 5-pair `pix2pix build` in a fresh process takes {b:.2f} s "
          f"(python + import cv2, numpy, PIL alone: {imp:.2f} s)")


if __name__ == "__main__":
    main()
