"""The scheduler loop: plan firings from triggers, claim them, run each in a worker process.

One pass (``tick``) does three things, each safe to do from several schedulers
sharing one store:

1. plan: a due cron/interval time, a changed watched file, a succeeded upstream
   run becomes a firing row (``add_firing``: its key is the primary key, so two
   schedulers make one row). ``state["planned_until"]`` in the schedule row
   remembers how far planning got, so a restart knows what it missed and
   applies the catch-up policy: ``once`` (the latest missed firing runs, the
   others are recorded skipped), ``all``, ``none`` (all recorded skipped);
2. dispatch: queued and interrupted firings (and running ones whose lease ran
   out: their scheduler died) are claimed (one conditional UPDATE: exactly one
   scheduler wins) up to the schedule's ``max_concurrent``; beyond it a firing
   waits (``overlap: queue``) or is recorded skipped (``overlap: skip``);
3. each claimed firing runs in a worker process (``nbops.automate.firing``:
   a run in a process can be interrupted, one in a thread cannot), whose lease
   a heartbeat thread renews.

Idle cost: a pass reads two small things (a change stamp of the schedules
table, the active firings); the full schedule list is read again only when
that stamp moves. Between passes the loop sleeps until the next due time, or
``poll_s`` when data or ``after`` triggers (or new schedules) need a look.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbops.automate import triggers
from nbops.automate.firing import WorkerPool
from nbops.store.location import store_settings
from nbops.store.run_store import RunStore
from nbops.store.schedules import ACTIVE_FIRING, ScheduleStore

__all__ = ["Scheduler", "CATCH_UP", "plan_time_firings", "serve_health", "status"]

log = logging.getLogger("nbops.scheduler")

CATCH_UP = ("once", "all", "none")
_MAX_PLANNED = 10_000  # firings planned per schedule per pass (a long downtime of a 1-second interval)


def plan_time_firings(trigger: dict, start: float, now: float, *, anchor: float, catch_up: str, late_s: float) -> list[tuple[str, float, str | None]]:
    """(key, due, skip reason or None) of a cron/interval trigger in (start, now].

    A firing due more than ``late_s`` before ``now`` was missed (no scheduler ran):
    ``all`` runs it, ``none`` records it skipped, ``once`` runs only the latest firing."""
    due = triggers.firings_between(trigger, start, now, anchor=anchor, limit=_MAX_PLANNED)
    out: list[tuple[str, float, str | None]] = []
    for i, (key, at) in enumerate(due):
        missed = at < now - late_s
        if catch_up == "once" and i < len(due) - 1 and missed:
            out.append((key, at, f"catch-up once: missed while no scheduler ran; the later firing {due[-1][0]} runs instead"))
        elif catch_up == "none" and missed:
            out.append((key, at, "catch-up none: missed while no scheduler ran"))
        else:
            out.append((key, at, None))
    return out


class Scheduler:
    def __init__(
        self,
        store: str | os.PathLike | None = None,
        *,
        near: str | os.PathLike | None = None,
        owner: str | None = None,
        catch_up: str = "once",
        lease_s: float = 30.0,
        tick_s: float = 0.5,
        late_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        prestart: bool = True,
    ):
        if catch_up not in CATCH_UP:
            from nbops.errors import UsageError

            raise UsageError(f"--catch-up takes once, all or none, not {catch_up!r}", "once: run only the latest missed firing")
        self.settings = store_settings(store, near)  # found as every surface finds it; ``near``: a notebook path
        self.store = RunStore(self.settings)
        self.ss = ScheduleStore(self.store)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.catch_up, self.lease_s, self.tick_s, self.late_s, self.clock = catch_up, lease_s, tick_s, late_s, clock
        self.last_tick: float | None = None  # time.monotonic() of the last pass that ended
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._schedules: list[dict] = []
        self._next_due: dict[str, float] = {}
        self._grace_over = threading.Event()
        job = {"store": self.settings.store, "objects": self.settings.objects, "workspace": str(self.settings.workspace), "owner": self.owner}
        self.workers = WorkerPool(job, self._worker_exited, spare=prestart)
        self._beat_stop = threading.Event()

    # -- one pass --------------------------------------------------------------
    def tick(self, now: float | None = None) -> float:
        """Plan and dispatch once; the seconds to sleep before the next pass."""
        now = self.clock() if now is None else now
        self._reload()
        if not self.stopping.is_set():
            self.plan(now)
            self.dispatch(now)
        self.last_tick = time.monotonic()
        return self.sleep_s(now)

    def sleep_s(self, now: float) -> float:
        polled = any(s["trigger"].get("kind") in ("on_change", "after") for s in self._live())
        nearest = min(self._next_due.values(), default=now + 3600) - now
        return max(0.05, min(nearest, self.tick_s if polled else max(self.tick_s, 2.0)))

    def _reload(self) -> None:
        """Read the schedules again when the table changed (added, edited, paused, state moved)."""
        stamp = self.ss.stamp()
        if stamp == self._stamp:
            return
        self._stamp, self._schedules = stamp, self.ss.all()
        self._next_due = {}
        for s in self._live():
            start = (s.get("state") or {}).get("planned_until") or s["created_at"]
            nxt = triggers.next_times(s["trigger"], start, 1, anchor=s["created_at"])
            if nxt:
                self._next_due[s["name"]] = nxt[0]

    def _live(self) -> list[dict]:
        return [s for s in self._schedules if not s.get("paused") and not s.get("broken")]

    # -- planning --------------------------------------------------------------
    def plan(self, now: float | None = None) -> list[tuple[str, str]]:
        """Make the firings that are due; the (schedule, key) this call created."""
        now = self.clock() if now is None else now
        if self._stamp is None:
            self._reload()
        made: list[tuple[str, str]] = []
        for s in self._live():
            kind = s["trigger"].get("kind")
            try:
                if kind in ("cron", "every") and self._next_due.get(s["name"], now + 1) <= now:
                    made += self._plan_time(s, now)
                elif kind == "on_change":
                    made += self._plan_change(s, now)
                elif kind == "after":
                    made += self._plan_after(s)
            except Exception as exc:  # noqa: BLE001 - one schedule's bad trigger never stops the others
                log.warning("schedule %s: planning failed: %s", s["name"], exc)
                self.ss.add_event(s["name"], "warning", "error", message=f"planning failed: {exc}")
        if made:
            self._reload()
        return made

    def _set_state(self, s: dict, **changes: Any) -> None:
        state = {**(s.get("state") or {}), **changes}
        s["state"] = state
        self.ss.update(s["name"], state=state)

    def _plan_time(self, s: dict, now: float) -> list[tuple[str, str]]:
        start = (s.get("state") or {}).get("planned_until") or s["created_at"]
        made = []
        catch_up = (s.get("options") or {}).get("catch_up") or self.catch_up  # the schedule's own policy wins
        for key, due, skipped in plan_time_firings(s["trigger"], start, now, anchor=s["created_at"], catch_up=catch_up, late_s=self.late_s):
            status = "skipped" if skipped else "queued"
            if self.ss.add_firing(s["name"], key, due, trigger={"due": triggers.iso(due, s["trigger"].get("tz"))}, status=status, reason=skipped):
                made.append((s["name"], key))
        self._set_state(s, planned_until=now)
        return made

    def _plan_change(self, s: dict, now: float) -> list[tuple[str, str]]:
        from nbops.automate import watch

        result = watch.scan(s["trigger"], s.get("state") or {}, now, base=str(Path(s["notebook"]).parent))
        for warning in result.warnings:
            self.ss.add_event(s["name"], "warning", "warning", message=str(warning))
        made = []
        for fired in result.fired:
            key, info = (fired["key"], {k: v for k, v in fired.items() if k != "key"}) if isinstance(fired, dict) else fired
            if self.ss.add_firing(s["name"], key, now, trigger=info):
                made.append((s["name"], key))
        if result.state != s.get("state"):
            s["state"] = dict(result.state)
            self.ss.update(s["name"], state=s["state"])
        return made

    def _plan_after(self, s: dict) -> list[tuple[str, str]]:
        upstream = s["trigger"]["schedule"]
        since = (s.get("state") or {}).get("after_since") or s["created_at"]
        done = [f for f in self.ss.firings(upstream, status=("succeeded",), limit=10) if f.get("run_id") and (f.get("ended_at") or 0) > since]
        made = []
        for f in sorted(done, key=lambda f: f["ended_at"]):
            key = f"after:{f['run_id']}"
            if self.ss.add_firing(s["name"], key, f["ended_at"], trigger={"after": upstream, "upstream_key": f["key"], "upstream_run": f["run_id"]}):
                made.append((s["name"], key))
        if done:
            self._set_state(s, after_since=max(f["ended_at"] for f in done))
        return made

    # -- dispatch --------------------------------------------------------------
    def dispatch(self, now: float | None = None) -> list[tuple[str, str]]:
        """Claim what may run now and start it; the (schedule, key) started."""
        now = self.clock() if now is None else now
        if self._stamp is None:
            self._reload()
        by_name: dict[str, list[dict]] = {}
        for f in self.ss.firings(None, status=ACTIVE_FIRING, limit=None, oldest_first=True):
            by_name.setdefault(f["name"], []).append(f)
        live = {s["name"]: s for s in self._live()}
        started = []
        for name, firings in by_name.items():
            s = live.get(name)
            if s is None:
                continue  # paused or broken: its firings wait
            started += self._dispatch_one(s, firings, now)
        return started

    def _dispatch_one(self, s: dict, firings: list[dict], now: float) -> list[tuple[str, str]]:
        options = s.get("options") or {}
        limit = int(options.get("max_concurrent") or 1)
        going = [f for f in firings if f["status"] == "running" and (f.get("lease_until") or 0) >= now]
        # Resumes first (an interrupted run, or one whose scheduler died), then new firings oldest first.
        waiting = [f for f in firings if f["status"] == "interrupted" or (f["status"] == "running" and f not in going)]
        waiting += [f for f in firings if f["status"] == "queued"]
        started = []
        for f in waiting:
            if len(going) >= limit:
                if options.get("overlap") == "skip" and f["status"] == "queued":
                    self.ss.set_firing(s["name"], f["key"], status="skipped", ended_at=now,
                                       reason=f"overlap skip: {going[0]['key']} was still running (max_concurrent {limit})")  # fmt: skip
                continue
            broken = self._check(s)
            if broken:
                return started
            got = self.ss.claim(s["name"], f["key"], self.owner, self.lease_s, now)
            if got is None:
                continue  # another scheduler took it
            going.append(got)
            self._start(s["name"], f["key"])
            started.append((s["name"], f["key"]))
        return started

    def _check(self, s: dict) -> str | None:
        """A schedule whose notebook was moved or deleted is marked broken; the others go on."""
        from nbops.automate.firing import _check_notebook

        reason = _check_notebook(s)
        if reason:
            self.ss.update(s["name"], broken=reason)
            self.ss.add_event(s["name"], "broken", "error", message=reason)
            log.warning("schedule %s is broken: %s", s["name"], reason)
            s["broken"] = reason
        return reason

    # -- workers ---------------------------------------------------------------
    def _start(self, name: str, key: str) -> None:
        pid = self.workers.start(name, key)
        log.info("schedule %s: firing %s started (pid %d)", name, key, pid)

    def _worker_exited(self, name: str, key: str, code: int) -> None:
        try:
            f = self.ss.firing(name, key)
            if f is not None and f["status"] == "running" and f.get("owner") == self.owner:
                # The worker died without recording an end (killed): resumable by the next claim.
                self.ss.set_firing(name, key, status="interrupted", reason=f"the worker process exited with code {code}")
        except Exception as exc:  # noqa: BLE001 - a store that is down: the lease runs out and the firing is claimed again
            log.warning("firing %s of %s: could not record the worker's end: %s", key, name, exc)
        self._wake.set()  # a slot is free, and an ``after`` schedule may be due

    def _heartbeat_loop(self, every: float) -> None:
        while not self._beat_stop.wait(every):
            self.beat()

    def beat(self) -> None:
        """Renew the leases of the running firings and say this scheduler is alive."""
        try:
            self.ss.renew(self.owner, self.lease_s, self.clock())
            nxt = min(self._next_due.values(), default=None)
            info = {
                "running": sorted(f"{n}/{k}" for n, k in self.workers.running()),
                "next_due": nxt,
                "catch_up": self.catch_up,
                "last_tick_age_s": self.tick_age(),
            }
            self.ss.heartbeat(self.owner, socket.gethostname(), os.getpid(), info=info, stopping=self.stopping.is_set(), now=self.clock())
        except Exception as exc:  # noqa: BLE001 - the store is down now; leases run out if it stays down
            log.warning("heartbeat failed: %s", exc)

    def tick_age(self) -> float | None:
        return None if self.last_tick is None else round(time.monotonic() - self.last_tick, 3)

    # -- the loop --------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        """Stop planning and claiming; ``serve_forever`` then lets the runs finish (grace)."""
        if self.stopping.is_set():
            self._grace_over.set()  # a second signal: do not wait any longer
        self.stopping.set()
        self._wake.set()

    def serve_forever(self, grace: float = 30.0, *, signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); then stop gracefully. Returns 0."""
        if signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.beat()
        self.workers.prestart()
        beat = threading.Thread(target=self._heartbeat_loop, args=(max(0.5, self.lease_s / 3),), daemon=True, name="nbops-scheduler-beat")
        beat.start()
        log.info("scheduler %s on %s (catch-up %s)", self.owner, self.store.location, self.catch_up)
        try:
            while not self.stopping.is_set():
                try:
                    wait = self.tick()
                except Exception as exc:  # noqa: BLE001 - the store is down, a schedule is odd: try again next pass
                    log.warning("scheduler pass failed: %s", exc)
                    wait = max(self.tick_s, 2.0)
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            self.shutdown(grace)
            self._beat_stop.set()
        return 0

    def shutdown(self, grace: float) -> None:
        """Let running firings finish up to ``grace`` seconds, then interrupt them (resumable)."""
        self.stopping.set()
        self.beat()
        self.workers.stop(time.monotonic() + grace, self._grace_over)
        try:
            self.ss.scheduler_gone(self.owner)
        except Exception as exc:  # noqa: BLE001 - its row ages out of status
            log.warning("could not remove this scheduler's heartbeat: %s", exc)


