"""Typed configuration: dataclasses filled from YAML/JSON with errors that name the field.

Every config in modelkit (run configs, model configs, taxonomy entries) goes through
:func:`from_dict`, so an unknown key or a wrong type is reported the same way everywhere:
``ConfigError: configs/text/cold.yaml: train.epochs: expected int, got 'ten'``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from .errors import ConfigError

T = TypeVar("T")



def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type ``tp`` (coercing int to float) or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if value is not None and len(options) == 1:  # Optional[X]: X's own error is the useful one
            return _convert(value, options[0], where)
        structured = [o for o in options if dataclasses.is_dataclass(o)]
        if isinstance(value, dict) and len(structured) == 1:  # a mapping can only mean the dataclass
            return from_dict(structured[0], value, where=where)
        errors = []
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, where)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {_describe(value)}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{where}: expected one of {_type_name(tp)}, got {_describe(value)}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        (item_type,) = typing.get_args(tp) or (Any,)
        return [_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_describe(value)}")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        # YAML turns `1:` into an int key; label maps want the written text.
        return {
            (str(k) if key_type is str else k): _convert(v, value_type, f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected float, got {_describe(value)}")
        # No setting means anything at NaN or infinity; `.nan` would pass every range check.
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {_describe(value)}")
        return number
    if tp is int or tp is bool or tp is str:
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            return value
        raise ConfigError(f"{where}: expected {tp.__name__}, got {_describe(value)}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating every field.

    Unknown keys, missing required keys and wrong types raise :class:`ConfigError` naming
    the dotted path of the field (prefixed by ``where``, e.g. the file name).
    """
    # A ``where`` ending in ": " names a file ("run.yaml: train.epochs"); otherwise it is a field path.
    prefix = where if where.endswith(": ") else (f"{where}." if where else "")
    where = where.removesuffix(": ")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{prefix}{key}: unknown field{hint}; known: {', '.join(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: required field is missing")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # __post_init__ range checks
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-data view of a config dataclass (JSON/YAML serialisable)."""
    return dataclasses.asdict(obj)


# No recipe nests this deep; PyYAML builds nodes recursively and would hit Python's recursion limit.
MAX_YAML_DEPTH = 100


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key written twice in one mapping (PyYAML keeps the last) and
    nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line}; first written on line {seen[key].start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text with the safe loader; syntax errors and duplicate keys name ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # safe: _StrictLoader is a SafeLoader
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: invalid YAML: {err}") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file (see :func:`parse_yaml`), reporting errors with the file name."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return parse_yaml(text, str(path))


def read_mapping(
    source: str | Path | dict[str, Any], overrides: list[str] | None = None
) -> tuple[dict[str, Any], str, Path | None]:
    """A config file's (or mapping's) top-level mapping with ``--set`` overrides applied.

    Returns ``(mapping, where, directory)``: ``where`` names the source in error messages and
    ``directory`` is the folder of the file (``None`` for a mapping), for relative paths in it.
    """
    if isinstance(source, dict):
        raw, where, directory = dict(source), "config", None
    else:
        raw, where, directory = read_yaml(source), str(source), Path(source).parent
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    return apply_overrides(raw, overrides or []), where, directory


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested mapping in place."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a mapping")
            node = child
        node[parts[-1]] = parse_yaml(raw, f"--set {item!r}")
    return data
