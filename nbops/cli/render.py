"""Turning library results into terminal text (rich), and nothing else."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nbops.status import COLOUR, DONE_OK, FAILED, ICON, RUNNING
from nbops.text import cell_ref, format_number, to_json_text

__all__ = [
    "console", "err_console", "print_json", "RunProgress", "graph_text", "author", "runs_table", "run_detail", "diff_text",
    "pairs", "counted", "error_where", "styled_status", "reason_text", "why_text", "plan_text", "differences", "compared", "escape",
    "models_table", "model_detail", "alias_move", "model_history",
]  # fmt: skip

# Not a terminal (pipes, CI logs): wide lines rather than tables squeezed to 80 columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 160)

# Progress events that are not statuses borrow a status's look.
_EVENT_AS = {"started": RUNNING, "retry": RUNNING}
_EVENT_ICON = {"retry": "↻"}


def print_json(data: Any) -> None:
    sys.stdout.write(to_json_text(data, indent=2) + "\n")


def pairs(values: dict | None) -> str:
    """``accuracy=0.8416 n_estimators=100``: parameters and metrics on one line."""
    return " ".join(f"{k}={format_number(v)}" for k, v in (values or {}).items())


def error_where(err: dict) -> str:
    """``cell 6 ("model.fit(X, y)")`` of the user's notebook, or "" when the error names no cell."""
    if err.get("cell") is not None:
        return cell_ref(err["cell"], err.get("first_line"))
    return "a generated cell" if err.get("generated") else ""


def styled_status(status: str) -> str:
    colour = COLOUR.get(status)
    return f"[{colour}]{escape(status)}[/]" if colour else escape(status)


def reason_text(reason: dict | None) -> str:
    """``params: n_estimators changed 100 → 50``: why a stage ran or was reused."""
    if not reason:
        return ""
    return f"{reason.get('kind')}: {reason.get('detail')}" if reason.get("detail") else str(reason.get("kind"))


class RunProgress:
    """Live lines: which stage started, was reused, finished or failed, with times."""

    def __init__(self, con: Console | None = None):
        self.con = con or err_console
        self.t0 = time.time()

    def __call__(self, event: str, stage: str, info: dict[str, Any]) -> None:
        if event == "run_done":
            return
        look = _EVENT_AS.get(event, event)
        icon = _EVENT_ICON.get(event) or ICON.get(look, "·")
        detail = ""
        if event in ("succeeded", "failed") and "seconds" in info:
            detail = f"{info['seconds']:.1f}s"
        if event == "cached":
            detail = f"reused from run {info.get('from')}"
        if event == "started" and info.get("attempt", 1) > 1:
            detail = f"attempt {info['attempt']}"
        if event in ("failed", "retry"):
            err = info.get("error") or {}
            where = error_where(err)
            detail += f"  {err.get('ename')}: {str(err.get('evalue', ''))[:200]}" + (f" ({where})" if where else "")
        line = escape(f"{icon} {stage:<18} {event:<9}")
        colour = COLOUR.get(look)
        self.con.print(f"  [{colour}]{line}[/]" if colour else f"  {line}", escape(f" {detail}") if detail else "", sep="")


def graph_text(g: dict) -> None:
    con = console
    con.print(f"[bold]{g['notebook']}[/]: {len(g['stages'])} stages, {len(g['parameters'])} parameters")
    if g["parameters"]:
        con.print("parameters: " + ", ".join(f"{p['name']}={p['default']!r} ({p['type']})" for p in g["parameters"]))
    for s in g["stages"]:
        res = {k: v for k, v in s["resources"].items() if v not in (None, 0)}
        extras = []
        if res:
            extras.append(" ".join(f"{k}:{v}" for k, v in res.items()))
        if not s["cache"]:
            extras.append("cache:off")
        if s["implicit"]:
            extras.append("implicit")
        con.print(f"\n[bold cyan]{s['name']}[/] cells {s['cells']}" + (f"  [dim]{'; '.join(extras)}[/]" if extras else ""))
        if s["parameters"]:
            con.print(f"  reads parameters: {', '.join(s['parameters'])}")
        for var, producer in s["inputs"].items():
            con.print(f"  {var} ← {producer}")
        if s["outputs"]:
            con.print(f"  exports: {', '.join(s['outputs'])}")
        if s["metrics"]:
            con.print(f"  metrics: {', '.join(s['metrics'])}")
    explicit = [e for e in g["edges"] if e["explicit"]]
    if explicit:
        con.print("\nexplicit edges: " + ", ".join(f"{e['source']} → {e['target']}" for e in explicit))
    for w in g["warnings"]:
        where = error_where(w)
        err_console.print(f"[yellow]warning:[/] {escape(where + ': ' if where else '')}{escape(w['message'])}\n  fix: {escape(w['fix'])}")