# -- status and health ---------------------------------------------------------


def status(store: str | os.PathLike | None = None, *, fresh_s: float = 30.0, now: float | None = None) -> dict[str, Any]:
    """Live schedulers (heartbeat in the last ``fresh_s``), running firings, and each schedule's next due time."""
    now = time.time() if now is None else now
    ss = ScheduleStore(RunStore(store_settings(store, None), create=False))
    nxt = []
    for s in ss.all():
        start = max(now, (s.get("state") or {}).get("planned_until") or s["created_at"])
        due = triggers.next_times(s["trigger"], start, 1, anchor=s["created_at"])
        nxt.append({"name": s["name"], "trigger": triggers.describe(s["trigger"]), "paused": bool(s.get("paused")), "broken": s.get("broken"),
                    "next_due": triggers.iso(due[0], s["trigger"].get("tz")) if due else None})  # fmt: skip
    return {
        "schedulers": [dict(r, alive=True) for r in ss.schedulers(fresh_s=fresh_s, now=now)],
        "running": [
            {k: f.get(k) for k in ("name", "key", "run_id", "owner", "attempts", "started_at", "lease_until")}
            for f in ss.firings(None, status=("running",), limit=None)
        ],
        "queued": len(ss.firings(None, status=("queued", "interrupted"), limit=None)),
        "schedules": nxt,
    }


def serve_health(scheduler: Scheduler, port: int, *, host: str = "127.0.0.1", stall_s: float = 30.0):
    """GET /health: 200 with the scheduler's state while its loop passes, 503 once no pass ended in ``stall_s``.
    A ThreadingHTTPServer in a daemon thread; call ``shutdown()`` on the returned server to stop it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/health":
                self._send(404, {"error": "not found", "fix": "GET /health"})
                return
            age = scheduler.tick_age()
            ok = age is not None and age < stall_s
            self._send(200 if ok else 503, {"status": "ok" if ok else "stalled", "owner": scheduler.owner, "last_tick_age_s": age,
                                           "running": sorted(f"{n}/{k}" for n, k in scheduler.workers.running()), "stopping": scheduler.stopping.is_set()})  # fmt: skip

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:  # probes every few seconds: not worth a log line each
            pass

    server = ThreadingHTTPServer((host, port), Health)
    threading.Thread(target=server.serve_forever, daemon=True, name="nbops-scheduler-health").start()
    return server
