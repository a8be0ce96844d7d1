"""The files a stage's code visibly reads, found without running it.

Used by the dry run ("reads data/train.csv") before a stage has ever run; the
cache itself uses what the kernel saw (``nbops.runtime.reads``). Only paths
the code spells out are found: string literals, parameters and names bound to
a string, simple f-strings, ``os.path.join`` and ``Path(...) / "x"`` of those.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

__all__ = ["static_reads"]

_PATH_KWARGS = ("filepath_or_buffer", "path", "fname", "file", "source", "io", "path_or_buf", "pathname", "where", "f")
# Readers by the last part of the called name, and the module aliases they may hang off.
_READERS = {
    "open": {"", "io", "builtins", "Image", "PIL.Image"},
    "load": {"np", "numpy", "joblib", "torch", "pickle"},
    "loadtxt": {"np", "numpy"},
    "genfromtxt": {"np", "numpy"},
    "fromfile": {"np", "numpy"},
    "read_table": {"pq", "pyarrow.parquet", "feather", "pyarrow.feather", "pd", "pandas"},
    "ParquetFile": {"pq", "pyarrow.parquet"},
    "read_csv": {"pd", "pandas", "pv", "pacsv", "pyarrow.csv", "csv"},
    "read_feather": {"pd", "pandas", "feather", "pyarrow.feather"},
    "glob": {"glob", ""},
    "iglob": {"glob", ""},
    "listdir": {"os", ""},
    "scandir": {"os", ""},
    "connect": {"sqlite3"},
}
_PATH_METHODS = {"read_text", "read_bytes", "open", "iterdir", "glob", "rglob"}


def static_reads(source: str, params: Mapping[str, Any]) -> list[str]:
    """Paths passed to common readers in ``source``, as written, in order, once each."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the graph reports the cell that does not parse
    visitor = _ReadsVisitor({k: v for k, v in params.items() if isinstance(v, str)})
    visitor.visit(tree)
    return list(dict.fromkeys(visitor.found))


class _ReadsVisitor(ast.NodeVisitor):
    def __init__(self, params: dict[str, str]):
        self.scopes: list[dict[str, str]] = [dict(params)]
        self.found: list[str] = []

    # -- scopes: a function sees the module's strings unless it rebinds the name

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)
        shadowed = {a.arg: None for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs}
        self.scopes.append(shadowed)
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        value = self._string(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.scopes[-1][target.id] = value

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            if isinstance(node.target, ast.Name):
                self.scopes[-1][node.target.id] = self._string(node.value)

    # -- reads

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in _PATH_METHODS
            and (
                _is_path_call(func.value) or isinstance(func.value, ast.Name)  # str has none of these methods
            )
        ):
            path = self._string(func.value)
            if path is not None:
                self.found.append(path)
                return
        name = _dotted(func)
        if name is None:
            return
        owner, _, last = name.rpartition(".")
        if not (last in _READERS and owner in _READERS[last]) and not _pandas_file_reader(owner, last):
            return
        arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg in _PATH_KWARGS), None)
        path = self._string(arg) if arg is not None else None
        if path is not None:
            self.found.append(path)

    # -- evaluating a path expression, when it is made of known strings

    def _string(self, node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
            return None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                text = self._string(value.value if isinstance(value, ast.FormattedValue) and value.format_spec is None and value.conversion == -1 else value)
                if text is None:
                    return None
                parts.append(text)
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path("data") / "x.csv"
            left, right = self._string(node.left), self._string(node.right)
            return None if left is None or right is None else f"{left.rstrip('/')}/{right}"
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("Path", "pathlib.Path", "PurePath", "os.path.join", "join") and node.args:
                parts = [self._string(a) for a in node.args]
                if None in parts:
                    return None
                return "/".join(p.rstrip("/") for p in parts[:-1]) + ("/" if len(parts) > 1 else "") + parts[-1]
        return None


def _pandas_file_reader(owner: str, last: str) -> bool:
    # read_sql's first argument is a query, read_clipboard has none
    return owner in ("pd", "pandas") and last.startswith("read_") and not last.startswith(("read_sql", "read_clipboard", "read_gbq"))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return None if owner is None else f"{owner}.{node.attr}"
    return None


def _is_path_call(node: ast.AST) -> bool:
    """``Path(...)`` or ``Path(...) / "x"``: a receiver whose methods read files."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _is_path_call(node.left)
    return isinstance(node, ast.Call) and _dotted(node.func) in ("Path", "pathlib.Path", "PurePath")
