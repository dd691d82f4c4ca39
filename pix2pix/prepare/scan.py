"""Dataset sources: find the inputs and say how each becomes a pair.

A source is a folder (an archive is extracted to a folder first) of one of three kinds:
- `folder`: single images at any depth; A is made from each image by an operation;
- `paired`: `A/` and `B/` folders whose files match by relative path without extension;
- `ab`: images that are already A|B side by side, optionally in `train/ val/ test/`.
`scan_source` returns the items in a stable (sorted) order plus the inputs that cannot be used
(orphans, ambiguous names), each with a reason; nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pix2pix import dataset
from pix2pix.errors import SourceError
from pix2pix.imageio import DEFAULT_MAX_PIXELS
from pix2pix.prepare.config import SPLITS
from pix2pix.prepare.detect import Detection, detect_from_images
from pix2pix.prepare.ids import assign_ids

IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif",
)
# Bookkeeping files (our downloader's checksums and partial files, licence notes, OS litter)
# are not inputs and not worth a rejection report; anything else that is not an image is.
_BOOKKEEPING_SUFFIXES = (".sha256", ".part")
# What `pix2pix build` writes beside its dataset.json: never inputs of another build.
DATASET_FORMAT = dataset.FORMAT
OWN_DATASET_FILES = dataset.OWN_FILES
# A note's name with an image extension (`license.jpg`, a scan; `readme.png`, a diagram) is an
# image like any other: only text-like notes are left aside.
_BOOKKEEPING_NAMES = re.compile(
    r"^(licen[cs]es?|readme|copying)(\.(txt|md|rst|html?|pdf|markdown|rtf))?$|^(\.ds_store|thumbs\.db|desktop\.ini)$",
    re.I)


@dataclass(frozen=True)
class Item:
    """One output pair to make. `paths` maps a role (B, A, AB) to a path relative to the root."""

    id: str
    paths: dict[str, str]
    given_split: str | None = None
    crop: int | None = None  # the k of `<id>-c<k>` when the build cuts several crops per photo


@dataclass
class Scan:
    """What a source holds: its kind, root, items, and inputs rejected before decoding."""

    kind: str
    root: Path
    items: list[Item] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    reason: str = ""


def _display(rel: str) -> str:
    """A name that JSON can hold: bytes that are not UTF-8 are shown as \\xNN escapes."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_bookkeeping(name: str) -> bool:
    return name.endswith(_BOOKKEEPING_SUFFIXES) or bool(_BOOKKEEPING_NAMES.match(name))


def own_dataset_meta(folder: Path) -> dict | None:
    """The `dataset.json` this tool wrote into `folder`, or None (absent, unreadable, foreign)."""
    try:
        meta = dataset.read_meta(folder)
    except dataset.DatasetError:
        return None
    return meta if meta is not None and meta.get("format") == DATASET_FORMAT else None


@dataclass
class Listing:
    """Every entry under a source: the regular files that are inputs, and the rest with reasons."""

    files: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


