"""Load state dicts saved by the official PyTorch pix2pix (junyanz/pytorch-CycleGAN-and-pix2pix).

Example::

    sd = torch.load("latest_net_G.pth", map_location="cpu", weights_only=True)
    G = UNetGenerator(num_downs=8, ngf=64, norm="batch")
    load_official_generator(G, sd)

Our networks reproduce the official module trees, so the names already agree and loading is a
strict ``load_state_dict`` after three checks that turn PyTorch's generic error into one that
lists every missing, unexpected and mis-shaped key. The only tolerated gap is BatchNorm's
``num_batches_tracked``, absent from checkpoints saved before PyTorch 0.4.1; it is filled with 0
(it only matters for ``momentum=None``, which we never use).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pix2pix.errors import Pix2PixError

_DATA_PARALLEL_PREFIX = "module."
_TOLERATED_MISSING_SUFFIX = "num_batches_tracked"


class OfficialCheckpointError(Pix2PixError, ValueError):
    """A state dict that does not fit the model; the message names every offending key."""

    def __init__(
        self,
        what: str,
        *,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"state dict does not fit this {what}:"]
        if missing:
            lines.append(f"  missing from the state dict ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(
                f"  unexpected in the state dict ({len(unexpected)}): {', '.join(unexpected)}"
            )
        for key, got, want in mismatched:
            lines.append(f"  shape mismatch for {key}: state dict {list(got)}, model {list(want)}")
        lines.append(
            "  (check the architecture flags: generator name / num_downs, ngf/ndf, norm, "
            "n_layers, in/out channels)"
        )
        super().__init__("\n".join(lines))


def _strip_data_parallel(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # A model wrapped in DataParallel saves every key as "module.<name>"; the official code
    # unwraps before saving, but user-trained checkpoints often do not.
    keys = list(state_dict)
    if keys and all(k.startswith(_DATA_PARALLEL_PREFIX) for k in keys):
        return {k[len(_DATA_PARALLEL_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _load_official(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    given = _strip_data_parallel(state_dict)
    # "_metadata" is an attribute of OrderedDicts, not a key, so it is not seen here.
    ours = model.state_dict()

    missing = [k for k in ours if k not in given]
    filled = [k for k in missing if k.endswith(_TOLERATED_MISSING_SUFFIX)]
    missing = [k for k in missing if k not in filled]
    unexpected = [k for k in given if k not in ours]
    mismatched = [
        (k, tuple(given[k].shape), tuple(ours[k].shape))
        for k in ours
        if k in given and tuple(given[k].shape) != tuple(ours[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise OfficialCheckpointError(
            what, missing=missing, unexpected=unexpected, mismatched=mismatched
        )
    for k in filled:
        given[k] = torch.zeros_like(ours[k])
    model.load_state_dict(given, strict=True)


def load_official_generator(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load an official ``<epoch>_net_G.pth`` state dict into ``model`` in place.

    ``model`` must be built with the same architecture (e.g. ``UNetGenerator(num_downs=8,
    ngf=64, norm="batch")`` for the published ``*_pretrained`` pix2pix models). Every tensor
    given is used and every parameter and buffer of ``model`` is filled, else
    :class:`OfficialCheckpointError` names the keys. A ``module.`` prefix is stripped.
    """
    _load_official(model, state_dict, "generator")


def load_official_discriminator(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load an official ``<epoch>_net_D.pth`` state dict into ``model`` in place.

    E.g. ``PatchDiscriminator(in_channels=6, ndf=64, n_layers=3, norm="batch")`` for the
    official ``basic`` discriminator. Same guarantees as :func:`load_official_generator`.
    """
    _load_official(model, state_dict, "discriminator")
