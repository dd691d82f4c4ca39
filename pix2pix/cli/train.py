"""``pix2pix train``: argument parsing for the training loop (``pix2pix.training.train``).

    pix2pix train data/facades runs/facades --direction BtoA
    pix2pix train data/demo runs/demo --preset small --resume
    torchrun --nproc_per_node=2 -m pix2pix.cli.train data/facades runs/ddp

The lead's ``pix2pix/cli/__init__.py`` calls ``add_train_parser(subparsers)`` and dispatches to
``run_train(args)``; ``python -m pix2pix.cli.train`` runs the same parser stand-alone (that is
what torchrun needs). Heavy imports happen inside ``run_train`` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pix2pix.cli.common import (
    add_config_flag,
    add_device_flags,
    add_params_arguments,
    exit_codes_epilog,
    run_guarded,
    stage_values,
)

EXAMPLES = """\
examples:
  # the paper's recipe (U-Net 256, 70x70 PatchGAN, 100+100 epochs, batch 1)
  pix2pix train data/facades runs/facades --direction BtoA
  # the demo: small networks, few epochs (a couple of minutes on a 2-core CPU)
  pix2pix train data/demo runs/demo --preset small
  # continue (or extend with --epochs/--epochs-decay) a run; a changed config or dataset stops
  pix2pix train data/facades runs/facades --direction BtoA --resume
  # the params.yaml `train` section, with one value overridden
  pix2pix train data/facades runs/x --params params.yaml --set lr=0.0001
  # fine-tune a published official generator (e.g. facades_label2photo.pth) on your data
  pix2pix train data/mine runs/ft --direction BtoA --init-generator facades_label2photo.pth --lr 0.0001
  # 2 processes (GPUs, or CPU with gloo); batch size is per process
  torchrun --nproc_per_node=2 -m pix2pix.cli.train data/facades runs/ddp

