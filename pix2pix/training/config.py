"""The training configuration: one frozen dataclass, validated when made.

Defaults are the paper's (Isola et al. 2017, and the official PyTorch code where the paper is
silent). ``TrainConfig.from_dict`` is how params.yaml's ``train`` section, the flow and the CLI
all build it, so every entry point gets the same checks and messages naming the key::

    cfg = TrainConfig.from_dict({"lr": 1e-4, "n_epochs": 50}, preset="small")
    cfg = load_train_config("params.yaml", section="train", dataset_size=512)  # crop 512, unet_512
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.errors import ConfigError
from pix2pix.params import check_field_types

GAN_MODES = ("vanilla", "lsgan")
DIRECTIONS = ("AtoB", "BtoA")
EVAL_MODES = ("train", "eval")
NORMS = ("batch", "instance", "none")
D_RECEPTIVE_FIELDS = (1, 16, 70, 286)
AMP_MODES = ("auto", "bf16", "fp16", "off")
ADAM_IMPLS = ("fused", "foreach")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")

# Keys that decide how a run executes but not what it computes (on a given device), plus the
# epoch counts so a finished run can be extended. Everything else is the "resume key": a
# checkpoint whose key differs from the current run's is not resumed silently.
RUNTIME_KEYS = (
    "n_epochs",
    "n_epochs_decay",
    "num_workers",
    "num_threads",
    "device",
    "compile",
    "adam",
    "memory_format",
    "in_memory_mb",
    "keep_last",
    "checkpoint_every",
    "sample_every",
    "num_samples",
    "log_every",
    "val_every",
    "val_max_images",
    "allow_resize",
)

# Where a train setting is given, for the type errors (pix2pix.params.check_field_types).
_WHERE = "the `train:` section of --params, --set KEY=VALUE or its `pix2pix train` flag"

# Keys renamed to the field's terms; old params files and checkpoints still use the old names.
RENAMED_KEYS = {"size": "crop_size"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how pix2pix is trained. Defaults follow the paper.

    ``crop_size`` is the training crop (and the U-Net input side; the official code's
    ``--crop_size``, formerly ``size`` here); ``load_size`` the side both halves are resized to
    before the random crop (0 = ``round(crop_size * 286 / 256)``, the paper's 286 for 256).
    ``from_dict(..., dataset_size=S)`` takes ``crop_size`` (and ``unet_S``) from the dataset
    unless given; a ``crop_size`` other than the dataset's resizes every image and is refused by
    ``check_dataset_size`` unless ``allow_resize``. ``eval_mode`` chooses how G runs for
    validation, samples and inference:
    ``"train"`` = dropout on and BatchNorm with the batch's statistics, as in the paper;
    ``"eval"`` = dropout off and running statistics (the official code's ``--eval``).
    """

    # networks
    generator: str = "unet_256"
    ngf: int = 64
    ndf: int = 64
    norm: str = "batch"
    dropout: bool = True
    d_receptive_field: int = 70
    init_std: float = 0.02
    # fine-tuning: start G from these weights (an official latest_net_G.pth or a generator.pt)
    init_generator: str = ""
    # objective
    gan_mode: str = "vanilla"
    lambda_l1: float = 100.0
    # optimisation
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # "fused": one kernel for all parameters (faster); "foreach": torch's default Adam, as the
    # official code runs it (bit-identical steps). They differ by float rounding: docs/training.md.
    adam: str = "fused"
    n_epochs: int = 100
    n_epochs_decay: int = 100
    batch_size: int = 1
    seed: int = 0
    # data
    crop_size: int = 256
    load_size: int = 0
    allow_resize: bool = False  # train at a crop_size other than the dataset's (resizing it)
    flip: bool = True
    direction: str = "AtoB"
    eval_mode: str = "train"
    # execution (RUNTIME_KEYS: not part of the resume key)
    num_workers: int = 2
    num_threads: int = 0
    in_memory_mb: int = 1024
    device: str = "auto"
    # auto: bf16 autocast on CUDA (fp16 + GradScaler where bf16 is missing), fp32 on CPU.
    # bf16/fp16 on CPU run CPU autocast: slow on most CPUs, there to exercise the CUDA paths.
    amp: str = "auto"
    memory_format: str = "auto"  # auto: channels_last on CUDA, contiguous on CPU
    compile: bool = False
    sync_bn: bool = False
    keep_last: int = 3
    checkpoint_every: int = 0
    sample_every: int = 200
    num_samples: int = 4
    log_every: int = 10
    val_every: int = 1
    val_max_images: int = 200

    def __post_init__(self) -> None:
        check_field_types(self, _WHERE)
        if self.load_size == 0:
            # Resolved here, once, so config.json and checkpoints show the value actually used.
            object.__setattr__(self, "load_size", round(self.crop_size * 286 / 256))
        _validate(self)

    @property
    def size(self) -> int:
        """Deprecated name of ``crop_size`` (kept so old code reading ``cfg.size`` works)."""
        return self.crop_size

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None, *, preset: str = "paper",
                  dataset_size: int | None = None) -> TrainConfig:
        """Preset defaults overlaid with ``values``; unknown keys raise ``ConfigError``.

        ``dataset_size`` (the side of the dataset's images, ``pix2pix.dataset.image_size``):
        ``crop_size`` defaults to it, ``load_size`` to the paper's jitter scaled
        (``round(S * 286 / 256)``: 143 for 128, 572 for 512) and ``generator`` to ``unet_S``
        when that exists; values given explicitly are kept (``check_dataset_size`` judges them).
        The old key ``size`` is read as ``crop_size`` with a ``FutureWarning``.
        """
        if preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        old_names = [k for k in RENAMED_KEYS if k in (values or {})]
        values = upgrade_keys(dict(values or {}), warn=True)
        if dataset_size is not None:
            given = {**PRESETS[preset], **values}
            if "crop_size" not in given:
                values["crop_size"] = dataset_size
            if "generator" not in given and f"unet_{values.get('crop_size', dataset_size)}" in _unets():
                values["generator"] = f"unet_{values.get('crop_size', dataset_size)}"
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: unknown train config key"
                + (f"s {unknown}" if len(unknown) > 1 else "")
                + f"; valid keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**{**PRESETS[preset], **values})
        except ConfigError as e:
            # Name the key as the user spelled it (an old params file says `size`).
            for old in old_names:
                new = RENAMED_KEYS[old]
                if str(e).startswith(f"{new}:"):
                    raise ConfigError(f"{old}:{str(e)[len(new) + 1:]} (`{old}` is now `{new}`)") from e
            raise

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (loadable with ``torch.load(weights_only=True)`` and JSON)."""
        return dataclasses.asdict(self)

    def resume_key(self) -> dict[str, Any]:
        """The values a checkpoint must share with this run to be resumed."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_KEYS}

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay


