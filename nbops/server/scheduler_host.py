"""The scheduler hosted by the Jupyter server, for panel users who run no other process.

Opt-in, off by default (two Jupyter servers on one store would both schedule;
that is safe, the store's leases decide, but it should be a choice):

- ``NBOPS_SCHEDULER=1`` in the server's environment, or
- ``c.NbopsScheduler.enabled = True`` in ``jupyter_server_config.py``
  (``--NbopsScheduler.enabled=True`` on the command line);
  ``c.NbopsScheduler.grace`` (seconds, default 10; env ``NBOPS_SCHEDULER_GRACE``)
  is how long running firings may finish when the server stops.

The loop runs in a thread of the server; each firing still runs in its own
worker process, so a run never blocks the server. The store is found as for
the lab's runs (``NBOPS_STORE``, nbops.toml, ``.nbops/`` in the server's root).
Stopping the server stops the scheduler gracefully: runs get ``grace`` seconds,
then are interrupted (resumable). Nothing is lost: schedules and firings live
in the store, and the next scheduler (this server again, or ``nbops
scheduler``) catches up.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["setup", "SchedulerHost", "enabled"]

_TRUE = ("1", "true", "yes", "on")


def _setting(server_app: Any, name: str) -> Any:
    section = getattr(server_app, "config", {}).get("NbopsScheduler", {})
    return section.get(name) if hasattr(section, "get") else None


def enabled(server_app: Any) -> bool:
    env = os.environ.get("NBOPS_SCHEDULER")
    if env is not None and env.strip() != "":
        return env.strip().lower() in _TRUE
    return bool(_setting(server_app, "enabled"))


class SchedulerHost:
    """One Scheduler in a daemon thread; ``stop()`` (idempotent) stops it gracefully."""

    def __init__(self, store: str | None, near: str | os.PathLike | None, grace: float):
        from nbops.automate.scheduler import Scheduler

        self.grace = grace
        self.scheduler = Scheduler(store, near=near)
        self.thread = threading.Thread(target=self._serve, daemon=True, name="nbops-scheduler")
        self._stopped = threading.Lock()

    def _serve(self) -> None:
        self.scheduler.serve_forever(self.grace, signals=False)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if not self._stopped.acquire(blocking=False):
            return
        self.scheduler.request_stop()
        self.thread.join(timeout=self.grace + 30)


def setup(server_app: ServerApp) -> SchedulerHost | None:
    if not enabled(server_app):
        return None
    grace = float(os.environ.get("NBOPS_SCHEDULER_GRACE") or _setting(server_app, "grace") or 10)
    root = Path(getattr(server_app, "root_dir", None) or os.getcwd())
    try:
        host = SchedulerHost(None, root / "x.ipynb", grace)
    except Exception as exc:  # noqa: BLE001 - a store that cannot open must not stop the server
        server_app.log.warning("nbops: the scheduler did not start: %s", exc)
        return None
    host.start()
    server_app.web_app.settings["nbops_scheduler"] = host
    # The server's own cleanup (SIGTERM, Ctrl-C, /api/shutdown) first stops the scheduler;
    # atexit covers an exit that skips it.
    original = server_app.cleanup_extensions

    async def cleanup_extensions() -> None:
        await asyncio.get_running_loop().run_in_executor(None, host.stop)
        await original()

    server_app.cleanup_extensions = cleanup_extensions  # type: ignore[method-assign]
    atexit.register(host.stop)
    server_app.log.info("nbops: scheduler %s running on %s (grace %gs)", host.scheduler.owner, host.scheduler.store.location, grace)
    return host
