"""The `pix2pix` command line: a thin adapter over the library.

    pix2pix build photos/ data/pairs --op edges --size 256
    pix2pix inspect data/pairs
    pix2pix train data/pairs runs/edges --preset small
    pix2pix evaluate runs/edges data/pairs reports/edges

Heavy modules (torch, Prefect) are imported only inside the commands that need them, so
`pix2pix --help` and `pix2pix build` start fast. Library errors become exit codes here and only
here (`run_guarded`), by the one table in `pix2pix.errors` (shown by `pix2pix --help`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pix2pix import __version__
from pix2pix.cli.common import add_params_arguments, exit_codes_epilog, run_guarded
from pix2pix.errors import EXIT_CODES_HELP

__all__ = ["main", "make_parser", "run_guarded"]

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
  # settings from the `build:` section of params.yaml (what `dvc repro` runs)
  pix2pix build data/samples data/dataset --params params.yaml

SOURCE is a folder or a .tar.gz/.tgz/.zip archive of: single images (any depth; A is made
by --op), A/ + B/ folders, or A|B images (optionally in train/ val/ test/). The kind is
detected, or forced with --source-type. OUT gets train/ val/ test/ A|B images,
manifest.jsonl, rejected.jsonl, dataset.json and preview.jpg.
""" + exit_codes_epilog("build: 1 nothing usable in SOURCE (every rejection is in rejected.jsonl); "
                        "2 OUT exists (see --overwrite) or overlaps SOURCE.")

INSPECT_EXAMPLES = """\
examples:
  pix2pix inspect data/pollock
  pix2pix inspect datasets/facades     # official datasets too (no manifest: geometry only)

""" + exit_codes_epilog("inspect: 1 when any image is not a valid A|B pair of the dataset's size, a file is "
                        "missing or unlisted, or a hash differs from manifest.jsonl.")

SAMPLES_EXAMPLES = """\
examples:
  pix2pix samples data/samples && pix2pix build data/samples data/demo
""" + exit_codes_epilog()


# flag -> (BuildConfig key, type, choices, help). Defaults live in BuildConfig only; a flag
# overrides --params only when given (its argparse default is SUPPRESS).
_BUILD_FLAGS: list[tuple[str, str, type, tuple[str, ...] | None, str]] = [
    ("--source-type", "source_type", str, ("auto", "folder", "paired", "ab", "archive"), "kind of SOURCE"),
    ("--op", "op", str, ("inpaint", "edges", "grayscale"), "how A is made from each single photo (inpaint)"),
    ("--size", "size", int, None, "side of A and B in pixels: 128, 256 (default), 512, 1024"),
    ("--fit", "fit", str, ("crop", "pad", "stretch"), "non-square images: centre crop (default), letterbox, stretch"),
    ("--pad-color", "pad_color", str, None, "letterbox colour, R,G,B or #rrggbb (white)"),
    ("--split", "split", str, None, "train,val,test fractions (0.8,0.1,0.1)"),
    ("--seed", "seed", int, None, "seed of the split and of random inpainting boxes (0)"),
    ("--format", "image_format", str, ("jpg", "png"), "output format (jpg, quality 95)"),
    ("--quality", "quality", int, None, "JPEG quality (95)"),
    ("--max-pixels", "max_pixels", int, None, "reject larger images (100000000)"),
    ("--inpaint-fraction", "inpaint_fraction", float, None, "blanked box side / image side (1/3: 1/9 of the area)"),
    ("--inpaint-fill", "inpaint_fill", str, None, "colour of the blanked box (white)"),
    ("--inpaint-position", "inpaint_position", str, ("center", "random"),
     "centred box, or a random place drawn from --seed and the image id"),
    ("--edge-sigma", "edge_sigma", float, None, "Canny thresholds at median*(1 -/+ sigma) (0.33)"),
    ("--edge-min-component", "edge_min_component", int, None, "drop edge specks under N pixels (5)"),
    ("--min-spread", "min_spread", int, None,
     "reject near-blank B images: 1st..99th percentile spread under N of 255 in every channel (10; 0 keeps all)"),
    ("--min-side", "min_side", int, None,
     "reject sources whose fitted side (short side; long side with --fit pad) is under N pixels "
     "(default SIZE/2: enlarged at most 2x; 0 accepts any)"),
    ("--small-images", "small_images", str, ("reject", "warn"),
     "sources under --min-side: reject (default) or keep them with a warning in manifest.jsonl"),
    ("--crops", "crops_per_image", int, None,
     "single photos: N size x size crops per photo at native resolution instead of one fitted pair (0)"),
    ("--workers", "workers", int, None, "worker processes; the output is identical for any N (1)"),
]
_BUILD_SWITCHES = [
    ("--resplit", "resplit", "ignore train/val/test folders of the source and split by hash"),
    ("--swap", "swap", "swap A and B (write B|A)"),
    ("--overwrite", "overwrite", "replace OUT if it exists"),
]


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="turn images into a paired A|B dataset",
        description="Turn a folder or archive of images into a pix2pix A|B dataset.",
        epilog=BUILD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", nargs="?", help="folder or archive of images (or `source` in --params)")
    p.add_argument("out", nargs="?", help="output dataset folder, written atomically (or `out` in --params)")
    add_params_arguments(p, "build")
    for flag, key, typ, choices, text in _BUILD_FLAGS:
        metavar = None if choices else flag[2:].upper().replace("-", "_")
        p.add_argument(flag, dest=f"cfg_{key}", type=typ, choices=choices, default=argparse.SUPPRESS,
                       metavar=metavar, help=text)
    for flag, key, text in _BUILD_SWITCHES:
        p.add_argument(flag, dest=f"cfg_{key}", action="store_true", default=argparse.SUPPRESS, help=text)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from pix2pix.cli.common import stage_values
    from pix2pix.prepare.build import build_dataset
    from pix2pix.prepare.config import BuildConfig

    values = stage_values(args, positional={"source": args.source, "out": args.out}, required=("source", "out"))
    values["progress"] = not args.no_progress and sys.stderr.isatty()
    summary = build_dataset(BuildConfig.from_dict(values))
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
    from pix2pix.prepare.verify import inspect_dataset

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
    from pix2pix.prepare.samples import write_samples

    paths = write_samples(args.dest)
    print(f"{len(paths)} demo photos in {args.dest}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to check every command's --help in tests)."""
    parser = argparse.ArgumentParser(
        prog="pix2pix",
        description="Paired image-to-image datasets and pix2pix models, reproducibly.",
        epilog="Run `pix2pix COMMAND --help` for the options and examples of a command.\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pix2pix-pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(sub)
    _add_inspect(sub)
    _add_samples(sub)
    from pix2pix.cli.evaluate import add_evaluate_parser, run_evaluate  # no torch import until it runs
    from pix2pix.cli.serve import add_serve_parser, run_serve  # no Prefect import until it runs
    from pix2pix.cli.train import add_train_parser, run_train

    add_train_parser(sub).set_defaults(func=run_train)
    add_evaluate_parser(sub).set_defaults(func=run_evaluate)
    add_serve_parser(sub).set_defaults(func=run_serve)
    from pix2pix.cli.translate import add_inference_parsers  # translate, export

    add_inference_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pix2pix` console script; returns the exit code."""
    args = make_parser().parse_args(argv)
    return run_guarded(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
