"""What the flows share: their config and artifact key, their `python -m flows.*` parser, running a
flow once, and its exit code.

Every entry point ends with the exit code of the one table (`pix2pix.errors.EXIT_CODES_HELP`,
shown by `pix2pix --help`): a ConfigError is 2 whether it comes from the arguments or from
inside the flow run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pix2pix.errors import EXIT_FAILED, EXIT_INTERRUPTED, Pix2PixError, error_line, exit_code

# Prefect's temporary server needs 10-18 s on 2 cores; its default start-up timeout is 20 s.
EPHEMERAL_STARTUP_TIMEOUT_S = 90


def artifact_key(prefix: str, folder: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for a folder: `prefix-<its name>`,
    e.g. ("dataset", "data/My_Set v2") -> dataset-my-set-v2; `prefix-root` when the name has none."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(folder).resolve().name.lower()).strip("-")
    return f"{prefix}-{name or 'root'}"


def stage_config(cls: type, section: str, params: str | None, overrides: Mapping[str, Any] | None) -> Any:
    """A stage flow's config dataclass: the params.yaml `section` (file `params`) < `overrides`
    (any key of `cls`); unknown keys are named (`pix2pix.params`)."""
    from pix2pix.params import make_config, stage_values

    return make_config(cls, stage_values(params, section, flags=overrides), section)


def flow_parser(module: str, doc: str | None, *, params_section: str | None = None,
                overwrite: str | None = None) -> argparse.ArgumentParser:
    """The parser of `python -m flows.<module>` (`doc`: its description); with `params_section`,
    `--params` (a params.yaml with that section); with `overwrite`, `--overwrite` (that help)."""
    p = argparse.ArgumentParser(prog=f"python -m flows.{module}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if params_section:
        p.add_argument("--params", help=f"params.yaml with a `{params_section}:` section")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help=overwrite)
    return p


def failed_state_exit(state: Any) -> int:
    """Print one `error: ...` line for a failed flow run; its exit code by the table of every command."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BaseException):
        print(error_line(exc), file=sys.stderr)
        return exit_code(exc)
    print(f"error: the flow run failed: {state.message}", file=sys.stderr)
    return EXIT_FAILED


class _ExpectedErrorFilter(logging.Filter):
    """Drop the traceback Prefect logs for the project's own errors (a bad input or output:
    the command prints their one `error:` line itself); any other exception keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Pix2PixError):
            record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def _no_traceback_for_expected_errors():
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    flt = _ExpectedErrorFilter()
    for logger in loggers:
        logger.addFilter(flt)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(flt)


def run_flow_cli(arguments: Callable[[], dict[str, Any]], flow: Any,
                 done: Callable[[Any], None] | None = None) -> int:
    """Run `flow(**arguments())` once in this process and return the command's exit code.

    `arguments` parses the command line (its errors are printed as one line, with their exit
    code); `done(result)` prints the success summary. Without PREFECT_API_URL Prefect starts a
    temporary server, given more time to start than its default and no telemetry (offline, its
    failed attempts printed pages of tracebacks; PREFECT_SERVER_ANALYTICS_ENABLED set by the
    user wins).
    """
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    try:
        kwargs = arguments()
    except (Pix2PixError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return exit_code(exc)
    updates = {}
    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ:
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = EPHEMERAL_STARTUP_TIMEOUT_S
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    try:
        with temporary_settings(updates=updates), _no_traceback_for_expected_errors():
            state = flow(**kwargs, return_state=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not state.is_completed():
        return failed_state_exit(state)
    if done is not None:
        done(state.result())
    return 0
