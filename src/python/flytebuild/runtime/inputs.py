"""Inputs given on the command line (`--name value`), parsed by the entity's Python types; values shown back as JSON.
Shared by `run` (local) and `remote` (the registered interface, turned into Python types), so both accept and
explain the same values in the same words."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import sys
import typing

from .answers import RunError
from .introspect import NotJsonable, jsonable


def split_args(argv: typing.List[str]) -> typing.Tuple[str, typing.List[typing.Tuple[str, typing.Optional[str]]]]:
    """(output format, [(input name, raw value or None for a bare flag)]) from `--name value` / `--name=value`.
    `--mock` pairs are returned like inputs; `take_mocks` separates them."""
    fmt = "table"
    pairs: typing.List[typing.Tuple[str, typing.Optional[str]]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise RunError(
                f"unexpected argument {arg!r}: inputs are given as `--name value`",
                fix="pass each input as `--<input name> <value>` (e.g. `--x 3 --cfg '{\"a\": 2}'`)",
            )
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not (argv[i + 1].startswith("--") and len(argv[i + 1]) > 2):
                value = argv[i + 1]
                i += 1
            else:
                value = None
        i += 1
        if name == "format":
            if value not in ("table", "json"):
                raise RunError(f"--format must be `table` or `json` (got {value!r})")
            fmt = value
            continue
        pairs.append((name, value))
    return fmt, pairs


def type_name(tp: typing.Any, how: bool = True) -> str:
    """How a type reads in messages: `int`, `List[float]`, `Summary (a dataclass, as JSON)` (without the
    parenthesis when `how` is False)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return type_name(args[0], how)
    if tp is type(None):
        return "None"
    if origin is not None and args:
        base = {list: "List", dict: "Dict", tuple: "Tuple", set: "Set"}.get(origin)
        if origin is typing.Union or type(tp).__name__ == "UnionType":
            rest = [a for a in args if a is not type(None)]
            inner = type_name(rest[0]) if len(rest) == 1 else "Union[" + ", ".join(type_name(a) for a in rest) + "]"
            return f"Optional[{inner}]" if len(rest) < len(args) else inner
        if base:
            return f"{base}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(tp, type):
        special = _flyte_kind(tp)
        if special:
            return f"{special} (a path)" if how else special
        if dataclasses.is_dataclass(tp):
            return f"{tp.__name__} (a dataclass, as JSON)" if how else tp.__name__
        if _is_pydantic(tp):
            return f"{tp.__name__} (a pydantic model, as JSON)" if how else tp.__name__
        return tp.__name__
    return str(tp).replace("typing.", "")


def _is_pydantic(tp: typing.Any) -> bool:
    for modname in ("pydantic", "pydantic.v1"):
        mod = sys.modules.get(modname)
        base = getattr(mod, "BaseModel", None) if mod is not None else None
        if isinstance(base, type) and isinstance(tp, type) and issubclass(tp, base):
            return True
    return False


def _flyte_kind(tp: typing.Any) -> typing.Optional[str]:
    from flytekit.types.directory import FlyteDirectory
    from flytekit.types.file import FlyteFile

    if isinstance(tp, type):
        if issubclass(tp, FlyteFile):
            return "file"
        if issubclass(tp, FlyteDirectory):
            return "directory"
    return None


