"""``pix2pix evaluate``: argument parsing for ``pix2pix.evaluation.evaluate.evaluate``.

    pix2pix evaluate runs/facades data/facades runs/facades/eval-test
    pix2pix evaluate runs/facades/generator.pt data/facades out/eval --eval-mode eval --max-images 50

The lead's ``pix2pix/cli/__init__.py`` calls ``add_evaluate_parser(subparsers)`` and dispatches to
``run_evaluate(args)``. Heavy imports (torch, skimage, matplotlib) happen inside
``run_evaluate`` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pix2pix.cli.common import (
    add_config_flag,
    add_device_flags,
    add_eval_mode_flag,
    add_params_arguments,
    exit_codes_epilog,
    stage_values,
)

EXAMPLES = """\
examples:
  # the test split, G run as stored in the generator file (the paper's default: dropout on)
  pix2pix evaluate runs/facades data/facades runs/facades/eval-test
  # deterministic outputs (dropout off, BatchNorm running statistics), first 50 images only
  pix2pix evaluate runs/facades/generator.pt data/facades out/eval --eval-mode eval --max-images 50
  # a dataset without a test split: evaluate on val, replacing an earlier report
  pix2pix evaluate runs/maps data/maps runs/maps/eval-val --split val --overwrite
  # an official pretrained generator (trained BtoA on the facades dataset: labels -> photos)
  pix2pix evaluate facades_label2photo.pth data/facades out/official --direction BtoA --eval-mode eval
  # settings from the `evaluate:` section of params.yaml (what `dvc repro` runs); flags win
  pix2pix evaluate runs/demo data/dataset reports/demo --params params.yaml --overwrite

Writes OUT/report.html (open it in a browser), OUT/metrics.json, OUT/per_image.csv,
OUT/per_image.jsonl, OUT/images/<id>.png (input | output | target) and OUT/plots/*.png.
Beside the model: the identity baseline (input as output) and, for inpainting datasets,
OpenCV's Telea fill, with every metric also inside the masked box (`hole`).
""" + exit_codes_epilog("evaluate: 1 bad data or generator file; 2 OUT exists, or OUT is/holds/lies in DATASET.")


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to an ``argparse`` subparsers object and return it."""
    p = subparsers.add_parser(
        "evaluate",
        help="translate a split with a trained generator; metrics + HTML report",
        description="Run a trained generator on one split of an A|B dataset and write the "
        "outputs, L1 / PSNR / SSIM, the paper's Lab colour-histogram intersections, plots and "
        "a self-contained HTML report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("generator", metavar="RUN_DIR_OR_GENERATOR",
                   help="a `pix2pix train` run folder (uses RUN_DIR/generator.pt), a generator/checkpoint "
                   "file or an official latest_net_G.pth")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (with manifest.jsonl)")
    p.add_argument("out", metavar="OUT", help="output folder (refused if not empty, see --overwrite)")
    add_params_arguments(p, "evaluate")
    # EvalConfig keys: a flag overrides --params only when given; the defaults live in EvalConfig.
    add_config_flag(p, "--split", "split", help="split to evaluate (default: test)")
    add_eval_mode_flag(p)
    add_config_flag(p, "--max-images", "max_images", type=int, metavar="N",
                    help="only the first N images of the split (default 0: all)")
    add_config_flag(p, "--batch-size", "batch_size", type=int, metavar="N",
                    help="images per forward pass (default 1; in train mode it changes BatchNorm's statistics)")
    add_config_flag(p, "--seed", "seed", type=int, help="seed for test-time dropout (default 0)")
    add_config_flag(p, "--direction", "direction", choices=["model", "AtoB", "BtoA"],
                    help="which half is the input: as the model was trained (default; AtoB for an "
                    "official .pth, which does not store it), or AtoB / BtoA")
    add_config_flag(p, "--report-rows", "report_rows", type=int, metavar="N",
                    help="image rows shown in report.html, worst first (default 16; all are written to OUT/images)")
    add_device_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``pix2pix evaluate``; returns the exit code (errors are printed as one line, not raised)."""
    from pix2pix.cli import run_guarded

    return run_guarded(_run_evaluate, args)


def _run_evaluate(args: argparse.Namespace) -> int:
    from pix2pix.evaluation.evaluate import EvalConfig, evaluate

    config = EvalConfig.from_dict(stage_values(args))
    result = evaluate(args.generator, args.dataset, args.out, config, overwrite=args.overwrite,
                      progress=not args.no_progress and sys.stderr.isatty())
    m = result.metrics
    h = m["hist_intersection"]
    print(f"[evaluate] {result.count} {m['split']} images ({m['task']}), eval_mode {result.eval_mode}: "
          f"L1 {m['L1']:.4f}, PSNR {m['PSNR']:.2f} dB, SSIM {m['SSIM']:.4f}, "
          f"Lab hist. intersection {h['L']:.3f}/{h['a']:.3f}/{h['b']:.3f}")
    for name, b in m["baselines"].items():
        print(f"[evaluate] baseline {name}: L1 {b['L1']:.4f}, PSNR {b['PSNR']:.2f} dB, SSIM {b['SSIM']:.4f}")
    if "hole" in m:
        holes = ", ".join(f"{n} {b['hole']['L1']:.4f}" for n, b in m["baselines"].items())
        print(f"[evaluate] inside the masked box, L1: model {m['hole']['L1']:.4f}, {holes}")
    print(f"[evaluate] report: {result.out_dir}/report.html")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pix2pix.cli.evaluate",
        description="Evaluate a trained generator (stand-alone form of `pix2pix evaluate`).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return run_evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
