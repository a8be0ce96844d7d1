"""Turning library results into terminal text (rich), and nothing else."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "err_console", "print_json", "RunProgress", "graph_text", "runs_table", "run_detail", "diff_text"]

# Not a terminal (pipes, CI logs): wide lines rather than tables squeezed to 80 columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 160)

_ICONS = {"started": "▶", "succeeded": "✓", "cached": "↺", "failed": "✗", "skipped": "–", "retry": "↻"}
_STYLE = {"succeeded": "green", "cached": "cyan", "failed": "red", "skipped": "dim", "running": "yellow", "interrupted": "magenta", "pending": "dim"}


def _styled(text: str, style: str) -> str:
    from rich.markup import escape

    return f"  [{style}]{escape(text)}[/]" if style else f"  {escape(text)}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class RunProgress:
    """Live lines: which stage started, was reused, finished or failed, with times."""

    def __init__(self, con: Console | None = None):
        self.con = con or err_console
        self.t0 = time.time()

    def __call__(self, event: str, stage: str, info: dict[str, Any]) -> None:
        if event == "run_done":
            return
        icon = _ICONS.get(event, "·")
        style = _STYLE.get(event, "")
        detail = ""
        if event in ("succeeded", "failed") and "seconds" in info:
            detail = f"{info['seconds']:.1f}s"
        if event == "cached":
            detail = f"reused from run {info.get('from')}"
        if event == "started" and info.get("attempt", 1) > 1:
            detail = f"attempt {info['attempt']}"
        if event in ("failed", "retry"):
            err = info.get("error") or {}
            where = f" (cell {err['cell']}: {err.get('first_line', '')})" if err.get("cell") is not None else ""
            detail += f"  {err.get('ename')}: {str(err.get('evalue', ''))[:200]}{where}"
        self.con.print(_styled(f"{icon} {stage:<18} {event:<9}", style), f" {detail}" if detail else "", sep="")


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
        where = f"cell {w['cell']} (\"{w['first_line']}\"): " if w["cell"] is not None else ""
        err_console.print(f"[yellow]warning:[/] {where}{w['message']}\n  fix: {w['fix']}")


def runs_table(runs: list[dict]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("run", "status", "started", "duration", "kind"):
        table.add_column(col, no_wrap=True)
    for col in ("params", "metrics"):
        table.add_column(col, overflow="fold")
    for r in runs:
        table.add_row(
            r["id"],
            _styled(r["status"], _STYLE.get(r["status"], "")).strip(),
            (r["started_at"] or "")[:19].replace("T", " "),
            f"{r['duration_s']:.1f}s" if r.get("duration_s") is not None else "",
            r.get("kind") or "",
            " ".join(f"{k}={_fmt(v)}" for k, v in (r["params"] or {}).items()),
            " ".join(f"{k}={_fmt(v)}" for k, v in (r["metrics"] or {}).items()),
        )
    console.print(table if runs else "no runs yet")


def run_detail(run: dict) -> None:
    con = console
    con.print(f"[bold]run {run['id']}[/] " + _styled(run["status"], _STYLE.get(run["status"], "")) + f"  {run.get('kind') or ''}"
              + (f" of {run['parent_id']}" if run.get("parent_id") else ""))
    con.print(f"notebook  {run['notebook']}")
    con.print(f"started   {run['started_at']}  duration {run['duration_s'] if run['duration_s'] is not None else '-'} s")
    git = run.get("git") or {}
    if git:
        con.print(f"git       {git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''} {git.get('branch', '')}")
    env = run.get("env") or {}
    con.print(f"env       python {env.get('python')} · {env.get('platform')} · gpus {env.get('gpu_ids') or 'none'}")
    if run["params"]:
        con.print("params    " + " ".join(f"{k}={_fmt(v)}" for k, v in run["params"].items()))
    if run["metrics"]:
        con.print("metrics   " + " ".join(f"{k}={_fmt(v)}" for k, v in run["metrics"].items()))
    table = Table(box=None, pad_edge=False)
    for col in ("stage", "status", "time", "outputs", "metrics / error"):
        table.add_column(col)
    checks = []
    for s in run["stages"]:
        note = " ".join(f"{k}={_fmt(v)}" for k, v in s["metrics"].items())
        if s.get("error"):
            e = s["error"]
            where = f" cell {e['cell']} ({e.get('first_line', '')})" if e.get("cell") is not None else ""
            note = f"[red]{e.get('ename')}: {str(e.get('evalue'))[:120]}{where}[/]"
        if s.get("cached_from"):
            note = (note + " " if note else "") + f"[dim](from {s['cached_from']})[/]"
        table.add_row(
            s["name"], _styled(s["status"], _STYLE.get(s["status"], "")).strip(),
            f"{s['duration_s']:.1f}s" if s.get("duration_s") is not None else "", ", ".join(s["outputs"])[:40], note,
        )
        checks += s["checks"]
    con.print(table)
    if checks:
        con.print("\n[bold]checks[/]")
        for c in checks:
            state = "PASS" if c.get("passed") else ("WARN" if c.get("warn") else "FAIL")
            colour = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}[state]
            con.print(f"  [{colour}]{state}[/] {c.get('stage')}/{c.get('name')}: observed {_fmt(c.get('observed'))}, threshold {_fmt(c.get('threshold'))}")
    for s in run["stages"]:
        gpu_note = (s.get("worker") or {}).get("gpu_note")
        if gpu_note:
            con.print(f"[dim]{s['name']}: {gpu_note}[/]")


def diff_text(d: dict) -> None:
    con = console
    con.print(f"[bold]{d['a']}[/] ({d['status']['a']}) → [bold]{d['b']}[/] ({d['status']['b']})")
    if d["params"]:
        con.print("\n[bold]parameters[/]")
        for k, v in d["params"].items():
            con.print(f"  {k}: {_fmt(v['a'])} → {_fmt(v['b'])}")
    if d["metrics"]:
        con.print("\n[bold]metrics[/]")
        for k, v in d["metrics"].items():
            con.print(f"  {k}: {_fmt(v['a'])} → {_fmt(v['b'])}")
    for name, text in d["code"].items():
        con.print(f"\n[bold]code of stage {name}[/]")
        con.print(text or "  (added or removed)", markup=False)
    if not (d["params"] or d["metrics"] or d["code"]):
        con.print("no differences in parameters, metrics or code")