def walk_source(root: Path) -> Listing:
    """List `root` without following any link and without opening anything but folders.

    Inputs are regular files at any depth (sorted posix paths). Left aside silently: hidden
    files and folders (a leading '.', `__MACOSX`), licence/readme notes, our downloader's
    `.sha256`/`.part` files, and the bookkeeping of a dataset this tool wrote (`dataset.json`,
    manifests, reports, `preview.jpg` beside our `dataset.json`). Every other entry that cannot be
    an input (symbolic links, FIFOs, sockets, devices, unreadable folders, names that are not
    UTF-8) gets a rejection record, so it is accounted for; a FIFO is never opened.
    """
    listing = Listing()

    # An explicit stack, not recursion: a folder tree of any depth cannot overflow it.
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            listing.rejected.append(_rejection(prefix.rstrip("/") or ".", "unreadable",
                                               f"cannot read folder ({exc.strerror})"))
            continue
        ours = own_dataset_meta(folder) is not None
        # Without its dataset.json (copied without it, hand-edited), our layout still shows by its
        # manifest: the contact sheet must never become a training pair. Reported, not silent.
        names = {e.name for e in entries}
        looks_ours = not ours and dataset.MANIFEST in names and bool(names & {"train", "val", "test"})
        for e in entries:
            rel = prefix + e.name
            if e.name.startswith(".") or e.name == "__MACOSX":
                continue
            try:
                e.name.encode("utf-8")
            except UnicodeEncodeError:
                listing.rejected.append(_rejection(_display(rel), "bad file name",
                                                   "file name is not valid UTF-8 (rename it)"))
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                listing.rejected.append(_rejection(rel, "unreadable", f"cannot read ({exc.strerror})"))
                continue
            if stat.S_ISLNK(st.st_mode):
                listing.rejected.append(_link_rejection(root, Path(e.path), rel))
            elif stat.S_ISDIR(st.st_mode):
                stack.append((Path(e.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                if _is_bookkeeping(e.name) or (ours and e.name in OWN_DATASET_FILES):
                    continue
                if looks_ours and e.name in OWN_DATASET_FILES:
                    listing.rejected.append(_rejection(rel, "not an input", "the bookkeeping of a pix2pix "
                                                       "dataset (beside its manifest.jsonl), not an image pair"))
                    continue
                listing.files.append(rel)
            else:
                what = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                        else "a device file")
                listing.rejected.append(_rejection(rel, "not a regular file",
                                                   f"{what}, not a regular file; never opened"))

    listing.files.sort()
    return listing


def _link_rejection(root: Path, link: Path, rel: str) -> dict:
    """Links are never followed (a link can point anywhere); say where this one leads."""
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    try:
        resolved = link.resolve(strict=True)
    except FileNotFoundError:
        return _rejection(rel, "symbolic link", f"dangling symbolic link to {target!r}; not followed")
    except (RuntimeError, OSError):  # RuntimeError: a loop on Python < 3.13
        return _rejection(rel, "symbolic link", f"symbolic link loop ({target!r}); not followed")
    try:
        inside = resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return _rejection(rel, "symbolic link",
                          f"symbolic link to {target!r} outside the source; not followed (copy the file in)")
    return _rejection(rel, "symbolic link",
                      f"symbolic link to {inside!r} inside the source; not followed (the target is read where it is)")


def list_files(root: Path) -> list[str]:
    """The input files under `root` as sorted posix paths (see `walk_source`)."""
    return walk_source(root).files


def _is_image_name(rel: str) -> bool:
    return rel.lower().endswith(IMAGE_SUFFIXES)


def _strip_ext(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def _split_prefix(rel: str) -> tuple[str | None, str]:
    head, _, tail = rel.partition("/")
    if tail and head.lower() in SPLITS:  # `Train/`, `TEST/` (macOS, Windows) keep their split too
        return head.lower(), tail
    return None, rel


def _split_of(part: str, role: str | None = None) -> str | None:
    """'train', 'trainA' (for role A), 'testB' (for role B) ... -> the split; else None."""
    m = _SPLIT_DIR.match(part)
    if not m or (m.group(2) and (role is None or m.group(2).upper() != role)):
        return None
    return m.group(1).lower()


_SPLIT_DIR = re.compile(r"^(train|val|test)([AaBb])?$", re.I)


def _images_and_rest(listing: Listing, scan: Scan) -> list[str]:
    images = []
    for f in listing.files:
        if _is_image_name(f):
            images.append(f)
        else:
            scan.rejected.append(_rejection(f, "not an image", f"not an image file name ({f})"))
    return images


def _scan_folder(root: Path, listing: Listing) -> Scan:
    scan = Scan("folder", root)
    images = _images_and_rest(listing, scan)
    ids = assign_ids([(_strip_ext(f), f, None) for f in images])
    scan.items = [Item(i, {"B": f}) for i, f in zip(ids, images)]
    return scan


def _scan_ab(root: Path, listing: Listing, keep_splits: bool) -> Scan:
    scan = Scan("ab", root)
    keys = []
    for f in _images_and_rest(listing, scan):
        split, rest = _split_prefix(f)
        if keep_splits:
            keys.append((_strip_ext(rest), f, split))
        else:
            keys.append((_strip_ext(f), f, None))
    ids = assign_ids(keys)
    scan.items = [Item(i, {"AB": rel}, split) for i, (_, rel, split) in zip(ids, keys)]
    return scan


def _pair_role(rel: str) -> tuple[str, str | None, str, str] | None:
    """(role, split, folder, stem) of a file in a paired layout, or None when outside it.

    Layouts: `A/…` + `B/…` (also `a/`, `b/`), optionally split as `A/train/…` or CycleGAN-style
    `A/trainA/…` + `B/trainB/…`; and CycleGAN's own `trainA/ trainB/ testA/ testB/ valA/ valB/`.
    """
    parts = rel.split("/")
    if len(parts) < 2:
        return None
    head = parts[0]
    if head in ("A", "B", "a", "b"):
        role = head.upper()
        split = _split_of(parts[1], role) if len(parts) > 2 else None
        if split:
            return role, split, f"{head}/{parts[1]}", "/".join(parts[2:])
        return role, None, head, "/".join(parts[1:])
    m = _SPLIT_DIR.match(head)
    if m and m.group(2):
        return m.group(2).upper(), m.group(1).lower(), head, "/".join(parts[1:])
    return None


def _pair_sides(files: list[str]) -> dict[str, int]:
    sides = {"A": 0, "B": 0}
    for f in files:
        r = _pair_role(f)
        if r:
            sides[r[0]] += 1
    return sides


def _check_both_sides(root: Path, files: list[str]) -> dict[str, int]:
    sides = _pair_sides(files)
    if bool(sides["A"]) != bool(sides["B"]):
        have, lack = ("A", "B") if sides["A"] else ("B", "A")
        what = "inputs without targets" if have == "A" else "targets without inputs"
        raise SourceError(
            f"{root}: found {have}/ ({sides[have]} files) but no {lack}/ folder: {what} cannot train pix2pix. "
            f"Put the matching images in {lack}/ under the same names, or pass --source-type folder to use "
            f"these images as photos (A made by --op)"
        )
    return sides


def _scan_paired(root: Path, listing: Listing, keep_splits: bool) -> Scan:
    sides_count = _check_both_sides(root, listing.files)
    if not sides_count["A"]:
        raise SourceError(f"{root}: a paired source needs sub-folders A/ and B/ (or trainA/ trainB/ ...)")
    scan = Scan("paired", root)
    sides: dict[str, dict[tuple[str | None, str], list[str]]] = {"A": defaultdict(list), "B": defaultdict(list)}
    folders: dict[tuple[str, str | None], str] = {}
    for f in listing.files:
        r = _pair_role(f)
        if r is None:
            scan.rejected.append(_rejection(
                f, "outside the layout",
                f"{f} is outside the A/ + B/ folders of this paired source (only files in them are read)"))
            continue
        role, split, folder, stem = r
        if not _is_image_name(f):
            scan.rejected.append(_rejection(f, "not an image", f"not an image file name ({f})"))
            continue
        # NFC: macOS and some zip tools write names decomposed (NFD); `café` must pair with `café`.
        sides[role][(split, unicodedata.normalize("NFC", _strip_ext(stem)))].append(f)
        folders.setdefault((role, split), folder)
    keys, pairs = [], []
    for key in sorted(set(sides["A"]) | set(sides["B"]), key=lambda k: (k[0] or "", k[1])):
        split, stem = key
        a, b = sides["A"].get(key, []), sides["B"].get(key, [])
        if len(a) > 1 or len(b) > 1:
            for rel in a + b:
                scan.rejected.append(_rejection(
                    rel, "ambiguous name",
                    f"ambiguous pair for '{stem}': {', '.join(a + b)} (keep one file per name on each side)",
                ))
            continue
        if not b:
            where = folders.get(("B", split), "B" if split is None else f"B/{split} or {split}B")
            scan.rejected.append(_rejection(a[0], "A has no B", f"A has no B: {a[0]} has no {where}/{stem}.*"))
            continue
        if not a:
            where = folders.get(("A", split), "A" if split is None else f"A/{split} or {split}A")
            scan.rejected.append(_rejection(b[0], "B has no A", f"B has no A: {b[0]} has no {where}/{stem}.*"))
            continue
        if split is None:
            split, stem = _split_prefix(stem)
        if keep_splits:
            keys.append((stem, b[0], split))
        else:
            keys.append((f"{split}/{stem}" if split else stem, b[0], None))
        pairs.append((a[0], b[0]))
    ids = assign_ids(keys)
    scan.items = [Item(i, {"A": a, "B": b}, k[2]) for i, k, (a, b) in zip(ids, keys, pairs)]
    return scan


def _rejection(rel: str, kind: str, reason: str) -> dict:
    return {"source": rel, "kind": kind, "reason": reason}


# --- detection: the layout decides, else the images (pix2pix.prepare.detect) ------------------

def detect_source(root: Path, listing: Listing, max_pixels: int = DEFAULT_MAX_PIXELS) -> Detection:
    """Decide what a source folder holds, from its layout and its decodable images.

    Order: a dataset this tool wrote (its dataset.json) → `ab`; A/ + B/ or CycleGAN folders →
    `paired` (one side alone is a `SourceError`); else the images decide between `ab` and
    `folder`. Files are read through the build's guarded loader (pixel limit, broken files), so
    no input can crash detection, and only decodable images count as evidence. When the evidence
    is mixed a `SourceError` says what was seen and which `--source-type` to pass.
    """
    meta = own_dataset_meta(root)
    if meta is not None:
        size = meta.get("size", "?")
        return Detection("ab", f"a dataset written by pix2pix-pipeline (dataset.json: {meta.get('total', '?')} "
                               f"A|B pairs of {size}×{size})")
    sides = _check_both_sides(root, listing.files)
    if sides["A"]:
        folders = {r[2] for r in map(_pair_role, listing.files) if r}
        cyclegan = any(_SPLIT_DIR.match(d.rsplit("/", 1)[-1]) and d[-1] in "AaBb" for d in folders)
        layout = "CycleGAN-style trainA/ trainB/ testA/ testB/ folders" if cyclegan else "A/ and B/ folders"
        return Detection("paired", f"pairs: {layout} ({sides['A']} and {sides['B']} files, matched by name)")
    return detect_from_images(root, [f for f in listing.files if _is_image_name(f)], max_pixels)


def scan_source(root: Path, kind: str, *, keep_splits: bool = True,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Scan:
    """List the items of a source folder of the given kind ('auto' detects it).

    Every file under `root` (hidden and bookkeeping files aside, see `walk_source`) ends up in
    `Scan.items` or `Scan.rejected`. `Scan.reason` says why the kind was chosen.
    """
    if not root.is_dir():
        raise SourceError(f"{root}: source folder does not exist")
    listing = walk_source(root)
    if kind == "auto":
        detection = detect_source(root, listing, max_pixels)
    else:
        detection = Detection(kind, f"--source-type {kind}")
    kind = detection.kind
    if kind == "folder":
        scan = _scan_folder(root, listing)
    elif kind == "paired":
        scan = _scan_paired(root, listing, keep_splits)
    elif kind == "ab":
        scan = _scan_ab(root, listing, keep_splits)
    else:
        raise SourceError(f"{root}: unknown source type {kind!r}")
    scan.reason = detection.reason
    scan.rejected = listing.rejected + scan.rejected
    if not scan.items and not scan.rejected:
        raise SourceError(f"{root}: no files found; point SOURCE at a folder of images or an archive")
    return scan
