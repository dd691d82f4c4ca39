"""``pix2pix translate`` and ``pix2pix export``: argument parsing for ``pix2pix.inference``.

    pix2pix translate runs/facades photos/ --out translated/
    pix2pix export runs/facades --onnx facades.onnx

``pix2pix/cli/__init__.py`` calls ``add_inference_parsers(subparsers)``. Heavy imports (torch, onnx)
happen inside the ``run_*`` functions so ``--help`` is instant.
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
    config_from,
    exit_codes_epilog,
    stage_values,
)

MODEL_HELP = ("a `pix2pix train` run folder, a generator.pt / checkpoint file, or an official "
              "pix2pix latest_net_G.pth (architecture read from its tensors; see --netG/--norm)")

TRANSLATE_EXAMPLES = """\
examples:
  # every image under photos/ (any size) through a trained model; outputs keep the input sizes
  pix2pix translate runs/facades photos/ --out translated/
  # files and globs; deterministic outputs (dropout off, BatchNorm running statistics)
  pix2pix translate runs/demo/generator.pt a.jpg 'scans/**/*.png' --out out/ --eval-mode eval
  # an official pretrained generator, resized to its 256x256 training size as the official test.py
  pix2pix translate facades_label2photo.pth labels/ --out photos/ --fit --eval-mode eval
  # huge images: smaller tiles bound the memory; a GPU with bf16 autocast
  pix2pix translate runs/maps big.tif --out out/ --tile 512 --device cuda
  # settings from the `translate:` section of params.yaml (flags win)
  pix2pix translate runs/demo photos/ --out out/ --params params.yaml

OUT/<rel>/<stem>.png per input (rel: its path under the folder or glob base it was found in),
OUT/translate.jsonl (input/output paths and sha256, model sha256, test-time mode, seeds, sizes)
and OUT/rejected.jsonl (inputs that could not be used, with the reason).
""" + exit_codes_epilog("translate: 0 every input translated; 1 an input was rejected (the rest are "
                        "written) or the model cannot be used; 2 a bad option, DIR not empty or overlapping an input.")

EXPORT_EXAMPLES = """\
examples:
  pix2pix export runs/facades --onnx facades.onnx
  pix2pix export facades_label2photo.pth --onnx label2photo.onnx --check-sizes 256x256,512x768

The file takes float32 N x 3 x H x W in [-1, 1] (H, W multiples of the generator's multiple: 256
for unet_256) and returns the same shape; it is the generator in eval mode (dropout off,
BatchNorm running statistics). It is written only after onnxruntime reproduced PyTorch on two
sizes within 1e-3: 1 when that check fails or the model cannot be used (nothing written).
""" + exit_codes_epilog()


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--netG", default=None, help="generator of an official .pth whose layout is not "
                   "recognised (unet_128, unet_256, unet_512, resnet_6blocks, resnet_9blocks)")
    p.add_argument("--norm", default=None, choices=["batch", "instance", "none"],
                   help="normalisation of an official .pth (default: read from its tensors)")


def add_inference_parsers(sub: Any) -> None:
    """Add ``translate`` and ``export`` to an ``argparse`` subparsers object."""
    p = sub.add_parser(
        "translate", help="run a trained generator over image files of any size",
        description="Translate image files (files, folders, globs) with a trained or official "
        "pix2pix generator, A to B as it was trained. Outputs keep the input's size unless --fit.",
        epilog=TRANSLATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image file, folder (recursive) or glob")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (refused if not empty, see --overwrite)")
    add_params_arguments(p, "translate")
    add_eval_mode_flag(p)
    add_config_flag(p, "--fit", "fit", action="store_true",
                    help="resize to the training size (bicubic) and write that size, as the official test.py")
    add_config_flag(p, "--tile", "tile", type=int, metavar="PX",
                    help="images whose padded side exceeds PX run in overlapping PX x PX tiles, blended "
                    "(default 1024; a multiple of the generator's multiple; 0: never tile)")
    add_config_flag(p, "--batch-size", "batch_size", type=int, metavar="N",
                    help="same-size images or tiles per forward pass in eval mode (default 4)")
    add_config_flag(p, "--max-pixels", "max_pixels", type=int, metavar="N",
                    help="reject larger inputs (default 50000000)")
    add_config_flag(p, "--seed", "seed", type=int, help="seed of test-time dropout in train mode (default 0)")
    add_device_flags(p)
    add_config_flag(p, "--precision", "precision", choices=["auto", "fp32", "bf16"],
                    help="auto: bf16 autocast on CUDA, fp32 on CPU (default)")
    add_config_flag(p, "--io-threads", "io_threads", type=int, metavar="N",
                    help="threads decoding and writing files beside the forward passes (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_flags(p)
    p.set_defaults(func=run_translate)

    e = sub.add_parser(
        "export", help="export a generator to ONNX (verified with onnxruntime)",
        description="Write a generator as ONNX with dynamic batch, height and width, then check it "
        "with onnxruntime against PyTorch on two sizes before reporting success.",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    e.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    e.add_argument("--check-sizes", default="", metavar="HxW,HxW",
                   help="the two sizes checked with onnxruntime (default: 1x and 2x the multiple)")
    e.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted |onnx - torch| (1e-3)")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    e.add_argument("--overwrite", action="store_true", help="replace FILE if it is an earlier ONNX export")
    _add_model_flags(e)
    e.set_defaults(func=run_export)


def run_translate(args: argparse.Namespace) -> int:
    """Run ``pix2pix translate``; 0 when every input was translated, 1 otherwise."""
    from pix2pix.inference import TranslateConfig, translate

    config = config_from(TranslateConfig, stage_values(args), "translate")
    result = translate(args.model, args.inputs, args.out, config, overwrite=args.overwrite,
                       progress=not args.no_progress and sys.stderr.isatty(), netG=args.netG, norm=args.norm)
    for note in result.notes:
        print(f"[translate] model: {note}")
    for r in result.rejected:
        print(f"[translate] rejected {r['input']}: {r['reason']}", file=sys.stderr)
    print(f"[translate] {result.count} image(s) translated in {result.eval_mode} mode, "
          f"{len(result.rejected)} rejected: {result.out_dir}/translate.jsonl")
    return 1 if result.rejected else 0


def run_export(args: argparse.Namespace) -> int:
    """Run ``pix2pix export``; 0 when the file was written and verified."""
    from pix2pix.inference.export import export_onnx, parse_sizes

    result = export_onnx(args.model, args.onnx, check_sizes=parse_sizes(args.check_sizes) if args.check_sizes
                         else None, tolerance=args.tolerance, opset=args.opset, netG=args.netG, norm=args.norm,
                         overwrite=args.overwrite)
    for (h, w), diff in result.checks:
        print(f"[export] onnxruntime vs PyTorch at {h}x{w}: max |difference| {diff:.2e}")
    print(f"[export] {result.path}: {result.generator}, H and W multiples of {result.multiple}, verified")
    return 0
