"""``nbops models ls|show|register|promote|rollback|history`` (and the actions other
modules add: export, drift): the model registry on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_store_options

__all__ = ["register", "add_where", "where"]

# Modules that add actions under ``nbops models``: each has register_action(actions) -> {action: handler}.
ACTION_MODULES = ["nbops.cli.cmd_model_export", "nbops.cli.cmd_model_drift"]
_ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_where(p: argparse.ArgumentParser) -> None:
    """Where the registry is: the store of --notebook (found as for runs), or --store."""
    p.add_argument("--notebook", help="a notebook whose store holds the registry (default: the store found from here)")
    add_store_options(p)


def where(a: argparse.Namespace) -> dict:
    return {"store": a.store, "near": a.notebook}


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    models = subparsers.add_parser("models", help="register, promote, roll back and inspect models (the registry)")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("ls", help="models with their latest version and aliases")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("show", help="one version (MODEL@VERSION, MODEL@ALIAS) with metrics and lineage, or every version of MODEL")
    p.add_argument("ref", metavar="MODEL[@VERSION|@ALIAS]")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("register", help="register a stage output of a run as the next version of a model")
    p.add_argument("run", metavar="RUN", help="a run id, latest, or latest~N")
    p.add_argument("--stage", required=True)
    p.add_argument("--var", required=True, metavar="NAME", help="the output variable holding the model")
    p.add_argument("--name", required=True, metavar="MODEL")
    p.add_argument("-m", "--message")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("promote", help="point an alias (production, staging...) at a version, behind optional gates")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--alias", required=True)
    p.add_argument("-m", "--message", help="why (kept in the history)")
    p.add_argument("--require", action="append", default=[], metavar="'METRIC>=VALUE'", help="a metric condition the version must meet (repeatable)")
    p.add_argument("--require-better-than", metavar="ALIAS", help="the version's metrics must beat those of the current holder of ALIAS")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("rollback", help="move an alias back to the version it held before")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--alias", required=True)
    p.add_argument("-m", "--message")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("history", help="every alias move: from, to, who, when, why")
    p.add_argument("model", metavar="MODEL")
    add_where(p)
    p.add_argument("--json", action="store_true")

    from nbops.cli.main import command_modules

    for mod in command_modules(ACTION_MODULES):
        _ACTIONS.update(mod.register_action(actions))
    return {"models": _cmd_models}


def _cmd_models(a: argparse.Namespace) -> int:
    from nbops import models
    from nbops.cli import render

    if a.models_command in _ACTIONS:
        return _ACTIONS[a.models_command](a)
    if a.models_command == "ls":
        out = models.list_models(**where(a))
        render.print_json(out) if a.json else render.models_table(out)
    elif a.models_command == "show":
        out = models.show(a.ref, **where(a))
        render.print_json(out) if a.json else render.model_detail(out)
    elif a.models_command == "register":
        from nbops.cli.main import run_id

        out = models.register(run_id(a, a.run), a.stage, a.var, a.name, message=a.message, **where(a))
        render.print_json(out) if a.json else render.console.print(
            f"registered {out['name']} v{out['version']} ({out['flavor']}) from run {out['run_id']} stage {out['stage']}"
        )
    elif a.models_command == "promote":
        out = models.promote(a.model, a.version, a.alias, message=a.message, require=a.require, better_than=a.require_better_than, **where(a))
        render.print_json(out) if a.json else render.alias_move(out)
    elif a.models_command == "rollback":
        out = models.rollback(a.model, a.alias, message=a.message, **where(a))
        render.print_json(out) if a.json else render.alias_move(out)
    else:
        out = models.history(a.model, **where(a))
        render.print_json(out) if a.json else render.model_history(a.model, out)
    return 0
