"""The scheduler as real processes on a real store, running a tiny notebook with real kernels:
two schedulers make exactly one run per firing (SQLite, and PostgreSQL); kill -9 mid-run and a restart resume the
firing's run instead of firing it again; SIGTERM with a short grace exits 0 and leaves the
firing interrupted and its run resumable."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from nbops.store import open_store
from nbops.store.schedules import ScheduleStore
from tests.automate.conftest import add_schedule, dump, wait_for
from tests.services import free_port, postgres  # noqa: F401 - the fixture

FAST = ("--poll", "0.2", "--lease", "2")


def _firing(ss, name, key):
    return ss.firing(name, key)


def _in_stage_b(ss, rs, name, key):
    """The firing's run once stage a is done and stage b is waiting at its gate."""
    f = ss.firing(name, key)
    if not f or not f.get("run_id"):
        return None
    run = rs.get_run(f["run_id"])
    stages = {s["name"]: s["status"] for s in run["stages"]}
    return run if stages.get("a") in ("succeeded", "cached") and stages.get("b") == "running" else None


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_store(request, tiny):
    """The store two schedulers share: the tiny folder's SQLite store, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tiny.store)
    return request.getfixturevalue("postgres").new_database()


def test_two_schedulers_make_one_run_per_firing(tiny, shared_store, scheduler_process):
    ss = ScheduleStore(open_store(shared_store, tiny.notebook))
    now = time.time()
    # two interval firings already due (both schedulers plan them) and one manual firing
    add_schedule(ss, "shared", tiny.notebook, {"kind": "every", "seconds": 600}, created_at=now - 1250, options={"max_concurrent": 3})
    ss.add_firing("shared", "manual:one", now)
    port = free_port()
    a = scheduler_process(shared_store, "--catch-up", "all", "--health-port", str(port), *FAST, cwd=tiny.folder)
    b = scheduler_process(shared_store, "--catch-up", "all", *FAST, cwd=tiny.folder)

    def all_done():
        fs = ss.firings("shared", limit=None)
        return len(fs) == 3 and all(f["status"] in ("succeeded", "failed") for f in fs) and fs

    firings = wait_for(all_done, timeout=150, what=lambda: f"three firings to end\n{a.output()}\n{b.output()}")
    assert {f["status"] for f in firings} == {"succeeded"}, dump(firings)
    assert all(f["attempts"] == 1 for f in firings), dump(firings)
    runs = ss.store.list_runs(brief=True)
    assert len(runs) == 3, dump(runs)
    assert sorted(r["trigger"]["key"] for r in runs) == sorted(f["key"] for f in firings)
    assert {r["id"] for r in runs} == {f["run_id"] for f in firings}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
        assert r.status == 200 and json.load(r)["status"] == "ok"
    live = {r["id"] for r in ss.schedulers(fresh_s=60)}
    assert len(live) == 2
    assert {f["owner"] for f in firings} <= live


def test_kill_9_mid_run_then_restart_resumes_the_run(tiny, ss, scheduler_process):
    gate = tiny.folder / "gate"
    add_schedule(ss, "gated", tiny.notebook, {"kind": "every", "seconds": 3600}, created_at=time.time(), params={"gate": str(gate)})
    ss.add_firing("gated", "manual:k9", time.time())
    rs = open_store(str(tiny.store), None)
    first = scheduler_process(tiny.store, *FAST)
    run = wait_for(lambda: _in_stage_b(ss, rs, "gated", "manual:k9"), timeout=150, what=lambda: f"stage b to run\n{first.output()}")
    # the machine dies: the scheduler and its worker process, both with SIGKILL
    first.kill9()
    try:
        os.kill(run["pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass  # it saw its scheduler gone and stopped by itself first
    assert ss.firing("gated", "manual:k9")["status"] in ("running", "interrupted")
    gate.touch()
    second = scheduler_process(tiny.store, *FAST)
    done = wait_for(
        lambda: (f := ss.firing("gated", "manual:k9"))["status"] in ("succeeded", "failed") and f,
        timeout=120,
        what=lambda: f"the resumed run\n{second.output()}",
    )
    assert done["status"] == "succeeded", dump(done)
    assert done["attempts"] == 2
    assert done["outcome"]["resumed_from"] == run["id"]
    resumed = rs.get_run(done["run_id"])
    assert resumed["kind"] == "resume" and resumed["parent_id"] == run["id"] and resumed["status"] == "succeeded"
    assert rs.get_run(run["id"])["status"] == "interrupted"
    runs = rs.list_runs(brief=True)
    assert sorted(r["id"] for r in runs) == sorted([run["id"], resumed["id"]])  # not fired twice
    assert len(ss.firings("gated", limit=None)) == 1


def test_sigterm_lets_runs_finish_up_to_grace_then_interrupts_them(tiny, ss, scheduler_process):
    gate = tiny.folder / "gate-never"
    add_schedule(ss, "slow", tiny.notebook, {"kind": "every", "seconds": 3600}, created_at=time.time(), params={"gate": str(gate)})
    ss.add_firing("slow", "manual:term", time.time())
    rs = open_store(str(tiny.store), None)
    proc = scheduler_process(tiny.store, "--grace", "1", *FAST)
    run = wait_for(lambda: _in_stage_b(ss, rs, "slow", "manual:term"), timeout=150, what=lambda: f"stage b to run\n{proc.output()}")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=60) == 0, proc.output()
    f = ss.firing("slow", "manual:term")
    assert f["status"] == "interrupted", dump(f)
    stopped = rs.get_run(run["id"])
    assert stopped["status"] == "interrupted"
    assert {s["name"]: s["status"] for s in stopped["stages"]}["a"] in ("succeeded", "cached")  # resumable from b
    assert ss.schedulers() == []  # it said goodbye
    with open(gate, "w"):
        pass
    again = scheduler_process(tiny.store, *FAST)
    done = wait_for(lambda: (g := ss.firing("slow", "manual:term"))["status"] == "succeeded" and g, timeout=120, what=lambda: f"the resume\n{again.output()}")
    assert done["outcome"]["resumed_from"] == run["id"]


def test_a_changed_file_fires_a_run_that_records_its_new_hash(tiny, ss, scheduler_process):
    import hashlib

    data = tiny.folder / "data.csv"
    data.write_text("a\n1\n")
    add_schedule(ss, "watcher", tiny.notebook, {"kind": "on_change", "watch": ["data.csv"], "debounce": 0.2}, created_at=time.time())
    proc = scheduler_process(tiny.store, *FAST)
    files = lambda: (ss.get("watcher")["state"] or {}).get("files") or {}  # noqa: E731
    wait_for(lambda: (ss.get("watcher")["state"] or {}).get("baseline"), timeout=60, what=lambda: f"the first scan\n{proc.output()}")
    before = next(iter(files().values()))["stat"]
    time.sleep(0.05)  # a later mtime
    data.write_text("a\n1\n")  # rewritten, same content
    wait_for(lambda: next(iter(files().values()))["stat"] != before, timeout=30, what="the scheduler to see the rewrite")
    time.sleep(0.6)  # past the debounce and two polls: a content change would have fired by now
    assert ss.firings("watcher", limit=None) == []
    data.write_text("a\n2\n")
    new_hash = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    done = wait_for(
        lambda: next((f for f in ss.firings("watcher", limit=None) if f["status"] in ("succeeded", "failed")), None),
        timeout=120, what=lambda: f"the change's run\n{proc.output()}",
    )  # fmt: skip
    assert done["status"] == "succeeded" and done["key"].startswith("change:")
    [changed] = done["trigger"]["files"]
    assert changed["path"] == "data.csv" and changed["hash"] == new_hash
    run = open_store(str(tiny.store), None).get_run(done["run_id"])
    assert run["trigger"]["key"] == done["key"] and run["trigger"]["files"][0]["hash"] == new_hash
    assert len(ss.firings("watcher", limit=None)) == 1
