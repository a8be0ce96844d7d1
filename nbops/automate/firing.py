"""Running one claimed firing: its run, then promotion and notifications; the worker processes.

The scheduler claims a firing (a lease in the store) and hands it to a worker
process (``python -m nbops.automate.firing``, see ``main``): a child per firing,
not a thread, because a run in a thread cannot be stopped. A child can: the
scheduler's graceful stop (or its death: the child's stdin pipe closes) sends
it SIGINT, which takes the run's own Ctrl-C path (kernels interrupted, then
killed; the run recorded ``interrupted`` and resumable), and the firing is
marked ``interrupted`` for the next scheduler to claim and resume.

A firing claimed again (``attempts`` > 1) that already has a run resumes that
run instead of starting a new one; a run that ended is taken as it is.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.status import FAILED, INTERRUPTED, RUNNING, SUCCEEDED

__all__ = ["run_firing", "store_arg", "WorkerPool", "main"]

log = logging.getLogger("nbops.scheduler")

# How often a new attempt looks whether the previous attempt's run stopped.
_PREVIOUS_RUN_POLL_S = 0.5
# True while this process is inside the notebook run: only then does SIGINT interrupt
# (during notifications the firing finishes; the run is over already).
_in_run = threading.Event()


def store_arg(rs: Any) -> str:
    """What ``nbops.api`` takes as ``store=`` for an open RunStore: its folder, or its database URL."""
    return rs.db.url if rs.is_database else str(rs.root)


def run_firing(ss: Any, schedule: dict, firing: dict, owner: str, *, clock: Callable[[], float] = time.time, stop: threading.Event | None = None) -> dict:
    """Run a firing this ``owner`` claimed; returns the firing as recorded at the end.

    Never raises for a run that fails or cannot start: the firing says ``failed``
    with the reason, and the failure is notified. A KeyboardInterrupt (the
    scheduler stopping) leaves the firing ``interrupted`` for the next claim."""
    name, key = schedule["name"], firing["key"]
    if stop is not None and stop.is_set():
        ss.set_firing(name, key, status=INTERRUPTED, reason="the scheduler stopped before the run started")
        return ss.firing(name, key) or firing
    broken = _check_notebook(schedule)
    if broken:
        ss.update(name, broken=broken)
        ss.add_event(name, "broken", "error", key=key, message=broken)
        return _finish(ss, schedule, key, FAILED, clock, reason=broken, run=None)
    try:
        run = _run_or_resume(ss, schedule, firing, stop)
    except KeyboardInterrupt:
        ss.set_firing(name, key, status=INTERRUPTED, reason="the scheduler stopped during the run; the next one resumes it")
        return ss.firing(name, key) or firing
    except NbopsError as exc:
        return _finish(ss, schedule, key, FAILED, clock, reason=f"{exc.message} ({exc.fix})" if exc.fix else exc.message, run=None)
    except Exception as exc:  # noqa: BLE001 - a scheduler never crashes on one schedule's bad run
        log.exception("schedule %s: firing %s crashed", name, key)
        return _finish(ss, schedule, key, FAILED, clock, reason=f"{type(exc).__name__}: {exc}", run=None)
    status = SUCCEEDED if run.get("status") == SUCCEEDED else FAILED
    reason = None if status == SUCCEEDED else _why_failed(run)
    return _finish(ss, schedule, key, status, clock, reason=reason, run=run)


def _why_failed(run: dict) -> str:
    """``run X failed at stage b: AssertionError: asked to fail`` (the history's one-line reason)."""
    failed = next((s for s in run.get("stages") or [] if s.get("status") == FAILED), None)
    error = (failed or {}).get("error") or {}
    where = f" at stage {failed['name']}" if failed else ""
    what = f": {error.get('ename')}: {error.get('evalue')}" if error.get("ename") else ""
    return f"run {run.get('id')} {run.get('status')}{where}{what}"


def _check_notebook(schedule: dict) -> str | None:
    try:
        from nbops.automate.schedules import check_notebook
    except ImportError:  # the schedules module is not there yet: the plain check
        path = Path(schedule["notebook"])
        return None if path.exists() else f"the notebook {path} was moved or deleted"
    return check_notebook(schedule)


def _trigger_record(schedule: dict, firing: dict) -> dict:
    key = firing["key"]
    return {"schedule": schedule["name"], "key": key, "kind": key.split(":", 1)[0], **(firing.get("trigger") or {})}


def _run_or_resume(ss: Any, schedule: dict, firing: dict, stop: threading.Event | None) -> dict:
    """The run JSON of this firing: a new run, or the previous attempt's run resumed (or as it ended)."""
    from nbops import api
    from nbops.history import run_to_json

    name, key, rs = schedule["name"], firing["key"], ss.store
    trigger = _trigger_record(schedule, firing)

    def on_created(run_id: str) -> None:
        ss.set_firing(name, key, run_id=run_id)
        ss.record_trigger(run_id, trigger)

    previous = firing.get("run_id") if int(firing.get("attempts") or 0) > 1 else None
    _in_run.set()
    try:
        if previous:
            record = _wait_stopped(rs, previous, stop)
            if record["status"] in (SUCCEEDED, FAILED):
                return run_to_json(record)  # it ended before its scheduler died: taken as is
            # path: the store is found from the notebook as api.run found it (a database store's workspace)
            resumed = api.resume(previous, path=schedule["notebook"], store=store_arg(rs), executor=schedule.get("executor") or "local", on_created=on_created)
            ss.set_firing(name, key, outcome={"resumed_from": previous})
            return resumed
        return api.run(
            schedule["notebook"], schedule.get("params") or {}, params_file=schedule.get("params_file"),
            executor=schedule.get("executor") or "local", store=store_arg(rs), context=api.RunContext(on_created=on_created),
        )  # fmt: skip
    finally:
        _in_run.clear()


def _wait_stopped(rs: Any, run_id: str, stop: threading.Event | None) -> dict:
    """The previous attempt's run once it no longer runs. Usually at once: its process is
    dead and the store's liveness check marks it interrupted. When its scheduler only stalled
    past the lease, its worker still runs it: this firing waits for that run and takes its end
    (never two processes on one run). A stop while waiting leaves the firing interrupted."""
    while True:
        record = rs.get_run(run_id)
        if record["status"] != RUNNING:
            return record
        if stop is not None and stop.wait(_PREVIOUS_RUN_POLL_S):
            raise KeyboardInterrupt
        if stop is None:
            time.sleep(_PREVIOUS_RUN_POLL_S)


def _finish(ss: Any, schedule: dict, key: str, status: str, clock: Callable[[], float], *, reason: str | None, run: dict | None) -> dict:
    """Promotion (on success), notifications, then the firing's final status."""
    name = schedule["name"]
    outcome: dict[str, Any] = dict((ss.firing(name, key) or {}).get("outcome") or {})
    if run is not None:
        outcome |= {"run_id": run.get("id"), "run_status": run.get("status")}
    try:
        outcome |= _after_run(ss, schedule, key, status, run, reason)
    except Exception as exc:  # noqa: BLE001 - promotion/notification trouble never changes the run's verdict
        log.exception("schedule %s: after-run steps of %s failed", name, key)
        outcome["after_run_error"] = f"{type(exc).__name__}: {exc}"
    ss.set_firing(name, key, status=status, ended_at=clock(), reason=reason, outcome=outcome)
    return ss.firing(name, key) or {"name": name, "key": key, "status": status}


def _after_run(ss: Any, schedule: dict, key: str, status: str, run: dict | None, reason: str | None) -> dict:
    from nbops.automate.notify import notify, payload_for

    out: dict[str, Any] = {}
    if status != SUCCEEDED:
        out["notified"] = notify(ss, schedule, key, "failure", payload_for("failure", run, error=reason))
        return out
    sent = notify(ss, schedule, key, "success", payload_for("success", run))
    from nbops.automate.promote import promote_after, regressions

    if schedule.get("promote"):
        promotion = promote_after(ss, schedule, key, run)
        out["promotion"] = promotion
        if promotion.get("promoted"):
            sent += notify(ss, schedule, key, "promotion", payload_for("promotion", run, promotion=promotion))
    # a metric worse than the previous successful firing's: news whether or not the schedule promotes
    found = regressions(ss, schedule, run)
    if found:
        out["regressions"] = found
        sent += notify(ss, schedule, key, "regression", payload_for("regression", run, regressions=found))
    out["notified"] = sent
    return out


# -- worker processes --------------------------------------------------------------


class WorkerPool:
    """The worker processes of one scheduler: one per running firing, and a spare started
    ahead (its ~1.5 s of imports paid before a firing is due; idle, it costs no CPU)."""

    def __init__(self, job: dict[str, Any], on_exit: Callable[[str, str, int], None], *, spare: bool = True):
        self.job, self.on_exit, self.keep_spare = job, on_exit, spare
        self.procs: dict[tuple[str, str], subprocess.Popen] = {}
        self._threads: list[threading.Thread] = []
        self._spare: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.closed = False

    @staticmethod
    def _spawn() -> subprocess.Popen:
        # Own session: the scheduler's terminal Ctrl-C reaches the scheduler, which decides (grace).
        return subprocess.Popen([sys.executable, "-m", "nbops.automate.firing"], stdin=subprocess.PIPE, text=True, start_new_session=True)

    def prestart(self) -> None:
        with self._lock:
            if self.keep_spare and self._spare is None and not self.closed:
                self._spare = self._spawn()

    def start(self, name: str, key: str) -> int:
        """Hand the firing to a worker (the spare when there is one); its pid."""
        with self._lock:
            spare, self._spare = self._spare, None
            proc = spare if spare is not None and spare.poll() is None else self._spawn()
            self.procs[(name, key)] = proc
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**self.job, "name": name, "key": key}) + "\n")
        proc.stdin.flush()
        t = threading.Thread(target=self._wait, args=(name, key, proc), daemon=True, name=f"nbops-firing-{name}")
        self._threads.append(t)
        t.start()
        self.prestart()
        return proc.pid

    def _wait(self, name: str, key: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        with self._lock:
            self.procs.pop((name, key), None)
        self.on_exit(name, key, code)

    def running(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, p in self.procs.items() if p.poll() is None]

    def stop(self, deadline: float, hurry: threading.Event) -> None:
        """Start no more; let running firings end until ``deadline`` (``time.monotonic()``) or
        ``hurry``, then interrupt them: each worker records its run and firing interrupted."""
        with self._lock:
            self.closed = True
            spare, self._spare = self._spare, None
        if spare is not None and spare.stdin is not None:
            spare.stdin.close()  # no job: it exits
            spare.wait(timeout=30)
        while self.running() and time.monotonic() < deadline and not hurry.is_set():
            time.sleep(0.1)
        with self._lock:
            left = [(k, p) for k, p in self.procs.items() if p.poll() is None]
        for (name, key), p in left:
            log.info("schedule %s: interrupting firing %s (grace over)", name, key)
            try:
                assert p.stdin is not None
                p.stdin.write("stop\n")
                p.stdin.flush()
            except OSError:  # it ended meanwhile
                pass
        for _, p in left:  # the run's Ctrl-C path: kernels interrupted, then killed
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for t in self._threads:
            t.join(timeout=5)


# -- the worker process ------------------------------------------------------------


def main() -> int:
    """``python -m nbops.automate.firing``: run the firing described by one JSON line on
    stdin ({store, objects, workspace, name, key, owner}); stdin then stays open while the
    scheduler lives. "stop" or EOF on it interrupts the run (graceful stop, or a killed scheduler).
    Started ahead as a spare, it waits for that line; EOF instead: it was not needed."""
    import nbops.api  # noqa: F401 - a spare worker pays the imports before its firing is due
    from nbops.store.config import StoreSettings
    from nbops.store.run_store import RunStore
    from nbops.store.schedules import ScheduleStore

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s nbops firing: %(message)s")
    log.setLevel(logging.INFO)
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # a spare the scheduler did not need
    job = json.loads(line)
    if job.get("objects"):
        os.environ["NBOPS_OBJECTS"] = job["objects"]  # api.run opens the store again: same objects
    stop = threading.Event()

    def interrupt(*_: Any) -> None:
        stop.set()
        if _in_run.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)

    def watch_parent() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        os.kill(os.getpid(), signal.SIGINT)  # "stop", or EOF: the scheduler is gone (kill -9)

    threading.Thread(target=watch_parent, daemon=True, name="nbops-firing-parent").start()
    rs = RunStore(StoreSettings(store=job["store"], objects=job.get("objects"), workspace=Path(job["workspace"]), source="scheduler"))
    ss = ScheduleStore(rs)
    schedule, firing = ss.get(job["name"]), ss.firing(job["name"], job["key"])
    if schedule is None or firing is None:
        log.warning("schedule %s or its firing %s is gone", job["name"], job["key"])
        return 0
    done = run_firing(ss, schedule, firing, job["owner"], stop=stop)
    log.info("schedule %s firing %s: %s", job["name"], job["key"], done.get("status"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
