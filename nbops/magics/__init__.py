"""IPython magics: the nbops workflow from code cells (``%load_ext nbops``).

``%%stage`` / ``%%setup`` / ``%%skip`` mark pipeline cells (the converter reads
them from the saved notebook; in the kernel they just run the cell), and
``%nbops graph | run | runs | show`` shows the pipeline of this notebook.
See docs/magics.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "StageMagics", "NbopsMagics", "CellLog"]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics on ``ipython`` (``%load_ext nbops``)."""
    from nbops.magics.cell import CellLog, StageMagics
    from nbops.magics.line import NbopsMagics

    log = CellLog()  # shared: %nbops run warns about %%stage cells run but not saved
    ipython.register_magics(StageMagics(ipython, log), NbopsMagics(ipython, log))


def __getattr__(name: str) -> Any:
    # IPython and the api are imported on first use, not by ``import nbops.magics``.
    if name in ("StageMagics", "CellLog"):
        from nbops.magics import cell

        return getattr(cell, name)
    if name == "NbopsMagics":
        from nbops.magics.line import NbopsMagics

        return NbopsMagics
    raise AttributeError(f"module 'nbops.magics' has no attribute {name!r}")
