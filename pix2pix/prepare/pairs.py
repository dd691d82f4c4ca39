"""Per-item work of the dataset build: one source item in, one A|B file and its record out.

    from pix2pix.prepare.pairs import process_items
    records = list(process_items(cfg, root, staging, jobs, workers=4))

`make_pair` decodes an item's source(s), checks them (too small, near-blank, A and B aspect
ratios) and makes the A|B array; `process_item` writes it and returns its manifest record (or a
rejection record); `process_items` runs a list of jobs in worker processes and yields the
records in input order. `build.py` plans the build and finalizes it around this.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pix2pix import dataset
from pix2pix.errors import ImageRejected
from pix2pix.imageio import decode_rgb, open_image
from pix2pix.prepare import ops
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.scan import Item


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

    # Ctrl-C reaches the whole process group: the parent alone answers it (one `interrupted`
    # line, the pool terminated before staging is removed); a worker that raised
    # KeyboardInterrupt too would print its traceback first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe
    keep_freed_memory()
    _WORKER.update(cfg=cfg, root=Path(root), staging=Path(staging))


def keep_freed_memory() -> None:
    """Let this worker's glibc reuse freed image buffers instead of handing them back to the OS.

    Every pair allocates a few 0.2-1 MB arrays; by default glibc maps and unmaps each one (or
    trims the heap after it), so every image pays for fresh zeroed pages: measured here, a third
    of the build's CPU time was kernel time, ≈ 0.4 ms per pair. The workers' peak memory is
    unchanged (the same buffers, reused). Elsewhere than glibc this does nothing. With
    ``--workers 1`` the building process itself gets it: the setting stays for the rest of that
    process (it only keeps memory it has used for reuse).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's mallopt parameters
        for param, value in ((m_trim_threshold, 256 << 20), (m_top_pad, 16 << 20), (m_mmap_threshold, 32 << 20)):
            libc.mallopt(param, value)
    except (OSError, AttributeError):
        pass


def _work(job: tuple[Item, str]) -> dict:
    return process_item(job[0], job[1], _WORKER["cfg"], _WORKER["root"], _WORKER["staging"])


def process_items(
    cfg: BuildConfig, root: str | Path, staging: str | Path, jobs: Sequence[tuple[Item, str]], *,
    workers: int = 1, progress: bool = False,
) -> Iterator[dict]:
    """Process `jobs` (a build plan's items, or a chunk of them) from the source folder `root`
    into the staging folder `staging`; yield their records in input order."""
    root, staging = Path(root), Path(staging)
    if workers <= 1 or len(jobs) < MIN_JOBS_FOR_POOL:
        if len(jobs) >= MIN_JOBS_FOR_POOL:
            keep_freed_memory()  # this process builds: the same allocator setting as a worker's
        with _progress(len(jobs), progress) as bar:
            for item, split in jobs:
                yield process_item(item, split, cfg, root, staging)
                bar.update(1)
        return
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    with _pool_context().Pool(workers, initializer=_init_worker, initargs=(cfg, str(root), str(staging))) as pool:
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
        ctx.set_forkserver_preload(["pix2pix.prepare.pairs"])
        return ctx
    return multiprocessing.get_context("spawn")


def warm_pool() -> None:
    """Start the fork server (a fresh interpreter importing this module, ~0.2 s) in the
    background, so that a build's worker pool is ready when planning ends. Idempotent."""
    ctx = _pool_context()
    if ctx.get_start_method() == "forkserver":
        import multiprocessing.forkserver
        import threading

        threading.Thread(target=multiprocessing.forkserver.ensure_running, daemon=True,
                         name="forkserver-warm-up").start()


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
