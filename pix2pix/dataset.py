"""The on-disk contract between stages: an A|B dataset (docs/dataset-format.md).

`pix2pix build` writes it, `train`, `evaluate` and `inspect` read it, and the test fixtures
write it too; all of them go through this module for:

- the file names (``MANIFEST``, ``REJECTED``, ``DATASET_JSON``, ``NEAR_DUPLICATES``,
  ``PREVIEW``) and the split names (``SPLITS``);
- the manifest record (``ManifestRecord``) and ``read_manifest`` / ``write_jsonl``; ``read_jsonl``,
  the one JSON-lines reader (manifest, rejected.jsonl, history.jsonl), errors at ``FILE:LINE``;
- ``dataset.json`` (``read_meta`` / ``write_meta``), whose format version is ``format_version``
  (datasets written before this module by the test fixtures used ``version``: still read);
- ``dataset_fingerprint``: what a checkpoint records about its data;
- ``split_ab``: A is the left half, B the right; the direction picks input and target;
- ``read_ab``: decode an A|B file with the one decoder (``pix2pix.imageio.decode_rgb``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from pix2pix.errors import ImageRejected, Pix2PixError
from pix2pix.paths import safe_join

MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
DATASET_JSON = "dataset.json"
NEAR_DUPLICATES = "near_duplicates.jsonl"
PREVIEW = "preview.jpg"
SPLITS = ("train", "val", "test")
# Everything `pix2pix build` writes beside the split folders (never inputs of another build).
OWN_FILES = frozenset({DATASET_JSON, MANIFEST, REJECTED, NEAR_DUPLICATES, PREVIEW})

FORMAT = "pix2pix-ab"       # dataset.json "format"
FORMAT_VERSION = 1          # dataset.json "format_version"
_OLD_VERSION_KEY = "version"  # what tests/dsfactory.py wrote before this module

_REQUIRED_KEYS = ("id", "split", "path")
DIRECTIONS = ("AtoB", "BtoA")


class DatasetError(Pix2PixError):
    """The dataset on disk does not follow the contract; the message names file and field."""


class ManifestRecord(TypedDict, total=False):
    """One line of ``manifest.jsonl`` (docs/dataset-format.md lists the meaning of each key).

    Always present in a built dataset: id, split, path, size ([2*size, size]), source,
    source_sha256, sha256, op, op_params. Only when they apply: warnings, near_duplicate_group.
    ``read_manifest`` requires only id, split and path (official datasets converted by hand).
    """

    id: str
    split: str
    path: str
    size: list[int]
    source: dict[str, str]
    source_sha256: str
    sha256: str
    op: str
    op_params: dict[str, Any]
    warnings: list[str]
    near_duplicate_group: int


# --------------------------------------------------------------------------- manifest


def dataset_fingerprint(dataset_dir: str | Path) -> str:
    """sha256 of ``manifest.jsonl``'s bytes: what a checkpoint records about its data."""
    path = Path(dataset_dir) / MANIFEST
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no manifest; is {dataset_dir} a `pix2pix build` output?") from e


def read_manifest(dataset_dir: str | Path, split: str | None = None) -> list[ManifestRecord]:
    """The manifest's records (all, or one split's), in file order, with keys and paths checked.

    Raises ``DatasetError`` (no manifest, a line that is not JSON, a record without id/split/path)
    and ``UnsafePathError`` (a path or id that would lead outside the dataset folder).
    """
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest; is {dataset_dir} a `pix2pix build` output?")
    records: list[ManifestRecord] = []
    seen: dict[tuple[str, str], str] = {}
    for n, rec in iter_jsonl(path):
        missing = [k for k in _REQUIRED_KEYS if k not in rec]
        if missing:
            raise DatasetError(f"{path}:{n}: record lacks key(s) {missing}")
        _check_record(rec, f"{path}:{n}", seen)
        # A hostile manifest must not make a reader (or evaluate, which names files by id)
        # leave the dataset folder.
        safe_join(dataset_dir, str(rec["path"]), what=f"{path}:{n}: path")
        safe_join(dataset_dir, f"{rec['id']}.png", what=f"{path}:{n}: id")
        if split is None or rec["split"] == split:
            records.append(rec)  # type: ignore[arg-type]
    return records


def _check_record(rec: dict, where: str, seen: dict[tuple[str, str], str]) -> None:
    """Ids name output files (evaluate's images, reports): one plain, unique name per split."""
    for key in ("id", "split", "path"):
        if not isinstance(rec[key], str) or not rec[key]:
            raise DatasetError(f"{where}: {key} must be a non-empty string, got {rec[key]!r}; fix or remove that line")
    if rec["split"] not in SPLITS:
        raise DatasetError(f"{where}: split {rec['split']!r} is not one of {', '.join(SPLITS)}")
    if "/" in rec["id"] or "\\" in rec["id"] or rec["id"] in (".", ".."):
        raise DatasetError(f"{where}: id {rec['id']!r} must be a plain name (no folders); fix or remove that line")
    key = (rec["split"], rec["id"].casefold())  # casefolded: no two files on a case-insensitive disk
    if key in seen:
        raise DatasetError(f"{where}: id {rec['id']!r} is already used in split {rec['split']!r} "
                           f"(line {seen[key]}); each pair needs its own id")
    seen[key] = where.rsplit(":", 1)[-1]


