"""Path guards: a name read from data stays inside its folder; an output never overlaps an input.

Two rules, each in one function, used by every command and flow:

- ``safe_join(root, name, what=...)``: a relative name from a manifest, a params file, a URL
  list or a flow parameter becomes ``root / name`` only if it stays inside ``root`` (no ``..``,
  no absolute path or drive, no NUL, no symlink that leads out).
- ``check_disjoint(out, inputs)``: an output folder that would be replaced (deleted, then
  renamed into place) must not be, contain or lie inside any input. Paths are compared after
  resolving symlinks, and by file identity (``os.path.samefile``) so that a different spelling
  on a case-insensitive file system is caught too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath

from pix2pix.errors import OutputOverlapError, UnsafePathError

_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def safe_join(root: str | Path, name: str, *, what: str) -> Path:
    """``root / name`` when ``name`` is a relative path that stays inside ``root``.

    ``what`` names where ``name`` came from (e.g. ``"manifest.jsonl:3 id"``) for the error.
    Raises ``UnsafePathError`` for an empty name, NUL, an absolute path or drive (``/x``,
    ``C:\\x``, ``\\\\host``), any ``..`` part, or a path whose resolved form leaves ``root``
    (through a symlink already on disk).
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise UnsafePathError(f"{what}: {name!r} is not a usable file name; fix or remove that record")
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or name.startswith("\\") or _DRIVE.match(name):
        raise UnsafePathError(f"{what}: {name!r} is an absolute path; only names inside the folder are "
                              f"allowed; fix or remove that record")
    if ".." in posix.parts or ".." in win.parts:
        raise UnsafePathError(f"{what}: {name!r} climbs out of its folder ('..'); fix or remove that record")
    root = Path(root)
    joined = root / name
    real_root = root.resolve()
    real = joined.resolve()
    if real != real_root and real_root not in real.parents:
        raise UnsafePathError(f"{what}: {name!r} leads outside {root} (through a symlink, to {real}); "
                              f"fix or remove that record")
    return joined


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a == b


def _under(child: Path, parent: Path) -> bool:
    """``child`` lies strictly inside ``parent`` (resolved paths; by identity where both exist)."""
    if parent in child.parents:
        return True
    return parent.exists() and any(q.exists() and _same(q, parent) for q in child.parents)


def relation(out: str | Path, other: str | Path) -> str | None:
    """How ``out`` relates to ``other``: ``"is"``, ``"inside"``, ``"contains"`` or None."""
    o, i = Path(out).resolve(), Path(other).resolve()
    if o == i or (o.exists() and i.exists() and _same(o, i)):
        return "is"
    if _under(o, i):
        return "inside"
    if _under(i, o):
        return "contains"
    return None


def check_disjoint(out: str | Path, inputs: Mapping[str, str | Path | None], *,
                   allow_inside: Collection[str] = (), what: str = "OUT") -> None:
    """Refuse an output folder that is, contains or lies inside an input.

    ``inputs`` maps a label (``"SOURCE"``, ``"DATASET"``) to a path (None: skipped).
    ``allow_inside`` lists labels whose folder may hold ``out`` (an evaluation report inside its
    run folder: replacing it deletes only the old report). Raises ``OutputOverlapError``.
    """
    for label, path in inputs.items():
        if path is None:
            continue
        rel = relation(out, path)
        if rel is None or (rel == "inside" and label in allow_inside):
            continue
        words = {"is": "is", "inside": "lies inside", "contains": "contains"}[rel]
        raise OutputOverlapError(
            f"{what} {out} {words} {label} {path}: writing it would replace or delete that input; "
            f"choose an output folder outside {path}")