# "small": the demo preset. Networks 1/4 as wide (≈1/16 of the FLOPs, ≈10 img/s at 256 on 2
# CPU cores) and 80 epochs, so ~10 images at 256 train in about 1.5 minutes (800 steps).
# Enough to see the mapping being learned, not a quality setting.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {
        "ngf": 16,
        "ndf": 16,
        "n_epochs": 40,
        "n_epochs_decay": 40,
        "sample_every": 100,
    },
}


def load_train_config(
    path: str | Path, *, section: str = "train", preset: str = "paper", overrides: dict | None = None,
    dataset_size: int | None = None,
) -> TrainConfig:
    """Read ``section`` of a YAML file (e.g. params.yaml) into a ``TrainConfig``."""
    from pix2pix.params import read_section

    data = upgrade_keys(dict(read_section(path, section)), warn=True)
    return TrainConfig.from_dict({**data, **upgrade_keys(dict(overrides or {}), warn=True)},
                                 preset=preset, dataset_size=dataset_size)


def upgrade_keys(values: dict[str, Any], *, warn: bool = False) -> dict[str, Any]:
    """Rename old config keys (``size`` → ``crop_size``) in place and return ``values``.

    Used for params files, overrides and the configs stored in older checkpoints. Both names at
    once is a ``ConfigError``; ``warn`` emits a ``FutureWarning`` naming the new key.
    """
    import warnings

    for old, new in RENAMED_KEYS.items():
        if old not in values:
            continue
        if new in values and values[new] != values[old]:
            raise ConfigError(f"{old}: renamed to {new}; give only {new} (got {old}={values[old]!r} "
                              f"and {new}={values[new]!r})")
        if warn:
            warnings.warn(f"train config key {old!r} is now {new!r} (the official code's name); "
                          f"rename it in your params/--set", FutureWarning, stacklevel=3)
        values[new] = values.pop(old)
    return values


