"""Whole-folder outputs that appear complete or not at all (builds, evaluation reports)."""

from __future__ import annotations

import shutil
from pathlib import Path


def sibling(out: Path, tag: str) -> Path:
    """A hidden work folder beside `out` (`.NAME.TAG`), on the same file system so renames work."""
    return out.parent / f".{out.name}.{tag}"


def publish(staging: Path, out: Path) -> None:
    """Put the finished folder `staging` at `out` by renames only, so `out` is never half written.

    An existing `out` is moved aside first and deleted only once the new one is in place.
    """
    old = None
    if out.exists():
        old = sibling(out, "old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
