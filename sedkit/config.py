"""Checking plain data (from YAML) against dataclass schemas, collecting every problem.

``check(schema, data, key)`` returns ``(value, problems)``: the dataclass instance built from
``data`` (or None when it could not be built) and a list of messages, each starting with the
dotted key at fault. Nothing is raised for bad data, so one pass reports every mistake.
Supported field types: bool, int, float, str, None, Any, Literal, list[X], tuple[X, ...],
tuple[X, Y], dict[str, X], nested dataclasses, and unions of those.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from sedkit.registry import suggest

MISSING = dataclasses.MISSING


def _join(key: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{key}[{child}]"
    return f"{key}.{child}" if key else child


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def field_types(schema: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema) if f.init}


def check(tp: Any, value: Any, key: str) -> tuple[Any, list[str]]:
    """Check ``value`` against type ``tp``; see the module docstring."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value, []
    if dataclasses.is_dataclass(tp):
        return check_dataclass(tp, value, key)
    if origin in (Union, types.UnionType):
        return _check_union(tp, args, value, key)
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and True not in args):
            return value, []
        return None, [
            f"{key}: {_describe(value)} is not one of {_type_name(tp)}{suggest(value, args)}"
        ]
    if tp is type(None):
        return (None, []) if value is None else (None, [f"{key}: expected null"])
    if origin in (list, tuple) or tp in (list, tuple):
        return _check_sequence(tp, origin or tp, args, value, key)
    if origin is dict or tp is dict:
        return _check_mapping(args, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value, []
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, []
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), []
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value), []
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value, []
    else:
        raise TypeError(f"{key}: unsupported schema type {tp!r}")
    return None, [f"{key}: expected {_type_name(tp)}, got {_describe(value)}"]


def _check_union(tp: Any, args: tuple, value: Any, key: str) -> tuple[Any, list[str]]:
    first_problems: list[str] | None = None
    # Try exact-kind members first so 1 stays an int in `int | float`.
    for member in args:
        result, problems = check(member, value, key)
        if not problems:
            return result, []
        if first_problems is None and (
            dataclasses.is_dataclass(member) and isinstance(value, dict)
        ):
            first_problems = problems
    if first_problems is not None:
        return None, first_problems
    return None, [f"{key}: expected {_type_name(tp)}, got {_describe(value)}"]


def _check_sequence(tp: Any, origin: Any, args: tuple, value: Any, key: str):
    if not isinstance(value, list | tuple):
        return None, [f"{key}: expected a list, got {_describe(value)}"]
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            return None, [f"{key}: expected a list of {len(args)} items, got {len(value)}"]
        item_types = list(args)
    else:
        item_types = [args[0] if args else Any] * len(value)
    items, problems = [], []
    for i, (item_tp, item) in enumerate(zip(item_types, value, strict=True)):
        checked, item_problems = check(item_tp, item, _join(key, i))
        items.append(checked)
        problems += item_problems
    return (tuple(items) if origin is tuple else items), problems


def _check_mapping(args: tuple, value: Any, key: str):
    if not isinstance(value, dict):
        return None, [f"{key}: expected a mapping, got {_describe(value)}"]
    value_tp = args[1] if args else Any
    out, problems = {}, []
    for k, v in value.items():
        if not isinstance(k, str):
            problems.append(f"{key}: keys must be strings, got {_describe(k)}")
            continue
        out[k], item_problems = check(value_tp, v, _join(key, k))
        problems += item_problems
    return out, problems


def check_dataclass(schema: type, value: Any, key: str) -> tuple[Any, list[str]]:
    """Check a mapping against a dataclass: unknown keys (with suggestions), missing values,
    field types, and the dataclass's own ``__post_init__`` checks (ValueError)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return None, [f"{key or 'recipe'}: expected a mapping, got {_describe(value)}"]
    types_ = field_types(schema)
    problems: list[str] = []
    for k in value:
        if k not in types_:
            problems.append(f"{_join(key, str(k))}: unknown key{suggest(k, types_)}")
    kwargs = {}
    for f in dataclasses.fields(schema):
        if not f.init:
            continue
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(
                    f"{_join(key, f.name)}: missing value ({_type_name(types_[f.name])})"
                )
            continue
        kwargs[f.name], field_problems = check(types_[f.name], value[f.name], _join(key, f.name))
        problems += field_problems
    if problems:
        return None, problems
    try:
        return schema(**kwargs), []
    except (ValueError, TypeError) as exc:
        return None, [f"{key or 'recipe'}: {exc}"]


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and dicts as plain YAML/JSON-friendly data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