class BadValue(Exception):
    """A value that does not fit its type; `where` is the path inside the value (`.spread.low`, `[2]`)."""

    def __init__(self, where: str, expected: str, got: typing.Any):
        super().__init__(where)
        self.where = where
        self.expected = expected
        self.got = got


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def parse_value(raw: typing.Optional[str], tp: typing.Any) -> typing.Any:
    """A command-line string -> a Python value of `tp` (raises BadValue)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return parse_value(raw, args[0])
    if raw is None:  # a bare `--flag`
        if tp is bool:
            return True
        raise BadValue("", type_name(tp), "no value")
    if tp is str:
        return raw
    if tp is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise BadValue("", "bool (true/false)", raw)
    if tp is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise BadValue("", "int", raw)
    if tp is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise BadValue("", "float", raw)
    if _flyte_kind(tp) or tp in (datetime.datetime, datetime.date, datetime.timedelta) or (
        isinstance(tp, type) and issubclass(tp, enum.Enum)
    ):
        return from_json(raw, tp, "")
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        rest = [a for a in args if a is not type(None)]
        if raw.strip() in ("null", "None", ""):
            if len(rest) < len(args):
                return None
        if len(rest) == 1:
            return parse_value(raw, rest[0])
    try:
        data = json.loads(raw)
    except ValueError:
        if tp is typing.Any:
            return raw
        raise BadValue("", type_name(tp) + " as JSON", raw)
    return from_json(data, tp, "")


def from_json(data: typing.Any, tp: typing.Any, where: str) -> typing.Any:
    """A JSON value -> a Python value of `tp`, checked all the way down (raises BadValue naming the path)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return from_json(data, args[0], where)
    if tp is typing.Any or tp is object:
        return data
    if tp is type(None) or tp is None:
        if data is None:
            return None
        raise BadValue(where, "null", data)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        if data is None and type(None) in args:
            return None
        for variant in args:
            if variant is type(None):
                continue
            try:
                return from_json(data, variant, where)
            except BadValue:
                continue
        raise BadValue(where, type_name(tp), data)
    if tp is bool:
        if isinstance(data, bool):
            return data
        raise BadValue(where, "bool", data)
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise BadValue(where, "int", data)
    if tp is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        raise BadValue(where, "float", data)
    if tp is str:
        if isinstance(data, str):
            return data
        raise BadValue(where, "str", data)
    if origin in (list, typing.List) or tp is list:
        if not isinstance(data, list):
            raise BadValue(where, type_name(tp), data)
        inner = args[0] if args else typing.Any
        return [from_json(x, inner, f"{where}[{i}]") for i, x in enumerate(data)]
    if origin in (dict, typing.Dict) or tp is dict:
        if not isinstance(data, dict):
            raise BadValue(where, type_name(tp), data)
        key_tp, val_tp = (args + (typing.Any, typing.Any))[:2] if args else (typing.Any, typing.Any)
        out = {}
        for k, v in data.items():
            key = k
            if key_tp is int:
                try:
                    key = int(k)
                except ValueError:
                    raise BadValue(f"{where}[{k!r}]", "an int key", k)
            out[key] = from_json(v, val_tp, f"{where}[{k!r}]")
        return out
    if tp in (datetime.datetime, datetime.date):
        if isinstance(data, str):
            try:
                return tp.fromisoformat(data)
            except ValueError:
                pass
        raise BadValue(where, f"{tp.__name__} (ISO 8601)", data)
    if tp is datetime.timedelta:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return datetime.timedelta(seconds=data)
        if isinstance(data, str):
            try:
                return datetime.timedelta(seconds=float(data))
            except ValueError:
                pass
        raise BadValue(where, "timedelta (seconds)", data)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if data == member.value or data == member.name:
                return member
        raise BadValue(where, "one of " + ", ".join(repr(m.value) for m in tp), data)
    kind = _flyte_kind(tp)
    if kind:
        if not isinstance(data, str) or not data:
            raise BadValue(where, f"a {kind} path", data)
        remote = "://" in data
        if not remote:
            exists = os.path.isfile(data) if kind == "file" else os.path.isdir(data)
            if not exists:
                raise BadValue(where, f"an existing {kind} (path relative to {os.getcwd()})", data)
            data = os.path.abspath(data)
        return tp(path=data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise BadValue(where, type_name(tp), data)
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise BadValue(f"{where}.{unknown[0]}", f"a field of {tp.__name__} ({', '.join(fields)})", "unknown field")
        kwargs = {}
        for name, f in fields.items():
            if name in data:
                kwargs[name] = from_json(data[name], hints.get(name, typing.Any), f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BadValue(f"{where}.{name}", type_name(hints.get(name, typing.Any)), "missing")
        return tp(**kwargs)
    if isinstance(tp, type) and _is_pydantic(tp):
        validate = getattr(tp, "model_validate", None) or getattr(tp, "parse_obj")
        try:
            return validate(data)
        except Exception as e:  # pydantic's ValidationError names the field
            raise BadValue(where, f"{tp.__name__}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", data)
    if isinstance(tp, type) and isinstance(data, tp):
        return data
    raise BadValue(where, type_name(tp) + " (not supported on the command line)", data)


def show(v: typing.Any) -> str:
    """A value as it reads in a log line: JSON, cut at 200 characters."""
    text = json.dumps(to_json(v), ensure_ascii=False, sort_keys=False)
    return text if len(text) <= 200 else text[:197] + "..."


def to_json(v: typing.Any) -> typing.Any:
    """An output value for people and machines: dataclasses/pydantic as objects, files/directories as paths."""
    from flytekit.types.directory import FlyteDirectory
    from flytekit.types.file import FlyteFile

    if isinstance(v, (FlyteFile, FlyteDirectory)):
        return str(v.path)
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: to_json(getattr(v, f.name)) for f in dataclasses.fields(v)}
    try:
        return jsonable(v)
    except NotJsonable:
        pass
    # Array-likes (numpy arrays and scalars, torch tensors' numpy) as lists/numbers, frames as rows of objects.
    tolist = getattr(v, "tolist", None)
    if callable(tolist) and not isinstance(v, type):
        try:
            return to_json(tolist())
        except Exception:
            pass
    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict) and not isinstance(v, type):
        try:
            return to_json(to_dict(orient="records"))
        except Exception:
            pass
    uri = getattr(v, "uri", None)
    return str(uri) if isinstance(uri, str) else repr(v)
