"""The dataset builder: any source in, an A|B dataset out (see docs/dataset-format.md).

    from pix2pix.prepare.build import build_dataset
    from pix2pix.prepare.config import BuildConfig
    summary = build_dataset(BuildConfig(source="photos/", out="data/pairs", op="edges"))

The build is a stream in three steps that the Prefect flow also calls one by one:
`plan_build` (check the output, extract archives, list the items, decide splits),
`process_items` (decode → fit → make A → write, in worker processes, chunk by chunk) and
`finalize_build` (drop exact duplicates, report near-duplicates, write manifest, rejections,
dataset.json and preview, then move the finished folder into place in one rename).
"""
# size: the build stream in one file: plan, per-item work (worker processes) and finalize share its
# record types; the dataset-contract move (pix2pix/dataset.py, issue 9) is taking parts out of it.

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pix2pix import __version__, dataset
from pix2pix.atomic import claim, publish, release, sibling
from pix2pix.errors import ConfigError, ImageRejected, NothingUsableError, SourceError
from pix2pix.imageio import decode_rgb, open_image
from pix2pix.prepare import ops
from pix2pix.prepare.archive import extract_archive, is_archive
from pix2pix.prepare.config import SPLITS, BuildConfig
from pix2pix.prepare.scan import Item, scan_source


@dataclass
class BuildPlan:
    """Everything the workers and the finalizer need; plain values so it pickles (Dask, spawn)."""

    config: BuildConfig
    kind: str
    root: str
    staging: str
    workdir: str | None
    items: list[tuple[Item, str]]
    rejected: list[dict] = field(default_factory=list)
    source_reason: str = ""


