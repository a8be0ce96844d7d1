"""Which template a run forks from: the spec of interpreter, imports and environment.

``plan`` reads the stage notebooks' imports (those served by the installed
environment, never a module in the notebook's folder, which may be edited between
runs) and stamps what could make a template's imports stale (``env_hash``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["TemplateSpec", "plan", "fork_unavailable", "kernel_python", "notebook_imports"]

# Variables that imports read (thread pools, library paths): a template made under other values is another template.
_ENV_PREFIXES = ("PYTHON", "LD_", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "CUDA_", "TORCH", "NVIDIA_", "VIRTUAL_ENV", "CONDA_PREFIX", "XLA_")


@dataclass(frozen=True)
class TemplateSpec:
    python: str
    imports: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    env_hash: str

    @property
    def slot(self) -> str:
        """Same interpreter, imports and variables: one template, rebuilt when ``env_hash`` moves."""
        return _digest([self.python, list(self.imports), [list(p) for p in self.env]])

    @property
    def id(self) -> str:
        return _digest([self.slot, self.env_hash])

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TemplateSpec:
        return cls(d["python"], tuple(d["imports"]), tuple(tuple(p) for p in d["env"]), d["env_hash"])  # type: ignore[misc]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def kernel_python(kernel_name: str) -> tuple[str | None, str | None]:
    """(interpreter, None) for an ipykernel kernel; (None, why not) otherwise."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return None, f"no kernel named {kernel_name!r}"
    argv = list(spec.argv)
    if (spec.language or "").lower() != "python" or "-m" not in argv or not any(a.startswith("ipykernel") for a in argv):
        return None, f"kernel {kernel_name!r} is not an ipykernel kernel ({' '.join(argv[:3])})"
    python = argv[0]
    if python in ("python", "python3", "{python}"):  # jupyter_client launches these as this interpreter
        python = sys.executable
    return python, None


def fork_unavailable(kernel_name: str) -> str | None:
    if os.environ.get("NBOPS_FORK", "1") == "0":
        return "NBOPS_FORK=0"
    if not sys.platform.startswith("linux"):
        return f"fork is not safe by default on {sys.platform}"
    return kernel_python(kernel_name)[1]


def notebook_imports(folder: str | os.PathLike, cwd: str | None = None) -> list[str]:
    """Modules the stage notebooks in ``folder`` import, that come from the installed
    environment: a module in the notebook's folder (``cwd``) may be edited between
    runs and is imported by the kernel itself, never by a template."""
    names: set[str] = set()
    for path in sorted(Path(folder).rglob("*.ipynb")):
        try:
            cells = json.loads(path.read_text()).get("cells", [])
        except (OSError, ValueError):
            continue
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            src = cell.get("source")
            src = "".join(src) if isinstance(src, list) else (src or "")
            lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
            for node in tree.body:  # top level only: an import inside a function may be meant to be lazy
                if isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module != "__future__":
                    names.add(node.module)
    return sorted(n for n in names if _installed(n, cwd))


def _installed(name: str, cwd: str | None) -> bool:
    import importlib.util

    top = name.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    origin = spec.origin or next(iter(spec.submodule_search_locations or []), None)
    if origin in (None, "built-in", "frozen"):
        return spec.origin in ("built-in", "frozen")
    here = os.path.abspath(cwd or os.getcwd())
    return not os.path.abspath(origin).startswith(here + os.sep)


def _env_hash(python: str, imports: list[str]) -> str:
    """Moves when something a template imported could have changed: a package installed
    or removed (the mtimes of the site folders and PYTHONPATH folders), a top-level
    module's file, or any source file of a package imported from a source checkout
    (an editable install, nbops itself while being worked on). A source folder on the
    path (the repository root) is not stamped: its mtime moves with every file made there."""
    import importlib.util

    stamp: list[Any] = [python]
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for entry in sys.path:
        if entry in extra or "site-packages" in entry or "dist-packages" in entry:
            try:
                stamp.append([entry, os.stat(entry).st_mtime_ns])
            except OSError:
                continue
    for name in sorted({i.split(".")[0] for i in imports} | {"nbops"}):  # every template imports nbops.runtime
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec else None
        if not origin or not os.path.exists(origin):
            stamp.append([name, None])
            continue
        stamp.append([name, origin, os.stat(origin).st_mtime_ns])
        if spec.submodule_search_locations and not ("site-packages" in origin or "dist-packages" in origin):
            stamp.append([name, _newest(spec.submodule_search_locations)])
    return _digest(stamp)


def _newest(folders: Any) -> int:
    newest = 0
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            for f in files:
                if f.endswith(".py"):
                    try:
                        newest = max(newest, os.stat(os.path.join(root, f)).st_mtime_ns)
                    except OSError:
                        pass
    return newest


def plan(kernel_name: str, folder: str | os.PathLike, cwd: str, env: dict[str, str] | None = None) -> tuple[TemplateSpec | None, str | None]:
    """The template a run of the stage notebooks in ``folder`` forks from, or why none."""
    reason = fork_unavailable(kernel_name)
    if reason:
        return None, reason
    python, _ = kernel_python(kernel_name)
    imports = notebook_imports(folder, cwd)
    env = dict(os.environ if env is None else env)
    picked = tuple(sorted((k, v) for k, v in env.items() if k.startswith(_ENV_PREFIXES)))
    return TemplateSpec(python, tuple(imports), picked, _env_hash(python, imports)), None  # type: ignore[arg-type]
