"""The `pix2pix` command line: a thin adapter over the library.

    pix2pix build photos/ data/pairs --op edges --size 256
    pix2pix inspect data/pairs
    pix2pix train data/pairs runs/edges --preset small

Heavy modules (torch, Prefect) are imported only inside the commands that need them, so
`pix2pix --help` and `pix2pix build` start fast. Library errors become exit codes here and only
here: 0 success, 1 a problem with the data or the run, 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pix2pix import __version__

BUILD_EXAMPLES = """\
examples:
  # inpainting pairs (centre third blanked white) from a folder of photos, 256x256
  pix2pix build ~/paintings data/pollock --op inpaint
  # edges -> photo at 512, letterboxed on black, 4 worker processes
  pix2pix build photos/ data/edges512 --op edges --size 512 --fit pad --pad-color 0,0,0 --workers 4
  # colorization pairs, PNG output, a 90/5/5 split with another seed
  pix2pix build photos/ data/color --op grayscale --format png --split 0.9,0.05,0.05 --seed 1
  # your own pairs: A/ and B/ folders matched by name (x.jpg pairs with x.png)
  pix2pix build my_pairs/ data/mine
  # an official archive, resized to 128 and direction swapped (labels on the left)
  pix2pix build facades.tar.gz data/facades128 --size 128 --swap

SOURCE is a folder or a .tar.gz/.tgz/.zip archive of: single images (any depth; A is made
by --op), A/ + B/ folders, or A|B images (optionally in train/ val/ test/). The kind is
detected, or forced with --source-type. OUT gets train/ val/ test/ A|B images,
manifest.jsonl, rejected.jsonl, dataset.json and preview.jpg.
"""

INSPECT_EXAMPLES = """\
examples:
  pix2pix inspect data/pollock
  pix2pix inspect datasets/facades     # official datasets too (no manifest: geometry only)

Exits 1 when any image is not a valid A|B pair of the dataset's size, a file is missing or
unlisted, or a hash differs from manifest.jsonl.
"""

SAMPLES_EXAMPLES = """\
examples:
  pix2pix samples data/samples && pix2pix build data/samples data/demo
"""


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="turn images into a paired A|B dataset",
        description="Turn a folder or archive of images into a pix2pix A|B dataset.",
        epilog=BUILD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="folder or archive of images")
    p.add_argument("out", help="output dataset folder (written atomically)")
    p.add_argument("--source-type", default="auto", choices=["auto", "folder", "paired", "ab", "archive"])
    p.add_argument("--op", default="inpaint", choices=["inpaint", "edges", "grayscale"],
                   help="how A is made from each single photo (default: inpaint)")
    p.add_argument("--size", type=int, default=256, help="side of A and B in pixels (128, 256, 512, 1024)")
    p.add_argument("--fit", default="crop", choices=["crop", "pad", "stretch"],
                   help="non-square images: centre crop (default), letterbox, or stretch")
    p.add_argument("--pad-color", default="255,255,255", help="letterbox colour, R,G,B or #rrggbb")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of random inpainting boxes")
    p.add_argument("--resplit", action="store_true", help="ignore train/val/test folders of the source")
    p.add_argument("--swap", action="store_true", help="swap A and B (write B|A)")
    p.add_argument("--format", dest="image_format", default="jpg", choices=["jpg", "png"])
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument("--max-pixels", type=int, default=100_000_000, help="reject larger images (default 100 MP)")
    p.add_argument("--inpaint-fraction", type=float, default=1 / 3,
                   help="side of the blanked box as a fraction of each side (default 1/3: 1/9 of the area)")
    p.add_argument("--inpaint-fill", default="255,255,255", help="colour of the blanked box")
    p.add_argument("--inpaint-position", default="center", choices=["center", "random"],
                   help="centred box, or a random place drawn from --seed and the image id")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output is identical for any N)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from pix2pix.build import build_dataset
    from pix2pix.config import BuildConfig

    cfg = BuildConfig(
        source=args.source, out=args.out, source_type=args.source_type, op=args.op, size=args.size,
        fit=args.fit, pad_color=args.pad_color, split=args.split, seed=args.seed, resplit=args.resplit,
        swap=args.swap, image_format=args.image_format, quality=args.quality, max_pixels=args.max_pixels,
        inpaint_fraction=args.inpaint_fraction, inpaint_fill=args.inpaint_fill,
        inpaint_position=args.inpaint_position, workers=args.workers, overwrite=args.overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    summary = build_dataset(cfg)
    print(summary.describe())
    return 0


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="verify an A|B dataset",
        description="Count pairs per split, check every image and re-verify manifest hashes.",
        epilog=INSPECT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="dataset folder")
    p.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from pix2pix.inspect import inspect_dataset

    report = inspect_dataset(args.dataset)
    print(report.describe())
    return 0 if report.ok else 1


def _add_samples(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "samples",
        help="write the built-in demo photos",
        description="Write the demo photographs (public domain / CC0, shipped by scikit-image).",
        epilog=SAMPLES_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dest", help="folder to write the photos into")
    p.set_defaults(func=_run_samples)


def _run_samples(args: argparse.Namespace) -> int:
    from pix2pix.samples import write_samples

    paths = write_samples(args.dest)
    print(f"{len(paths)} demo photos in {args.dest}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to check every command's --help in tests)."""
    parser = argparse.ArgumentParser(
        prog="pix2pix",
        description="Paired image-to-image datasets and pix2pix models, reproducibly.",
        epilog="Run `pix2pix COMMAND --help` for the options and examples of a command.",
    )
    parser.add_argument("--version", action="version", version=f"pix2pix-pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(sub)
    _add_inspect(sub)
    _add_samples(sub)
    try:
        from pix2pix.train_cli import add_train_parser
    except ImportError:  # the training extra is optional; build/inspect work without torch
        pass
    else:
        add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pix2pix` console script; returns the exit code."""
    from pix2pix.errors import Pix2PixError

    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Pix2PixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; no partial output was left under the final name", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
