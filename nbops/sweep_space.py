"""The sweep's vocabulary, parsed as data (never eval): search space, objectives, constraints.

``lr=loguniform(1e-4,1e-1)``, ``depth=int(2,12)``, ``model=choice(rf,gbm)``;
``accuracy:max``; ``latency_ms<=100``; and the same in a sweep YAML file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbops.errors import ParameterError, UsageError
from nbops.plan import load_params_file, resolve_params
from nbops.text import article

if TYPE_CHECKING:
    import optuna

    from nbops.spec import ParamSpec

__all__ = [
    "Constraint", "Dimension", "Objective", "SPACE_HELP", "STUDY_NAME_RE",
    "load_sweep_file", "parse_constraint", "parse_dimension", "parse_objective", "parse_space",
]  # fmt: skip

STUDY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_DIM_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.S)
_CONSTRAINT_RE = re.compile(r"^\s*([^<>=\s]+)\s*(<=|>=|<|>)\s*(\S+)\s*$")
_DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
SPACE_HELP = "write name=loguniform(a,b), uniform(a,b), int(a,b), int(a,b,log) or choice(a,b,...)"


# -- the sweep's vocabulary, parsed as data --------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One swept parameter."""

    name: str
    kind: str  # loguniform | uniform | int | choice
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()
    text: str = ""  # as written, e.g. "lr=loguniform(1e-4,1e-1)"

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "text": self.text}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log)
        return out


@dataclass(frozen=True)
class Objective:
    name: str  # a metric of the run JSON
    direction: str  # maximize | minimize

    @property
    def text(self) -> str:
        return f"{self.name}:{self.direction[:3]}"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction}


@dataclass(frozen=True)
class Constraint:
    """``metric <= bound`` and friends; optuna's convention: a value <= 0 is feasible."""

    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    def value(self, metrics: Mapping[str, Any]) -> float:
        observed = float(metrics[self.metric])
        return observed - self.bound if self.op in ("<=", "<") else self.bound - observed

    def satisfied(self, value: float) -> bool:
        return value < 0 if self.op in ("<", ">") else value <= 0

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "bound": self.bound, "text": self.text}


def _split_args(text: str) -> list[str]:
    args = [a.strip() for a in text.split(",")]
    return [a[1:-1] if len(a) >= 2 and a[0] == a[-1] and a[0] in "'\"" else a for a in args]


def _number(text: str, what: str, integer: bool) -> float | int:
    try:
        value = int(text.replace("_", "")) if integer else float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not {'an integer' if integer else 'a number'}", SPACE_HELP) from None
    if not integer and not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} is not a finite number", SPACE_HELP)
    return value


