"""Schedules, their firings, events and live schedulers: SQL only.

The rules (when a trigger is due, what catch-up means, who notifies) live in
``nbops.automate``. What this module guarantees is the part that must hold
across processes and machines sharing one store:

- a firing is a row keyed by (schedule, key): creating it twice is a no-op, so
  two schedulers that both see 03:00 make one firing;
- ``claim`` is one conditional UPDATE: exactly one caller gets a firing that is
  queued, interrupted, or whose owner's lease ran out (a scheduler killed with
  -9 stops renewing; the next claimant sees ``attempts`` > 1 and the run id of
  the killed attempt, and resumes that run instead of starting a new one);
- ``renew`` extends every lease an owner holds in one statement (its heartbeat).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from nbops.store.run_store import RunStore, _dump_all, _load, current_user
from nbops.store.schema import JSON_SCHEDULE, runs, schedule_events, schedule_firings, schedulers, schedules

__all__ = ["ScheduleStore", "FIRING_STATUSES", "ACTIVE_FIRING", "CLAIMABLE_FIRING"]

# queued: made, waiting for a scheduler (or for a slot: max-concurrent);
# running: claimed, under a lease; succeeded/failed: the run ended;
# skipped: not run by policy (overlap "skip", catch-up "none"/"once": ``reason`` says which);
# interrupted: its scheduler stopped (SIGTERM timeout, or a lease found expired), to be resumed.
FIRING_STATUSES = ("queued", "running", "succeeded", "failed", "skipped", "interrupted")
ACTIVE_FIRING = ("queued", "running", "interrupted")
CLAIMABLE_FIRING = ("queued", "interrupted")


class ScheduleStore:
    def __init__(self, store: RunStore):
        self.store = store
        self.db = store.db

    # -- schedules -------------------------------------------------------------
    def add(self, name: str, **fields: Any) -> bool:
        """Insert a schedule; False when one with ``name`` exists (nothing is changed)."""
        now = time.time()
        values = _dump_all({"created_by": current_user(), **fields, "created_at": now, "updated_at": now}, JSON_SCHEDULE)
        with self.db.write() as c:
            if c.execute(sa.select(schedules.c.name).where(schedules.c.name == name)).first() is not None:
                return False
            c.execute(schedules.insert().values(name=name, **values))
        return True

    def update(self, name: str, **fields: Any) -> bool:
        """Change fields of a schedule (paused, broken, state, options, ...); False when there is none."""
        values = _dump_all({**fields, "updated_at": time.time()}, JSON_SCHEDULE)
        with self.db.write() as c:
            return c.execute(schedules.update().where(schedules.c.name == name).values(**values)).rowcount == 1

    def get(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(sa.select(schedules).where(schedules.c.name == name)).mappings().first()
        return None if row is None else _load(row, JSON_SCHEDULE)

    def all(self) -> list[dict[str, Any]]:
        with self.db.read() as c:
            rows = c.execute(sa.select(schedules).order_by(schedules.c.name)).mappings().all()
        return [_load(r, JSON_SCHEDULE) for r in rows]

    def stamp(self) -> tuple:
        """(count, newest updated_at) of the schedules: changes when one is added, edited or removed,
        so a scheduler re-reads them only then (cheap idling with thousands of schedules)."""
        with self.db.read() as c:
            return tuple(c.execute(sa.select(sa.func.count(), sa.func.max(schedules.c.updated_at))).one())

    def remove(self, name: str) -> bool:
        """Delete a schedule with its firings and events; False when there is none."""
        with self.db.write() as c:
            gone = c.execute(schedules.delete().where(schedules.c.name == name)).rowcount == 1
            c.execute(schedule_firings.delete().where(schedule_firings.c.name == name))
            c.execute(schedule_events.delete().where(schedule_events.c.name == name))
        return gone

    # -- firings ---------------------------------------------------------------
    def add_firing(self, name: str, key: str, due_at: float, trigger: dict[str, Any] | None = None, status: str = "queued", reason: str | None = None) -> bool:
        """Record a firing once: False when (name, key) exists already (another scheduler made it)."""
        values = _dump_all({"due_at": due_at, "trigger": trigger or {}, "status": status, "reason": reason, "created_at": time.time()}, JSON_SCHEDULE)
        if status not in ("queued", "skipped"):
            raise ValueError(f"a new firing is queued or skipped, not {status!r}")
        with self.db.write() as c:
            exists = c.execute(sa.select(schedule_firings.c.key).where(schedule_firings.c.name == name, schedule_firings.c.key == key)).first()
            if exists is not None:
                return False
            c.execute(schedule_firings.insert().values(name=name, key=key, **values))
        return True

    def claim(self, name: str, key: str, owner: str, lease_s: float, now: float | None = None) -> dict[str, Any] | None:
        """Take a firing to run it: the firing (after the claim) when this caller got it, else None.

        Claimable: queued, interrupted, or running under a lease that ran out."""
        now = time.time() if now is None else now
        f = schedule_firings.c
        claimable = sa.or_(f.status.in_(CLAIMABLE_FIRING), sa.and_(f.status == "running", f.lease_until < now))
        with self.db.write() as c:
            got = c.execute(
                schedule_firings.update()
                .where(f.name == name, f.key == key, claimable)
                .values(status="running", owner=owner, lease_until=now + lease_s, attempts=f.attempts + 1, started_at=sa.func.coalesce(f.started_at, now))
            ).rowcount
            if got != 1:
                return None
            row = c.execute(sa.select(schedule_firings).where(f.name == name, f.key == key)).mappings().first()
        return _load(row, JSON_SCHEDULE)

    def renew(self, owner: str, lease_s: float, now: float | None = None) -> int:
        """Extend every lease ``owner`` holds (the scheduler's heartbeat); how many."""
        now = time.time() if now is None else now
        f = schedule_firings.c
        with self.db.write() as c:
            return c.execute(schedule_firings.update().where(f.owner == owner, f.status == "running").values(lease_until=now + lease_s)).rowcount

    def set_firing(self, name: str, key: str, **fields: Any) -> None:
        """Update a firing: run_id as soon as its run exists, status/ended_at/reason/outcome when it ends."""
        values = _dump_all(fields, JSON_SCHEDULE)
        with self.db.write() as c:
            c.execute(schedule_firings.update().where(schedule_firings.c.name == name, schedule_firings.c.key == key).values(**values))

    def firing(self, name: str, key: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(sa.select(schedule_firings).where(schedule_firings.c.name == name, schedule_firings.c.key == key)).mappings().first()
        return None if row is None else _load(row, JSON_SCHEDULE)

    def firings(
        self, name: str | None = None, *, status: tuple[str, ...] | None = None, limit: int | None = 20, oldest_first: bool = False
    ) -> list[dict[str, Any]]:
        """Firings of one schedule (or all), newest first unless ``oldest_first``; only ``status`` when given."""
        f = schedule_firings.c
        q = sa.select(schedule_firings)
        if name is not None:
            q = q.where(f.name == name)
        if status is not None:
            q = q.where(f.status.in_(status))
        q = q.order_by(f.due_at.asc() if oldest_first else f.due_at.desc(), f.key)
        if limit is not None:
            q = q.limit(limit)
        with self.db.read() as c:
            rows = c.execute(q).mappings().all()
        return [_load(r, JSON_SCHEDULE) for r in rows]

    def last_due(self, name: str, prefix: str = "") -> float | None:
        """The due time of the newest firing of ``name`` (whose key starts with ``prefix``)."""
        f = schedule_firings.c
        q = sa.select(sa.func.max(f.due_at)).where(f.name == name)
        if prefix:
            q = q.where(f.key.like(prefix.replace("%", r"\%").replace("_", r"\_") + "%", escape="\\"))
        with self.db.read() as c:
            return c.execute(q).scalar()

    def expired(self, now: float | None = None) -> list[dict[str, Any]]:
        """Running firings whose owner stopped renewing the lease (killed, or the machine is gone)."""
        now = time.time() if now is None else now
        f = schedule_firings.c
        with self.db.read() as c:
            rows = c.execute(sa.select(schedule_firings).where(f.status == "running", f.lease_until < now).order_by(f.due_at)).mappings().all()
        return [_load(r, JSON_SCHEDULE) for r in rows]

    # -- events ----------------------------------------------------------------
    def add_event(
        self,
        name: str,
        kind: str,
        status: str,
        *,
        key: str | None = None,
        target: str | None = None,
        message: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a notification, promotion, warning or breakage. ``target`` must already be masked."""
        values = _dump_all({"detail": detail or {}}, JSON_SCHEDULE)
        with self.db.write() as c:
            c.execute(schedule_events.insert().values(name=name, key=key, at=time.time(), kind=kind, target=target, status=status, message=message, **values))

    def events(self, name: str, *, key: str | None = None, kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Events of a schedule, newest first."""
        e = schedule_events.c
        q = sa.select(schedule_events).where(e.name == name)
        if key is not None:
            q = q.where(e.key == key)
        if kind is not None:
            q = q.where(e.kind == kind)
        with self.db.read() as c:
            rows = c.execute(q.order_by(e.id.desc()).limit(limit)).mappings().all()
        return [_load(r, JSON_SCHEDULE) for r in rows]

    # -- runs ------------------------------------------------------------------
    def record_trigger(self, run_id: str, trigger: dict[str, Any]) -> None:
        """Say on the run itself what started it (schedule, firing key, file and new hash)."""
        with self.db.write() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(**_dump_all({"trigger": trigger}, ("trigger",))))

    # -- live schedulers -------------------------------------------------------
    def heartbeat(
        self, scheduler_id: str, host: str, pid: int, *, info: dict[str, Any] | None = None, stopping: bool = False, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        values = _dump_all({"host": host, "pid": pid, "heartbeat_at": now, "stopping": int(stopping), "info": info or {}}, JSON_SCHEDULE)
        with self.db.write() as c:
            done = c.execute(schedulers.update().where(schedulers.c.id == scheduler_id).values(**values)).rowcount
            if not done:
                c.execute(schedulers.insert().values(id=scheduler_id, started_at=now, **values))

    def schedulers(self, fresh_s: float | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Schedulers that reported, newest first; only those with a heartbeat in the last ``fresh_s`` when given."""
        now = time.time() if now is None else now
        q = sa.select(schedulers)
        if fresh_s is not None:
            q = q.where(schedulers.c.heartbeat_at >= now - fresh_s)
        with self.db.read() as c:
            rows = c.execute(q.order_by(schedulers.c.heartbeat_at.desc())).mappings().all()
        return [_load(r, JSON_SCHEDULE) for r in rows]

    def scheduler_gone(self, scheduler_id: str) -> None:
        with self.db.write() as c:
            c.execute(schedulers.delete().where(schedulers.c.id == scheduler_id))