@dataclass
class BuildSummary:
    """What a finished build wrote."""

    out: str
    counts: dict[str, int]
    rejected: dict[str, int]
    duplicates: int
    near_duplicates: int
    near_duplicates_across_splits: int
    seconds: float
    source_kind: str
    near_duplicates_moved: int = 0
    warnings: int = 0
    source_reason: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """A few lines for a person: where the dataset is and what it contains."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lines = [f"dataset: {self.out}", f"pairs: {self.total} ({counts}) from a {self.source_kind} source"]
        if self.source_reason:
            lines.append(f"source: {self.source_reason}")
        n_rej = sum(self.rejected.values())
        if n_rej:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items()))
            lines.append(f"rejected: {n_rej} ({reasons}); see {Path(self.out) / 'rejected.jsonl'}")
        if self.near_duplicates:
            leak = (f", {self.near_duplicates_across_splits} still across the source's own splits (possible test "
                    "leakage)" if self.near_duplicates_across_splits else "")
            lines.append(
                f"near-duplicates: {self.near_duplicates} groups of look-alike images, each kept in one split "
                f"({self.near_duplicates_moved} images moved){leak}; see {Path(self.out) / 'near_duplicates.jsonl'}"
            )
        if self.warnings:
            lines.append(f"warnings: {self.warnings} small images kept (enlarged more than --min-side allows); "
                         f"see 'warnings' in {Path(self.out) / 'manifest.jsonl'}")
        lines.append(f"preview: {Path(self.out) / 'preview.jpg'}")
        return "\n".join(lines)


def split_for(key: str, seed: int, fractions: Sequence[float]) -> str:
    """Stable split of one item: a hash of (seed, key) placed on [0, 1).

    Depends on nothing but the item's own key, so adding images never moves existing ones.
    """
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, frac in zip(SPLITS, fractions):
        edge += frac
        if u < edge:
            return name
    return next(n for n, f in zip(reversed(SPLITS), reversed(fractions)) if f > 0)


def _split_key(item: Item) -> str:
    return item.paths.get("B") or item.paths.get("AB") or item.id


def plan_build(config: BuildConfig) -> BuildPlan:
    """Check the output, extract an archive source, list the items and decide their splits."""
    out = Path(config.out)
    src = Path(config.source)
    if not src.exists():
        raise SourceError(f"{src}: source does not exist")
    claim(out, inputs={"SOURCE": src}, overwrite=config.overwrite, marker="dataset.json")  # released by _cleanup
    try:
        return _plan(config, out, src)
    except BaseException:
        shutil.rmtree(sibling(out, "extract"), ignore_errors=True)  # no leftover of an archive source
        release(out)
        raise


def _plan(config: BuildConfig, out: Path, src: Path) -> BuildPlan:
    workdir = None
    archive_rejected: list[dict] = []  # members the extraction skipped (links, duplicate names)
    kind = config.source_type
    if src.is_file():
        if not (is_archive(src) or kind == "archive"):
            raise SourceError(f"{src}: a file source must be a .tar.gz, .tgz, .tar or .zip archive")
        workdir = sibling(out, "extract")
        shutil.rmtree(workdir, ignore_errors=True)
        extracted = extract_archive(src, workdir, max_pixels=config.max_pixels)
        root, archive_rejected = extracted.root, extracted.rejected
        kind = "auto"
    elif kind == "archive":
        raise SourceError(f"{src}: --source-type archive needs an archive file, got a folder")
    else:
        root = src
    scan = scan_source(root, kind, keep_splits=not config.resplit, max_pixels=config.max_pixels)
    if config.crops_per_image and scan.kind != "folder":
        raise ConfigError(f"crops_per_image: cuts crops from single photos, but {src} holds {scan.kind} "
                          "pairs; set crops_per_image to 0 (or --crops 0) for this source")
    items = []
    for item in scan.items:
        given = item.given_split if not config.resplit else None
        split = given or split_for(_split_key(item), config.seed, config.split)
        # Crops are split by their photo (the same key): no photo has crops in two splits.
        items.extend((replace(item, id=f"{item.id}-c{k}", crop=k), split) for k in range(config.crops_per_image))
        if not config.crops_per_image:
            items.append((item, split))
    staging = sibling(out, "partial")
    shutil.rmtree(staging, ignore_errors=True)
    for s in SPLITS:
        (staging / s).mkdir(parents=True)
    return BuildPlan(config, scan.kind, str(root), str(staging), workdir and str(workdir), items,
                     archive_rejected + scan.rejected, scan.reason)


# --- per item work (runs in worker processes) -------------------------------------------------


def _decode(root: Path, rel: str, cfg: BuildConfig, min_size: tuple[int, int]) -> tuple[np.ndarray, bytes]:
    try:
        data = (root / rel).read_bytes()
    except OSError as exc:
        raise ImageRejected(f"cannot read file ({exc.strerror})", "unreadable") from exc
    # A JPEG is decoded at the smallest DCT scale that keeps both sides >= 2x the target, then
    # area-resized: 38-55 dB (mean 45) to a full decode on photos, 2-4x less to decode. Decoding
    # right down to the target is faster still but costs ~10 dB (the scaled IDCT aliases).
    return decode_rgb(data, max_pixels=cfg.max_pixels, min_size=min_size), data


def _decode_half(root: Path, rel: str, cfg: BuildConfig, min_size: tuple[int, int]) -> tuple[np.ndarray, bytes]:
    """`_decode` for one half of a pair: the reason names the file, as the record lists both."""
    try:
        return _decode(root, rel, cfg, min_size)
    except ImageRejected as exc:
        raise ImageRejected(f"{rel}: {exc.reason}", exc.kind) from exc


def _aspect_check(a: np.ndarray, b: np.ndarray, what: str) -> None:
    ra, rb = a.shape[1] / a.shape[0], b.shape[1] / b.shape[0]
    if abs(ra - rb) / rb > 0.02:
        raise ImageRejected(
            f"{what}: A is {a.shape[1]}x{a.shape[0]} but B is {b.shape[1]}x{b.shape[0]} "
            "(different aspect ratios cannot be aligned; crop them alike first)",
            "A and B shapes differ",
        )


class Made(NamedTuple):
    """What `make_pair` makes of one item."""

    ab: np.ndarray  # the A|B array, H×2H×3 uint8
    params: dict[str, Any]  # the op's parameters for this item
    op: str
    source_sha256: str
    warnings: list[str]  # kept, but worth a look (e.g. enlarged more than --min-side allows)
    raw: bytes | None = None  # the source's own bytes when they are already the output (copied as is)


def _small(shape: tuple[int, ...], cfg: BuildConfig, what: str, warnings: list[str]) -> None:
    """Reject (or, with small_images=warn, note) a source whose fitted side is under min_side.

    The fitted side is the one scaled to `size`: the short side for crop and stretch, the long one
    for pad. Decoding keeps sides >= min(true side, `_decode_floor`), so decoded sizes decide.
    """
    h, w = shape[:2]
    side = max(w, h) if cfg.fit == "pad" else min(w, h)
    need = cfg.min_source_side
    if side >= need:
        return
    msg = (f"{what}{w}x{h} would be enlarged {cfg.size / side:.1f}x to {cfg.size} "
           f"({'long' if cfg.fit == 'pad' else 'short'} side {side} < --min-side {need})")
    if cfg.small_images == "warn":
        warnings.append(msg)
        return
    raise ImageRejected(f"{msg}; pass --small-images warn to keep it, or a smaller --min-side", "too small")


def _decode_floor(cfg: BuildConfig) -> int:
    return max(2 * cfg.size, cfg.min_source_side)


NATIVE = (1 << 30, 1 << 30)  # a decode "floor" no JPEG reaches: decode at full resolution


def crop_window(shape: tuple[int, ...], size: int, seed: int, path: str, k: int) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) square of crop `k` of the photo at `path` (H, W = `shape`): side
    `size`, or the short side when the photo is smaller; its place drawn from (seed, path, k)."""
    h, w = shape[:2]
    side = min(size, h, w)
    rng = np.random.default_rng([seed, int(hashlib.sha256(path.encode()).hexdigest()[:15], 16), k])
    x0, y0 = (int(rng.integers(0, n - side + 1)) for n in (w, h))
    return x0, y0, x0 + side, y0 + side


