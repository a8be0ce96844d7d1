"""Parameters: typed from the parameters cell, given as text or YAML, never code.

A value from the command line is parsed by the declared type of the
parameter (``int("3")``, YAML for lists and dicts, the raw text for
strings); it is never evaluated. papermill then writes it into the stage
notebook as a Python literal (its translator escapes strings), so a value
like ``"'); import os; os.system('id') #"`` arrives as that string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.errors import NotFoundError, ParameterError
from nbops.spec import ParamSpec
from nbops.text import article

__all__ = ["parse_assignments", "load_params_file", "resolve_params", "run_params", "mask_secrets", "is_secret", "SECRET_RE"]

SECRET_RE = re.compile(r"token|passw|secret|key|credential|auth", re.IGNORECASE)
MASK = "***"


def is_secret(name: str) -> bool:
    return bool(SECRET_RE.search(name))


def mask_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (MASK if is_secret(k) and v is not None else v) for k, v in params.items()}


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["lr=0.1", "name=a=b"]`` -> ``{"lr": "0.1", "name": "a=b"}`` (values stay text)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"-p {pair!r} is not name=value", "write it like -p learning_rate=0.01")
        out[name.strip()] = value
    return out


def load_params_file(path: str | Path) -> dict[str, Any]:
    import yaml  # on use (here and below): most runs pass no YAML, and the import is ~20 ms

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"parameters file {path} not found", "check the -f path") from None
    except IsADirectoryError:
        raise ParameterError(f"parameters file {path} is a folder", "pass the YAML file itself: -f params.yaml") from None
    except UnicodeDecodeError as exc:
        raise ParameterError(f"parameters file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})", "save it as UTF-8 YAML") from None
    except OSError as exc:
        raise ParameterError(f"parameters file {path} cannot be read: {exc.strerror}", "check its permissions") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameters file {path} is not valid YAML: {exc}", "fix the YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {path} must be a mapping of name: value", "write one 'name: value' per line")
    return data


def _from_text(name: str, text: str, kind: str) -> Any:
    import yaml

    fix = f"pass a {kind} for {name}, e.g. -p {name}={_example(kind)}"
    try:
        if kind == "int":
            return int(text.replace("_", ""))
        if kind == "float":
            return float(text)  # inf and nan parse, and _finite refuses them with their own message
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind == "str":
            return text
        if kind in ("list", "dict"):
            value = yaml.safe_load(text)
            if (kind == "list") != isinstance(value, list) or (kind == "dict") != isinstance(value, dict):
                raise ValueError
            return value
        return yaml.safe_load(text)  # type "none": the default was None, take the YAML scalar
    except (ValueError, yaml.YAMLError):
        raise ParameterError(f"parameter {name} is {article(kind)}, got {text!r}", fix) from None


def _example(kind: str) -> str:
    return {"int": "3", "float": "0.5", "bool": "true", "str": "text", "list": "'[1, 2]'", "dict": "'{a: 1}'"}.get(kind, "value")


def _check_typed(name: str, value: Any, kind: str) -> Any:
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
    }.get(kind, lambda v: True)
    if not ok(value):
        raise ParameterError(f"parameter {name} is {article(kind)}, got {type(value).__name__} {value!r}", f"give {name} {article(kind)} value")
    return float(value) if kind == "float" else value


def resolve_params(declared: Mapping[str, ParamSpec], given: Mapping[str, Any], where: str = "the notebook") -> dict[str, Any]:
    """Defaults overlaid with ``given``; unknown names and bad types are errors."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise ParameterError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (parameters of {where}: {known})",
            "check the spelling, or add it to the notebook's parameters cell",
        )
    values = {name: p.default for name, p in declared.items()}
    for name, value in given.items():
        kind = declared[name].type
        values[name] = _finite(name, _from_text(name, value, kind) if isinstance(value, str) and kind != "str" else _check_typed(name, value, kind))
    return values


def run_params(
    declared: Mapping[str, ParamSpec], where: str, params: Mapping[str, Any] | None = None, params_file: str | None = None, assignments: list[str] | None = None
) -> dict[str, Any]:
    """A run's parameters: the file's (``-f``), then ``-p name=value``, then ``params``, over the defaults."""
    given: dict[str, Any] = {}
    if params_file:
        given.update(load_params_file(params_file))
    given.update(parse_assignments(assignments or []))
    given.update(params or {})
    return resolve_params(declared, given, where)


def _finite(name: str, value: Any) -> Any:
    """``value`` unless it holds inf or nan: parameters are recorded and served as strict JSON,
    and a cache key over nan never matches itself."""
    stack = [value]
    while stack:  # a loop, not recursion: a parameters file can nest deep
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            what = "be a finite number" if item is value else "hold only finite numbers"
            raise ParameterError(
                f"parameter {name} must {what}, got {item!r}", f"pass a finite number instead of {item!r} (JSON and the run record have no inf or nan)"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return value
