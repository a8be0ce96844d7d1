"""run_firing on real runs of the tiny notebook: the firing learns its run id, the run its
trigger; a failed run is a failed firing and a failure notification to a real webhook;
a succeeded one goes through promotion and a success notification; a firing taken again
with a finished run takes it as is; a deleted notebook breaks the schedule."""

from __future__ import annotations

import time

from nbops.automate.firing import run_firing
from tests.automate.conftest import add_schedule
from tests.automate.receivers import webhook  # noqa: F401 - the fixture


def _claimed(ss, name: str, key: str) -> dict:
    ss.add_firing(name, key, time.time(), trigger={"kind": "manual", "by": "test"})
    return ss.claim(name, key, "test-owner", 60)


def test_a_failed_run_fails_the_firing_and_is_notified(tiny, ss, webhook):  # noqa: F811 - the fixture
    add_schedule(ss, "breaks", tiny.notebook, {"kind": "every", "seconds": 600}, params={"fail": True}, notify=[webhook.url()], notify_on=["failure"])
    firing = _claimed(ss, "breaks", "manual:1")
    done = run_firing(ss, ss.get("breaks"), firing, "test-owner")
    assert done["status"] == "failed" and done["ended_at"] and done["run_id"]
    assert done["reason"] == f"run {done['run_id']} failed at stage b: AssertionError: asked to fail"
    run = ss.store.get_run(done["run_id"])
    assert run["status"] == "failed"
    assert run["trigger"] == {"schedule": "breaks", "key": "manual:1", "kind": "manual", "by": "test"}
    [req] = webhook.requests
    assert req.json["event"] == "failure" and req.json["run_id"] == done["run_id"] and req.json["key"] == "manual:1"
    assert [o["status"] for o in done["outcome"]["notified"]] == ["sent"]

    # claimed again (its scheduler died after the run ended): the finished run is taken as is
    ss.set_firing("breaks", "manual:1", status="interrupted")
    again = ss.claim("breaks", "manual:1", "test-owner-2", 60)
    assert again["attempts"] == 2
    redone = run_firing(ss, ss.get("breaks"), again, "test-owner-2")
    assert redone["status"] == "failed" and redone["run_id"] == done["run_id"]
    assert len(ss.store.list_runs(brief=True)) == 1


def test_a_succeeded_run_goes_through_promotion_and_is_notified(tiny, ss, webhook):  # noqa: F811 - the fixture
    promote = {"model": "tiny", "alias": "production", "require": [], "require_better_than": None}
    add_schedule(ss, "works", tiny.notebook, {"kind": "every", "seconds": 600}, notify=[webhook.url()], notify_on=["success", "promotion"], promote=promote)
    done = run_firing(ss, ss.get("works"), _claimed(ss, "works", "manual:2"), "test-owner")
    assert done["status"] == "succeeded" and done["reason"] is None
    assert done["outcome"]["run_status"] == "succeeded"
    promotion = done["outcome"]["promotion"]
    assert promotion["promoted"] is False and promotion["reason"]  # the notebook logs no model: said why, not raised
    assert [r.json["event"] for r in webhook.requests] == ["success"]


def test_a_stopping_scheduler_or_a_deleted_notebook_starts_no_run(tiny, ss):
    import threading

    add_schedule(ss, "later", tiny.notebook, {"kind": "every", "seconds": 600})
    stop = threading.Event()
    stop.set()
    f = run_firing(ss, ss.get("later"), _claimed(ss, "later", "manual:3"), "test-owner", stop=stop)
    assert f["status"] == "interrupted" and f["run_id"] is None

    gone = tiny.folder / "gone.ipynb"
    gone.write_bytes(tiny.notebook.read_bytes())
    add_schedule(ss, "gone", gone, {"kind": "every", "seconds": 600})
    gone.unlink()
    f = run_firing(ss, ss.get("gone"), _claimed(ss, "gone", "manual:4"), "test-owner", clock=lambda: 123.0)
    assert f["status"] == "failed" and "moved or deleted" in f["reason"] and f["ended_at"] == 123.0
    assert "moved or deleted" in ss.get("gone")["broken"]
    assert ss.store.list_runs(brief=True) == []


def test_a_firing_claimed_from_a_stalled_scheduler_waits_for_its_run_and_takes_its_end(tiny, ss):
    """The first owner stalled past its lease but its worker still runs the run: the new
    claimant must not resume it beside that process; it waits, then takes the run's end."""
    import threading

    from nbops import api

    gate = tiny.folder / "gate"
    add_schedule(ss, "stalled", tiny.notebook, {"kind": "every", "seconds": 600}, params={"gate": str(gate)})
    first = _claimed(ss, "stalled", "manual:5")
    created = threading.Event()

    def on_created(run_id: str) -> None:
        ss.set_firing("stalled", "manual:5", run_id=run_id)
        created.set()

    worker = threading.Thread(
        target=api.run, args=(tiny.notebook, {"gate": str(gate)}),
        kwargs={"store": str(tiny.store), "context": api.RunContext(on_created=on_created)}, daemon=True,
    )  # fmt: skip
    worker.start()
    assert created.wait(60)
    ss.set_firing("stalled", "manual:5", lease_until=time.time() - 1)  # the lease ran out
    again = ss.claim("stalled", "manual:5", "second-owner", 60)
    assert again["attempts"] == 2 and again["run_id"] and first["attempts"] == 1
    result: dict = {}
    taker = threading.Thread(target=lambda: result.update(run_firing(ss, ss.get("stalled"), again, "second-owner")), daemon=True)
    taker.start()
    taker.join(1.0)
    assert taker.is_alive()  # waiting for the first worker's run, not resuming it beside it
    gate.touch()
    worker.join(60)
    taker.join(60)
    assert result["status"] == "succeeded" and result["run_id"] == again["run_id"]
    assert len(ss.store.list_runs(brief=True)) == 1
