"""Dataset sources: find the inputs and say how each becomes a pair.

A source is a folder (an archive is extracted to a folder first) of one of three kinds:
- `folder`: single images at any depth; A is made from each image by an operation;
- `paired`: `A/` and `B/` folders whose files match by relative path without extension;
- `ab`: images that are already A|B side by side, optionally in `train/ val/ test/`.
`scan_source` returns the items in a stable (sorted) order plus the inputs that cannot be used
(orphans, ambiguous names), each with a reason; nothing is skipped silently.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pix2pix.config import SPLITS
from pix2pix.errors import SourceError

IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Bookkeeping files (our downloader's checksums and partial files, licence notes, OS litter)
# are not inputs and not worth a rejection report; anything else that is not an image is.
_BOOKKEEPING_SUFFIXES = (".sha256", ".part")
_BOOKKEEPING_NAMES = re.compile(r"^(licen[cs]es?|readme|copying)(\.\w+)?$|^(\.ds_store|thumbs\.db|desktop\.ini)$", re.I)


@dataclass(frozen=True)
class Item:
    """One output pair to make. `paths` maps a role (B, A, AB) to a path relative to the root."""

    id: str
    paths: dict[str, str]
    given_split: str | None = None


@dataclass
class Scan:
    """What a source holds: its kind, root, items, and inputs rejected before decoding."""

    kind: str
    root: Path
    items: list[Item] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


def list_files(root: Path) -> list[str]:
    """All regular files under `root` (any depth, hidden ones excluded) as sorted posix paths."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        if p.is_file() and not (p.name.endswith(_BOOKKEEPING_SUFFIXES) or _BOOKKEEPING_NAMES.match(p.name)):
            out.append(rel.as_posix())
    return sorted(out)


def _is_image_name(rel: str) -> bool:
    return rel.lower().endswith(IMAGE_SUFFIXES)


def make_id(rel_without_ext: str) -> str:
    """A file-system-safe id: sub-folders joined with '__', other characters replaced by '_'."""
    parts = [_UNSAFE.sub("_", p) for p in rel_without_ext.split("/")]
    return "__".join(p for p in parts if p) or "_"


