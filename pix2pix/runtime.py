"""The one device rule and the one test-time mode rule, for training, evaluation and inference.

    from pix2pix.runtime import check_eval_mode, pick_device
    pick_device("auto")      # cuda if available, else cpu
    pick_device("cuda:1")    # ConfigError when CUDA is not available
    check_eval_mode("model") # "model"; the old "checkpoint" gives "model" with a FutureWarning
"""

from __future__ import annotations

from typing import Any

from pix2pix.errors import ConfigError

DEVICE_KINDS = ("auto", "cpu", "cuda")
# How a generator runs at test time (``pix2pix evaluate`` and ``translate``): ``model`` takes the
# mode stored with the model file (generator.pt, checkpoint, or ``train`` for an official .pth,
# which stores none), as ``direction: model`` does; ``train`` / ``eval`` override it.
EVAL_MODES = ("model", "train", "eval")
# Old values, still read: evaluate called ``model`` ``checkpoint``, though the file is often no
# checkpoint (a generator.pt, an official .pth).
RENAMED_EVAL_MODES = {"checkpoint": "model"}


def check_device_name(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (no torch import)."""
    kind, _, index = str(name).partition(":")
    if kind not in DEVICE_KINDS or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}")


def check_eval_mode(value: str, *, stacklevel: int = 2) -> str:
    """The test-time mode ``value`` means (one of ``EVAL_MODES``); an old name gives its new one
    with a ``FutureWarning`` (``stacklevel`` as the caller would give ``warnings.warn``), anything
    else a ``ConfigError`` naming the choices."""
    if value in RENAMED_EVAL_MODES:
        import warnings

        new = RENAMED_EVAL_MODES[value]
        warnings.warn(f"eval_mode {value!r} is now {new!r} (as stored with the model); rename it in "
                      f"your params/--set/--eval-mode", FutureWarning, stacklevel=stacklevel + 1)
        return new
    if value not in EVAL_MODES:
        raise ConfigError(f"eval_mode: expected one of {', '.join(EVAL_MODES)}, got {value!r}")
    return value


def pick_device(name: str = "auto", *, index: int | None = None) -> Any:
    """The ``torch.device`` a ``device`` setting means.

    ``auto``: CUDA when available, else the CPU. ``cuda`` without an index takes ``index`` when
    given (a torchrun process's local GPU), else torch's current one. Raises ``ConfigError`` for
    a malformed name or for CUDA asked for on a machine without it.
    """
    import torch

    check_device_name(name)
    kind = name.split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    elif kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available")
    if kind == "cpu":
        return torch.device("cpu")
    if ":" in name:
        return torch.device(name)
    return torch.device("cuda", index) if index is not None else torch.device("cuda")
