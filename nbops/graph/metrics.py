"""A metrics cell: one name or expression per line, each recorded as a run metric."""

from __future__ import annotations

import ast

from nbops.graph.issues import Issues
from nbops.notebook import Cell

__all__ = ["read_metrics"]


def read_metrics(cell: Cell, issues: Issues) -> list[str]:
    """The metric expressions of ``cell``, normalized by ``ast.unparse``."""
    metrics = []
    for line in cell.source.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            expr = ast.parse(text, mode="eval").body
        except SyntaxError:
            issues.add(cell, f"metrics line {text!r} is not an expression", "write one name or expression per line", "bad-metrics")
            continue
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "print" and len(expr.args) == 1:
            expr = expr.args[0]  # Kale's pipeline-metrics: print(accuracy)
        metrics.append(ast.unparse(expr))
    return metrics
