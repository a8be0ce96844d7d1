"""How nbops writes things for people: cells, numbers, reasons.

One helper per job, so the CLI, the report, the server and the widgets say
the same thing the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["cell_ref", "first_line", "format_number", "article", "finite_json", "to_json_text"]


def first_line(source: str | None, limit: int = 60) -> str:
    """The first non-blank line of a cell, shortened."""
    for line in (source or "").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def cell_ref(index: int | None, source_or_line: str | None = None) -> str:
    """``cell 6 ("model.fit(X, y)")``: how every message names a cell of the user's notebook."""
    if index is None:
        return "a generated cell"
    line = first_line(source_or_line)
    return f'cell {index} ("{line}")' if line else f"cell {index}"


def format_number(value: Any, digits: int = 4) -> str:
    """Numbers as people read them: 0.8416, 1.2e-05, 12,000, 3.142e+07, True.

    Works on Python and numpy scalars alike; anything else is ``str()``."""
    if value is None or isinstance(value, str) or type(value).__name__ in ("bool", "bool_"):
        return str(value)
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return f"{int(value):,}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.{digits}g}" if abs(x) < 1e6 else f"{x:.{digits}g}"


def article(word: str) -> str:
    """'an int', 'a float': the article for a type name."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float as the string "inf", "-inf" or "nan".

    A stage may log a metric that came out NaN; strict JSON has no word for it,
    and ``NaN`` in the output breaks every parser but Python's."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def to_json_text(value: Any, **kwargs: Any) -> str:
    """Strict JSON text (``allow_nan=False``) of ``value``, non-finite floats spelled as strings;
    every JSON nbops prints or serves goes through here. Extra keywords go to ``json.dumps``."""
    kwargs.setdefault("default", str)
    try:  # almost every value is finite: walking it first doubled the cost of storing 100,000 metrics
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite_json(value), allow_nan=False, **kwargs)
