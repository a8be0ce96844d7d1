"""``nbops scheduler``: the long-running process that fires schedules; ``nbops scheduler status``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from nbops.cli.options import add_store_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "scheduler",
        help="run schedules: a foreground process (for systemd or a container); 'status' shows the live ones",
        description="Fire the store's schedules exactly once each (a lease in the store), until SIGTERM or Ctrl-C.",
    )
    p.add_argument("action", nargs="?", choices=["status"], help="status: live schedulers, running firings, next due times")
    add_store_options(p)
    p.add_argument(
        "--catch-up",
        choices=["once", "all", "none"],
        default="once",
        help="firings missed while no scheduler ran: run the latest only (once), all, or none (default: once)",
    )
    p.add_argument(
        "--grace", type=float, default=30.0, metavar="S", help="on SIGTERM, let runs finish up to S seconds, then interrupt them (resumable; default 30)"
    )
    p.add_argument("--health-port", type=int, metavar="P", help="serve GET /health on 127.0.0.1:P (200 while the loop passes, 503 when it stalls)")
    p.add_argument("--lease", type=float, default=30.0, metavar="S", help="how long a firing stays claimed without a heartbeat (default 30)")
    p.add_argument(
        "--poll", type=float, default=0.5, metavar="S", help="how often data and after triggers are looked at (default 0.5; with none, every 2 s at most)"
    )
    p.add_argument("--json", action="store_true", help="status: print JSON")
    return {"scheduler": _cmd_scheduler}


def _cmd_scheduler(a: argparse.Namespace) -> int:
    from nbops.automate import scheduler

    if a.action == "status":
        out = scheduler.status(a.store)
        if a.json:
            from nbops.cli import render

            render.print_json(out)
        else:
            _status_text(out)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("nbops.scheduler").setLevel(logging.INFO)
    s = scheduler.Scheduler(a.store, catch_up=a.catch_up, lease_s=a.lease, tick_s=a.poll)
    health = scheduler.serve_health(s, a.health_port) if a.health_port else None
    try:
        return s.serve_forever(a.grace)
    finally:
        if health is not None:
            health.shutdown()


def _status_text(out: dict) -> None:
    from nbops.cli.render import console as con
    from nbops.cli.render import escape

    if not out["schedulers"]:
        con.print("no live scheduler (start one: nbops scheduler)")
    for r in out["schedulers"]:
        stopping = " (stopping)" if r.get("stopping") else ""
        con.print(f"scheduler {r['id']} pid {r['pid']} on {r['host']}{stopping}")
    for f in out["running"]:
        con.print(f"  running {f['name']} {f['key']} run {f.get('run_id') or '-'} (attempt {f.get('attempts')}, {f.get('owner')})")
    if out["queued"]:
        con.print(f"  {out['queued']} firing(s) waiting")
    for s in out["schedules"]:
        state = "paused" if s["paused"] else f"broken: {s['broken']}" if s["broken"] else f"next {s['next_due'] or '-'}"
        con.print(escape(f"{s['name']:<24} {s['trigger']:<36} {state}"))
