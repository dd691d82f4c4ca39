"""The dataset builder's configuration: one frozen dataclass, validated when made.

`BuildConfig.from_dict` is how params.yaml sections, flow parameters and the CLI all build it,
so every entry point gets the same checks and the same messages (naming the key).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from pix2pix.dataset import SPLITS  # noqa: F401 - the contract owns the split names
from pix2pix.errors import ConfigError
from pix2pix.imageio import DEFAULT_MAX_PIXELS
from pix2pix.params import check_field_types
from pix2pix.prepare.ops import FIT_POLICIES, OPS

SOURCE_TYPES = ("auto", "folder", "paired", "ab", "archive")
SMALL_IMAGE_POLICIES = ("reject", "warn")
IMAGE_FORMATS = ("jpg", "png")
# Keys that change how or where a build runs but never what it writes; left out of dataset.json
# so the output is byte-identical whatever their values (and wherever it is written).
EXECUTION_KEYS = ("out", "workers", "overwrite", "progress")


def _color(key: str, value: Any) -> Any:
    """'255,255,255' or '#ffffff' -> (255, 255, 255); other values are left to the type check."""
    if not isinstance(value, str):
        return value
    text = value.replace("#", "").strip()
    if len(text) == 6 and all(c in "0123456789abcdefABCDEF" for c in text):
        return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
    try:
        rgb = tuple(int(p) for p in value.split(",") if p.strip())
    except ValueError:
        rgb = ()
    if len(rgb) != 3:
        raise ConfigError(f"{key}: expected an RGB colour like 255,255,255 or #ffffff, got {value!r}")
    return rgb


def _check_color(key: str, rgb: tuple[int, int, int]) -> None:
    if not all(0 <= v <= 255 for v in rgb):
        raise ConfigError(f"{key}: expected an RGB colour like 255,255,255 or #ffffff, got {list(rgb)!r}")


def parse_split(value: Any) -> Any:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); other values are left to the type check."""
    if not isinstance(value, str):
        return value
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ConfigError(f"split: {_SPLIT_RULE}, got {value!r}")
    return parts


_SPLIT_RULE = "expected three non-negative fractions train,val,test summing to 1 (e.g. 0.8,0.1,0.1)"
# Where a build setting is given, for the type errors (pix2pix.params.check_field_types).
_WHERE = "the `build:` section of --params, its `pix2pix build` flag or the flow's --option KEY=VALUE"


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what `build_dataset` writes."""

    source: str
    out: str
    source_type: str = "auto"
    op: str = "inpaint"
    size: int = 256
    fit: str = "crop"
    pad_color: tuple[int, int, int] = (255, 255, 255)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    resplit: bool = False
    swap: bool = False
    image_format: str = "jpg"
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    inpaint_fraction: float = 1 / 3
    inpaint_fill: tuple[int, int, int] = (255, 255, 255)
    inpaint_position: str = "center"
    edge_sigma: float = 0.33
    edge_min_component: int = 5
    near_duplicate_bits: int = 4
    # Quality filters (docs/dataset-format.md): a B image whose 1st..99th percentile spread is
    # under `min_spread` in every channel is near-blank; a source whose fitted side is under
    # `min_side` (default size/2: enlarged more than 2x) is rejected, or kept with a warning.
    min_spread: int = 10
    min_side: int | None = None
    small_images: str = "reject"
    preview_per_split: int = 4
    # Single photos: 0 fits each photo to one size×size pair (`fit`); N >= 1 cuts N size×size
    # crops per photo at native resolution instead (positions from seed + source path), ids
    # `<id>-c<k>`, all crops of a photo in its split. More pairs per photo, no detail lost.
    crops_per_image: int = 0
    workers: int = 1
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here, then never again
        for key in ("source", "out"):
            if isinstance(getattr(self, key), os.PathLike):
                set_(self, key, os.fspath(getattr(self, key)))
        # The text forms first ('0,0,0', '#ffffff', '0.8,0.1,0.1'), then every value against its
        # field's type, before any check below compares or computes with it.
        set_(self, "pad_color", _color("pad_color", self.pad_color))
        set_(self, "inpaint_fill", _color("inpaint_fill", self.inpaint_fill))
        set_(self, "split", parse_split(self.split))
        check_field_types(self, _WHERE)
        _check_color("pad_color", self.pad_color)
        _check_color("inpaint_fill", self.inpaint_fill)
        if any(p < 0 for p in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise ConfigError(f"split: {_SPLIT_RULE}, got {list(self.split)!r}")
        choices = {
            "source_type": SOURCE_TYPES,
            "op": OPS,
            "fit": FIT_POLICIES,
            "image_format": IMAGE_FORMATS,
            "inpaint_position": ("center", "random"),
            "small_images": SMALL_IMAGE_POLICIES,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not 16 <= self.size <= 4096 or self.size % 8:
            raise ConfigError(
                f"size: expected a multiple of 8 between 16 and 4096 (pix2pix uses 128, 256, 512 "
                f"or 1024), got {self.size!r}"
            )
        if not 0 < self.inpaint_fraction < 1:
            raise ConfigError(
                f"inpaint_fraction: expected a fraction of each side in (0, 1), got {self.inpaint_fraction!r}"
            )
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality: expected a JPEG quality 1..100, got {self.quality!r}")
        if self.max_pixels < 1:
            raise ConfigError(f"max_pixels: expected a positive pixel count, got {self.max_pixels!r}")
        if not 0 <= self.crops_per_image <= 1000:
            raise ConfigError(
                "crops_per_image: expected 0 (one fitted pair per photo) or 1..1000 crops, "
                f"got {self.crops_per_image!r}"
            )
        if self.workers < 1:
            raise ConfigError(f"workers: expected 1 or more processes, got {self.workers!r}")
        if not 0 <= self.min_spread <= 255:
            raise ConfigError(
                f"min_spread: expected 0..255 (0 keeps near-blank images), got {self.min_spread!r}"
            )
        if self.min_side is not None and self.min_side < 0:
            raise ConfigError(
                f"min_side: expected a side in pixels (0 accepts any size; default size/2), got {self.min_side!r}"
            )
        if not 0 <= self.near_duplicate_bits <= 16:
            raise ConfigError(f"near_duplicate_bits: expected 0..16, got {self.near_duplicate_bits!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BuildConfig:
        """Build from a plain mapping (params.yaml, flow parameters); unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown build setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        return cls(**values)

    @property
    def min_source_side(self) -> int:
        """Smallest accepted source side: `min_side`, or by default half of `size` (at most 2x enlargement)."""
        return self.size // 2 if self.min_side is None else self.min_side

    def to_dict(self, *, for_output: bool = False) -> dict[str, Any]:
        """Plain JSON-able values; `for_output` drops the keys that do not change the output."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        if for_output:
            for k in EXECUTION_KEYS:
                d.pop(k, None)
        return d
