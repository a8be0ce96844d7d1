"""``nbops daemon [start|status|stop]``: the process that keeps kernel templates warm.

Every CLI command that runs stages asks the daemon for its template (starting it
on first use; NBOPS_DAEMON=0: templates live in the command itself instead).
``nbops daemon`` alone runs it in the foreground, for debugging.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    # No import of nbops.execute here: every command builds the parser. The CLI's runs take
    # their templates from the daemon because the process is `nbops` (forkserver.in_cli).
    p = subparsers.add_parser("daemon", help="keep kernel templates warm between commands (started on first use; exits when idle)")
    p.add_argument("--idle", type=float, metavar="SECONDS", help="exit after this long without a request (default: NBOPS_DAEMON_IDLE or 600)")
    actions = p.add_subparsers(dest="daemon_command", metavar="ACTION")
    s = actions.add_parser("start", help="start it in the background (a no-op when it runs)")
    s.add_argument("--warm", metavar="NOTEBOOK", help="and make the template for this notebook now (pre-warm before a benchmark)")
    s.add_argument("--json", action="store_true")
    s = actions.add_parser("status", help="whether it runs, and its templates (imports, memory, forks)")
    s.add_argument("--json", action="store_true")
    s = actions.add_parser("stop", help="stop it and its templates (the next run starts cold)")
    s.add_argument("--json", action="store_true")
    return {"daemon": _cmd_daemon}


def _cmd_daemon(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.execute import daemon

    if a.idle is not None:
        os.environ["NBOPS_DAEMON_IDLE"] = str(a.idle)  # the background daemon reads it too
    if a.daemon_command is None:
        render.console.print(f"nbops daemon: foreground, folder {daemon.runtime_dir()}, idle timeout {daemon.idle_timeout():g} s (Ctrl-C stops)")
        if daemon.serve() == 1:
            render.console.print("another nbops daemon runs already (`nbops daemon stop` first)")
            return 1
        return 0
    if a.daemon_command == "start":
        out = {"running": True, **(daemon.ensure() or {})}
        if a.warm:
            from nbops.api import prepare

            prep = prepare(a.warm)
            out["template"] = daemon.prewarm(prep.spec.kernel_name, str(prep.spec.folder), prep.cwd)
    elif a.daemon_command == "stop":
        out = daemon.stop()
    else:
        out = daemon.status()
    if a.json:
        render.print_json(out)
    else:
        _text(render, a.daemon_command, out)
    return 0


def _text(render, command: str, out: dict) -> None:
    con = render.console
    if command == "stop":
        con.print("stopped" if out.get("stopped") else "not running" + (f" (removed {out['cleared']})" if out.get("cleared") else ""))
        return
    if not out.get("running"):
        con.print("not running" + (" (a stale socket is left; the next run removes it)" if out.get("stale") else ""))
        return
    con.print(f"running, pid {out.get('pid')}" + (f", up {out['uptime_s']:.0f}s, idle timeout {out['idle_timeout_s']:g}s" if "uptime_s" in out else ""))
    for t in out.get("templates", []):
        rss = f"{t['rss'] / 2**20:.0f} MB" if t.get("rss") else "?"
        state = "ready" if t.get("alive") else f"failed: {t.get('error')}"
        con.print(f"  template {t['id']} ({state}): {rss}, {t.get('forks', 0)} forks, imports {', '.join(t['imports']) or '(base)'}")
    if out.get("template"):
        con.print(f"warm: template {out['template']['id']}")
