"""``nbops features ls|show|diff|publish|materialize``: the feature store on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.cmd_models import add_where, where

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    features = subparsers.add_parser("features", help="feature tables: versions, schema changes, publishing, online materialization")
    actions = features.add_subparsers(dest="features_command", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("ls", help="feature tables with their latest version")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("show", help="a table's versions, and the schema and lineage of one (TABLE:vN; the latest by default)")
    p.add_argument("ref", metavar="TABLE[:vN|:latest]")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("diff", help="schema and row-count changes between two versions of a table")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("a", metavar="V1", help="a version: v1, 1 or latest")
    p.add_argument("b", metavar="V2")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("publish", help="publish a DataFrame output of a run's stage as the next version of a table")
    p.add_argument("run", metavar="RUN", help="a run id, latest, or latest~N")
    p.add_argument("--stage", required=True)
    p.add_argument("--var", required=True, metavar="NAME", help="the output variable holding the DataFrame (or feature:TABLE, a table the stage published)")
    p.add_argument("--name", required=True, metavar="TABLE")
    p.add_argument("--entity", required=True, metavar="COL")
    p.add_argument("--timestamp", required=True, metavar="COL")
    p.add_argument("--description")
    p.add_argument("--allow-breaking", action="store_true", help="accept removed or retyped columns against the previous version")
    p.add_argument("--dedupe", choices=["last"], help="several rows of one (entity, timestamp): keep the last in the frame's order")
    add_where(p)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("materialize", help="write the latest value per entity into the online store (SQLite, or Redis with NBOPS_ONLINE)")
    p.add_argument("--online", metavar="URL", help="redis://HOST:PORT/DB or a SQLite file (default: $NBOPS_ONLINE, then online.db in the store's folder)")
    p.add_argument("table", metavar="TABLE")
    add_where(p)
    p.add_argument("--json", action="store_true")
    return {"features": _cmd_features}


def _cmd_features(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.features import tables

    if a.features_command == "ls":
        out = tables.list_tables(**where(a))
        render.print_json(out) if a.json else _tables(render, out)
    elif a.features_command == "show":
        out = tables.show(a.ref, **where(a))
        render.print_json(out) if a.json else _detail(render, out)
    elif a.features_command == "diff":
        out = tables.diff(a.table, a.a, a.b, **where(a))
        render.print_json(out) if a.json else _diff(render, out)
    elif a.features_command == "publish":
        from nbops.cli.main import run_id

        out = tables.publish_output(
            run_id(a, a.run), a.stage, a.var, a.name, entity=a.entity, timestamp=a.timestamp, description=a.description,
            allow_breaking=a.allow_breaking, dedupe=a.dedupe, **where(a),
        )  # fmt: skip
        render.print_json(out) if a.json else render.console.print(
            f"published {out['ref']} ({out['rows']} rows, {out['entities']} entities) from run {out['run_id']} stage {out['stage']}"
            + (" — a breaking change" if out["breaking"] else "")
        )
    else:
        from nbops.features.online import materialize

        out = materialize(a.table, online=a.online, **where(a))
        render.print_json(out) if a.json else render.console.print(render.escape(render.pairs(out)))
    return 0


def _tables(render, out: list[dict]) -> None:
    from rich.table import Table

    if not out:
        render.console.print("no feature tables yet: nbops.features.publish(df, NAME, entity=COL, timestamp=COL) in a stage")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("table", "latest", "entity", "timestamp", "created by", "description"):
        table.add_column(col, no_wrap=col != "description")
    for t in out:
        table.add_row(render.escape(t["name"]), f"v{t['latest']}" if t.get("latest") else "", render.escape(t["entity"]), render.escape(t["timestamp"]),
                      render.escape(t.get("created_by") or ""), render.escape(t.get("description") or ""))  # fmt: skip
    render.console.print(table)


def _detail(render, out: dict) -> None:
    from rich.table import Table

    v = out["version"]
    render.console.print(f"[bold]{render.escape(out['name'])} v{v['version']}[/]  entity {out['entity']}, timestamp {out['timestamp']}")
    if out.get("description"):
        render.console.print(f"  {render.escape(out['description'])}")
    table = Table(box=None, pad_edge=False)
    for col in ("version", "rows", "entities", "from", "to", "run", "stage", "breaking", "created"):
        table.add_column(col, no_wrap=True)
    for x in out["versions"]:
        table.add_row(f"v{x['version']}", str(x["rows"]), str(x["entities"]), x["min_ts"] or "", x["max_ts"] or "", x["run_id"] or "(no run)",
                      render.escape(x["stage"] or ""), "yes" if x["breaking"] else "", (x["created_at"] or "")[:19].replace("T", " "))  # fmt: skip
    render.console.print(table)
    render.console.print("  columns      " + render.escape(", ".join(f"{c['name']}:{c['dtype']}" for c in v["columns"])))
    lineage = out.get("lineage") or {}
    if lineage.get("run_id"):
        render.console.print(f"  lineage      run {lineage['run_id']}, notebook {render.escape(str(lineage.get('notebook')))}, "
                             f"stage code sha256:{(lineage.get('stage_code_sha256') or '')[:12]}")  # fmt: skip
        for d in lineage.get("data") or []:
            render.console.print(f"  data         {render.escape(str(d.get('path') or d.get('key')))} sha256:{(d.get('sha256') or '')[:12]}")
    else:
        render.console.print(f"  lineage      {lineage.get('note', '')}")
    if out.get("online"):
        online = out["online"]
        render.console.print(f"  online       {render.escape(str(online.get('summary') or render.pairs(online)))}")


def _diff(render, out: dict) -> None:
    render.console.print(f"[bold]{render.escape(out['name'])}[/] v{out['from']} → v{out['to']}" + ("  [red]breaking[/]" if out["breaking"] else ""))
    for c in out["added"]:
        render.console.print(f"  [green]+ {render.escape(c)}[/]")
    for c in out["removed"]:
        render.console.print(f"  [red]- {render.escape(c)}[/]")
    for r in out["retyped"]:
        render.console.print(f"  [yellow]~ {render.escape(r['name'])}: {r['from']} → {r['to']}[/]")
    if not (out["added"] or out["removed"] or out["retyped"]):
        render.console.print("  same columns and types")
    rows, ents = out["rows"], out["entities"]
    render.console.print(f"  rows         {rows['from']} → {rows['to']} ({rows['change']:+d})")
    render.console.print(f"  entities     {ents['from']} → {ents['to']} ({ents['change']:+d})")
    render.console.print(f"  time range   {out['min_ts']['from']} .. {out['max_ts']['from']} → {out['min_ts']['to']} .. {out['max_ts']['to']}")
