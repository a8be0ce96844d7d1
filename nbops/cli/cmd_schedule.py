"""``nbops schedule add|ls|show|pause|resume|rm|run-now``: schedules on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_store_options, positive_int

__all__ = ["register"]


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notebook", help="a notebook whose store holds the schedules (default: the store found from here)")
    add_store_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    schedule = subparsers.add_parser("schedule", help="run a notebook on a cron, an interval, a data change or after another schedule")
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("add", help="add a schedule (exactly one trigger)")
    p.add_argument("notebook", metavar="NOTEBOOK")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="5-field cron or @daily/@hourly/@weekly/@monthly, e.g. '0 3 * * *'")
    when.add_argument("--every", metavar="INTERVAL", help="an interval: 30s, 10m, 2h, 1d")
    when.add_argument("--on-change", nargs="+", metavar="GLOB_OR_URL", help="files, globs or fsspec URLs (s3://, https://) to watch by content; 'inputs': the files the notebook reads")  # fmt: skip
    when.add_argument("--after", metavar="SCHEDULE", help="when this schedule's run succeeds")
    p.add_argument("--tz", metavar="ZONE", help="time zone of --cron, e.g. Europe/Berlin (default: this machine's)")
    p.add_argument("--debounce", metavar="SECONDS", help="--on-change: fire once the content stood still this long (default 1)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="set a parameter (repeatable)")
    p.add_argument("-f", "--params-file", metavar="YAML", help="parameters from a YAML file (read at each firing)")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--name", help="schedule name (default: NOTEBOOK-STEM-TRIGGER, e.g. churn-cron)")
    p.add_argument("--notify", nargs="+", default=[], metavar="TARGET", help="webhook URL, slack+https://..., smtp(s)://HOST?to=ADDR")
    p.add_argument("--notify-on", action="append", metavar="EVENTS", help="failure,success,promotion,regression (default: failure,promotion,regression)")
    p.add_argument("--promote", metavar="MODEL", help="register the run's model and promote it when the gates hold")
    p.add_argument("--alias", default="production", help="the alias --promote moves (default production)")
    p.add_argument("--require", action="append", default=[], metavar="'METRIC>=X'", help="a gate for --promote (repeatable)")
    p.add_argument("--require-better-than", metavar="ALIAS", help="--promote only a model better than the one holding ALIAS")
    p.add_argument("--max-concurrent", type=positive_int, metavar="N", help="runs of this schedule at once (default 1)")
    p.add_argument("--overlap", choices=["queue", "skip"], help="a firing while the previous run goes: wait for it (queue, default) or skip")
    p.add_argument("--catch-up", choices=["once", "all", "none"], help="firings missed while no scheduler ran (default: the scheduler's --catch-up)")
    add_store_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = actions.add_parser("ls", help="schedules with their trigger, next firing and last run")
    _where(p)
    for action, help_ in (
        ("show", "a schedule: settings, the next firing times, the last runs and events"),
        ("pause", "stop firing until resumed"),
        ("resume", "fire again (and re-check a schedule marked broken)"),
        ("rm", "remove a schedule with its history (its runs stay)"),
        ("run-now", "fire a schedule once now (a live scheduler runs it; else it runs here)"),
    ):
        p = actions.add_parser(action, help=help_)
        p.add_argument("name", metavar="NAME")
        _where(p)
    return {"schedule": _cmd_schedule}


def _cmd_schedule(a: argparse.Namespace) -> int:
    from nbops.automate import schedules
    from nbops.cli import render

    where = {"store": a.store, "near": getattr(a, "notebook", None)}
    cmd = a.schedule_command
    if cmd == "add":
        out = _add(a)
        for w in out.get("warnings") or []:
            render.err_console.print(f"warning: {render.escape(w)}", style="yellow")
        if a.json:
            render.print_json(out)
        else:
            s = out["schedule"]
            render.console.print(f"added schedule [bold]{render.escape(s['name'])}[/]: {render.escape(s['describe'])}")
            if s["next"]:
                render.console.print(f"  next: {', '.join(s['next'][:3])}")
            render.console.print(f"  fired by a running scheduler: nbops scheduler   ·   now: nbops schedule run-now {s['name']}")
        return 0
    if cmd == "ls":
        out = schedules.ls(**where)
        render.print_json(out) if a.json else _table(render, out)
        return 0
    if cmd == "show":
        out = schedules.show(a.name, **where)
        render.print_json(out) if a.json else _detail(render, out)
        return 0
    if cmd == "run-now":
        out = schedules.run_now(a.name, **where)
        status = (out.get("firing") or {}).get("status")
        if a.json:
            render.print_json(out)
        elif out["ran"]:
            run_id = (out.get("firing") or {}).get("run_id")
            render.console.print(f"{out['key']}: run {run_id or '(none)'} {render.styled_status(status or '?')}")
        else:
            render.console.print(f"{out['key']}: queued for the running scheduler {out.get('scheduler') or ''}".rstrip())
        return 1 if out["ran"] and status == "failed" else 0
    action = {"pause": schedules.pause, "resume": schedules.resume, "rm": schedules.remove}[cmd]
    out = action(a.name, **where)
    if a.json:
        render.print_json(out)
    elif cmd == "rm":
        render.console.print(f"removed schedule {render.escape(out['removed'])}")
    else:
        render.console.print(
            f"schedule {render.escape(out['name'])} {render.styled_status(out['status'])}" + (f": {render.escape(out['broken'])}" if out["broken"] else "")
        )
    return 0


def _add(a: argparse.Namespace) -> dict:
    from nbops.automate import schedules
    from nbops.automate.triggers import make_trigger
    from nbops.errors import UsageError
    from nbops.plan import parse_assignments

    trigger = make_trigger(cron=a.cron, tz=a.tz, every=a.every, on_change=a.on_change, after=a.after, debounce=a.debounce)
    promote_flags = a.require or a.require_better_than or a.alias != "production"
    if promote_flags and not a.promote:
        raise UsageError("--alias, --require and --require-better-than go with --promote MODEL", "add --promote MODEL, e.g. --promote churn")
    promote = {"model": a.promote, "alias": a.alias, "require": a.require, "require_better_than": a.require_better_than} if a.promote else None
    options = {"max_concurrent": a.max_concurrent, "overlap": a.overlap, "catch_up": a.catch_up}
    return schedules.add(
        a.notebook, trigger, name=a.name, params=parse_assignments(a.param), params_file=a.params_file, executor=a.executor,
        notify=a.notify, notify_on=a.notify_on, promote=promote, options=options, store=a.store,
    )  # fmt: skip


def _table(render, out: list[dict]) -> None:
    from rich.table import Table

    if not out:
        render.console.print("no schedules yet: nbops schedule add NOTEBOOK --cron '0 3 * * *'")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("schedule", "status", "trigger", "next", "last", "notebook"):
        table.add_column(col, no_wrap=col != "notebook")
    for s in out:
        last = s.get("last")
        last_text = f"{render.styled_status(last['status'])} {last['due_at'][:16].replace('T', ' ')}" if last else ""
        table.add_row(render.escape(s["name"]), render.styled_status(s["status"]), render.escape(s["describe"]), (s["next"] or [""])[0],
                      last_text, render.escape(s["notebook"]))  # fmt: skip
    render.console.print(table)


def _detail(render, out: dict) -> None:
    from rich.table import Table

    s = out["schedule"]
    render.console.print(f"[bold]{render.escape(s['name'])}[/] {render.styled_status(s['status'])}  {render.escape(s['describe'])}")
    if s["broken"]:
        render.console.print(f"  broken: {render.escape(s['broken'])}", style="red")
    rows = [("notebook", s["notebook"]), ("params", render.pairs(s["params"])), ("params file", s["params_file"]), ("executor", s["executor"]),
            ("notify", ", ".join(s["notify"]) + (f" on {','.join(s['notify_on'])}" if s["notify"] else "")),
            ("promote", _promote_text(s["promote"])), ("options", render.pairs({k: v for k, v in s["options"].items() if v is not None})),
            ("next", ", ".join(s["next"]) or "(none: " + ("paused" if s["paused"] else "broken" if s["broken"] else "fires on its trigger") + ")")]  # fmt: skip
    for label, value in rows:
        if value:
            render.console.print(f"  {label:<12} {render.escape(str(value))}")
    if out["firings"]:
        table = Table(box=None, pad_edge=False, title="last firings", title_justify="left")
        for col in ("due", "key", "status", "run", "trigger", "reason"):
            table.add_column(col, no_wrap=col not in ("reason", "trigger"))
        for f in out["firings"]:
            table.add_row((f["due_at"] or "")[:19].replace("T", " "), render.escape(f["key"]), render.styled_status(f["status"]), f["run_id"] or "",
                          render.escape(_trigger_text(f["trigger"])), render.escape(f["reason"] or ""))  # fmt: skip
        render.console.print(table)
    else:
        render.console.print("  no firings yet")
    for e in out["events"][:10]:
        render.console.print(f"  {e['at'][:19].replace('T', ' ')} {render.escape(e['kind'])} {render.styled_status(e['status'])} "
                             f"{render.escape(e.get('target') or '')} {render.escape(e.get('message') or '')}".rstrip())  # fmt: skip


def _promote_text(p: dict | None) -> str:
    if not p:
        return ""
    gates = list(p.get("require") or []) + ([f"better than {p['require_better_than']}"] if p.get("require_better_than") else [])
    return f"{p['model']} to {p['alias']}" + (f" if {' and '.join(gates)}" if gates else "")


def _trigger_text(t: dict) -> str:
    """What fired: the file and its new hash for a data change, the schedule for ``after``, who for manual."""
    files = t.get("files")
    if files:
        return ", ".join(f"{f['path']} {str(f.get('hash') or '')[-12:]}" for f in files)
    if t.get("kind") == "manual":
        return f"manual by {t.get('by')}"
    return str(t.get("kind") or "")
