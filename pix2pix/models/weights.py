"""Our weights file formats and their one reader, below every stage that uses them.

Two formats, both ``torch.save``\\ d dicts of tensors and plain types (``weights_only=True``
loads them; nothing in them is pickled code), each with a ``format`` field and a ``checksum``:

    pix2pix-train-checkpoint   a full training checkpoint (G, D, optimisers, RNGs, config, ...)
    pix2pix-generator          ``generator.pt``: G only, fp32, + the config needed to rebuild it

``pix2pix.training.checkpoint`` writes both and owns the run-folder layout; this module is the
reading side that training, evaluation and inference share: ``read_weights`` (the one
``torch.load``), ``verify_payload`` (checksum and finite weights) and ``load_generator``.
It lives under ``models`` so that ``models.io`` reads our files without importing a stage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.errors import Pix2PixError, unreadable_weights
from pix2pix.models import build_generator

CHECKPOINT_FORMAT = "pix2pix-train-checkpoint"
GENERATOR_FORMAT = "pix2pix-generator"
FORMAT_VERSION = 1


class CheckpointError(Pix2PixError):
    """A checkpoint cannot be read or does not fit this run."""


def _feed(h: Any, obj: Any) -> None:
    """Hash `obj` canonically: dict keys sorted, tensors by dtype, shape and raw bytes."""
    if isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(f"{type(obj).__name__}:{obj!r}".encode())


def payload_checksum(payload: dict[str, Any]) -> str:
    """sha256 of everything in a checkpoint / generator payload but its ``checksum`` field."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != "checksum"})
    return h.hexdigest()


def verify_payload(payload: dict[str, Any], path: Path, *, finite: tuple[str, ...] = ()) -> None:
    """Raise ``CheckpointError`` if the stored checksum differs (flipped bits, a torn copy) or a
    floating tensor under the keys ``finite`` holds NaN/Inf. A file without a checksum (written
    before checksums existed) is accepted on the finiteness check alone."""
    stored = payload.get("checksum")
    if stored is not None and stored != payload_checksum(payload):
        raise CheckpointError(f"{path}: checksum mismatch, the file is damaged (bit flips or a torn copy); "
                              f"do not use it")
    for key in finite:
        tensors = payload.get(key)
        if isinstance(tensors, dict):
            for name, t in tensors.items():
                if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
                    raise CheckpointError(f"{path}: {key}.{name} holds NaN or Inf weights; do not use it")


def read_weights(path: Path, *, what: str, map_location: str | torch.device = "cpu", mmap: bool = False,
                 error: type[CheckpointError] = CheckpointError) -> Any:
    """The one ``torch.load``: ``weights_only=True`` (a file never runs code), every failure an
    ``error`` naming ``path`` and what the file is instead (``"{path}: no such {what}"``,
    ``"{path}: not a readable {what}: an ONNX model, ..."``).

    ``mmap=True`` reads only the tensors touched (peeking at a 200 MB checkpoint's format is
    cheap); files in the pre-1.6 (non-zip) format cannot be mapped and are then read whole.
    """
    if mmap:
        try:
            return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
        except Exception:
            pass  # not mappable: the plain load below reads it or says why not
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as e:
        raise error(f"{path}: no such {what}") from e
    except Exception as e:  # torch raises a variety of unpickling / zip errors
        raise error(f"{path}: not a readable {what}: {unreadable_weights(path, e)}") from e


def load_generator(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild G from ``generator.pt`` (or a full checkpoint) → (model, info).

    The model is returned in train mode; put it in the stored ``info["eval_mode"]`` with
    ``pix2pix.training.set_inference_mode`` (``"train"`` = the paper's dropout + batch statistics).
    """
    path = Path(path)
    payload = read_weights(path, what="generator file", map_location=map_location)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == CHECKPOINT_FORMAT:
        cfg = payload["config"]
        info = {"config": cfg, "size": cfg.get("crop_size", cfg.get("size")), "direction": cfg["direction"],
                "eval_mode": cfg["eval_mode"], "step": payload["step"],
                "epoch": payload["epoch"], "dataset_fingerprint": payload["dataset_fingerprint"]}
        model_kw = {"generator": cfg["generator"], "ngf": cfg["ngf"], "norm": cfg["norm"],
                    "dropout": cfg["dropout"], "in_channels": 3, "out_channels": 3}
        state_dict = payload["G"]
    elif fmt == GENERATOR_FORMAT:
        info = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
        model_kw = dict(payload["model"])
        state_dict = payload["state_dict"]
    else:
        raise CheckpointError(f"{path}: neither a generator file nor a training checkpoint")
    verify_payload(payload, path, finite=("G" if fmt == CHECKPOINT_FORMAT else "state_dict",))
    name = model_kw.pop("generator")
    G = build_generator(name, **model_kw)
    G.load_state_dict(state_dict)
    return G.to(map_location), info