def parse_dimension(text: str, declared: Mapping[str, ParamSpec]) -> Dimension:
    """``"lr=loguniform(1e-4,1e-1)"`` -> a Dimension, checked against the declared parameters."""
    m = _DIM_RE.match(text)
    if not m:
        raise UsageError(f"--space {text!r} is not name=kind(args)", SPACE_HELP)
    name, kind, inner = m.group(1), m.group(2).lower(), m.group(3)
    if name not in declared:
        raise ParameterError(f"--space {text!r}: the notebook has no parameter {name} (parameters: {', '.join(declared) or 'none'})",
                             "sweep a parameter of the notebook's parameters cell")  # fmt: skip
    ptype = declared[name].type
    args = _split_args(inner)
    what = f"--space {text.strip()!r}"
    if kind == "choice":
        if not inner.strip() or any(a == "" for a in args):
            raise UsageError(f"{what}: choice needs one or more values", "e.g. model=choice(rf,gbm)")
        values = []
        for a in args:
            value = resolve_params(declared, {name: a})[name]  # typed as declared, never evaluated
            if not (value is None or isinstance(value, (bool, int, float, str))):
                raise UsageError(f"{what}: {name} is {article(ptype)}; a sweep chooses among numbers, strings, booleans", "sweep a scalar parameter")
            values.append(value)
        if len(set(map(repr, values))) != len(values):
            raise UsageError(f"{what}: a value is listed twice", "list each value once")
        return Dimension(name, "choice", choices=tuple(values), text=text.strip())
    if kind not in ("loguniform", "uniform", "int"):
        raise UsageError(f"{what}: unknown kind {kind!r}", SPACE_HELP)
    if kind == "int":
        log = len(args) == 3 and args[2].lower() == "log"
        if len(args) != 2 and not log:
            raise UsageError(f"{what}: int takes (low, high) or (low, high, log)", "e.g. depth=int(2,12) or batch=int(8,512,log)")
        if ptype not in ("int", "float", "none"):
            raise ParameterError(f"{what}: {name} is {article(ptype)}, not a number", "use choice(...) for it")
        low, high = (_number(a, what, integer=True) for a in args[:2])
    else:
        if len(args) != 2:
            raise UsageError(f"{what}: {kind} takes (low, high)", f"e.g. lr={kind}(1e-4,1e-1)")
        if ptype == "int":
            raise ParameterError(f"{what}: {name} is an int, {kind} draws floats", f"use {name}=int(a,b) (or int(a,b,log))")
        if ptype not in ("float", "none"):
            raise ParameterError(f"{what}: {name} is {article(ptype)}, not a number", "use choice(...) for it")
        low, high = (_number(a, what, integer=False) for a in args)
        log = kind == "loguniform"
    if not low < high:
        raise UsageError(f"{what}: low must be below high", "e.g. int(2,12)")
    if log and low <= 0:
        raise UsageError(f"{what}: a log scale needs low > 0", "e.g. loguniform(1e-4,1e-1)")
    return Dimension(name, "int" if kind == "int" else ("loguniform" if log else "uniform"), low, high, log, text=text.strip())


def parse_space(texts: Iterable[str], declared: Mapping[str, ParamSpec]) -> list[Dimension]:
    dims: dict[str, Dimension] = {}
    for text in texts:
        d = parse_dimension(text, declared)
        dims[d.name] = d  # the later one wins (command line over sweep file)
    if not dims:
        raise UsageError("a sweep needs at least one --space", "e.g. --space 'lr=loguniform(1e-4,1e-1)'")
    return list(dims.values())


def parse_objective(text: str) -> Objective:
    name, _, direction = str(text).rpartition(":")
    if not name or direction.strip().lower() not in _DIRECTIONS:
        raise UsageError(f"--objective {text!r} is not metric:max or metric:min", "e.g. --objective accuracy:max")
    return Objective(name.strip(), _DIRECTIONS[direction.strip().lower()])


def parse_constraint(text: str) -> Constraint:
    m = _CONSTRAINT_RE.match(str(text))
    if not m:
        raise UsageError(f"--constraint {text!r} is not metric<=number (or >=, <, >)", "e.g. --constraint 'latency_ms<=100'")
    return Constraint(m.group(1), m.group(2), float(_number(m.group(3), f"--constraint {text!r}", integer=False)))


def load_sweep_file(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep YAML: space (mapping or list), objectives, constraints, trials, parallel, study, params, seed, executor."""
    data = load_params_file(path)
    allowed = {"space", "objectives", "objective", "constraints", "trials", "parallel", "study", "params", "seed", "executor"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(f"sweep file {path}: unknown keys {', '.join(unknown)}", f"known keys: {', '.join(sorted(allowed))}")
    space = data.get("space") or []
    if isinstance(space, Mapping):
        space = [f"{k}={v}" for k, v in space.items()]
    objectives = data.get("objectives", data.get("objective")) or []
    data["space"] = [str(s) for s in space]
    data["objectives"] = [objectives] if isinstance(objectives, str) else [str(o) for o in objectives]
    constraints = data.get("constraints") or []
    data["constraints"] = [constraints] if isinstance(constraints, str) else [str(c) for c in constraints]
    return data
