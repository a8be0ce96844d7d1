"""Layers import one way: runtime < notebook < graph < spec < store < plan < execute < facade < surfaces."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbops"
ORDER = ["runtime", "notebook", "graph", "spec", "store", "plan", "execute", "api", "ci", "report", "sweep_space", "sweep"]
SURFACES = {"cli", "server", "magics", "widgets", "labextension"}
RANK = {name: i for i, name in enumerate(ORDER)}
# The facade modules sit side by side; they may use each other.
FACADE = {"api", "ci", "report", "sweep", "sweep_space"}


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m.startswith("nbops.")]


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0].removesuffix(".py")


def test_layers_import_downward_only():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer(path)
        if layer in ("__init__", "errors", "status", "text", "__main__"):
            continue
        for module in _imports(path):
            target = module.split(".")[1]
            if target in ("errors", "status", "text") or target == layer:
                continue
            if target in SURFACES and layer not in SURFACES:
                bad.append(f"{path.relative_to(PACKAGE)} imports the surface {module}")
            elif layer in RANK and target in RANK and RANK[target] > RANK[layer] and not (layer in FACADE and target in FACADE):
                bad.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {module}, a later layer")
    assert not bad, "\n".join(bad)


def test_import_nbops_is_light():
    code = (
        "import sys, time; t = time.perf_counter(); import nbops; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('papermill', 'nbformat', 'plotly', 'ipywidgets', 'ray', 'optuna', 'pandas', 'jupyter_server') if m in sys.modules]; "
        "print(heavy, dt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, seconds = out.rsplit(" ", 1)
    assert heavy == "[]", heavy
    assert float(seconds) < 1.0
