"""Which files a translate run reads, and the output path each one maps to.

    from pix2pix.inference.inputs import collect_inputs
    jobs, rejected = collect_inputs(["photos/", "extra/*.jpg", "one.png"])
    # jobs[k].src: the input file; jobs[k].out: its output path relative to OUT, always .png

Files, folders (recursive) and globs are expanded; a file found in a folder or by a glob keeps
its path relative to that folder (the glob's literal prefix). Output names depend only on the
set of inputs, never on their order (clashes are renamed by suffix, then by a hash of the path).
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_MAGIC = set("*?[")


@dataclass(frozen=True)
class Job:
    """One input file and the output path (relative to OUT) it maps to."""

    src: Path
    out: PurePosixPath


def literal_base(pattern: str) -> Path:
    """The folder a glob pattern's matches are named relative to: its parts before the first wildcard."""
    parts = Path(pattern).parts
    base = []
    for part in parts[:-1]:
        if _MAGIC & set(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def input_root(given: str | Path) -> str | Path:
    """The path an input names on disk: a glob pattern (that is not itself an existing file)
    names its literal base folder; anything else names itself."""
    s = str(given)
    return literal_base(s) if is_pattern(s) else given


def is_pattern(s: str) -> bool:
    """True for a glob pattern: it has a wildcard and is not the name of an existing file."""
    return bool(_MAGIC & set(s)) and not Path(s).exists()


def collect_inputs(inputs: Sequence[str | Path], *, exclude: Sequence[Path] = ()) -> tuple[list[Job], list[dict]]:
    """Expand files, folders (recursive) and globs into jobs → (jobs, rejected).

    A file maps to ``<stem>.png``, a file found in a folder or by a glob to its path relative to
    that folder (the glob's literal prefix) with the ``.png`` suffix. Hidden files, bookkeeping
    files and anything under ``exclude`` are left out; other non-image names, missing paths and
    empty globs are rejected with a reason. Two inputs that would write the same output
    (``a.jpg`` and ``a.png``) are renamed ``a-jpg.png`` / ``a-png.png``; if a clash remains (case
    twins, two folders with the same names), each of its members gets ``-`` and 8 hex digits of the
    sha256 of its path. A file given twice is translated once.
    """
    from pix2pix.prepare.scan import IMAGE_SUFFIXES, list_files

    excluded = [p.resolve() for p in exclude]
    found: list[tuple[Path, PurePosixPath]] = []
    rejected: list[dict] = []
    for raw in inputs:
        s = str(raw)
        p = Path(s)
        if is_pattern(s):
            base = literal_base(s)
            matches = sorted(Path(m) for m in glob.glob(s, recursive=True) if Path(m).is_file())
            if not matches:
                rejected.append({"input": s, "reason": "no file matches this pattern", "kind": "no match"})
            for m in matches:
                found.append((m, PurePosixPath(m.relative_to(base).as_posix())))
        elif p.is_dir():
            files = list_files(p)
            for rel in files:
                if rel.lower().endswith(IMAGE_SUFFIXES):
                    found.append((p / rel, PurePosixPath(rel)))
                else:
                    rejected.append({"input": str(p / rel), "kind": "not an image",
                                     "reason": f"not an image file name (suffix {Path(rel).suffix or 'none'})"})
        elif p.is_file():
            found.append((p, PurePosixPath(p.name)))
        else:
            rejected.append({"input": s, "reason": "no such file or folder", "kind": "missing"})

    seen: set[Path] = set()
    unique: list[tuple[Path, PurePosixPath]] = []
    for src, rel in found:
        real = src.resolve()
        if real in seen or any(real.is_relative_to(e) for e in excluded):
            continue
        seen.add(real)
        unique.append((src, rel))

    def target(rel: PurePosixPath, tagged: bool) -> PurePosixPath:
        stem = f"{rel.stem}-{rel.suffix[1:].lower()}" if tagged else rel.stem
        return rel.with_name(f"{stem}.png")

    # Case-insensitive keys: a.PNG and a.png collide on macOS and Windows file systems.
    suffixes: dict[str, set[str]] = {}
    for _, rel in unique:
        suffixes.setdefault(str(target(rel, False)).lower(), set()).add(rel.suffix.lower())
    planned = [(src, target(rel, len(suffixes[str(target(rel, False)).lower()]) > 1)) for src, rel in unique]
    clashes: dict[str, int] = {}
    for _, out in planned:
        clashes[str(out).lower()] = clashes.get(str(out).lower(), 0) + 1
    taken = {key for key, n in clashes.items() if n == 1}
    jobs: list[Job] = []
    for src, out in planned:
        if clashes[str(out).lower()] > 1:
            # Every member of a clash (a.jpg, A.JPG; x/p.jpg, y/p.jpg) gets a suffix from its own
            # path, so names depend only on the set of inputs, never on their order.
            digest = hashlib.sha256(str(src).encode("utf-8", "surrogateescape")).hexdigest()
            for n in (8, 16, 64):
                candidate = out.with_name(f"{out.stem}-{digest[:n]}.png")
                if str(candidate).lower() not in taken:
                    break
            out = candidate
            taken.add(str(out).lower())
        jobs.append(Job(src, out))
    return jobs, rejected
