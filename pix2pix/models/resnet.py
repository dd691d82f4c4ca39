"""ResNet generator (Johnson et al. 2016), the alternative generator of the official code.

Example::

    from pix2pix.models import ResnetGenerator, init_weights

    G = init_weights(ResnetGenerator(n_blocks=9))     # "resnet_9blocks"
    fake_B = G(real_A)                                 # N×3×H×W in [-1, 1], H, W multiples of 4

Layer order and indices match the official ``ResnetGenerator`` / ``ResnetBlock`` (reflect
padding), so official state dicts load by name.
"""

from __future__ import annotations

import torch
from torch import nn

from pix2pix.models.common import check_norm, conv_bias, make_norm

N_DOWNSAMPLING = 2


class ResnetBlock(nn.Module):
    """x + [pad-conv3×3-norm-ReLU-(dropout)-pad-conv3×3-norm](x), channels and size kept."""

    def __init__(self, *, channels: int, norm: str = "batch", dropout: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            make_norm(norm, channels),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            make_norm(norm, channels),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings.

    Args (keyword-only):
        in_channels / out_channels: image channels in and out.
        ngf: filters of the first layer (4× ngf in the residual blocks).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: Dropout(0.5) inside every residual block (official ``use_dropout``).
        n_blocks: residual blocks; 6 ("resnet_6blocks", for 128) or 9 ("resnet_9blocks").

    Contract: input N×in_channels×H×W in [-1, 1] with H and W multiples of 4 (and > 3 for the
    reflect padding); output N×out_channels×H×W in [-1, 1] (Tanh).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = False,
        n_blocks: int = 9,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0; got {n_blocks}")
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            make_norm(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(N_DOWNSAMPLING):
            ch = ngf * 2**i
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias),
                make_norm(norm, ch * 2),
                nn.ReLU(True),
            ]
        ch = ngf * 2**N_DOWNSAMPLING
        layers += [ResnetBlock(channels=ch, norm=norm, dropout=dropout) for _ in range(n_blocks)]
        for i in range(N_DOWNSAMPLING):
            ch = ngf * 2 ** (N_DOWNSAMPLING - i)
            layers += [
                nn.ConvTranspose2d(
                    ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                make_norm(norm, ch // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W in [-1, 1] -> N×out_channels×H×W in [-1, 1]."""
        multiple = 2**N_DOWNSAMPLING
        h, w = x.shape[-2:]
        if h % multiple or w % multiple:
            raise ValueError(
                f"ResnetGenerator needs H and W that are multiples of {multiple}; got {h}×{w}"
            )
        return self.model(x)
