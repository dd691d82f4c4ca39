"""The standard pix2pix datasets: where they live and what their A and B halves mean.

    >>> from pix2pix.prepare.catalog import get_dataset, dataset_url
    >>> get_dataset("facades").natural_direction
    'BtoA'
    >>> dataset_url("maps", base_url="http://127.0.0.1:8000/d")
    'http://127.0.0.1:8000/d/maps.tar.gz'

Every archive holds one JPEG per example, A and B side by side (512×256, "A|B"), in `train/`,
`val/` and, for some, `test/`. The numbers below are from the paper's table (PAPER.md); sizes are
approximate and only used for messages and disk-space hints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from pix2pix.errors import Pix2PixError

# The older people.eecs.berkeley.edu host is dead; this is the one that serves the archives.
DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
BASE_URL_ENV = "PIX2PIX_DATASETS_URL"

Direction = Literal["AtoB", "BtoA"]


class UnknownDatasetError(Pix2PixError, ValueError):
    """A dataset name is not in `NAMED_DATASETS`; the message lists the known names."""


@dataclass(frozen=True)
class NamedDataset:
    """One standard pix2pix dataset archive.

    `a` and `b` say what the left and right halves of each image show. `natural_direction` is
    the translation the paper trains (e.g. facades: labels→photo, i.e. B→A), which is what
    `--direction` should default to for this dataset. `splits` maps split folder → image count
    as published (approximate where the source says so).
    """

    name: str
    archive: str
    splits: Mapping[str, int] = field(hash=False)
    approx_bytes: int
    a: str
    b: str
    natural_direction: Direction
    description: str
    licence: str | None = None
    # No published checksums exist for these archives; fill in once measured so downloads are
    # verified instead of trusted.
    sha256: str | None = None

    @property
    def approx_size(self) -> str:
        """Human-readable approximate archive size, e.g. "2.2 GB"."""
        size = float(self.approx_bytes)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1000 or unit == "GB":
                return f"{size:.0f} {unit}" if size >= 10 else f"{size:.1f} {unit}"
            size /= 1000
        raise AssertionError("unreachable")

    def url(self, base_url: str | None = None) -> str:
        """Archive URL under `base_url` (see `resolve_base_url` for the default)."""
        return f"{resolve_base_url(base_url)}/{self.archive}"


def _entry(
    name: str,
    splits: dict[str, int],
    approx_bytes: int,
    a: str,
    b: str,
    natural_direction: Direction,
    description: str,
    licence: str | None = None,
) -> NamedDataset:
    return NamedDataset(
        name=name,
        archive=f"{name}.tar.gz",
        splits=MappingProxyType(dict(splits)),
        approx_bytes=approx_bytes,
        a=a,
        b=b,
        natural_direction=natural_direction,
        description=description,
        licence=licence,
    )


NAMED_DATASETS: Mapping[str, NamedDataset] = MappingProxyType(
    {
        "facades": _entry(
            "facades",
            {"train": 400, "val": 100, "test": 106},
            31_000_000,
            a="photo",
            b="labels",
            natural_direction="BtoA",
            description="CMP Facades: building fronts and their architectural label maps.",
        ),
        "cityscapes": _entry(
            "cityscapes",
            {"train": 2975, "val": 500},
            113_000_000,
            a="photo",
            b="labels",
            natural_direction="BtoA",
            description="Cityscapes street scenes and their semantic label maps.",
            licence=(
                "Cityscapes is distributed under its own terms of use (non-commercial research, "
                "registration at cityscapes-dataset.com); this archive is a derived copy. Check "
                "that you may use it, then pass accept_licence=True."
            ),
        ),
        "maps": _entry(
            "maps",
            {"train": 1096, "val": 1098},
            246_000_000,
            a="aerial photo",
            b="map",
            natural_direction="AtoB",
            description="Google Maps: aerial photos of New York and the matching map tiles.",
        ),
        "edges2shoes": _entry(
            "edges2shoes",
            {"train": 49825, "val": 200},
            2_200_000_000,
            a="edges",
            b="photo",
            natural_direction="AtoB",
            description="UT Zappos50K shoe photos with HED edge maps.",
        ),
        "edges2handbags": _entry(
            "edges2handbags",
            {"train": 138567, "val": 200},
            8_600_000_000,
            a="edges",
            b="photo",
            natural_direction="AtoB",
            description="iGAN Amazon handbag photos with HED edge maps.",
        ),
        "night2day": _entry(
            "night2day",
            {"train": 17823, "val": 10, "test": 2287},
            2_000_000_000,
            a="night",
            b="day",
            natural_direction="AtoB",
            description="Transient Attributes webcams: the same scene at night and by day.",
        ),
    }
)


def resolve_base_url(base_url: str | None = None) -> str:
    """The base URL to use: the argument, else `$PIX2PIX_DATASETS_URL`, else the Berkeley host.

    A trailing slash is removed so that `f"{base}/{archive}"` never doubles it.
    """
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return base.rstrip("/")


def get_dataset(name: str) -> NamedDataset:
    """The catalog entry for `name`; `UnknownDatasetError` listing the known names otherwise."""
    try:
        return NAMED_DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(NAMED_DATASETS))
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {known}"
        ) from None


def dataset_url(name: str, base_url: str | None = None) -> str:
    """URL of the archive of the named dataset (`{base}/{name}.tar.gz`)."""
    return get_dataset(name).url(base_url)
