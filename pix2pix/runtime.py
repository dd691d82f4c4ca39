"""The one device rule, for training, evaluation and inference.

    from pix2pix.runtime import pick_device
    pick_device("auto")      # cuda if available, else cpu
    pick_device("cuda:1")    # ConfigError when CUDA is not available
"""

from __future__ import annotations

from typing import Any

from pix2pix.errors import ConfigError

DEVICE_KINDS = ("auto", "cpu", "cuda")


def check_device_name(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (no torch import)."""
    kind, _, index = str(name).partition(":")
    if kind not in DEVICE_KINDS or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}")


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
