"""One stage's settings: its params.yaml section (what DVC tracks), --set values, flags, paths.

The one resolution rule of every command and flow entry point (`stage_values`)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
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
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def check_field_types(config: Any, where: str) -> None:
    """Check every field of the dataclass instance `config` against its declared type, before
    any other check uses it: one ConfigError naming the key, the value, the type and `where` it
    is set (e.g. "the `build:` section of --params or its flag").

    int: an integer, or a float without a fraction (256.0 -> 256), never a bool (True is an int
    in Python, and `seed: yes` is a mistake, not 1); float: any real number but a bool (stored
    as float; not nan/inf); bool: true/false only (not 0/1, not "yes"); str: a string; `X | None`: X or null;
    tuple[...]: a list or tuple whose items have those types (stored as a tuple). A frozen
    config's values are replaced by their normalised form, once, here.
    """
    hints = typing.get_type_hints(type(config))  # the annotations are strings (__future__)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        ok, normal = _conform(value, hints[f.name])
        if not ok:
            raise ConfigError(f"{f.name}: expected {_describe(hints[f.name])}, got {value!r} "
                              f"({_kind(value)}); fix it in {where}")
        if normal is not value:
            object.__setattr__(config, f.name, normal)


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` has type `hint`, its normalised form)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for option in typing.get_args(hint):
            ok, normal = _conform(value, option)
            if ok:
                return True, normal
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, value  # a bool is an int in Python; never a number here
    if hint is int:
        if isinstance(value, numbers.Integral):
            return True, int(value)
        if isinstance(value, float) and value.is_integer():
            return True, int(value)  # YAML/JSON may spell 256 as 256.0; nothing is lost
        return False, value
    if hint is float:
        if not isinstance(value, numbers.Real):
            return False, value
        try:
            number = float(value)
        except OverflowError:
            return False, value
        return math.isfinite(number), number  # .nan/.inf would slip past every range check
    if hint is str:
        return isinstance(value, str), value
    if typing.get_origin(hint) in (tuple, list):
        args = typing.get_args(hint)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return False, value
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            return False, value
        items = [_conform(v, t) for v, t in zip(value, args)]
        if not all(ok for ok, _ in items):
            return False, value
        return True, typing.get_origin(hint)(normal for _, normal in items)
    return isinstance(value, hint), value


def _describe(hint: Any) -> str:
    """A type in the words of the params file: 'an integer', 'a list of 3 numbers', ..."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             type(None): "null", list: "a list", tuple: "a list", dict: "a mapping"}
    if hint in names:
        return names[hint]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) in (tuple, list):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return "a list of " + ", ".join(_describe(a) for a in args)
    return getattr(hint, "__name__", str(hint))


def _kind(value: Any) -> str:
    """What a wrong value is, in the same words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, float) and not value.is_integer():
        return "a number with a fraction"
    return _describe(type(value))


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", bool: "true/false values", str: "strings"}.get(hint, _describe(hint))
