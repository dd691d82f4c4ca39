"""`pix2pix serve`: serve every Prefect deployment of the pipeline until Ctrl-C (see flows/serve.py).

    prefect server start --host 127.0.0.1 --port 4200 &
    PREFECT_API_URL=http://127.0.0.1:4200/api PREFECT_RUNNER_POLL_FREQUENCY=1 pix2pix serve

Prefect is imported only inside `run_serve`, so the rest of the CLI starts without it.
"""

from __future__ import annotations

import argparse
from typing import Any

from pix2pix.cli.common import exit_codes_epilog

SERVE_EXAMPLES = """\
examples:
  prefect server start --host 127.0.0.1 --port 4200 &
  export PREFECT_API_URL=http://127.0.0.1:4200/api
  PREFECT_RUNNER_POLL_FREQUENCY=1 pix2pix serve     # runs start within ~1 s of being asked for
  prefect deployment run 'build-dataset/default' --param source=data/samples --param out=data/demo --watch
  prefect deployment run 'build-dataset/facades' --watch      # mirror: PIX2PIX_DATASETS_URL=...

  prefect deployment run 'pipeline/default' -p source=data/samples -p dataset=data/ds -p run_dir=runs/x \
      -p report_dir=reports/x -p preset=small -p train='{"n_epochs": 1, "n_epochs_decay": 0}' --watch

Serves build-dataset/default, build-dataset/<named dataset> (facades, maps, ...), train/default,
evaluate/default, translate/default, pipeline/default and dvc-repro/default.
The UI is at http://127.0.0.1:4200. Relative paths in parameters are relative to this directory.
See docs/flows.md.
""" + exit_codes_epilog("serve: 2 no Prefect server configured (PREFECT_API_URL) or a bad --limit.")


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `pix2pix serve` (`python -m flows.serve` takes the same)."""
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N runs at a time (default: no limit)")
    p.add_argument("--no-train", action="store_true", help="do not serve train/default and pipeline/default")


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` subcommand to an argparse subparsers object and return it."""
    p = subparsers.add_parser(
        "serve",
        help="serve the Prefect deployments (needs a Prefect server)",
        description="Serve every pipeline deployment from this process until Ctrl-C.",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_serve_arguments(p)
    return p


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code (2 when no Prefect server is configured)."""
    from flows.serve import serve_all  # imports Prefect

    return serve_all(limit=args.limit, include_train=not args.no_train)