def _strip_ext(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def _split_prefix(rel: str) -> tuple[str | None, str]:
    head, _, tail = rel.partition("/")
    if tail and head in SPLITS:
        return head, tail
    return None, rel


def _unique_ids(keys: list[tuple[str, str, str | None]]) -> list[str]:
    """Ids for (stem, full relative path, split) keys, unique within each split.

    A clash (x.jpg beside x.png) keeps the plain id for neither: both get their extension
    appended, so an id never depends on which other files exist.
    """
    counts: dict[tuple[str | None, str], int] = defaultdict(int)
    for stem, _rel, split in keys:
        counts[(split, make_id(stem))] += 1
    ids = []
    for stem, rel, split in keys:
        base = make_id(stem)
        if counts[(split, base)] > 1:
            ext = rel.rsplit(".", 1)[-1] if "." in rel else "noext"
            base = f"{base}_{_UNSAFE.sub('_', ext.lower())}"
        ids.append(base)
    return ids


def _scan_folder(root: Path) -> Scan:
    scan = Scan("folder", root)
    files = list_files(root)
    images = [f for f in files if _is_image_name(f)]
    for f in files:
        if not _is_image_name(f):
            scan.rejected.append(_rejection(f, "not an image", f"not an image file name ({f})"))
    ids = _unique_ids([(_strip_ext(f), f, None) for f in images])
    scan.items = [Item(i, {"B": f}) for i, f in zip(ids, images)]
    return scan


def _scan_ab(root: Path, keep_splits: bool) -> Scan:
    scan = Scan("ab", root)
    files = list_files(root)
    keys = []
    for f in files:
        if not _is_image_name(f):
            scan.rejected.append(_rejection(f, "not an image", f"not an image file name ({f})"))
            continue
        split, rest = _split_prefix(f)
        if keep_splits:
            keys.append((_strip_ext(rest), f, split))
        else:
            keys.append((_strip_ext(f), f, None))
    ids = _unique_ids(keys)
    scan.items = [Item(i, {"AB": rel}, split) for i, (_, rel, split) in zip(ids, keys)]
    return scan


def _find_pair_dirs(root: Path) -> tuple[Path, Path] | None:
    for a, b in (("A", "B"), ("a", "b"), ("trainA", "trainB")):
        if (root / a).is_dir() and (root / b).is_dir():
            return root / a, root / b
    return None


def _scan_paired(root: Path, keep_splits: bool) -> Scan:
    dirs = _find_pair_dirs(root)
    if dirs is None:
        raise SourceError(f"{root}: a paired source needs sub-folders A/ and B/")
    scan = Scan("paired", root)
    sides: dict[str, dict[str, list[str]]] = {}
    for role, d in zip("AB", dirs):
        by_stem: dict[str, list[str]] = defaultdict(list)
        for f in list_files(d):
            rel = f"{d.name}/{f}"
            if not _is_image_name(f):
                scan.rejected.append(_rejection(rel, "not an image", f"not an image file name ({rel})"))
                continue
            by_stem[_strip_ext(f)].append(rel)
        sides[role] = by_stem
    keys, pairs = [], []
    for stem in sorted(set(sides["A"]) | set(sides["B"])):
        a, b = sides["A"].get(stem, []), sides["B"].get(stem, [])
        if len(a) > 1 or len(b) > 1:
            for rel in a + b:
                scan.rejected.append(_rejection(
                    rel, "ambiguous name",
                    f"ambiguous pair for '{stem}': {', '.join(a + b)} (keep one file per name on each side)",
                ))
            continue
        if not b:
            scan.rejected.append(_rejection(a[0], "A has no B", f"A has no B: {a[0]} has no {dirs[1].name}/{stem}.*"))
            continue
        if not a:
            scan.rejected.append(_rejection(b[0], "B has no A", f"B has no A: {b[0]} has no {dirs[0].name}/{stem}.*"))
            continue
        split, rest = _split_prefix(stem)
        keys.append((rest if keep_splits else stem, stem, split if keep_splits else None))
        pairs.append((a[0], b[0]))
    ids = _unique_ids(keys)
    scan.items = [Item(i, {"A": a, "B": b}, k[2]) for i, k, (a, b) in zip(ids, keys, pairs)]
    return scan


def _rejection(rel: str, kind: str, reason: str) -> dict:
    return {"source": rel, "kind": kind, "reason": reason}


def _looks_like_ab(root: Path) -> bool:
    """Sample a few images: A|B datasets are twice as wide as high (512×256 in the official ones)."""
    images = [f for f in list_files(root) if _is_image_name(f)][:8]
    if not images:
        return False
    for f in images:
        try:
            with Image.open(root / f) as im:
                w, h = im.size
        except OSError:
            continue
        if w != 2 * h:
            return False
    return True


def detect_kind(root: Path) -> str:
    """Guess the kind of a source folder: paired (A/ and B/), ab (A|B images), else folder."""
    if _find_pair_dirs(root) is not None:
        return "paired"
    if _looks_like_ab(root):
        return "ab"
    return "folder"


def scan_source(root: Path, kind: str, *, keep_splits: bool = True) -> Scan:
    """List the items of a source folder of the given kind ('auto' detects it)."""
    if not root.is_dir():
        raise SourceError(f"{root}: source folder does not exist")
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "folder":
        scan = _scan_folder(root)
    elif kind == "paired":
        scan = _scan_paired(root, keep_splits)
    elif kind == "ab":
        scan = _scan_ab(root, keep_splits)
    else:
        raise SourceError(f"{root}: unknown source type {kind!r}")
    if not scan.items and not scan.rejected:
        raise SourceError(f"{root}: no files found; point SOURCE at a folder of images or an archive")
    return scan
