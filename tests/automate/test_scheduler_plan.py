"""Planning and dispatch rules of the scheduler, with an injected clock and no runs:
catch-up after a downtime (once, all, none), a restart remembering what it planned,
overlap queue vs skip, ``after`` triggers, a deleted notebook, status and health."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from nbops.automate.scheduler import Scheduler, serve_health, status
from tests.automate.conftest import add_schedule
from tests.services import free_port

DAY = 86400.0
# A Monday 00:00 UTC, far from any daylight-saving change.
T0 = 1796342400.0  # 2026-12-04T00:00:00Z


def _statuses(ss, name: str) -> dict[str, tuple[str, str | None]]:
    return {f["key"]: (f["status"], f["reason"]) for f in ss.firings(name, limit=None)}


def _scheduler(tiny, now: float, **kw) -> Scheduler:
    return Scheduler(str(tiny.store), clock=lambda: now, **kw)


@pytest.mark.parametrize("policy", ["once", "all", "none"])
def test_cron_catch_up_after_three_days_down(tiny, ss, policy):
    add_schedule(ss, "nightly", tiny.notebook, {"kind": "cron", "cron": "0 3 * * *", "tz": "UTC"}, created_at=T0)
    now = T0 + 3 * DAY + 3 * 3600 + 20  # 20 s after the fourth 03:00: that one is on time, three were missed
    made = _scheduler(tiny, now, catch_up=policy).plan()
    assert len(made) == 4
    got = _statuses(ss, "nightly")
    keys = sorted(got)
    assert keys == [f"cron:2026-12-0{d}T03:00:00+00:00" for d in (4, 5, 6, 7)]
    on_time = keys[-1]
    assert got[on_time] == ("queued", None)  # every policy runs the firing that is due now
    missed = [got[k] for k in keys[:-1]]
    if policy == "all":
        assert all(s == ("queued", None) for s in missed)
    else:
        assert all(s[0] == "skipped" for s in missed)
        assert all(s[1].startswith(f"catch-up {policy}") for s in missed)
    assert ss.get("nightly")["state"]["planned_until"] == now


def test_once_runs_only_the_latest_missed_interval(tiny, ss):
    add_schedule(ss, "tenmin", tiny.notebook, {"kind": "every", "seconds": 600}, created_at=T0)
    now = T0 + 3600 + 300  # six firings due, the last 5 minutes late: all missed
    _scheduler(tiny, now).plan()
    got = _statuses(ss, "tenmin")
    assert len(got) == 6
    queued = [k for k, (s, _) in got.items() if s == "queued"]
    assert queued == [f"every:{int(T0 + 3600)}"]
    assert all(r and "runs instead" in r for s, r in got.values() if s == "skipped")


def test_a_restart_plans_only_what_it_had_not(tiny, ss):
    add_schedule(ss, "hourly", tiny.notebook, {"kind": "every", "seconds": 3600}, created_at=T0)
    first = _scheduler(tiny, T0 + 2 * 3600 + 1, catch_up="all")
    assert len(first.plan()) == 2
    assert first.plan() == []  # same time: nothing new
    # "down" for two hours; a new process (a new Scheduler) reads planned_until from the store
    second = _scheduler(tiny, T0 + 4 * 3600 + 1, catch_up="none")
    made = second.plan()
    assert [k for _, k in made] == [f"every:{int(T0 + 3 * 3600)}", f"every:{int(T0 + 4 * 3600)}"]
    got = _statuses(ss, "hourly")
    assert got[f"every:{int(T0 + 3 * 3600)}"][0] == "skipped"
    assert got[f"every:{int(T0 + 4 * 3600)}"] == ("queued", None)
    # two schedulers planning the same times make each firing once
    assert _scheduler(tiny, T0 + 4 * 3600 + 1).plan() == []
    assert len(ss.firings("hourly", limit=None)) == 4


def test_the_schedules_own_catch_up_wins(tiny, ss):
    add_schedule(ss, "own", tiny.notebook, {"kind": "every", "seconds": 600}, created_at=T0, options={"catch_up": "all"})
    _scheduler(tiny, T0 + 3000, catch_up="none").plan()
    assert {s for s, _ in _statuses(ss, "own").values()} == {"queued"}


def test_sleeps_until_the_next_due_time_not_a_busy_loop(tiny, ss):
    add_schedule(ss, "daily", tiny.notebook, {"kind": "cron", "cron": "0 3 * * *", "tz": "UTC"}, created_at=T0)
    s = _scheduler(tiny, T0 + 60)
    assert s.tick() >= 2.0  # nothing due for hours: the loop polls for new schedules only
    assert s.tick(T0 + 3 * 3600 - 0.5) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("overlap", ["queue", "skip"])
def test_a_firing_while_the_previous_run_goes_waits_or_is_skipped(tiny, ss, overlap):
    add_schedule(ss, "busy", tiny.notebook, {"kind": "every", "seconds": 600}, created_at=T0, options={"max_concurrent": 1, "overlap": overlap})
    now = time.time()
    ss.add_firing("busy", "manual:first", now - 5)
    assert ss.claim("busy", "manual:first", "other-scheduler", 60, now=now) is not None  # another scheduler runs it
    ss.add_firing("busy", "manual:second", now)
    started = _scheduler(tiny, now).dispatch()
    assert started == []
    second = ss.firing("busy", "manual:second")
    if overlap == "queue":
        assert second["status"] == "queued"
    else:
        assert second["status"] == "skipped"
        assert "manual:first was still running" in second["reason"]


def test_after_trigger_fires_once_per_upstream_success(tiny, ss):
    add_schedule(ss, "train", tiny.notebook, {"kind": "every", "seconds": 600}, created_at=T0)
    add_schedule(ss, "report", tiny.notebook, {"kind": "after", "schedule": "train"}, created_at=T0)
    ss.add_firing("train", "every:1", T0 + 600)
    ss.set_firing("train", "every:1", status="succeeded", run_id="20261204-001000-aaaaaa", ended_at=T0 + 700)
    ss.add_firing("train", "every:2", T0 + 1200)
    ss.set_firing("train", "every:2", status="failed", run_id="20261204-002000-bbbbbb", ended_at=T0 + 1300)
    s = _scheduler(tiny, T0 + 1400)
    s.plan()
    after = ss.firings("report", limit=None)
    assert [f["key"] for f in after] == ["after:20261204-001000-aaaaaa"]
    assert after[0]["trigger"]["upstream_run"] == "20261204-001000-aaaaaa"
    s.plan()
    assert len(ss.firings("report", limit=None)) == 1


def test_a_deleted_notebook_breaks_its_schedule_and_not_the_others(tiny, ss):
    gone = tiny.folder / "gone.ipynb"
    gone.write_bytes(tiny.notebook.read_bytes())
    add_schedule(ss, "gone", gone, {"kind": "every", "seconds": 600}, created_at=T0)
    add_schedule(ss, "paused", tiny.notebook, {"kind": "every", "seconds": 600}, created_at=T0, paused=1)
    gone.unlink()
    now = time.time()
    ss.add_firing("gone", "manual:x", now)
    s = _scheduler(tiny, now)
    assert s.tick() > 0  # no exception
    row = ss.get("gone")
    assert "moved or deleted" in row["broken"]
    assert ss.firing("gone", "manual:x")["status"] == "queued"  # kept: it runs once the schedule is repaired
    assert [e["kind"] for e in ss.events("gone")] == ["broken"]
    s.tick()  # broken schedules are left alone, the loop goes on
    assert ss.get("paused")["broken"] is None


def test_status_and_health(tiny, ss):
    add_schedule(ss, "nightly", tiny.notebook, {"kind": "cron", "cron": "0 3 * * *", "tz": "UTC"}, created_at=time.time())
    s = Scheduler(str(tiny.store))
    s.tick()
    s.beat()
    port = free_port()
    server = serve_health(s, port, stall_s=5)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            body = json.load(r)
            assert r.status == 200 and body["status"] == "ok" and body["owner"] == s.owner
        s.last_tick = time.monotonic() - 60  # the loop stalled
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        assert err.value.code == 503 and json.load(err.value)["status"] == "stalled"
    finally:
        server.shutdown()
        server.server_close()
    out = status(str(tiny.store))
    assert [r["id"] for r in out["schedulers"]] == [s.owner]
    assert out["schedules"][0]["next_due"].endswith("T03:00:00+00:00")


def test_scheduler_status_on_the_command_line(tiny, ss, cli):
    add_schedule(ss, "nightly", tiny.notebook, {"kind": "cron", "cron": "0 3 * * *", "tz": "UTC"}, created_at=time.time())
    ss.heartbeat("elsewhere:1:abc", "elsewhere", 1, info={"running": []})
    ss.add_firing("nightly", "manual:now", time.time())
    ss.claim("nightly", "manual:now", "elsewhere:1:abc", 60)
    r = cli("scheduler", "status", "--json", "--store", str(tiny.store))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["id"] for s in out["schedulers"]] == ["elsewhere:1:abc"]
    assert [(f["name"], f["key"], f["owner"]) for f in out["running"]] == [("nightly", "manual:now", "elsewhere:1:abc")]
    text = cli("scheduler", "status", "--store", str(tiny.store)).stdout
    assert "scheduler elsewhere:1:abc" in text and "running nightly manual:now" in text and "T03:00:00+00:00" in text
    bad = cli("scheduler", "--catch-up", "sometimes", "--store", str(tiny.store))
    assert bad.returncode == 2 and "--catch-up" in bad.stderr