def author(run: dict) -> str:
    """``alice@laptop``: who ran a run and where ("" for runs recorded before nbops kept it)."""
    user, host = run.get("user"), run.get("host")
    return f"{user or '?'}@{host}" if host else (user or "")


def trigger_text(t: dict) -> str:
    """What started a scheduled run: "schedule nightly: data/a.csv changed (1a2b3c4d)"."""
    files = t.get("files") or []
    if files:
        what = ", ".join(f"{f.get('path')} changed ({str(f.get('hash') or '')[:8]})" for f in files)
    elif t.get("kind") == "after":
        what = f"after {t.get('after')} (run {t.get('upstream_run')})"
    else:
        what = {"manual": f"run now by {t.get('by') or 'someone'}"}.get(t.get("kind"), f"due {t.get('due') or t.get('key')}")
    return f"schedule {t.get('schedule')}: {what}"


def kernels_text(run: dict) -> str | None:
    """How the stages' kernels started: forked from a warm template, or the pool and why."""
    workers = [s.get("worker") or {} for s in run["stages"] if (s.get("worker") or {}).get("kernel_start")]
    if not workers:
        return None
    forked = [w for w in workers if w["kernel_start"] == "fork"]
    if len(forked) == len(workers):
        fork_ms = sorted(w.get("fork_ms") or 0 for w in forked)
        return f"kernels   forked from template {forked[0].get('template', '?')} (fork {fork_ms[len(fork_ms) // 2]:.0f} ms)"
    reasons = sorted({w.get("reason") or "" for w in workers if w["kernel_start"] != "fork"} - {""})
    return f"kernels   {len(forked)} forked, {len(workers) - len(forked)} from the pool" + (f" ({'; '.join(reasons)})" if reasons else "")


