"""Check results: the record every check produces, and the shared helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from nbops.errors import UsageError
from nbops.runtime.context import _jsonable, current
from nbops.text import format_number

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Kind = Literal["data", "model"]

# How many offending values or keys a message quotes before "...".
_QUOTE = 5


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``to_record()`` is the stored record."""

    name: str
    kind: Kind
    stage: str | None
    passed: bool
    observed: Any
    threshold: Any
    message: str
    warn: bool

    @property
    def status(self) -> str:
        """``PASS``, ``WARN`` (failed in warn mode) or ``FAIL``."""
        return check_status(self.to_record())

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


class CheckFailed(AssertionError):
    """A check did not pass; ``result`` holds what it observed."""

    def __init__(self, message: str, result: CheckResult | None = None):
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple:
        # Keep ``result`` when the error crosses a process boundary (Ray workers).
        return (type(self), (str(self), self.result))


def check_status(record: Mapping[str, Any]) -> str:
    """``PASS``, ``WARN`` or ``FAIL`` for a check record."""
    if record.get("passed"):
        return "PASS"
    return "WARN" if record.get("warn") else "FAIL"


def summarize_checks(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of check records by status, and the names that failed or warned.

    ``failed`` counts only failures that fail a stage; a failure in warn mode
    counts as ``warned``.
    """
    summary: dict[str, Any] = {"total": 0, "passed": 0, "failed": 0, "warned": 0, "failed_names": [], "warned_names": []}
    for record in records:
        summary["total"] += 1
        status = check_status(record)
        if status == "PASS":
            summary["passed"] += 1
        elif status == "WARN":
            summary["warned"] += 1
            summary["warned_names"].append(record.get("name"))
        else:
            summary["failed"] += 1
            summary["failed_names"].append(record.get("name"))
    return summary


def _finish(name: str, kind: Kind, passed: bool, observed: Any, threshold: Any, message: str, warn: bool) -> CheckResult:
    """Record, print, return; raise when the check failed outside warn mode."""
    ctx = current()
    result = CheckResult(
        name=name,
        kind=kind,
        stage=ctx.stage if ctx else None,
        passed=bool(passed),
        observed=_jsonable(observed),
        threshold=_jsonable(threshold),
        message=message,
        warn=bool(warn),
    )
    if ctx is not None:
        ctx.record("checks", result.to_record())
    print(f"nbops check {name}: {result.status} {message}")
    if not result.passed and not warn:
        raise CheckFailed(f"check {name} failed: {message}", result)
    return result


def _metric_bound(metric: str, value: float, threshold: float, op: Literal[">=", "<="], name: str | None, warn: bool) -> CheckResult:
    check = f"metric_at_{'least' if op == '>=' else 'most'}"
    if not isinstance(metric, str) or not metric:
        raise UsageError(f"{check}: metric must be a name", f'e.g. {check}("accuracy", acc, 0.8)')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{metric}: value {value!r} is not a number", "pass the metric's value as a number") from None
    # NaN compares False both ways, so a NaN metric fails either check.
    passed = number >= threshold if op == ">=" else number <= threshold
    return _finish(
        name or f"{check}[{metric}]",
        "model",
        passed,
        number,
        threshold,
        f"observed {metric} {_fmt(number)}, threshold {op} {_fmt(threshold)}",
        warn,
    )


def _columns(df: pd.DataFrame, columns: str | list[str] | None, check: str) -> list[Any]:
    """``columns`` as a list (all of the frame's when None), every one present."""
    if columns is None:
        return list(df.columns)
    cols = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise UsageError(
            f"{check}: no column {_quote(repr(c) for c in missing)} in the frame",
            f"columns are {_quote((repr(c) for c in df.columns), 20)}",
        )
    return cols


def _frame_column(df: pd.DataFrame, column: str | None, what: str) -> pd.Series:
    if column is None:
        if df.shape[1] != 1:
            raise UsageError(f"{what} is a frame with {df.shape[1]} columns", "pass column= to say which one to compare")
        return df.iloc[:, 0].dropna()
    return df[_columns(df, column, what)[0]].dropna()


def _sample(data: Any, column: str | None, what: str) -> np.ndarray:
    """A 1-d array of the non-null values of ``data`` (a frame's ``column``)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        values = _frame_column(data, column, what).to_numpy()
    else:
        values = pd.Series(np.asarray(data).ravel()).dropna().to_numpy()
    if len(values) == 0:
        raise UsageError(f"distribution_close: {what} has no non-null values", "check the data passed to the check")
    return values


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else value


def _default_name(check: str, columns: str | list[str] | None) -> str:
    if columns is None:
        return check
    cols = [columns] if isinstance(columns, str) else list(columns)
    return f"{check}[{','.join(map(str, cols))}]"


def _fmt(value: Any, none: str = "none") -> str:
    """A number short enough for a one-line message."""
    return none if value is None else format_number(value)


def _quote(items: Iterable[str], limit: int = _QUOTE) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
