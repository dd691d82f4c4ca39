"""pix2pix networks: generators, discriminators, init and official-checkpoint loading.

Example::

    from pix2pix.models import build_generator, check_size_for_generator, init_weights
    from pix2pix.models import patch_discriminator_for

    check_size_for_generator("unet_256", 256)          # ValueError with the working sizes
    G = init_weights(build_generator("unet_256"))      # build, then init ...
    D = init_weights(patch_discriminator_for(70, in_channels=6))
    G, D = G.to(device), D.to(device)                  # ... then move

Families live one per file (``unet.py``, ``resnet.py``, ``patchgan.py``); this module holds
the explicit name -> builder table and the size checks that go with it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pix2pix.errors import ConfigError
from pix2pix.models.common import NORM_KINDS, count_parameters, init_weights, make_norm
from pix2pix.models.official import (
    OfficialCheckpointError,
    load_official_discriminator,
    load_official_generator,
)
from pix2pix.models.patchgan import (
    DISCRIMINATORS,
    PatchDiscriminator,
    PixelDiscriminator,
    patch_discriminator_for,
    patch_receptive_field,
)
from pix2pix.models.resnet import ResnetGenerator
from pix2pix.models.unet import UNetGenerator, unet_depth_for_size

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "NORM_KINDS",
    "OfficialCheckpointError",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResnetGenerator",
    "UNetGenerator",
    "build_generator",
    "check_size_for_generator",
    "count_parameters",
    "init_weights",
    "load_official_discriminator",
    "load_official_generator",
    "make_norm",
    "patch_discriminator_for",
    "patch_receptive_field",
    "unet_depth_for_size",
]


def _unet(num_downs: int) -> Callable[..., nn.Module]:
    def build(**kw) -> nn.Module:
        return UNetGenerator(num_downs=num_downs, **kw)

    return build


def _resnet(n_blocks: int) -> Callable[..., nn.Module]:
    def build(**kw) -> nn.Module:
        return ResnetGenerator(n_blocks=n_blocks, **kw)

    return build


# Name -> builder taking (in_channels, out_channels, ngf, norm, dropout) as keywords. Names are
# the official ``--netG`` values so configs and checkpoints read the same in both projects.
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet_128": _unet(7),
    "unet_256": _unet(8),
    "unet_512": _unet(9),
    "resnet_6blocks": _resnet(6),
    "resnet_9blocks": _resnet(9),
}

# Side lengths must be multiples of these (2**downsamplings).
_SIZE_MULTIPLE: dict[str, int] = {
    "unet_128": 2**7,
    "unet_256": 2**8,
    "unet_512": 2**9,
    "resnet_6blocks": 4,
    "resnet_9blocks": 4,
}


def _check_name(name: str) -> None:
    if name not in GENERATORS:
        raise ConfigError(f"unknown generator {name!r}; valid names: {', '.join(GENERATORS)}")


def build_generator(
    name: str,
    *,
    ngf: int = 64,
    norm: str = "batch",
    dropout: bool = True,
    in_channels: int = 3,
    out_channels: int = 3,
) -> nn.Module:
    """Build generator ``name`` (a key of :data:`GENERATORS`) with PyTorch's default init.

    ``dropout=True`` is the pix2pix default for every generator (the official code's
    ``--no_dropout`` off). Call :func:`init_weights` afterwards for the paper's init.
    """
    _check_name(name)
    return GENERATORS[name](
        in_channels=in_channels, out_channels=out_channels, ngf=ngf, norm=norm, dropout=dropout
    )


def check_size_for_generator(name: str, size: int) -> None:
    """Raise ``ConfigError`` (a ``ValueError``) unless ``size``×``size`` images fit ``name``.

    U-Nets need sides that are multiples of 2**num_downs (``unet_256``: 256, 512, ...);
    ResNet generators multiples of 4. The message names sizes that work.
    """
    _check_name(name)
    multiple = _SIZE_MULTIPLE[name]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % multiple:
        examples = ", ".join(str(multiple * k) for k in (1, 2))
        hint = ""
        if name.startswith("unet_") and isinstance(size, int) and size > 0:
            fits = [n for n, m in _SIZE_MULTIPLE.items() if n.startswith("unet_") and size % m == 0]
            if fits:
                hint = f"; {', '.join(fits)} fits {size}"
        raise ConfigError(
            f"{name} needs image sides that are multiples of {multiple} "
            f"(e.g. {examples}); got {size!r}{hint}"
        )