def _blank_check(b: np.ndarray, cfg: BuildConfig) -> None:
    """Reject a near-blank photo (e.g. a mostly transparent overlay composited on white).

    Single photos only: A is made from them, so a blank one makes a meaningless pair. A user's
    own pairs are kept as given (a flat target can be right there, e.g. a one-class label map).
    """
    if cfg.min_spread <= 0:
        return
    spread = ops.pixel_spread(b)
    if spread < cfg.min_spread:
        raise ImageRejected(
            f"near-blank image: its pixel spread (1st..99th percentile) is {spread} of 255, under "
            f"--min-spread {cfg.min_spread} (lower it, or 0, to keep such images)",
            "near-blank",
        )


def _copyable(data: bytes, cfg: BuildConfig) -> bool:
    """True when an A|B file already is what the build would write: same format, size, plain
    8-bit RGB, upright, so re-encoding could only lose quality (and change the bytes)."""
    if cfg.swap:
        return False
    try:
        im = open_image(data, max_pixels=cfg.max_pixels)
        if im.size != (2 * cfg.size, cfg.size) or im.mode != "RGB" or im.getexif().get(0x0112, 1) != 1:
            return False
    except (ImageRejected, OSError, ValueError, SyntaxError):
        return False
    if cfg.image_format == "jpg":
        return im.format == "JPEG"
    # PNG: 8 bits per channel, colour type 2 (RGB), no transparency chunk
    return im.format == "PNG" and data[24:26] == b"\x08\x02" and "transparency" not in im.info


