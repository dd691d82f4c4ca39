"""Run a generator over image files of any size: ``pix2pix translate``.

    from pix2pix.inference import TranslateConfig, translate
    result = translate("runs/facades", ["photos/", "extra/*.jpg"], "out/", TranslateConfig())
    print(result.count, result.rejected)

Output folder (written to a hidden sibling, renamed into place at the end)::

    OUT/<rel>/<stem>.png   one per input: its path relative to the folder / glob base it came from
    OUT/translate.jsonl    per input: input path + sha256, output path + sha256, model path +
                           sha256, test-time mode, seeds, sizes in/out, how it ran (pad/tile/fit)
    OUT/rejected.jsonl     per input that could not be used: path and reason

Sizes. By default the output has the input's size: the image is reflect-padded to the multiple
the generator needs (2**depth for a U-Net, 4 for a ResNet), run, and cropped back. An image
whose padded side exceeds ``tile`` is run in overlapping ``tile``×``tile`` tiles whose outputs
are blended with raised-cosine weights (no seams; memory bounded by the tile, not the image).
``fit=True`` resizes to the model's training size (PIL bicubic, as the official test.py) and
writes that size instead.

Test-time mode: ``eval_mode="model"`` takes the default stored with the model (an official
``.pth``: ``train``, see :mod:`pix2pix.models.io`). In ``train`` mode (dropout on, BatchNorm on
batch statistics) every image runs alone (a batch would mix their statistics) with dropout
seeded from ``(seed, input sha256)``: an output depends on its input and the seed only, not on
which other files were in the run. In ``eval`` mode same-shape inputs and tiles are batched.

Output pixels are ``round((y + 1) * 127.5)``; the official code truncates (``astype(uint8)``),
so its images are on average half a level darker and differ by at most one level.

Which files are read and their output names: ``inputs.py``; padding and tile geometry: ``tiling.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.atomic import claim, publish, release, sibling
from pix2pix.errors import ConfigError, ImageRejected, NothingUsableError, Pix2PixError
from pix2pix.inference.inputs import Job, collect_inputs, input_root
from pix2pix.inference.tiling import blend_window, pad_to_multiple, tile_starts, tile_stride
from pix2pix.params import check_field_types
from pix2pix.runtime import check_device_name, check_eval_mode

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_TILE = 1024
DEFAULT_MAX_PIXELS = 50_000_000  # ~ 8700×5800; the blend buffers alone are 16 bytes a pixel
PNG_COMPRESSION = 1  # zlib level: 3-5× faster than the default 6 for ~10% larger files


@dataclass(frozen=True)
class TranslateConfig:
    """How to translate. Validated on construction (errors name the key)."""

    eval_mode: str = "model"  # model (as stored) | train | eval
    fit: bool = False  # resize to the training size instead of keeping the input's size
    tile: int = DEFAULT_TILE  # largest model input side; 0 = never tile
    batch_size: int = 4  # images (or tiles) per forward pass in eval mode
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger inputs are rejected
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    seed: int = 0  # seeds test-time dropout (train mode)
    num_threads: int = 0  # torch CPU threads, 0 = torch's choice
    io_threads: int = 2  # threads decoding and encoding files beside the forward passes

    def __post_init__(self) -> None:
        check_field_types(self, "the `translate:` section of --params or its `pix2pix translate` flag")
        # frozen: an old name (evaluate's ``checkpoint``) is replaced by the new one once, here
        object.__setattr__(self, "eval_mode", check_eval_mode(self.eval_mode, stacklevel=3))
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for key, low in (("batch_size", 1), ("max_pixels", 1), ("io_threads", 1), ("tile", 0),
                         ("seed", 0), ("num_threads", 0)):
            v = getattr(self, key)
            if v < low:
                raise ConfigError(f"{key}: expected an integer >= {low}, got {v!r}")
        check_device_name(self.device)


@dataclass
class TranslateResult:
    out_dir: str
    count: int
    eval_mode: str
    rejected: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the engine


class Engine:
    """A generator on a device, turning uint8 images into uint8 images (no file I/O).

    ``multiple``: the side multiple the network needs; ``size``: its training size (``fit``).
    Inputs are (H, W, 3) uint8 RGB; outputs (H, W, 3) uint8 of the same size (``fit``: size×size).
    """

    def __init__(self, model: Any, *, multiple: int, size: int, device: Any, eval_mode: str,
                 precision: str = "auto", tile: int = DEFAULT_TILE, batch_size: int = 4,
                 channels_last: bool = True) -> None:
        import torch

        if tile and (tile % multiple or tile < 2 * multiple):
            raise ConfigError(f"tile: must be 0 or a multiple of {multiple} of at least {2 * multiple} "
                              f"for this generator, got {tile}")
        self.model, self.multiple, self.size, self.device = model, multiple, size, device
        self.eval_mode, self.tile, self.batch_size = eval_mode, tile, batch_size
        bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
        self.precision = "bf16" if bf16 else "fp32"
        self._autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train(eval_mode == "train")

    @property
    def batches(self) -> bool:
        """Whether several inputs may share a forward pass (not with batch statistics)."""
        return self.eval_mode == "eval" and self.batch_size > 1

    def method(self, h: int, w: int, fit: bool) -> str:
        if fit:
            return "fit"
        m = self.multiple
        hp, wp = h + -h % m, w + -w % m
        return "tile" if self.tile and max(hp, wp) > self.tile else "pad"

    def batch_key(self, img: np.ndarray, fit: bool) -> tuple[int, int] | None:
        """Inputs with equal keys can share a batch; ``None``: run alone (tiles batch inside)."""
        h, w = img.shape[:2]
        method = self.method(h, w, fit)
        if method == "fit":
            return (self.size, self.size)
        if method == "tile":
            return None
        return (h + -h % self.multiple, w + -w % self.multiple)

    def forward(self, batch: np.ndarray) -> Any:
        """(N, H, W, 3) uint8 → (N, 3, H, W) float32 tensor in [-1, 1] on the device."""
        import torch

        from pix2pix.training.data import to_model_range

        x = to_model_range(torch.from_numpy(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            return self.model(x).float()

    def _prepare(self, img: np.ndarray, fit: bool) -> tuple[np.ndarray, tuple[int, int]]:
        if fit:
            from PIL import Image

            if img.shape[:2] != (self.size, self.size):
                img = np.asarray(Image.fromarray(img).resize((self.size, self.size), Image.BICUBIC))
            return img, (0, 0)
        return pad_to_multiple(img, self.multiple)

    def run(self, imgs: Sequence[np.ndarray], *, fit: bool = False) -> list[np.ndarray]:
        """Translate images that share a ``batch_key`` (or one image) in one forward pass."""
        from pix2pix.training.data import from_model_range

        if len(imgs) == 1 and self.method(*imgs[0].shape[:2], fit) == "tile":
            return [self._run_tiled(imgs[0])]
        prepared = [self._prepare(im, fit) for im in imgs]
        y = from_model_range(self.forward(np.stack([p for p, _ in prepared])))
        y = y.permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for k, (im, (_, (top, left))) in enumerate(zip(imgs, prepared)):
            h, w = (self.size, self.size) if fit else im.shape[:2]
            out.append(np.ascontiguousarray(y[k, top: top + h, left: left + w]))
        return out

    def _run_tiled(self, img: np.ndarray) -> np.ndarray:
        import torch

        from pix2pix.training.data import from_model_range

        h, w = img.shape[:2]
        padded, (top, left) = pad_to_multiple(img, self.multiple)
        hp, wp = padded.shape[:2]
        th, tw = min(self.tile, hp), min(self.tile, wp)
        ys, xs = tile_starts(hp, th, self.multiple), tile_starts(wp, tw, self.multiple)
        acc = torch.zeros((3, hp, wp), dtype=torch.float32, device=self.device)
        wsum = torch.zeros((1, hp, wp), dtype=torch.float32, device=self.device)
        boxes = [(y, x) for y in ys for x in xs]
        step = self.batch_size if self.batches else 1
        for i in range(0, len(boxes), step):
            chunk = boxes[i: i + step]
            out = self.forward(np.stack([padded[y: y + th, x: x + tw] for y, x in chunk]))
            for k, (y, x) in enumerate(chunk):
                wy = blend_window(th, th - tile_stride(ys, th), at_start=y == 0, at_end=y + th == hp)
                wx = blend_window(tw, tw - tile_stride(xs, tw), at_start=x == 0, at_end=x + tw == wp)
                wt = torch.from_numpy(np.outer(wy, wx)).to(self.device)[None]
                acc[:, y: y + th, x: x + tw] += out[k] * wt
                wsum[:, y: y + th, x: x + tw] += wt
        y = from_model_range(acc / wsum)[:, top: top + h, left: left + w]
        self.last_tiles = len(boxes)
        return np.ascontiguousarray(y.permute(1, 2, 0).cpu().numpy())



def dropout_seed(seed: int, input_sha256: str) -> int:
    """The seed of one input's test-time dropout: a function of the run seed and its bytes."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{input_sha256}".encode()).digest()[:8], "little") >> 1


