"""Layers import one way (DESIGN.md, "Import order"): a module imports only its own tier and the tiers below.

``LAYERS`` below is the one place the order is written down. The modules are
found by walking ``nbops/`` (every ``nbops/*.py`` and ``nbops/*/`` package), so a
new top-level module that is not in ``LAYERS`` fails here until it is given a
place in the order.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbops"

# Lowest first. Modules of one tier may import each other.
LAYERS: list[tuple[str, set[str]]] = [
    ("runtime", {"runtime"}),
    ("notebook", {"notebook"}),
    ("graph", {"graph"}),
    ("spec", {"spec"}),
    ("store", {"store"}),
    ("plan", {"plan"}),
    ("execute", {"execute"}),
    ("services", {"api", "history", "ci", "report", "sweep", "sweep_space", "models", "features", "automate", "export"}),
    ("surfaces", {"cli", "server", "magics", "widgets", "labextension"}),
]
# Shared by every layer (typed errors, status constants, text helpers, table statistics): importable from anywhere.
ANYWHERE = {"errors", "status", "text", "pareto", "datastats"}
# The package's own entry points: they wire layers together, so nothing is checked in them.
ENTRY_POINTS = {"__init__", "__main__"}

TIER = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}


def _top_level_modules(package: Path) -> set[str]:
    """Every nbops/*.py and every nbops/*/ folder (a package, or a surface like labextension)."""
    found = {p.stem for p in package.glob("*.py")}
    found |= {p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    return found


def _unknown_modules(package: Path) -> list[str]:
    return sorted(_top_level_modules(package) - set(TIER) - ANYWHERE - ENTRY_POINTS)


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m.startswith("nbops.")]


def _upward_imports(package: Path) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package)
        layer = where.parts[0].removesuffix(".py")
        if layer in ENTRY_POINTS or layer in ANYWHERE or layer not in TIER:
            continue  # unknown modules are reported by _unknown_modules
        for module in _imports(path):
            target = module.split(".")[1]
            if target in ANYWHERE or target == layer:
                continue
            if target not in TIER:
                bad.append(f"{where} imports {module}, which has no layer")
            elif TIER[target] > TIER[layer]:
                bad.append(f"{where} ({LAYERS[TIER[layer]][0]}) imports {module}, of the later layer {LAYERS[TIER[target]][0]}")
    return bad


def test_every_module_has_a_layer():
    unknown = _unknown_modules(PACKAGE)
    assert not unknown, (
        f"nbops/{', nbops/'.join(unknown)} has no place in the layer order: add it to LAYERS in "
        "tests/test_layers.py (and to the import order in DESIGN.md), or to ANYWHERE if every layer may use it"
    )


def test_layers_import_downward_only():
    bad = _upward_imports(PACKAGE)
    assert not bad, "\n".join(bad)


def test_the_checks_catch_what_they_should(tmp_path):
    """On a made-up package: an upward import and an unknown module are caught, downward ones are not."""
    pkg = tmp_path / "nbops"
    files = {
        "graph/edges.py": "from nbops.notebook import Cell\nfrom nbops.spec import convert\nimport nbops.errors\n",
        "cli/main.py": "from nbops.graph import build_graph\nfrom nbops.api import run\n",
        "api.py": "from nbops.sweep import study\ndef f():\n    from nbops.widgets import explore\n",
        "brandnew.py": "",
        "errors.py": "from nbops.cli import main\n",  # shared modules are not checked
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    assert _unknown_modules(pkg) == ["brandnew"]
    assert _upward_imports(pkg) == [
        "api.py (services) imports nbops.widgets, of the later layer surfaces",  # lazy imports count too
        "graph/edges.py (graph) imports nbops.spec, of the later layer spec",
    ]


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
