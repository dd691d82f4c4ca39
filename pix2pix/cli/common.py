"""What every stage command shares: `--params` resolution and the exit-code guard.

One rule for build, train, evaluate and translate (and `python -m flows.*`):

    values = params file section  <  --set KEY=VALUE  <  flags given  <  positional paths

A flag that was not given leaves the params value alone (its argparse default is SUPPRESS and
its dest starts with ``cfg_``). Errors name the file, the section or the missing value.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

FLAG_PREFIX = "cfg_"


def add_params_arguments(p: argparse.ArgumentParser, section: str, *, set_option: bool = False) -> None:
    """`--params YAML`, `--params-section NAME` (default `section`) and optionally `--set KEY=VALUE`."""
    p.add_argument("--params", metavar="YAML",
                   help=f"read settings from a params.yaml section (`{section}:` unless --params-section); flags win")
    p.add_argument("--params-section", default=section, metavar="NAME", help=f"section of --params ({section})")
    if set_option:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="set any config key (VALUE read as YAML), repeatable; flags win")


def add_config_flag(p: Any, flag: str, key: str, *aliases: str, **kwargs: Any) -> None:
    """A flag (and its old spellings `aliases`) that overrides config key `key` only when given."""
    if "metavar" not in kwargs and "choices" not in kwargs and kwargs.get("action") is None:
        kwargs["metavar"] = flag[2:].upper().replace("-", "_")
    p.add_argument(flag, *aliases, dest=f"{FLAG_PREFIX}{key}", default=argparse.SUPPRESS, **kwargs)


def add_device_flags(p: Any) -> None:
    """`--device` and `--threads`: where a command that runs a network runs it (train, evaluate,
    translate; config keys `device`, `num_threads`), the same flags and help everywhere."""
    add_config_flag(p, "--device", "device", help="auto (CUDA, else CPU; default) | cpu | cuda | cuda:N")
    add_config_flag(p, "--threads", "num_threads", type=int, metavar="N",
                    help="torch CPU threads (default: torch's choice)")


def add_eval_mode_flag(p: Any) -> None:
    """`--eval-mode` (config key `eval_mode`) of evaluate and translate: the same values and help.
    Checked by the config (`pix2pix.runtime.check_eval_mode`, like `--device`): a bad value is one
    `error:` line, and the old `checkpoint` still works with a FutureWarning naming `model`."""
    add_config_flag(p, "--eval-mode", "eval_mode", metavar="{model,train,eval}",
                    help="model: as stored with the model (default; an official .pth: train, as the official "
                    "test.py); train: dropout on + batch statistics, seeded (the paper); eval: dropout off "
                    "+ running statistics (deterministic). 'checkpoint', the old name of model, still works")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config values of the flags given on the command line (dest `cfg_<key>`)."""
    return {k[len(FLAG_PREFIX):]: v for k, v in vars(args).items() if k.startswith(FLAG_PREFIX)}


def stage_values(args: argparse.Namespace, *, positional: Mapping[str, Any] | None = None,
                 required: Sequence[str] = ()) -> dict[str, Any]:
    """The settings of one stage run from parsed arguments (`pix2pix.params.stage_values`).

    `args` may lack `params` / `set` (commands without them).
    """
    from pix2pix.params import stage_values as resolve

    return resolve(getattr(args, "params", None), getattr(args, "params_section", ""),
                   set_items=getattr(args, "set", None) or [], flags=flag_values(args),
                   positional=positional, required=required)


def config_from(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """A config dataclass from `values` (`pix2pix.params.make_config`: unknown keys are named)."""
    from pix2pix.params import make_config

    return make_config(cls, values, what)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_guarded(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run one command; every library or system error ends as one `error: ...` line on stderr
    and the exit code of the one table (`pix2pix.errors.EXIT_CODES_HELP`), never a traceback."""
    from pix2pix.errors import EXIT_INTERRUPTED, Pix2PixError, error_line, exit_code

    if threading.current_thread() is threading.main_thread():
        # `kill`, `docker stop`, CI timeouts send SIGTERM: clean up (staging, lock) as for Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(func(args) or 0)
    except (Pix2PixError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("interrupted; no partial output was left under the final name", file=sys.stderr)
        return EXIT_INTERRUPTED


def exit_codes_epilog(meanings: str = "") -> str:
    """The line every command's --help ends with: its own meanings, then where the table is."""
    return (meanings.rstrip() + "\n" if meanings else "") + "exit codes: the one table of every command, " \
        "`pix2pix --help` (0 done, 1 failed, 2 usage, 3 diverged, 4 checkpoint mismatch, 5 system, 130 interrupted)."