Run folder: checkpoints/ckpt-<step>.pt (last K) + latest.pt, generator.pt (for inference),
config.json, samples/*.png, history.jsonl, metrics.json (numbers), run_info.json (device, dataset,
seconds), dvclive/ (if dvclive is installed).
""" + exit_codes_epilog("train: 3 a loss became NaN/Inf (last good checkpoint kept); 4 the checkpoint "
                        "does not match this run (see --on-mismatch).")

# flag -> (TrainConfig key, type, help). Only flags given on the command line override the
# preset / params file (their default is SUPPRESS).
_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--generator", "generator", str,
     "unet_128 | unet_256 | unet_512 | resnet_6blocks | resnet_9blocks (default unet_256)"),
    ("--init-generator", "init_generator", str,
     "fine-tune: start G from an official latest_net_G.pth or a generator.pt"),
    ("--ngf", "ngf", int, "generator width (default 64)"),
    ("--ndf", "ndf", int, "discriminator width (default 64)"),
    ("--norm", "norm", str, "batch | instance | none (default batch)"),
    ("--d-receptive-field", "d_receptive_field", int, "PatchGAN size: 1, 16, 70, 286 (default 70)"),
    ("--gan-mode", "gan_mode", str, "vanilla (BCE, the paper) | lsgan"),
    ("--lambda-l1", "lambda_l1", float, "weight of the L1 term (default 100)"),
    ("--lr", "lr", float, "Adam learning rate (default 0.0002)"),
    ("--beta1", "beta1", float, "Adam beta1 (default 0.5)"),
    ("--epochs", "n_epochs", int, "epochs at the initial lr (default 100)"),
    ("--epochs-decay", "n_epochs_decay", int, "epochs of linear decay to 0 (default 100)"),
    ("--batch-size", "batch_size", int, "per process (default 1)"),
    ("--seed", "seed", int, "seed for init, data order, jitter, dropout (default 0)"),
    ("--crop-size", "crop_size", int,
     "training crop = network input side (default: the dataset's size; --size is an old alias)"),
    ("--load-size", "load_size", int, "resize before the random crop (default crop_size*286/256)"),
    ("--direction", "direction", str, "AtoB (left->right, default) | BtoA"),
    ("--eval-mode", "eval_mode", str,
     "G at validation/inference: train (dropout + batch stats, the paper; default) | eval"),
    ("--workers", "num_workers", int, "DataLoader worker processes (default 2)"),
    ("--amp", "amp", str, "autocast: auto (CUDA: bf16, else fp16 + scaler; CPU: off) | bf16 | fp16 | off"),
    ("--adam", "adam", str, "fused (default, faster) | foreach (torch's default Adam, as the official code)"),
    ("--memory-format", "memory_format", str, "auto (channels_last on CUDA) | channels_last | contiguous"),
    ("--keep-last", "keep_last", int, "full checkpoints kept (default 3)"),
    ("--checkpoint-every", "checkpoint_every", int, "also checkpoint every N steps (0: epochs)"),
    ("--sample-every", "sample_every", int, "sample grid every N steps (default 200, 0: off)"),
    ("--log-every", "log_every", int, "log losses every N steps (default 10)"),
    ("--val-every", "val_every", int, "validation L1 every N epochs (default 1, 0: off)"),
]
_SWITCHES: list[tuple[str, str, bool, str]] = [
    ("--no-dropout", "dropout", False, "no dropout in G (the paper has it)"),
    ("--no-flip", "flip", False, "no random mirroring"),
    ("--compile", "compile", True, "torch.compile G and D (CUDA; slow start)"),
    ("--sync-bn", "sync_bn", True, "SyncBatchNorm across processes under torchrun"),
    ("--allow-resize", "allow_resize", True,
     "train at a --crop-size other than the dataset's size (every image is resized)"),
]
_ALIASES = {"--crop-size": ("--size",)}  # old spellings still accepted


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an ``argparse`` subparsers object and return it."""
    p = subparsers.add_parser(
        "train",
        help="train pix2pix on an A|B dataset",
        description="Train pix2pix (U-Net G + PatchGAN D, cGAN + 100*L1) on a dataset written "
        "by `pix2pix build`. Defaults are the paper's; values come from --preset, then "
        "--params, then --set, then the flags below. See docs/training.md.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (with manifest.jsonl)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="output folder of this run")
    p.add_argument("--preset", default="paper", choices=["paper", "small"],
                   help="paper (default) or small (demo: ngf=ndf=16, 40+40 epochs)")
    add_params_arguments(p, "train", set_option=True)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue from RUN_DIR/checkpoints/latest.pt (or CKPT) if present")
    p.add_argument("--on-mismatch", choices=["stop", "fresh"], default="stop",
                   help="when the checkpoint's config/dataset differs: stop (default) or "
                   "start fresh (discards RUN_DIR/checkpoints)")
    p.add_argument("--no-dvclive", action="store_true", help="do not log with DVCLive")
    p.add_argument("--no-progress", action="store_true",
                   help="no bar: one line per epoch with rate and ETA (as without a terminal)")
    g = p.add_argument_group("training config (override preset / params)")
    for flag, key, typ, text in _FLAGS:
        add_config_flag(g, flag, key, *_ALIASES.get(flag, ()), type=typ, help=text)
    add_device_flags(g)
    for flag, key, value, text in _SWITCHES:
        add_config_flag(g, flag, key, action="store_const", const=value, help=text)


def build_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` the arguments describe (preset < params file < --set < flags);
    ``crop_size``, ``load_size`` and ``generator`` follow the dataset's size unless given."""
    from pix2pix.dataset import image_size
    from pix2pix.training.config import TrainConfig

    size = image_size(args.dataset) if Path(args.dataset).is_dir() else None
    return TrainConfig.from_dict(stage_values(args), preset=args.preset, dataset_size=size)


def _callbacks(args: argparse.Namespace) -> list[Any]:
    if args.no_dvclive:
        return []
    try:
        import dvclive  # noqa: F401

        from flows.dvclive_logger import DVCLiveCallback
    except ImportError:
        print("[train] dvclive not installed: metrics go to RUN_DIR/history.jsonl only",
              file=sys.stderr)
        return []
    return [DVCLiveCallback(Path(args.run_dir) / "dvclive")]


def run_train(args: argparse.Namespace) -> int:
    """Run ``pix2pix train``; returns the exit code (errors are printed as one line, not raised)."""
    return run_guarded(_run_train, args)


def _run_train(args: argparse.Namespace) -> int:
    from pix2pix.training import train

    config = build_config(args)
    train(config, args.dataset, args.run_dir, callbacks=_callbacks(args),
          resume=args.resume, on_mismatch=args.on_mismatch, progress=not args.no_progress)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pix2pix.cli.train",
        description="Train pix2pix (stand-alone form of `pix2pix train`, e.g. for torchrun).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
