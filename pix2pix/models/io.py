"""The one place that loads generators: ours (``generator.pt``, a run folder, a full training
checkpoint) and official pix2pix state dicts (``latest_net_G.pth``).

Example::

    from pix2pix.models.io import load_generator_file

    lg = load_generator_file("runs/facades")                  # RUN_DIR/generator.pt
    lg = load_generator_file("facades_label2photo.pth")       # architecture read from the tensors
    lg.model(x)                                               # N×3×H×W in [-1, 1] -> same shape
    print(lg.describe(), lg.notes)

An official state dict carries no configuration, so the architecture is read from its tensors:
the generator family from the key layout, U-Net depth from the number of down-convolutions
(7 → ``unet_128``, 8 → ``unet_256``, 9 → ``unet_512``), ResNet blocks from the ``conv_block``
count, ngf and channels from the first convolution, BatchNorm from its ``running_mean`` /
affine tensors (instance norm has none, but gives the convolutions a bias), ResNet dropout from
the layer index of the second block convolution. What the tensors cannot say (U-Net dropout,
the training size, the direction it was trained in) takes the official pix2pix defaults, and
``LoadedGenerator.notes`` says so; ``netG=`` / ``norm=`` / ``dropout=`` override the inference.

The default test-time mode of an official file is ``"train"`` (dropout on, BatchNorm on batch
statistics): what the official ``test.py`` does unless given ``--eval``, hence what its
published result images show.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.errors import ConfigError, Pix2PixError
from pix2pix.models import GENERATORS, build_generator, load_official_generator
from pix2pix.models.weights import (
    CHECKPOINT_FORMAT,
    GENERATOR_FORMAT,
    CheckpointError,
    load_generator,
    read_weights,
    verify_payload,
)

OFFICIAL = "official"
GENERATOR_FILE = "generator"
CHECKPOINT = "checkpoint"
# The official test.py runs G in train mode unless --eval is given (see module docstring).
OFFICIAL_EVAL_MODE = "train"
_UNET_BY_DEPTH = {7: "unet_128", 8: "unet_256", 9: "unet_512"}
_RESNET_BY_BLOCKS = {6: "resnet_6blocks", 9: "resnet_9blocks"}
_UNET_DOWN_RE = re.compile(r"^model\.model\.1\.model(?:\.3\.model)*\.1\.weight$")
_RESNET_BLOCK_RE = re.compile(r"^model\.(\d+)\.conv_block\.1\.weight$")


class ModelLoadError(CheckpointError):
    """A model file or folder cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class GeneratorSpec:
    """What ``build_generator`` needs to rebuild a generator."""

    generator: str
    ngf: int = 64
    norm: str = "batch"
    dropout: bool = True
    in_channels: int = 3
    out_channels: int = 3

    def build(self) -> nn.Module:
        return build_generator(self.generator, ngf=self.ngf, norm=self.norm, dropout=self.dropout,
                               in_channels=self.in_channels, out_channels=self.out_channels)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this: 2**num_downs for a U-Net, 4 for a ResNet."""
        if self.generator.startswith("unet_"):
            return 2 ** {v: k for k, v in _UNET_BY_DEPTH.items()}[self.generator]
        return 4


@dataclass
class LoadedGenerator:
    """A generator with what is known about it.

    ``model``: on the requested device, in train mode (call ``set_mode``). ``kind``:
    ``"generator"`` (our generator.pt), ``"checkpoint"`` (a full training checkpoint) or
    ``"official"`` (a bare state dict). ``size``: the side it was trained at (official: the
    natural size of its architecture). ``direction``: ``AtoB``/``BtoA`` of its training dataset,
    ``None`` when unknown (official). ``eval_mode``: the stored test-time default. ``info``: the
    rest (step, epoch, dataset_fingerprint, config). ``notes``: how anything not stored was chosen.
    """

    model: nn.Module
    spec: GeneratorSpec
    kind: str
    path: Path
    size: int
    direction: str | None
    eval_mode: str
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _sha256: str | None = None

    @property
    def sha256(self) -> str:
        """sha256 of the model file's bytes: the fingerprint outputs record."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def set_mode(self, eval_mode: str) -> nn.Module:
        """``"train"``: dropout on + batch statistics (the paper); ``"eval"``: both off."""
        if eval_mode not in ("train", "eval"):
            raise ConfigError(f"eval_mode: expected 'train' or 'eval', got {eval_mode!r}")
        return self.model.train(eval_mode == "train")

    def describe(self) -> str:
        s = self.spec
        return (f"{self.kind} {s.generator} ngf={s.ngf} norm={s.norm} dropout={s.dropout} "
                f"size={self.size}")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_model_path(path: str | Path) -> Path:
    """A run folder means ``RUN_DIR/generator.pt`` (else its ``checkpoints/latest.pt``, a run
    that has not finished); a file is used as given. Raises ``ModelLoadError``."""
    p = Path(path)
    if p.is_dir():
        for candidate in (p / "generator.pt", p / "checkpoints" / "latest.pt"):
            if candidate.is_file():
                return candidate
        raise ModelLoadError(f"{p}: a folder without generator.pt (or checkpoints/latest.pt); "
                             "is it a `pix2pix train` run folder?")
    if not p.exists():
        raise ModelLoadError(f"{p}: no such generator file or run folder")
    return p