def runs_table(runs: list[dict]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("run", "status", "started", "duration", "kind", "author"):
        table.add_column(col, no_wrap=True)
    for col in ("params", "metrics"):
        table.add_column(col, overflow="fold")
    for r in runs:
        table.add_row(
            r["id"], styled_status(r["status"]), (r["started_at"] or "")[:19].replace("T", " "),
            f"{r['duration_s']:.1f}s" if r.get("duration_s") is not None else "", r.get("kind") or "",
            escape(author(r)), escape(pairs(r["params"])), escape(pairs(r["metrics"])),
        )  # fmt: skip
    console.print(table if runs else "no runs yet")


def run_detail(run: dict) -> None:
    con = console
    con.print(f"[bold]run {run['id']}[/]  " + styled_status(run["status"]) + f"  {run.get('kind') or ''}"
              + (f" of {run['parent_id']}" if run.get("parent_id") else ""))  # fmt: skip
    con.print(f"notebook  {escape(str(run['notebook']))}")
    if author(run):
        con.print(f"author    {escape(author(run))}")
    if run.get("store"):
        con.print(f"store     {escape(run['store'])}")
    if run.get("trigger"):
        con.print(f"trigger   {escape(trigger_text(run['trigger']))}")
    con.print(f"started   {run['started_at']}  duration {run['duration_s'] if run['duration_s'] is not None else '-'} s")
    git = run.get("git") or {}
    if git:
        con.print(f"git       {git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''} {git.get('branch', '')}")
    env = run.get("env") or {}
    con.print(f"env       python {env.get('python')} · {env.get('platform')} · gpus {env.get('gpu_ids') or 'none'}")
    if run["params"]:
        con.print("params    " + escape(pairs(run["params"])))
    if run["metrics"]:
        con.print("metrics   " + escape(pairs(run["metrics"])))
    table = Table(box=None, pad_edge=False)
    for col in ("stage", "status", "time", "outputs"):
        table.add_column(col, no_wrap=True)
    for col in ("why", "metrics / error"):
        table.add_column(col, overflow="fold")
    checks = []
    for s in run["stages"]:
        note = escape(pairs(s["metrics"]))
        if s.get("error"):
            e = s["error"]
            where = error_where(e)
            note = f"[red]{escape(str(e.get('ename')))}: {escape(str(e.get('evalue'))[:120])}{escape(' at ' + where) if where else ''}[/]"
        if s.get("cached_from"):
            note = (note + " " if note else "") + f"[dim](from {s['cached_from']})[/]"
        table.add_row(
            s["name"], styled_status(s["status"]), f"{s['duration_s']:.1f}s" if s.get("duration_s") is not None else "",
            escape(", ".join(s["outputs"])[:40]), escape(reason_text(s.get("reason"))), note,
        )  # fmt: skip
        checks += s["checks"]
    con.print(table)
    if checks:
        con.print("\n[bold]checks[/]")
        for c in checks:
            state = "PASS" if c.get("passed") else ("WARN" if c.get("warn") else "FAIL")
            colour = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}[state]
            con.print(f"  [{colour}]{state}[/] {c.get('stage')}/{c.get('name')}: observed {escape(format_number(c.get('observed')))}, "
                      f"threshold {escape(format_number(c.get('threshold')))}")  # fmt: skip
    kernels = kernels_text(run)
    if kernels:
        con.print(f"[dim]{escape(kernels)}[/]")
    for s in run["stages"]:
        gpu_note = (s.get("worker") or {}).get("gpu_note")
        if gpu_note:
            con.print(f"[dim]{escape(s['name'])}: {escape(gpu_note)}[/]")


def diff_text(d: dict) -> None:
    con = console
    con.print(f"[bold]{d['a']}[/] ({styled_status(d['status']['a'])}) → [bold]{d['b']}[/] ({styled_status(d['status']['b'])})")
    if d["params"]:
        con.print("\n[bold]parameters[/]")
        for k, v in d["params"].items():
            con.print(escape(f"  {k}: {format_number(v['a'])} → {format_number(v['b'])}"))
    if d["metrics"]:
        con.print("\n[bold]metrics[/]")
        for k, v in d["metrics"].items():
            con.print(escape(f"  {k}: {format_number(v['a'])} → {format_number(v['b'])}"))
    if d.get("reasons"):
        con.print(f"\n[bold]why[/] (what differs for each stage of {d['b']}, against {d['a']})")
        table = Table(box=None, pad_edge=False, show_header=False)
        table.add_column("stage", no_wrap=True)
        table.add_column("why", overflow="fold")
        for r in d["reasons"]:
            table.add_row("  " + escape(r["stage"]), escape(reason_text(r)))
        con.print(table)
    if d.get("data"):
        con.print("\n[bold]data files changed[/]")
        for f in d["data"]:
            con.print(escape(f"  {f['path']}: {_short(f['a'])} → {_short(f['b'])}"))
    for name, text in d["code"].items():
        con.print(f"\n[bold]code of stage {escape(name)}[/]")
        con.print(text or "  (added or removed)", markup=False)
    if not (d["params"] or d["metrics"] or d["code"] or d.get("reasons") or d.get("data")):
        con.print("no differences in parameters, metrics, code or data")


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "(absent)"


def why_text(w: dict) -> None:
    """``nbops why RUN``: one line per stage, its status and the reason."""
    console.print(f"[bold]run {w['run_id']}[/]" + (f"  {escape(str(w['notebook']))}" if w.get("notebook") else ""))
    _reason_table([(s["name"], styled_status(s["status"]), s.get("reason")) for s in w["stages"]], "status")


