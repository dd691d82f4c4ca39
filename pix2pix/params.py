"""Reading one stage's section of a params.yaml (what DVC tracks), for every entry point."""

from __future__ import annotations

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
