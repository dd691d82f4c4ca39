"""PatchGAN discriminators (paper section 3.2.2, appendix 6.1.2).

Example::

    from pix2pix.models import init_weights, patch_discriminator_for

    D = init_weights(patch_discriminator_for(70, in_channels=6))
    logits = D(torch.cat([real_A, fake_B], dim=1))     # N×1×30×30 for 256×256 inputs

Each output logit judges one receptive-field-sized patch of the (input, output) pair; the loss
averages over the map. All discriminators return raw logits (no sigmoid): use
``BCEWithLogitsLoss`` (or an LSGAN loss) on them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pix2pix.models.common import check_norm, conv_bias, make_norm


def patch_receptive_field(n_layers: int) -> int:
    """Receptive field (pixels per side) of :class:`PatchDiscriminator` with ``n_layers``.

    ``n_layers`` stride-2 4×4 convs, then two stride-1 4×4 convs: 1 -> 16, 3 -> 70, 5 -> 286.
    """
    rf = 1 + 3 + 3  # the two stride-1 4×4 convs at the top
    for _ in range(n_layers):
        rf = (rf - 1) * 2 + 4
    return rf


class PatchDiscriminator(nn.Module):
    """The official ``NLayerDiscriminator``: C64-C128-C256-C512 for ``n_layers=3`` (70×70).

    Args (keyword-only):
        in_channels: channels of the concatenated (input, output) pair; 6 for RGB->RGB.
        ndf: filters of the first conv (doubling per layer, capped at 8×ndf).
        n_layers: stride-2 layers; 1 -> 16×16, 3 -> 70×70 (paper default), 5 -> 286×286
            receptive field. For the 1×1 PixelGAN use :class:`PixelDiscriminator`.
        norm: ``"batch"``, ``"instance"`` or ``"none"``; never on the first conv.

    Contract: input N×in_channels×H×W (any H, W >= 2**n_layers * 4 or so); output
    N×1×(H/2**n_layers - 2)×(W/2**n_layers - 2) raw logits, e.g. 30×30 for 256 at n_layers 3.
    The last two convs have stride 1, as in the official code.
    """

    def __init__(
        self, *, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        check_norm(norm)
        if n_layers < 1:
            raise ValueError(
                f"n_layers must be >= 1; got {n_layers} (use PixelDiscriminator for a 1×1 "
                "receptive field)"
            )
        self.n_layers = n_layers
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last of these is the stride-1 C512
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                make_norm(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return patch_receptive_field(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×in_channels×H×W -> N×1×h×w raw logits, one per overlapping patch."""
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1×1 PatchGAN ("PixelGAN"): judges every pixel of the pair on its own.

    Same layers and names (``net.N``) as the official ``PixelDiscriminator``: 1×1 convs
    C64-C128-C1; like there, the last conv has no bias under BatchNorm.

    Contract: input N×in_channels×H×W; output N×1×H×W raw logits.
    """

    def __init__(self, *, in_channels: int = 6, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            make_norm(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    @property
    def receptive_field(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×in_channels×H×W -> N×1×H×W raw logits."""
        return self.net(x)


def _pixel(**kw) -> nn.Module:
    return PixelDiscriminator(**kw)


def _patch(n_layers: int) -> Callable[..., nn.Module]:
    def build(**kw) -> nn.Module:
        return PatchDiscriminator(n_layers=n_layers, **kw)

    return build


# Receptive field (pixels per side) -> builder; the four sizes compared in the paper (table 2).
DISCRIMINATORS: dict[int, Callable[..., nn.Module]] = {
    1: _pixel,
    16: _patch(1),
    70: _patch(3),
    286: _patch(5),
}


def patch_discriminator_for(receptive_field: int, **kw) -> nn.Module:
    """Build the discriminator with the given receptive field (1, 16, 70 or 286).

    ``kw`` (``in_channels``, ``ndf``, ``norm``) is passed to the constructor.
    """
    if receptive_field not in DISCRIMINATORS:
        raise ValueError(
            f"no discriminator with a {receptive_field}×{receptive_field} receptive field; "
            f"valid sizes: {sorted(DISCRIMINATORS)}"
        )
    return DISCRIMINATORS[receptive_field](**kw)
