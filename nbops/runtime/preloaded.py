"""Which of a forked kernel's pre-imported packages a stage really uses.

A kernel forked from a warm template (``nbops.execute.forkserver_child``) starts
with every module that any stage's setup cells import already loaded, so
``sys.modules`` no longer says what *this* stage imported: every stage would
record every package, and upgrading one would re-run stages that never touch
it. An ``import`` statement calls ``__import__`` even for a loaded module, so
the kernel watches those calls (and ``importlib.import_module``); a
pre-imported package counts for the stage when something imported it after the
fork, together with everything it needs (what loading it pulled in, and every
package its modules refer to, transitively: independent of the order the
template imported them in). Anything not pre-imported counts as before: a stage
that loads it shows it in ``sys.modules``. Over-counting re-runs a stage;
under-counting would reuse a stale one, so every doubt counts the package.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import types

__all__ = ["closures", "watch", "unused"]

_closures: dict[str, frozenset[str]] = {}
_requested: set[str] = set()


def _top(name: str) -> str:
    return name.partition(".")[0]


def closures(extra: list[str], before: set[str]) -> dict[str, frozenset[str]]:
    """In the template, after importing: each extra top-level package -> the packages
    it needs. ``before``: top-level names loaded before the extras (always counted)."""
    loaded = {_top(n) for n in list(sys.modules)} - before
    refs: dict[str, set[str]] = {t: set() for t in loaded}
    for name, module in list(sys.modules.items()):
        top = _top(name)
        if top not in refs or not isinstance(module, types.ModuleType):
            continue
        for value in list(vars(module).values()):
            ref = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(ref, str) and _top(ref) in refs and _top(ref) != top:
                refs[top].add(_top(ref))
    out = {}
    for top in {_top(e) for e in extra} & loaded:
        seen, todo = {top}, [top]
        while todo:
            for r in refs[todo.pop()] - seen:
                seen.add(r)
                todo.append(r)
        out[top] = frozenset(seen)
    return out


def watch(found: dict[str, frozenset[str]]) -> None:
    """In the forked kernel: note imports of the pre-imported packages from now on."""
    _closures.update(found)
    original_import, original_module = builtins.__import__, importlib.import_module

    def note(name: object) -> None:
        if isinstance(name, str) and _top(name) in _closures:
            _requested.add(_top(name))

    def import_(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - __import__'s own signature
        if level == 0:
            note(name)
        return original_import(name, globals, locals, fromlist, level)

    def import_module(name, package=None):
        if not name.startswith("."):
            note(name)
        return original_module(name, package)

    builtins.__import__ = import_
    importlib.import_module = import_module


def unused() -> set[str]:
    """Top-level names loaded only because the template pre-imported them for other stages."""
    if not _closures:
        return set()
    needed = set().union(*(_closures[t] for t in _requested)) if _requested else set()
    idle = set().union(*(_closures[t] for t in set(_closures) - _requested))
    return idle - needed