def iter_jsonl(path: str | Path, *, error: type[Pix2PixError] = DatasetError) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines file, read as it goes.

    A line that is not a JSON object raises ``error`` naming ``FILE:LINE``: the caller's own
    error type (the stage whose file it is) with the one message.
    """
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{n}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise error(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


def read_jsonl(path: str | Path, *, error: type[Pix2PixError] = DatasetError) -> list[dict[str, Any]]:
    """Every object of a JSON-lines file (``iter_jsonl``: blank lines skipped, bad ones ``error``)."""
    return [row for _, row in iter_jsonl(path, error=error)]


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, keys sorted, UTF-8 kept readable (manifest, rejected, groups)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")


def write_manifest(dataset_dir: str | Path, records: Iterable[ManifestRecord]) -> str:
    """Write ``manifest.jsonl`` in record order; returns its sha256 (the dataset fingerprint)."""
    path = Path(dataset_dir) / MANIFEST
    write_jsonl(path, records)
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- dataset.json


def write_meta(dataset_dir: str | Path, meta: Mapping[str, Any]) -> None:
    """Write ``dataset.json``; ``format`` and ``format_version`` are set here, not by callers."""
    full = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION}
    full.pop(_OLD_VERSION_KEY, None)
    (Path(dataset_dir) / DATASET_JSON).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n",
                                                  encoding="utf-8")


def read_meta(dataset_dir: str | Path, *, required: bool = False) -> dict[str, Any] | None:
    """``dataset.json`` as a dict with ``format_version`` filled in (from an old ``version``).

    Absent: None, or ``DatasetError`` when ``required``. Unreadable or not an object:
    ``DatasetError`` naming the file. A newer ``format_version`` than this code knows is refused.
    """
    path = Path(dataset_dir) / DATASET_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise DatasetError(f"{path}: missing; is {dataset_dir} a `pix2pix build` output?") from None
        return None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot be read as JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    if "format_version" not in meta and _OLD_VERSION_KEY in meta:
        meta["format_version"] = meta.pop(_OLD_VERSION_KEY)
    version = meta.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {version!r} is newer than this tool reads "
                           f"({FORMAT_VERSION}); update pix2pix-pipeline")
    return meta


def image_size(dataset_dir: str | Path) -> int | None:
    """The side of A and B in pixels: ``dataset.json`` ``size`` (or ``config.size``), else the
    first manifest record's height, else None (nothing says)."""
    meta = read_meta(dataset_dir) or {}
    size = meta.get("size", (meta.get("config") or {}).get("size"))
    if isinstance(size, int) and size > 0:
        return size
    try:
        records = read_manifest(dataset_dir)
    except DatasetError:
        return None
    for rec in records:
        wh = rec.get("size")
        if isinstance(wh, (list, tuple)) and len(wh) == 2 and int(wh[1]) > 0:
            return int(wh[1])
    return None


# --------------------------------------------------------------------------- A|B images


def split_ab(ab: np.ndarray, direction: str = "AtoB") -> tuple[np.ndarray, np.ndarray]:
    """A|B image (H, 2W, C) → (input, target) views of (H, W, C). AtoB: input = left half (A).

    Raises ``ValueError`` for an odd width or an unknown direction.
    """
    if ab.ndim < 2 or ab.shape[1] % 2:
        raise ValueError(f"an A|B image needs an even width, got shape {ab.shape}")
    w = ab.shape[1] // 2
    a, b = ab[:, :w], ab[:, w:]
    if direction == "AtoB":
        return a, b
    if direction == "BtoA":
        return b, a
    raise ValueError(f"direction: expected 'AtoB' or 'BtoA', got {direction!r}")


def decode_ab(data: bytes, *, name: str) -> np.ndarray:
    """JPEG/PNG bytes of an A|B file → (H, 2W, 3) uint8 RGB, through the one decoder.

    Raises ``DatasetError`` naming the file (truncated, corrupt, not an image).
    """
    from pix2pix.imageio import decode_rgb

    try:
        return decode_rgb(data)
    except ImageRejected as e:
        raise DatasetError(f"{name}: {e.reason}") from e


def read_ab(path: str | Path) -> np.ndarray:
    """Read and decode one A|B file (see ``decode_ab``); a missing file is a ``DatasetError``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: listed in the manifest, missing") from e
    return decode_ab(data, name=str(path))