def make_pair(item: Item, cfg: BuildConfig, root: Path) -> Made:
    """Decode an item's source(s) and make its A|B pair; raises `ImageRejected` with a reason."""
    size, floor = cfg.size, _decode_floor(cfg)
    fit = lambda img: ops.fit_square(img, size, cfg.fit, cfg.pad_color)  # noqa: E731
    params: dict[str, Any] = {}
    warnings: list[str] = []
    raw = None
    if "AB" in item.paths:
        ab, data = _decode(root, item.paths["AB"], cfg, (2 * floor, floor))
        if ab.shape[1] % 2:
            raise ImageRejected(
                f"not an A|B image: width {ab.shape[1]} is odd (A|B images are two halves side by side)",
                "not an A|B image",
            )
        _small((ab.shape[0], ab.shape[1] // 2), cfg, "each half ", warnings)
        a, b = (fit(x) for x in dataset.split_ab(ab))
        op, sha = "ab", hashlib.sha256(data).hexdigest()
        if _copyable(data, cfg):
            raw = data
    elif "A" in item.paths:
        a_full, da = _decode_half(root, item.paths["A"], cfg, (floor, floor))
        b_full, db = _decode_half(root, item.paths["B"], cfg, (floor, floor))
        _aspect_check(a_full, b_full, item.id)
        _small(a_full.shape, cfg, "A ", warnings)
        _small(b_full.shape, cfg, "B ", warnings)
        a, b = fit(a_full), fit(b_full)
        op = "pair"
        sha = hashlib.sha256(
            (hashlib.sha256(da).hexdigest() + hashlib.sha256(db).hexdigest()).encode()
        ).hexdigest()
    else:
        b_full, data = _decode(root, item.paths["B"], cfg, (floor, floor) if item.crop is None else NATIVE)
        if item.crop is not None:
            window = crop_window(b_full.shape, size, cfg.seed, item.paths["B"], item.crop)
            crop = {"index": item.crop, "of": cfg.crops_per_image, "box": list(window),
                    "source_size": [b_full.shape[1], b_full.shape[0]]}
            b_full = b_full[window[1]:window[3], window[0]:window[2]]
        _small(b_full.shape, cfg, "", warnings)
        b = fit(b_full)
        _blank_check(b, cfg)  # before making A: a blank photo is not worth an edge map
        op, sha = cfg.op, hashlib.sha256(data).hexdigest()
        if op == "inpaint":
            rng = None
            if cfg.inpaint_position == "random":  # per item, from (seed, id): any order, any worker
                rng = np.random.default_rng([cfg.seed, int(hashlib.sha256(item.id.encode()).hexdigest()[:15], 16)])
            box = ops.inpaint_box(size, cfg.inpaint_fraction, cfg.inpaint_position, rng)
            a = ops.make_inpaint(b, box, cfg.inpaint_fill)
            params = {"box": list(box), "fill": list(cfg.inpaint_fill), "position": cfg.inpaint_position}
        elif op == "edges":
            a = ops.make_edges(b, sigma=cfg.edge_sigma, min_component=cfg.edge_min_component)
            params = {"detector": "canny-median", "sigma": cfg.edge_sigma, "min_component": cfg.edge_min_component}
        else:
            a = ops.make_grayscale(b)
            params = {"luma": "itu-r-601"}
        if item.crop is not None:
            params["crop"] = crop
    if cfg.swap:
        a, b = b, a
        params["swapped"] = True
    ab_out = ab if raw is not None else ops.combine_ab(a, b)
    return Made(ab_out, params, op, sha, warnings, raw)


def process_item(item: Item, split: str, cfg: BuildConfig, root: Path, staging: Path) -> dict:
    """Make and write one pair; returns a manifest record, or a rejection record (`"kind"` key)."""
    try:
        made = make_pair(item, cfg, root)
    except ImageRejected as exc:
        return {"id": item.id, "source": _source_label(item), "kind": exc.kind, "reason": exc.reason}
    ab = made.ab
    data = made.raw if made.raw is not None else ops.encode(ab, cfg.image_format, cfg.quality)
    rel = f"{split}/{item.id}.{cfg.image_format}"
    (staging / rel).write_bytes(data)
    b = ab[:, ab.shape[1] // 2 :] if not cfg.swap else ab[:, : ab.shape[1] // 2]
    record = {
        "id": item.id,
        "split": split,
        "path": rel,
        "size": [ab.shape[1], ab.shape[0]],
        "source": dict(item.paths),
        "source_sha256": made.source_sha256,
        "sha256": made.source_sha256 if made.raw is not None else hashlib.sha256(data).hexdigest(),
        "op": made.op,
        "op_params": made.params,
        "_dhash": ops.dhash(b),
        "_thumb": ops.thumbnail(b).tobytes().hex(),
        "_fixed": item.given_split is not None and not cfg.resplit,
    }
    if made.warnings:
        record["warnings"] = made.warnings
    return record


def _source_label(item: Item) -> str:
    return " + ".join(item.paths.values())


# Below this many items the work is done in this process: starting workers costs more than it saves.
MIN_JOBS_FOR_POOL = 16
_WORKER: dict[str, Any] = {}  # per worker process: set once by _init_worker, read by _work


def _init_worker(cfg: BuildConfig, root: str, staging: str) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe
    _WORKER.update(cfg=cfg, root=Path(root), staging=Path(staging))


def _work(job: tuple[Item, str]) -> dict:
    return process_item(job[0], job[1], _WORKER["cfg"], _WORKER["root"], _WORKER["staging"])


def process_items(
    plan: BuildPlan, jobs: Sequence[tuple[Item, str]], *, workers: int = 1, progress: bool = False
) -> Iterator[dict]:
    """Process `jobs` (a chunk of `plan.items`) and yield their records in input order."""
    cfg, root, staging = plan.config, Path(plan.root), Path(plan.staging)
    if workers <= 1 or len(jobs) < MIN_JOBS_FOR_POOL:
        with _progress(len(jobs), progress) as bar:
            for item, split in jobs:
                yield process_item(item, split, cfg, root, staging)
                bar.update(1)
        return
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    with _pool_context().Pool(workers, initializer=_init_worker, initargs=(cfg, plan.root, plan.staging)) as pool:
        with _progress(len(jobs), progress) as bar:
            for record in pool.imap(_work, jobs, chunksize=chunk):
                yield record
                bar.update(1)


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where available, else spawn; never a plain fork.

    A plain fork copies whatever state other threads left behind (Prefect's, tqdm's, and the
    native thread pools of OpenCV and torch that `threading` cannot see): measured here, a fork
    after the parent had run one OpenCV resize left every worker waiting on a futex for ever.
    The fork server is a clean single-threaded process that has imported this module once, so
    each worker still starts in milliseconds; spawn pays ~1 s of imports per worker.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["pix2pix.prepare.build"])
        return ctx
    return multiprocessing.get_context("spawn")


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoProgress()  # tqdm costs ~0.2 s of imports, a tenth of a small build's start-up
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="build", disable=not enabled, dynamic_ncols=True)


# --- finalize ---------------------------------------------------------------------------------


# Near-duplicates: dHash within `near_duplicate_bits` AND 8×8 RGB thumbnails within this mean
# absolute difference (0..255). The thumbnail check is what tells flat or smooth images apart
# (dHash sees only brightness differences, so every flat image hashes to 0).
NEAR_DUPLICATE_THUMB_DIFF = 8.0
# Each image is compared with at most this many neighbours per hash band (sorted by brightness),
# so thousands of look-alikes cost O(n) comparisons, not O(n²); groups still form by chaining.
NEAR_DUPLICATE_NEIGHBOURS = 24
# near_duplicates.jsonl lists at most this many members per group (the count is always exact).
MAX_LISTED_MEMBERS = 50
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _near_duplicate_groups(records: list[dict], max_bits: int) -> list[list[int]]:
    """Groups (lists of indices into `records`, each of 2 or more) of near-duplicate images.

    Candidates come from hash bands: the 64-bit hash is cut into max_bits+1 bands, and two hashes
    within max_bits bits agree exactly on at least one band (pigeonhole). Within a band bucket
    each image meets only its next NEAR_DUPLICATE_NEIGHBOURS in brightness order; pairs that pass
    both checks are joined by union-find.
    """
    n = len(records)
    if n < 2:
        return []
    hashes = np.array([r["_dhash"] for r in records], np.uint64)
    thumbs = np.frombuffer(b"".join(bytes.fromhex(r["_thumb"]) for r in records), np.uint8).reshape(n, -1)
    thumbs = thumbs.astype(np.int16)
    brightness = thumbs.mean(axis=1)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    n_bands = max_bits + 1
    bounds = [64 * k // n_bands for k in range(n_bands + 1)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        band = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.lexsort((brightness, band))  # by band value, then brightness
        sorted_band = band[order]
        for off in range(1, min(NEAR_DUPLICATE_NEIGHBOURS, n - 1) + 1):
            i, j = order[:-off], order[off:]
            same = sorted_band[:-off] == sorted_band[off:]
            if not same.any():
                break  # no bucket has more than `off` members
            i, j = i[same], j[same]
            bits = _POPCOUNT[(hashes[i] ^ hashes[j]).view(np.uint8).reshape(-1, 8)].sum(axis=1)
            near = bits <= max_bits
            i, j = i[near], j[near]
            close = np.abs(thumbs[i] - thumbs[j]).mean(axis=1) <= NEAR_DUPLICATE_THUMB_DIFF
            for x, y in zip(i[close].tolist(), j[close].tolist()):
                rx, ry = find(x), find(y)
                if rx != ry:
                    parent[max(rx, ry)] = min(rx, ry)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _key_rank(record: dict, seed: int) -> bytes:
    key = record["source"].get("B") or record["source"].get("AB") or record["id"]
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def _group_splits(records: list[dict], groups: list[list[int]], staging: Path, seed: int) -> tuple[list[dict], dict]:
    """Give each near-duplicate group one split, moving members' files; returns the report rows
    of near_duplicates.jsonl and the counts for dataset.json.

    The group's split is that of its member with the smallest (seed, key) hash, so it depends
    only on the group (a new unrelated image never changes it). Members whose split the source
    fixed (train/ val/ test/ folders, kept without --resplit) are never moved, and decide first.
    """
    rows, moved_groups, moved_images, across = [], 0, 0, 0
    for n, group in enumerate(sorted(groups, key=lambda g: records[g[0]]["path"])):
        members = [records[i] for i in group]
        fixed = [r for r in members if r["_fixed"]]
        split = min(fixed or members, key=lambda r: _key_rank(r, seed))["split"]
        moved = 0
        for r in members:
            if r["split"] == split or r["_fixed"]:
                continue
            rel = f"{split}/{r['path'].split('/', 1)[1]}"
            if (staging / rel).exists():
                continue  # that name is taken in the target split: stays, counted as across
            (staging / r["path"]).rename(staging / rel)
            r["split"], r["path"] = split, rel
            moved += 1
        for r in members:
            r["near_duplicate_group"] = n
        splits = sorted({r["split"] for r in members})
        across += len(splits) > 1
        moved_groups += moved > 0
        moved_images += moved
        rows.append({
            "group": n, "size": len(members), "splits": splits, "moved": moved,
            "members": [r["path"] for r in members[:MAX_LISTED_MEMBERS]],
            **({"members_not_listed": len(members) - MAX_LISTED_MEMBERS} if len(members) > MAX_LISTED_MEMBERS else {}),
        })
    stats = {"groups": len(groups), "images": sum(map(len, groups)), "groups_moved": moved_groups,
             "images_moved": moved_images, "groups_across_splits": across}
    return rows, stats


def finalize_build(
    plan: BuildPlan, records: Iterable[dict], *, extra_rejected: Sequence[dict] = (), started: float | None = None
) -> BuildSummary:
    """Deduplicate, write the metadata files and move the finished dataset into place.

    `records` are what `process_items` yielded, in plan order. `extra_rejected` lets a caller add
    inputs it could not even fetch (failed downloads). Raises `NothingUsableError` (and removes
    the staging folder) when no pair could be made.
    """
    cfg, staging, out = plan.config, Path(plan.staging), Path(plan.config.out)
    kept: list[dict] = []
    rejected: list[dict] = list(extra_rejected) + list(plan.rejected)
    by_sha: dict[str, dict] = {}
    for r in records:
        if "kind" in r:
            rejected.append(r)
        elif _dedup_key(r) in by_sha:
            first = by_sha[_dedup_key(r)]
            (staging / r["path"]).unlink()
            rejected.append({
                "id": r["id"], "source": " + ".join(r["source"].values()), "kind": "exact duplicate",
                "reason": f"exact duplicate of {' + '.join(first['source'].values())} (same bytes); kept once",
            })
        else:
            by_sha[_dedup_key(r)] = r
            kept.append(r)
    rejected.sort(key=lambda r: (r.get("source", ""), r.get("kind", "")))
    by_kind = dict(sorted(Counter(r["kind"] for r in rejected).items()))
    report = rejected_report_path(out)
    if not kept:
        _cleanup(plan)
        raise NothingUsableError(_nothing_usable(cfg.source, rejected, by_kind, report))
    report.unlink(missing_ok=True)  # a failed earlier build's list would only mislead now
    near, near_stats = _group_splits(kept, _near_duplicate_groups(kept, cfg.near_duplicate_bits), staging, cfg.seed)
    for r in kept:
        del r["_dhash"], r["_thumb"], r["_fixed"]
    counts = {s: sum(r["split"] == s for r in kept) for s in SPLITS}
    manifest_sha = dataset.write_manifest(staging, kept)
    dataset.write_jsonl(staging / dataset.REJECTED, rejected)
    dataset.write_jsonl(staging / dataset.NEAR_DUPLICATES, near)
    dataset.write_meta(staging, {
        "tool": "pix2pix-pipeline",
        "tool_version": __version__,
        "config": cfg.to_dict(for_output=True),
        "source_kind": plan.kind,
        "source_detection": plan.source_reason,
        "size": cfg.size,
        "image_format": cfg.image_format,
        "counts": counts,
        "total": len(kept),
        "rejected": {"total": len(rejected), "by_reason": by_kind},
        "near_duplicates": near_stats,
        "warnings": {"small image kept": sum(bool(r.get("warnings")) for r in kept)},
        "manifest_sha256": manifest_sha,
    })
    from pix2pix.prepare.preview import write_preview

    write_preview(staging, kept, staging / dataset.PREVIEW, per_split=cfg.preview_per_split)
    publish(staging, out)
    _cleanup(plan)
    return BuildSummary(
        out=str(out),
        counts=counts,
        rejected=by_kind,
        duplicates=by_kind.get("exact duplicate", 0),
        near_duplicates=near_stats["groups"],
        near_duplicates_across_splits=near_stats["groups_across_splits"],
        near_duplicates_moved=near_stats["images_moved"],
        warnings=sum(bool(r.get("warnings")) for r in kept),
        seconds=time.perf_counter() - started if started else 0.0,
        source_kind=plan.kind,
        source_reason=plan.source_reason,
    )


def _dedup_key(record: dict) -> str:
    """Same source bytes = a duplicate, except for the different crops of one photo."""
    crop = record["op_params"].get("crop")
    return record["source_sha256"] + (f"#c{crop['index']}" if crop else "")


NOTHING_USABLE_SHOWN = 20  # rejections listed in the error; the file beside OUT has all


def rejected_report_path(out: Path) -> Path:
    """Where a build that made no pair lists every rejection: `OUT.rejected.jsonl` beside OUT."""
    return out.parent / f"{out.name}.rejected.jsonl"


def _nothing_usable(source: str, rejected: list[dict], by_kind: dict[str, int], report: Path) -> str:
    reasons = "; ".join(f"{k}: {v}" for k, v in by_kind.items()) or "no inputs"
    lines = [f"no usable pair in {source} ({len(rejected)} inputs rejected: {reasons}); no dataset was written"]
    if rejected:
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            dataset.write_jsonl(report, rejected)
            lines[0] += f"; every rejection is listed in {report}"
        except OSError as exc:
            lines[0] += f" (could not write {report}: {exc.strerror})"
        for r in rejected[:NOTHING_USABLE_SHOWN]:
            lines.append(f"  {r.get('source', r.get('id', '?'))}: {r.get('reason', r.get('kind'))}")
        if len(rejected) > NOTHING_USABLE_SHOWN:
            lines.append(f"  ... and {len(rejected) - NOTHING_USABLE_SHOWN} more")
    return "\n".join(lines)


def _cleanup(plan: BuildPlan) -> None:
    shutil.rmtree(plan.staging, ignore_errors=True)
    if plan.workdir:
        shutil.rmtree(plan.workdir, ignore_errors=True)
    release(plan.config.out)


def build_dataset(config: BuildConfig, *, extra_rejected: Sequence[dict] = ()) -> BuildSummary:
    """Build a whole dataset from `config` (plan → process → finalize); the library entry point."""
    started = time.perf_counter()
    plan = plan_build(config)
    stream = process_items(plan, plan.items, workers=config.workers, progress=config.progress)
    try:
        records = list(stream)
        return finalize_build(plan, records, extra_rejected=extra_rejected, started=started)
    except BaseException:
        stream.close()  # stops the worker pool now: no worker may write into staging after it is removed
        _cleanup(plan)
        raise
