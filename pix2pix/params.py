"""One stage's settings: its params.yaml section (what DVC tracks), --set values, flags, paths.

The one resolution rule of every command and flow entry point (`stage_values`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pix2pix.errors import ConfigError


def read_section(path: str | Path, section: str) -> dict[str, Any]:
    """The mapping under `section:` in the YAML file at `path`; errors name the file and section."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read params file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or section not in data:
        found = ", ".join(sorted(data)) if isinstance(data, dict) else "no mapping"
        raise ConfigError(f"{path}: no `{section}:` section (found: {found or 'nothing'})")
    values = data[section] or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: section `{section}:` must be a mapping, got {type(values).__name__}")
    return dict(values)


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """`["lr=0.0001", "flip=false"]` -> {"lr": 0.0001, "flip": False} (values read as YAML)."""
    import yaml

    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return values


def stage_values(params: str | Path | None, section: str, *, set_items: Sequence[str] = (),
                 flags: Mapping[str, Any] | None = None, positional: Mapping[str, Any] | None = None,
                 required: Sequence[str] = ()) -> dict[str, Any]:
    """The settings of one stage run, the one rule of every command and `python -m flows.*`:

        params file section  <  --set KEY=VALUE  <  flags given  <  positional paths

    `positional` values that are None were not given; `required` keys must end up set, else a
    ConfigError says where to give them.
    """
    values = read_section(params, section) if params else {}
    values.update(parse_set(set_items))
    values.update(flags or {})
    values.update({k: v for k, v in (positional or {}).items() if v is not None})
    for key in required:
        if values.get(key) is None:
            raise ConfigError(f"{key.upper()} is missing: give it on the command line or as `{key}` in --params")
    return values


def make_config(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """A config dataclass `cls` from `values`; an unknown key is a ConfigError naming the valid ones."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)
