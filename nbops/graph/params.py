"""The parameters cell: ``name = literal`` lines into typed pipeline parameters."""

from __future__ import annotations

import ast

from nbops.graph.issues import Issues
from nbops.graph.model import Parameter
from nbops.notebook import Cell

__all__ = ["read_parameters", "PARAM_TYPES"]

PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", type(None): "none"}


def read_parameters(cell: Cell, issues: Issues) -> list[Parameter]:
    """The parameters of ``cell``, in order (a name assigned twice keeps its last value, at its last place)."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        issues.add(cell, f"the parameters cell does not parse: {exc.msg} (line {exc.lineno})", "fix the syntax", "syntax")
        return []
    params: list[Parameter] = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(target, ast.Name) or value is None:
            issues.add(
                cell,
                f"the parameters cell may only assign values to names (line {node.lineno}: {ast.unparse(node)[:40]})",
                "keep 'name = value' lines in the parameters cell and move other code to a setup cell or a stage",
                "bad-parameters",
            )
            continue
        try:
            default = ast.literal_eval(value)
        except ValueError:
            issues.add(
                cell,
                f"parameter {target.id!r} has a default that is not a literal ({ast.unparse(value)[:40]})",
                "use a plain value (number, string, bool, list, dict, None) and build objects from it in a stage",
                "bad-parameters",
            )
            continue
        kind = PARAM_TYPES.get(type(default))
        if kind is None:  # tuples, sets, bytes, complex
            default, kind = (list(default), "list") if isinstance(default, (tuple, set)) else (default, "str")
        params = [p for p in params if p.name != target.id]
        params.append(Parameter(target.id, default, kind))
    return params