def check_dataset_size(cfg: TrainConfig, dataset_size: int | None, where: str) -> None:
    """Refuse a ``crop_size`` that would silently resize every image of the dataset.

    ``dataset_size`` is the side of the dataset's A and B (None: unknown, nothing to check);
    ``where`` names the dataset in the message. ``allow_resize`` lets it through.
    """
    if dataset_size is None or cfg.crop_size == dataset_size or cfg.allow_resize:
        return
    way = "down" if cfg.crop_size < dataset_size else "up"
    raise ConfigError(
        f"crop_size: {where} holds {dataset_size}x{dataset_size} images but crop_size is "
        f"{cfg.crop_size}: every image would be {way}scaled. Drop --crop-size to train at "
        f"{dataset_size} (pick the generator with --generator, e.g. unet_{dataset_size}), "
        f"or pass --allow-resize (allow_resize: true) to resize on purpose")


def _unets() -> tuple[str, ...]:
    from pix2pix.models import GENERATORS

    return tuple(g for g in GENERATORS if g.startswith("unet_"))


def _choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {list(choices)}, got {value!r}")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}: must be >= {low}, got {value!r}")


def _validate(cfg: TrainConfig) -> None:
    from pix2pix.models import GENERATORS, check_size_for_generator

    _choice("generator", cfg.generator, tuple(GENERATORS))
    _choice("norm", cfg.norm, NORMS)
    _choice("d_receptive_field", cfg.d_receptive_field, D_RECEPTIVE_FIELDS)
    _choice("gan_mode", cfg.gan_mode, GAN_MODES)
    _choice("direction", cfg.direction, DIRECTIONS)
    _choice("eval_mode", cfg.eval_mode, EVAL_MODES)
    _choice("amp", cfg.amp, AMP_MODES)
    _choice("adam", cfg.adam, ADAM_IMPLS)
    _choice("memory_format", cfg.memory_format, MEMORY_FORMATS)
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    for key in ("ngf", "ndf", "batch_size", "crop_size", "load_size", "num_samples", "log_every"):
        _at_least(key, getattr(cfg, key), 1)
    for key in ("n_epochs", "n_epochs_decay", "num_workers", "num_threads", "in_memory_mb",
                "checkpoint_every", "sample_every", "val_every", "val_max_images", "lambda_l1"):
        _at_least(key, getattr(cfg, key), 0)
    _at_least("keep_last", cfg.keep_last, 1)
    if cfg.total_epochs < 1:
        raise ConfigError("n_epochs: n_epochs + n_epochs_decay must be at least 1, got 0")
    if not cfg.lr > 0:
        raise ConfigError(f"lr: must be > 0, got {cfg.lr!r}")
    for key in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: must be in [0, 1), got {getattr(cfg, key)!r}")
    if not cfg.init_std > 0:
        raise ConfigError(f"init_std: must be > 0, got {cfg.init_std!r}")
    if cfg.load_size < cfg.crop_size:
        raise ConfigError(
            f"load_size: must be >= crop_size (the random crop is taken from the resized image), "
            f"got load_size={cfg.load_size} < crop_size={cfg.crop_size}"
        )
    try:
        check_size_for_generator(cfg.generator, cfg.crop_size)
    except ValueError as e:
        raise ConfigError(f"crop_size: {e}") from e


def preset_for_device(device: str = "auto") -> tuple[str, str]:
    """The preset a run that names none should use, and why: `paper` where a CUDA device will
    train (hours), `small` on a CPU, where the paper's 200 epochs at width 64 take days."""
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "paper", f"a CUDA device ({torch.cuda.get_device_name(0) if torch.cuda.is_available() else device})"
    return "small", "no CUDA device: the paper preset would take days on a CPU; give preset=paper to insist"
