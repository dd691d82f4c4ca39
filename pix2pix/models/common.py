"""Pieces shared by every network family: normalization layers, weight init, parameter counts.

Example::

    from pix2pix.models import build_generator, init_weights

    G = build_generator("unet_256", norm="batch")   # 1. build (PyTorch default init)
    init_weights(G, std=0.02)                        # 2. init as in the paper
    G = G.to(device)                                 # 3. move
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NORM_KINDS = ("batch", "instance", "none")


def _batch_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)


def _instance_norm(channels: int) -> nn.Module:
    # Same settings as the official code: no affine parameters and no running statistics,
    # so an instance-norm network has no norm entries in its state dict at all.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def _no_norm(channels: int) -> nn.Module:
    # An Identity keeps the position in the nn.Sequential, so parameter names (model.N.*)
    # stay the same whichever norm is chosen.
    return nn.Identity()


NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "batch": _batch_norm,
    "instance": _instance_norm,
    "none": _no_norm,
}


def check_norm(norm: str) -> None:
    """Raise ``ValueError`` unless ``norm`` is one of ``"batch"``, ``"instance"``, ``"none"``."""
    if norm not in NORM_LAYERS:
        raise ValueError(f"norm must be one of {sorted(NORM_LAYERS)}; got {norm!r}")


def make_norm(norm: str, channels: int) -> nn.Module:
    """A 2-D normalization layer over ``channels`` channels (``nn.Identity`` for ``"none"``)."""
    check_norm(norm)
    return NORM_LAYERS[norm](channels)


def conv_bias(norm: str) -> bool:
    """Whether a convolution directly followed by a ``norm`` layer should have a bias.

    BatchNorm's learned shift makes a bias redundant (the official code omits it, and official
    checkpoints have no such tensor). InstanceNorm here has no affine shift, and with no norm
    nothing else provides an offset, so both keep the bias. The official code also drops the
    bias for ``"none"`` (its check only looks for InstanceNorm); we deliberately do not, so
    official ``norm none`` checkpoints are the one case that will not load.
    """
    check_norm(norm)
    return norm != "batch"


_WEIGHTED_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
_AFFINE_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)


@torch.no_grad()
def init_weights(
    module: nn.Module, *, std: float = 0.02, generator: torch.Generator | None = None
) -> nn.Module:
    """Initialize ``module`` in place as in the paper and return it.

    Convolution / transposed-convolution / linear weights ~ N(0, std), their biases 0;
    affine norm weights (BatchNorm, affine InstanceNorm) ~ N(1, std), their biases 0.
    Running statistics are left alone. Pass ``generator`` for an init that does not touch
    (or depend on) the global RNG.
    """
    for m in module.modules():
        if isinstance(m, _WEIGHTED_LAYERS):
            nn.init.normal_(m.weight, 0.0, std, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _AFFINE_NORMS) and m.affine:
            nn.init.normal_(m.weight, 1.0, std, generator=generator)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BatchNorm running stats excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
