"""Dataset sources: find the inputs and say how each becomes a pair.

A source is a folder (an archive is extracted to a folder first) of one of three kinds:
- `folder`: single images at any depth; A is made from each image by an operation;
- `paired`: `A/` and `B/` folders whose files match by relative path without extension;
- `ab`: images that are already A|B side by side, optionally in `train/ val/ test/`.
`scan_source` returns the items in a stable (sorted) order plus the inputs that cannot be used
(orphans, ambiguous names), each with a reason; nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pix2pix.config import SPLITS
from pix2pix.errors import SourceError

IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif",
)
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


# Output ids keep letters and digits of any script (猫, фото), '.', '-' and '_'; every other run of
# characters becomes one '_'. Names are NFC-normalised first, so an id reads the same whichever
# form a file system stored.
_ID_MAX_BYTES = 120  # + extension suffix, hash and ".jpg" stays far below the 255-byte name limit
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _slug_part(part: str) -> str:
    out, gap = [], False
    for ch in part:
        if ch in "._-" or unicodedata.category(ch)[0] in "LNM":
            out.append(ch)
            gap = False
        elif not gap:
            out.append("_")
            gap = True
    slug = "".join(out).lstrip(".").rstrip(". ")  # a leading dot hides a file; Windows drops trailing ones
    if slug.split(".", 1)[0].casefold() in _WINDOWS_RESERVED:
        slug += "_"
    return slug


def make_id(rel_without_ext: str) -> str:
    """A readable, file-system-safe id: sub-folders joined with '__', unsafe characters made '_'.

    Lossy on purpose (`a b` and `a_b` both give `a_b`); `assign_ids` makes ids unique.
    """
    name = unicodedata.normalize("NFC", rel_without_ext)
    slug = "__".join(p for p in (_slug_part(part) for part in name.split("/")) if p) or "_"
    raw = slug.encode("utf-8")
    if len(raw) > _ID_MAX_BYTES:
        slug = raw[:_ID_MAX_BYTES].decode("utf-8", "ignore").rstrip(". ")
    return slug


def _is_verbatim(stem: str, slug: str) -> bool:
    """True when the id spells the name exactly (sub-folders aside): nothing was replaced."""
    return slug == "__".join(p for p in stem.split("/") if p)


def _path_hash(rel: str, n: int) -> str:
    # Hash the exact name (surrogate-escaped bytes included): NFC and NFD twins differ here.
    return hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def assign_ids(keys: list[tuple[str, str, str | None]]) -> list[str]:
    """Ids for (stem, full relative path, split) keys, unique within each split ignoring case.

    Ids are compared casefolded, so two files never land on one name on a case-insensitive disk
    either. An id is the readable `make_id` of the stem unless that clashes with another file's:
    then a file whose id spells its name exactly keeps it (`a_b.jpg` stays `a_b` beside
    `a b.jpg`), the others get their extension (`x_jpg`, `x_png`) when that tells them apart, or
    else `-` and 8 hex digits of their path's sha256 (`a_b-3f0c9e12`). The result depends only on
    the set of inputs, never on their order.
    """
    ids = [make_id(stem) for stem, _, _ in keys]
    groups: dict[tuple[str | None, str], list[int]] = defaultdict(list)
    for i, (_, _, split) in enumerate(keys):
        groups[(split, ids[i].casefold())].append(i)
    taken = {k for k, members in groups.items() if len(members) == 1}
    pending: list[int] = []
    for (split, _), members in groups.items():
        if len(members) == 1:
            continue
        verbatim = [i for i in members if _is_verbatim(keys[i][0], ids[i])]
        keep = verbatim[0] if len(verbatim) == 1 else None
        if keep is not None:
            taken.add((split, ids[keep].casefold()))
        exts = defaultdict(int)
        for i in members:
            exts[_ext(keys[i][1])] += 1
        for i in members:
            if i == keep:
                continue
            if exts[_ext(keys[i][1])] == 1:
                ids[i] = f"{ids[i]}_{_ext(keys[i][1])}"
            else:
                ids[i] = f"{ids[i]}-{_path_hash(keys[i][1], 8)}"
            pending.append(i)
    # What the suffixes made can still meet a plain id or each other (`x_jpg.png` beside `x.jpg`
    # and `x.png`): settle those in path order with a longer hash, then a counter.
    for i in sorted(pending, key=lambda i: keys[i][1]):
        split, base, rel = keys[i][2], ids[i], keys[i][1]
        candidates = [base] + [f"{make_id(keys[i][0])}-{_path_hash(rel, n)}" for n in (8, 16, 64)]
        for cand in candidates:
            if (split, cand.casefold()) not in taken:
                break
        else:
            k = 2
            while (split, f"{candidates[-1]}-{k}".casefold()) in taken:
                k += 1
            cand = f"{candidates[-1]}-{k}"
        ids[i] = cand
        taken.add((split, cand.casefold()))
    return ids


def _ext(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else "noext"
    return make_id(ext.lower())[:10]


def _strip_ext(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def _split_prefix(rel: str) -> tuple[str | None, str]:
    head, _, tail = rel.partition("/")
    if tail and head in SPLITS:
        return head, tail
    return None, rel


def _scan_folder(root: Path) -> Scan:
    scan = Scan("folder", root)
    files = list_files(root)
    images = [f for f in files if _is_image_name(f)]
    for f in files:
        if not _is_image_name(f):
            scan.rejected.append(_rejection(f, "not an image", f"not an image file name ({f})"))
    ids = assign_ids([(_strip_ext(f), f, None) for f in images])
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
    ids = assign_ids(keys)
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
    ids = assign_ids(keys)
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