def plan_text(plan: dict) -> None:
    """``nbops run NB --dry-run``: which stages would run, which would be reused, and why."""
    would = sum(1 for s in plan["stages"] if s["action"] == "run")
    console.print(f"[bold]{escape(str(plan['notebook']))}[/]: {would} of {len(plan['stages'])} stages would run"
                  + ("" if plan.get("store") else " (no run store yet: nothing to reuse)"))  # fmt: skip
    rows = []
    for s in plan["stages"]:
        action = "[yellow]run[/]" if s["action"] == "run" else f"[{COLOUR['cached']}]reuse[/]"
        rows.append((s["name"], action, s.get("reason")))
    _reason_table(rows, "would")
    reads = sorted({p for s in plan["stages"] for p in s.get("reads") or []})
    if reads:
        console.print("[dim]data read: " + escape(", ".join(reads)) + "[/]")


def _reason_table(rows: list[tuple[str, str, dict | None]], second: str) -> None:
    table = Table(box=None, pad_edge=False)
    table.add_column("stage", no_wrap=True)
    table.add_column(second, no_wrap=True)
    table.add_column("why", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for name, state, reason in rows:
        reason = reason or {}
        table.add_row(escape(name), state, escape(str(reason.get("kind") or "")), escape(str(reason.get("detail") or "")))
    console.print(table)


def differences(diffs: list[dict], *, outputs: int, metrics: int, label: str = "differs", con: Console | None = None) -> None:
    """The verdict of a comparison (rerun, --repeat): "identical: ..." or what differs, then a table of it."""
    con = con or err_console
    if not diffs:
        con.print(f"[{COLOUR['succeeded']}]identical:[/] {counted(outputs, 'output')}, {counted(metrics, 'metric')} compared")
        return
    names = ", ".join(f"{d['kind']} {d['name']}" for d in diffs[:5]) + (", ..." if len(diffs) > 5 else "")
    con.print(f"[{COLOUR[FAILED]}]{label}:[/] {escape(names)} ({len(diffs)} of {counted(outputs, 'output')} and {counted(metrics, 'metric')} compared)")
    table = Table(box=None, pad_edge=False)
    for col in ("", "stage", "name", "first", "second"):
        table.add_column(col, overflow="fold")
    for d in diffs:
        first, second = d.get("a"), d.get("b")
        if d["kind"] == "output":
            first, second = _short(first), _short(second)
        table.add_row("  " + d["kind"], escape(str(d.get("stage") or "")), escape(str(d["name"])),
                      escape(format_number(first)), escape(format_number(second)))  # fmt: skip
    con.print(table)


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def compared(run: dict) -> tuple[int, int]:
    """(outputs, metrics) a comparison of ``run`` with another one looks at."""
    outputs = sum(len(s["outputs"]) for s in run["stages"] if s["status"] in DONE_OK)
    return outputs, len(run["metrics"])


# -- the model registry ---------------------------------------------------------------
def _aliases(aliases: dict) -> str:
    return ", ".join(f"{a} → v{v}" for a, v in sorted(aliases.items()))


def models_table(models: list[dict]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("model", "latest", "aliases", "created by", "created"):
        table.add_column(col, no_wrap=col != "aliases")
    for m in models:
        table.add_row(escape(m["name"]), f"v{m['latest']}" if m.get("latest") else "", escape(_aliases(m["aliases"])),
                      escape(m.get("created_by") or ""), (m.get("created_at") or "")[:19].replace("T", " "))  # fmt: skip
    console.print(table if models else "no models yet: nbops models register RUN --stage STAGE --var NAME --name MODEL")


def model_detail(out: dict) -> None:
    if "versions" in out:  # every version of one model
        console.print(f"[bold]{escape(out['name'])}[/]  aliases: {escape(_aliases(out['aliases'])) or 'none'}")
        table = Table(box=None, pad_edge=False)
        for col in ("version", "aliases", "flavor", "run", "stage", "created by", "metrics"):
            table.add_column(col, no_wrap=col != "metrics", overflow="fold")
        for v in out["versions"]:
            table.add_row(f"v{v['version']}", escape(", ".join(v.get("aliases") or [])), v["flavor"], v["run_id"], escape(v["stage"]),
                          escape(v.get("created_by") or ""), escape(pairs(v["metrics"])))  # fmt: skip
        console.print(table)
        return
    console.print(f"[bold]{escape(out['name'])} v{out['version']}[/]" + (f"  ({escape(', '.join(out['aliases']))})" if out.get("aliases") else ""))
    lines = [
        ("flavor", f"{out['flavor']} ({out.get('type') or '?'})"),
        ("from", f"run {out['run_id']}, stage {out['stage']}, variable {out['var']}"),
        ("artifact", f"sha256:{out['sha256'][:16]} ({out.get('bytes') or '?'} bytes)"),
        ("signature", _signature_text(out.get("signature") or {})),
        ("metrics", pairs(out.get("metrics"))),
        ("params", pairs(out.get("params"))),
        (
            "registered",
            f"{out.get('created_at') or ''} by {out.get('created_by') or '?'} ({out.get('source')})" + (f": {out['message']}" if out.get("message") else ""),
        ),
    ]
    lineage = out.get("lineage") or {}
    if lineage:
        git = lineage.get("git") or {}
        lines.append(("notebook", f"{lineage.get('notebook')} sha256:{(lineage.get('notebook_sha256') or '')[:12]}"))
        if git.get("commit"):
            lines.append(("git", f"{git['commit'][:12]}" + (" (dirty)" if git.get("dirty") else "")))
        for d in lineage.get("data") or []:
            lines.append(("data", f"{d.get('path') or d.get('key')} sha256:{(d.get('sha256') or '')[:12]}"))
        env = lineage.get("environment") or {}
        if env.get("python"):
            lines.append(("environment", f"python {env['python']}, {len(env.get('packages') or {})} packages"))
    for label, text in lines:
        console.print(f"  {label:<12} {escape(str(text))}")


def _signature_text(sig: dict) -> str:
    if sig.get("kind") == "frame":
        return ", ".join(f"{c['name']}:{c['dtype']}" for c in sig["columns"])
    if sig.get("kind") == "array":
        return f"array {sig.get('dtype')} shape {['*' if s is None else s for s in sig['shape']]}"
    return "unknown (inputs are not checked)"


def alias_move(out: dict) -> None:
    before = f"v{out['from']}" if out.get("from") is not None else "nothing"
    console.print(f"{escape(out['name'])}@{escape(out['alias'])}: {before} → v{out['to']}")
    for g in out.get("gates") or []:
        detail = g.get("note") or (f"{g['value']} vs {g['other']} (v{g['other_version']})" if "other" in g else f"{g.get('value')}")
        console.print(f"  [green]✓[/] {escape(g['gate'])}: {escape(str(detail))}")


def model_history(name: str, events: list[dict]) -> None:
    if not events:
        console.print(f"{escape(name)}: no alias has moved yet")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("when", "alias", "action", "from", "to", "who", "why"):
        table.add_column(col, no_wrap=col != "why", overflow="fold")
    for e in events:
        table.add_row((e["at"] or "")[:19].replace("T", " "), escape(e["alias"]), e["action"], f"v{e['from']}" if e["from"] is not None else "",
                      f"v{e['to']}", escape(e.get("user") or ""), escape(e.get("message") or ""))  # fmt: skip
    console.print(table)


def model_drift(out: dict) -> None:
    """A drift report (nbops.models.drift(...).to_json()): one row per column, drifted ones first."""
    console.print(
        f"[bold]{escape(out['model'])} v{out['version']}[/]: {counted(out['served_rows'], 'served row')} ({counted(out['requests'], 'request')}"
        + (f" since {out['since'][:16].replace('T', ' ')} UTC" if out.get("since") else "")
        + f") vs {counted(out['reference_rows'], 'training row')} ({escape(out['reference'])})"
    )
    table = Table(box=None, pad_edge=False)
    for col in ("column", "test", "statistic", "p-value", "PSI", "drifted", "note"):
        table.add_column(col, no_wrap=col != "note", overflow="fold")
    for c in out["columns"]:
        mark = "[red]yes[/]" if c["drifted"] else "no"
        table.add_row(escape(c["column"]), c["test"], format_number(c["statistic"]), format_number(c["p_value"]), format_number(c["psi"]), mark,
                      escape(c.get("note") or ""))  # fmt: skip
    console.print(table)
    drifted = out.get("drifted") or []
    console.print(f"drifted: {escape(', '.join(drifted))}" if drifted else "no column drifted")