def _strip_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def infer_official_spec(state_dict: Mapping[str, torch.Tensor]) -> tuple[GeneratorSpec, list[str]]:
    """The architecture of an official generator state dict, from its tensors → (spec, notes).

    Raises ``ModelLoadError`` naming what could not be recognised (then pass ``netG``/``norm``).
    """
    sd = _strip_prefix(state_dict)
    notes: list[str] = []
    has_bn = any(k.endswith(("running_mean", "running_var")) for k in sd)
    if "model.model.0.weight" in sd:  # U-Net: outermost block's down-conv
        first = sd["model.model.0.weight"]
        depth = 1 + sum(1 for k in sd if _UNET_DOWN_RE.match(k))
        name = _UNET_BY_DEPTH.get(depth)
        if name is None:
            raise ModelLoadError(f"a U-Net with {depth} downsamplings; only "
                                 f"{', '.join(f'{d} ({n})' for d, n in _UNET_BY_DEPTH.items())} exist here")
        out_key = "model.model.3.weight"  # ConvTranspose2d weight: (in, out, k, k)
        out_ch = int(sd[out_key].shape[1]) if out_key in sd else 3
        norm = "batch" if has_bn or "model.model.1.model.2.weight" in sd else (
            "instance" if "model.model.1.model.1.bias" in sd else None)
        ngf, in_ch = int(first.shape[0]), int(first.shape[1])
        dropout = True
        notes.append(f"{name} (from {depth} down-convolutions), ngf={ngf} (first convolution), "
                     f"norm={norm} (from the tensors)")
        notes.append("U-Net dropout is not visible in a state dict: dropout=True, the official "
                     "pix2pix default (matters only in train mode)")
    elif "model.1.weight" in sd and any(_RESNET_BLOCK_RE.match(k) for k in sd):
        first = sd["model.1.weight"]
        blocks = sorted({int(m.group(1)) for k in sd if (m := _RESNET_BLOCK_RE.match(k))})
        name = _RESNET_BY_BLOCKS.get(len(blocks))
        if name is None:
            raise ModelLoadError(f"a ResNet generator with {len(blocks)} blocks; only "
                                 f"{', '.join(_RESNET_BY_BLOCKS.values())} exist here")
        last = max(int(k.split(".")[1]) for k in sd if re.match(r"^model\.\d+\.weight$", k))
        out_ch = int(sd[f"model.{last}.weight"].shape[0])
        norm = "batch" if has_bn or "model.2.weight" in sd else (
            "instance" if "model.1.bias" in sd else None)
        # With dropout the block is [pad, conv, norm, relu, dropout, pad, conv, norm]: the second
        # conv moves from index 5 to 6, so here the tensors do tell.
        dropout = f"model.{blocks[0]}.conv_block.6.weight" in sd
        ngf, in_ch = int(first.shape[0]), int(first.shape[1])
        notes.append(f"{name} (from {len(blocks)} residual blocks), ngf={ngf}, norm={norm}, "
                     f"dropout={dropout} (from the tensors)")
    else:
        raise ModelLoadError("not a pix2pix U-Net or ResNet generator state dict (no "
                             "model.model.0.weight or model.N.conv_block.* tensors)")
    if norm is None:
        raise ModelLoadError(
            "no normalisation tensors and no convolution biases: the official code's norm 'none' "
            "(bias-free convolutions) has no equivalent here")
    return GeneratorSpec(name, ngf=ngf, norm=norm, dropout=dropout, in_channels=in_ch,
                         out_channels=out_ch), notes


def _official_size(spec: GeneratorSpec) -> int:
    return spec.size_multiple if spec.generator.startswith("unet_") else 256