def encode_png(img: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB → PNG bytes (OpenCV: it releases the GIL, so writes overlap compute)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]),
                           [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise Pix2PixError(f"could not encode a {img.shape} image as PNG")
    return buf.tobytes()


# --------------------------------------------------------------------------- the run


def _decode(job: Job, max_pixels: int) -> tuple[np.ndarray, str]:
    from pix2pix.imageio import load_rgb

    try:
        data = job.src.read_bytes()
    except OSError as e:
        raise ImageRejected(f"cannot read it ({e.strerror or e})", "unreadable") from e
    return load_rgb(data, max_pixels=max_pixels), hashlib.sha256(data).hexdigest()


def _prefetch(pool: ThreadPoolExecutor, jobs: Sequence[Job], max_pixels: int,
              ahead: int) -> Iterator[tuple[Job, Future]]:
    futures: list[tuple[Job, Future]] = []
    for job in jobs:
        futures.append((job, pool.submit(_decode, job, max_pixels)))
        if len(futures) > ahead:
            yield futures.pop(0)
    yield from futures


def translate(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: TranslateConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    netG: str | None = None,
    norm: str | None = None,
) -> TranslateResult:
    """Translate every input image with the generator at ``model_path`` into ``out_dir``.

    ``model_path``: a run folder, ``generator.pt``, a checkpoint or an official ``.pth``
    (``netG``/``norm`` override what is inferred from an official file). Unusable inputs are
    listed in ``result.rejected`` (and OUT/rejected.jsonl), the rest are translated. Raises
    ``OutputExistsError`` for a non-empty ``out_dir`` without ``overwrite``,
    ``OutputOverlapError`` when it is, holds or lies inside an input, ``OutputLockedError``
    while another run writes it, and ``NothingUsableError`` when the inputs name no file.
    """
    config = config or TranslateConfig()
    out = Path(out_dir)
    given = {f"INPUT {i}": input_root(s) for i, s in enumerate(inputs, 1)}
    # OUT may lie inside the model's run folder (replacing it deletes only earlier outputs).
    claim(out, inputs={**given, "MODEL": model_path}, overwrite=overwrite, marker="translate.jsonl",
          allow_inside=("MODEL",))
    try:
        return _translate(model_path, inputs, out, config, progress=progress, netG=netG, norm=norm)
    finally:
        release(out)


def _translate(model_path: str | Path, inputs: Sequence[str | Path], out: Path, config: TranslateConfig, *,
               progress: bool, netG: str | None, norm: str | None) -> TranslateResult:
    import torch

    from pix2pix.models.io import load_generator_file
    from pix2pix.runtime import pick_device

    staging = sibling(out, "tmp")
    jobs, rejected = collect_inputs(inputs, exclude=[out, staging, sibling(out, "old")])
    if not jobs and not rejected:
        raise NothingUsableError(f"no image files in {', '.join(map(str, inputs))}")
    device = pick_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    loaded = load_generator_file(model_path, map_location=device, netG=netG, norm=norm)
    mode = loaded.eval_mode if config.eval_mode == "model" else config.eval_mode
    engine = Engine(loaded.model, multiple=loaded.spec.size_multiple, size=loaded.size, device=device,
                    eval_mode=mode, precision=config.precision, tile=config.tile,
                    batch_size=config.batch_size, channels_last=device.type == "cpu")
    common = {"model": str(loaded.path), "model_sha256": loaded.sha256, "model_kind": loaded.kind,
              "generator": loaded.spec.generator, "eval_mode": mode, "seed": config.seed,
              "device": str(device), "precision": engine.precision}

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    records: dict[int, dict[str, Any]] = {}
    try:
        with ThreadPoolExecutor(config.io_threads) as pool, _bar(len(jobs), progress) as bar:
            writes: list[Future] = []

            def emit(items: list[tuple[int, Job, np.ndarray, str]], results: list[np.ndarray], extra: dict) -> None:
                for (i, job, img, sha), res in zip(items, results):
                    rec = {"input": str(job.src), "input_sha256": sha, "output": job.out.as_posix(),
                           "size_in": [img.shape[1], img.shape[0]], "size_out": [res.shape[1], res.shape[0]],
                           **extra, **common}
                    writes.append(pool.submit(_write, staging / job.out, res, rec, records, i))
                    bar.update(1)

            pending: dict[tuple[int, int], list[tuple[int, Job, np.ndarray, str]]] = {}

            def flush(key: tuple[int, int]) -> None:
                items = pending.pop(key)
                method = "fit" if config.fit else "pad"
                emit(items, engine.run([it[2] for it in items], fit=config.fit), {"method": method, "tiles": 1})

            ahead = 2 * config.batch_size + config.io_threads
            for i, (job, fut) in enumerate(_prefetch(pool, jobs, config.max_pixels, ahead)):
                try:
                    img, sha = fut.result()
                except ImageRejected as e:
                    rejected.append({"input": str(job.src), "reason": e.reason, "kind": e.kind})
                    bar.update(1)
                    continue
                key = engine.batch_key(img, config.fit)
                if key is not None and engine.batches:
                    pending.setdefault(key, []).append((i, job, img, sha))
                    if len(pending[key]) >= config.batch_size:
                        flush(key)
                    elif sum(map(len, pending.values())) > 2 * config.batch_size:
                        flush(max(pending, key=lambda k: len(pending[k])))
                    continue
                extra: dict[str, Any] = {"method": engine.method(*img.shape[:2], config.fit), "tiles": 1}
                with _seeded(mode, config.seed, sha, device) as seed:
                    res = engine.run([img], fit=config.fit)
                if seed is not None:
                    extra["dropout_seed"] = seed
                if extra["method"] == "tile":
                    extra["tiles"] = engine.last_tiles
                emit([(i, job, img, sha)], res, extra)
            for key in list(pending):
                flush(key)
            for f in writes:
                f.result()
        with (staging / "translate.jsonl").open("w", encoding="utf-8") as f:
            for i in sorted(records):
                f.write(json.dumps(records[i]) + "\n")
        with (staging / "rejected.jsonl").open("w", encoding="utf-8") as f:
            for r in rejected:
                f.write(json.dumps(r) + "\n")
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return TranslateResult(out_dir=str(out), count=len(records), eval_mode=mode, rejected=rejected,
                           notes=list(loaded.notes))


def _write(path: Path, img: np.ndarray, rec: dict[str, Any], records: dict[int, dict], index: int) -> None:
    data = encode_png(img)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    rec["output_sha256"] = hashlib.sha256(data).hexdigest()
    records[index] = rec


@contextlib.contextmanager
def _seeded(mode: str, seed: int, sha: str, device: Any) -> Iterator[int | None]:
    """Train mode: dropout drawn from a per-input seed, without touching the caller's RNG."""
    if mode != "train":
        yield None
        return
    import torch

    s = dropout_seed(seed, sha)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(s)
        yield s


def _bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="translate", disable=not enabled, dynamic_ncols=True,
                file=sys.stderr)
