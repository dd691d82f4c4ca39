"""Images/s of `pix2pix translate` beside the official test loop's method, in one run.

    python bench/bench_translate.py                    # unet_256, ngf 64 (the paper's G), CPU
    python bench/bench_translate.py --ngf 32 --rounds 1 --n256 0 --n1024 8   # 1024² only, lighter G

Inputs: JPEG photos (scikit-image's) at 256×256 and 1024×1024 in a temporary folder. The
generator is saved as an official state dict and loaded by each side from that file.

- official: the official test.py's per-image work (`--load_size = --crop_size =` the image side,
  `--eval`, batch 1): PIL open + convert("RGB"), Resize(BICUBIC) + ToTensor + Normalize, G under
  no_grad, tensor2im, PIL PNG save (compress level 6); one image after another, one thread of
  Python.
- ours, batch N: `pix2pix.inference.translate` in eval mode (whole files in, PNGs +
  translate.jsonl out, a fresh output folder each time): decode/encode in threads beside the
  forward passes, same-size batches, channels_last, inference_mode, PNG at zlib level 1.

Each variant runs `--rounds` times, interleaved (this shared machine's speed drifts); the best
round counts. Prints img/s and the ratio to the official method per size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))

from pix2pix.inference import TranslateConfig, translate  # noqa: E402
from pix2pix.models import build_generator, init_weights  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")


def make_inputs(root: Path, side: int, n: int) -> Path:
    folder = root / f"in{side}"
    folder.mkdir()
    for i in range(n):
        img = getattr(data, PHOTOS[i % len(PHOTOS)])()
        Image.fromarray(img).convert("RGB").resize((side, side), Image.BICUBIC).save(folder / f"{i}.jpg", quality=95)
    return folder


def official_loop(G: torch.nn.Module, folder: Path, out: Path) -> int:
    """The official test.py's work per image (tests/reference/official_method.py), batch 1,
    each output saved with PIL (PNG, compress level 6)."""
    from official_method import official_test_image

    out.mkdir()
    files = sorted(folder.iterdir())
    for f in files:
        Image.fromarray(official_test_image(G, str(f))).save(out / f"{f.stem}.png")
    return len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--n256", type=int, default=16, help="images at 256x256")
    ap.add_argument("--n1024", type=int, default=8, help="images at 1024x1024")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_translate_"))
    try:
        G = init_weights(build_generator("unet_256", ngf=args.ngf), generator=torch.Generator().manual_seed(0))
        model = root / "latest_net_G.pth"
        torch.save(G.state_dict(), model)
        ref = build_generator("unet_256", ngf=args.ngf)
        ref.load_state_dict(torch.load(model, weights_only=True))
        print(f"unet_256 ngf={args.ngf}, CPU, torch threads {torch.get_num_threads()}, best of {args.rounds}")
        for side, n in ((256, args.n256), (1024, args.n1024)):
            if n == 0:
                continue
            folder = make_inputs(root, side, n)
            variants = {
                "official test loop (batch 1)": lambda o, f=folder: official_loop(ref, f, o),
                "pix2pix translate, batch 1": lambda o, f=folder: translate(
                    model, [f], o, TranslateConfig(eval_mode="eval", batch_size=1)).count,
                "pix2pix translate, batch 8": lambda o, f=folder: translate(
                    model, [f], o, TranslateConfig(eval_mode="eval", batch_size=8)).count,
            }
            best: dict[str, float] = {}
            for r in range(args.rounds):
                for name, run in variants.items():
                    out = root / f"out-{side}-{r}-{len(best)}-{name[:8].strip()}"
                    shutil.rmtree(out, ignore_errors=True)
                    t = time.perf_counter()
                    count = run(out)
                    rate = count / (time.perf_counter() - t)
                    best[name] = max(best.get(name, 0.0), rate)
                    shutil.rmtree(out, ignore_errors=True)
            base = best["official test loop (batch 1)"]
            print(f"\n{side}x{side}, {n} images")
            print("| method | img/s | vs official |\n|---|---|---|")
            for name, rate in best.items():
                print(f"| {name} | {rate:.2f} | {rate / base:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
