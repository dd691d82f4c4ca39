"""U-Net generator of pix2pix (paper section 3.1.1, appendix 6.1.1).

Example::

    from pix2pix.models import UNetGenerator, init_weights

    G = init_weights(UNetGenerator(num_downs=8))      # "unet_256"
    fake_B = G(real_A)                                 # N×3×256×256 in [-1, 1] -> same shape

The module tree deliberately reproduces the one of the official PyTorch code
(junyanz/pytorch-CycleGAN-and-pix2pix, ``UnetGenerator`` / ``UnetSkipConnectionBlock``), so
its state-dict names (``model.model.1.model.3....``) are exactly the official ones and an
official ``latest_net_G.pth`` loads with a plain ``load_state_dict``
(see :mod:`pix2pix.models.official`).
"""

from __future__ import annotations

import torch
from torch import nn

from pix2pix.models.common import check_norm, conv_bias, make_norm

MIN_NUM_DOWNS = 5  # innermost + three channel-reducing levels + outermost


def unet_depth_for_size(size: int) -> int:
    """Number of downsamplings whose 1×1 bottleneck matches a ``size``×``size`` input.

    128 -> 7 ("unet_128"), 256 -> 8 ("unet_256"), 512 -> 9 ("unet_512"); in general log2(size)
    for a power of two >= 32. A deeper-than-needed U-Net is not returned: a U-Net built for
    256 also runs on 512 (bottleneck 2×2), but the natural choice for 512 is 9 levels.
    """
    if not isinstance(size, int) or size < 2**MIN_NUM_DOWNS or size & (size - 1):
        raise ValueError(
            f"a U-Net's natural depth is defined for power-of-two sizes >= {2**MIN_NUM_DOWNS} "
            f"(e.g. 128 -> 7, 256 -> 8, 512 -> 9 downsamplings); got {size!r}"
        )
    return size.bit_length() - 1


class UNetSkipBlock(nn.Module):
    """One U-Net level: down-conv, the inner levels, up-conv, then concat with the input.

    ``kind`` is ``"outermost"`` (takes the image, ends in Tanh, no skip concat),
    ``"innermost"`` (the bottleneck, no submodule) or ``"middle"``. Layer indices inside
    ``self.model`` follow the official code so parameter names match:
    outermost ``[down_conv, sub, relu, up_conv, tanh]``;
    innermost ``[lrelu, down_conv, relu, up_conv, up_norm]``;
    middle ``[lrelu, down_conv, down_norm, sub, relu, up_conv, up_norm, (dropout)]``.
    The innermost level has no down-norm: its output is 1×1, where BatchNorm at batch size 1
    would see a single value per channel.
    """

    def __init__(
        self,
        *,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        kind: str = "middle",
        norm: str = "batch",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ("outermost", "middle", "innermost"):
            raise ValueError(f"kind must be outermost, middle or innermost; got {kind!r}")
        if (submodule is None) != (kind == "innermost"):
            raise ValueError("only the innermost block has no submodule")
        self.outermost = kind == "outermost"
        bias = conv_bias(norm)
        in_channels = outer_channels if in_channels is None else in_channels

        # The official code gives the first conv no bias under BatchNorm even though no norm
        # follows it; kept so official checkpoints (which have no such tensor) load.
        down_conv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=bias)
        if kind == "outermost":
            up_conv = nn.ConvTranspose2d(inner_channels * 2, outer_channels, 4, 2, 1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif kind == "innermost":
            up_conv = nn.ConvTranspose2d(inner_channels, outer_channels, 4, 2, 1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2, True),
                down_conv,
                nn.ReLU(True),
                up_conv,
                make_norm(norm, outer_channels),
            ]
        else:
            up_conv = nn.ConvTranspose2d(inner_channels * 2, outer_channels, 4, 2, 1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2, True),
                down_conv,
                make_norm(norm, inner_channels),
                submodule,
                nn.ReLU(True),
                up_conv,
                make_norm(norm, outer_channels),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UNetGenerator(nn.Module):
    """The pix2pix U-Net: an encoder-decoder with skip connections between mirrored levels.

    Args (keyword-only):
        in_channels: channels of the input image (3 for RGB).
        out_channels: channels of the output image.
        num_downs: number of stride-2 downsamplings; 7, 8, 9 for 128, 256, 512 inputs
            (``unet_128`` / ``unet_256`` / ``unet_512``). At least 5.
        ngf: filters of the outermost level; inner levels use 2×, 4×, then 8× (capped).
        norm: ``"batch"`` (paper), ``"instance"`` (affine-free, no running stats) or ``"none"``.
        dropout: Dropout(0.5) in the decoder; the paper's only source of noise z.

    Contract: input N×in_channels×H×W, float, in [-1, 1], with H and W multiples of
    ``2**num_downs``; output N×out_channels×H×W in [-1, 1] (Tanh). Fully convolutional: a
    ``unet_256`` also runs on 512×512.

    Dropout placement follows the official PyTorch code, not the paper: the ``num_downs - 5``
    middle blocks with ``8*ngf`` channels next to the bottleneck carry it, i.e. the decoder
    outputs at 4×4, 8×8 and 16×16 for a 256 input. The paper and the Lua code put it one
    level higher (2×2, 4×4, 8×8). We keep the official placement so that official checkpoints
    behave as they were trained.

    Test time: the paper keeps dropout on and BatchNorm in batch-statistics mode at test time
    (``model.train()``); ``model.eval()`` gives the deterministic variant. The caller chooses.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if num_downs < MIN_NUM_DOWNS:
            raise ValueError(f"num_downs must be >= {MIN_NUM_DOWNS}; got {num_downs}")
        self.num_downs = num_downs
        # Built from the bottleneck outwards, as in the official code, so the nesting (and the
        # parameter names) are identical.
        block = UNetSkipBlock(
            outer_channels=ngf * 8, inner_channels=ngf * 8, kind="innermost", norm=norm
        )
        for _ in range(num_downs - 5):
            block = UNetSkipBlock(
                outer_channels=ngf * 8,
                inner_channels=ngf * 8,
                submodule=block,
                norm=norm,
                dropout=dropout,
            )
        for outer, inner in ((ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)):
            block = UNetSkipBlock(
                outer_channels=outer, inner_channels=inner, submodule=block, norm=norm
            )
        self.model = UNetSkipBlock(
            outer_channels=out_channels,
            inner_channels=ngf,
            in_channels=in_channels,
            submodule=block,
            kind="outermost",
            norm=norm,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W in [-1, 1] -> N×out_channels×H×W in [-1, 1]."""
        multiple = 2**self.num_downs
        h, w = x.shape[-2:]
        if h % multiple or w % multiple:
            # Without this the failure is a cryptic size mismatch in torch.cat deep inside.
            raise ValueError(
                f"UNetGenerator with num_downs={self.num_downs} needs H and W that are "
                f"multiples of {multiple}; got {h}×{w} (pad or resize the input)"
            )
        return self.model(x)
