"""The dataset builder's configuration: one frozen dataclass, validated when made.

`BuildConfig.from_dict` is how params.yaml sections, flow parameters and the CLI all build it,
so every entry point gets the same checks and the same messages (naming the key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pix2pix.errors import ConfigError
from pix2pix.imageio import DEFAULT_MAX_PIXELS
from pix2pix.ops import FIT_POLICIES, OPS

SOURCE_TYPES = ("auto", "folder", "paired", "ab", "archive")
SPLITS = ("train", "val", "test")
IMAGE_FORMATS = ("jpg", "png")
# Keys that change how or where a build runs but never what it writes; left out of dataset.json
# so the output is byte-identical whatever their values (and wherever it is written).
EXECUTION_KEYS = ("out", "workers", "overwrite", "progress")


def _color(key: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, str):
        parts = value.replace("#", "").strip()
        if len(parts) == 6 and all(c in "0123456789abcdefABCDEF" for c in parts):
            return tuple(int(parts[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
        value = [p for p in value.split(",") if p.strip()]
    try:
        rgb = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ConfigError(f"{key}: expected an RGB colour like 255,255,255 or #ffffff, got {value!r}")
    return rgb  # type: ignore[return-value]


def parse_split(value: Any) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' or a 3-sequence -> fractions that sum to 1."""
    if isinstance(value, str):
        value = value.split(",")
    try:
        parts = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        raise ConfigError(
            f"split: expected three non-negative fractions train,val,test summing to 1 "
            f"(e.g. 0.8,0.1,0.1), got {value!r}"
        )
    return parts  # type: ignore[return-value]


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
    preview_per_split: int = 4
    workers: int = 1
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here, then never again
        set_(self, "source", str(self.source))
        set_(self, "out", str(self.out))
        set_(self, "pad_color", _color("pad_color", self.pad_color))
        set_(self, "inpaint_fill", _color("inpaint_fill", self.inpaint_fill))
        set_(self, "split", parse_split(self.split))
        choices = {
            "source_type": SOURCE_TYPES,
            "op": OPS,
            "fit": FIT_POLICIES,
            "image_format": IMAGE_FORMATS,
            "inpaint_position": ("center", "random"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not isinstance(self.size, int) or not 16 <= self.size <= 4096 or self.size % 8:
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
        if self.workers < 1:
            raise ConfigError(f"workers: expected 1 or more processes, got {self.workers!r}")
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