def load_generator_file(
    path: str | Path,
    *,
    map_location: str | torch.device = "cpu",
    netG: str | None = None,
    norm: str | None = None,
    dropout: bool | None = None,
) -> LoadedGenerator:
    """Load any generator we know: a run folder, ``generator.pt``, a full training checkpoint or
    an official state dict. ``netG``/``norm``/``dropout`` replace what is inferred from an
    official file; for our files, which store them, a different value is a ``ConfigError``.

    Raises ``ModelLoadError`` (a ``CheckpointError``) naming the file and the reason.
    """
    for key, value, allowed in (("netG", netG, GENERATORS), ("norm", norm, ("batch", "instance", "none"))):
        if value is not None and value not in allowed:
            raise ConfigError(f"--{key}: expected one of {', '.join(allowed)}, got {value!r}")
    resolved = resolve_model_path(path)
    payload = read_weights(resolved, what="PyTorch weights file", mmap=True, error=ModelLoadError)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt in (GENERATOR_FORMAT, CHECKPOINT_FORMAT):
        del payload  # models.weights owns (and verifies) our formats
        G, info = load_generator(resolved, map_location=map_location)
        cfg = info.get("config") or {}
        stored = dict(info.get("model") or {"generator": cfg["generator"], "ngf": cfg["ngf"],
                                            "norm": cfg["norm"], "dropout": cfg["dropout"]})
        spec = GeneratorSpec(**stored)
        for key, attr, value in (("netG", "generator", netG), ("norm", "norm", norm),
                                 ("dropout", "dropout", dropout)):
            if value is not None and value != getattr(spec, attr):
                raise ConfigError(f"--{key} {value}: {resolved} stores {attr}={getattr(spec, attr)!r}; "
                                  f"drop --{key} (it is only for official state dicts)")
        kind = GENERATOR_FILE if fmt == GENERATOR_FORMAT else CHECKPOINT
        return LoadedGenerator(model=G, spec=spec, kind=kind, path=resolved, size=int(info["size"]),
                               direction=info.get("direction"), eval_mode=info["eval_mode"], info=info)
    if not _is_state_dict(payload):
        raise ModelLoadError(f"{resolved}: neither a generator file, a training checkpoint nor a "
                             "state dict of tensors (an official latest_net_G.pth)")
    _check_finite(payload, resolved)
    try:
        spec, notes = infer_official_spec(payload)
    except ModelLoadError as e:
        if netG is None or norm is None:
            raise ModelLoadError(f"{resolved}: cannot infer the architecture: {e}; "
                                 "give --netG and --norm") from e
        spec, notes = GeneratorSpec(netG, norm=norm), []
    given = {k: v for k, v in (("generator", netG), ("norm", norm), ("dropout", dropout)) if v is not None}
    if given:
        spec = GeneratorSpec(**{**spec.__dict__, **given})
        notes.append("from flags: " + ", ".join(f"{k}={v}" for k, v in given.items()))
    G = spec.build()
    try:
        load_official_generator(G, payload)
    except Pix2PixError as e:
        raise ModelLoadError(f"{resolved} does not fit {spec.generator} ngf={spec.ngf} "
                             f"norm={spec.norm}: {e}") from e
    size = _official_size(spec)
    notes.append(f"size={size}: the architecture's natural training size (not stored in the file)")
    notes.append(f"test-time mode {OFFICIAL_EVAL_MODE}: the official test.py default without --eval")
    return LoadedGenerator(model=G.to(map_location), spec=spec, kind=OFFICIAL, path=resolved,
                           size=size, direction=None, eval_mode=OFFICIAL_EVAL_MODE, notes=notes)


def state_dict_of(path: str | Path) -> dict[str, torch.Tensor]:
    """The generator weights in any file we know (ours or official), without building a model."""
    resolved = resolve_model_path(path)
    payload = read_weights(resolved, what="PyTorch weights file", mmap=True, error=ModelLoadError)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    key = {CHECKPOINT_FORMAT: "G", GENERATOR_FORMAT: "state_dict"}.get(fmt)
    if key:
        verify_payload(payload, resolved, finite=(key,))  # ours carry a checksum
    else:
        _check_finite(payload, resolved)
    sd = payload[key] if key else payload
    if not _is_state_dict(sd):
        raise ModelLoadError(f"{resolved}: no generator weights in it")
    return sd


def _check_finite(sd: Any, path: Path) -> None:
    # An official file has no checksum; NaN/Inf weights are at least caught before they turn
    # every output black.
    if _is_state_dict(sd):
        verify_payload({"weights": dict(sd)}, path, finite=("weights",))


def load_weights_into(G: nn.Module, path: str | Path, *, what: str = "init_generator") -> None:
    """Fill ``G`` in place from any generator file (to fine-tune it); every tensor must fit.

    The error names ``what``, the file and every key that does not fit.
    """
    try:
        sd = state_dict_of(path)
    except ModelLoadError as e:
        raise ModelLoadError(f"{what}: {e}") from e
    try:
        load_official_generator(G, sd)
    except Pix2PixError as e:
        raise ModelLoadError(f"{what}: {path} does not fit this generator: {e}") from e
