"""The /nbops/schedules routes on a real Jupyter server over the notebook's own store.

small_pipeline.ipynb is copied into the server root; its store (``.nbops/`` beside
it) is made by the first schedule. No scheduler is live, so "run now" runs the
firing in a thread of the server: the request answers once the firing is queued
and the test waits for the run (a real kernel) to end.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import HTTPClientError

NB = "work/small_pipeline.ipynb"


async def _error(fetch_call) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await fetch_call
    body = info.value.response.body if info.value.response is not None else b"{}"
    return info.value.code, json.loads(body or b"{}")


async def _json(call) -> dict:
    return json.loads((await call).body)


def _get(jp_fetch, *parts, path=NB):
    return jp_fetch("nbops", "schedules", *parts, params={"path": path})


def _post(jp_fetch, *parts, **payload):
    return jp_fetch("nbops", "schedules", *parts, method="POST", body=json.dumps({"path": NB, **payload}))


def _delete(jp_fetch, name):
    return jp_fetch("nbops", "schedules", name, method="DELETE", params={"path": NB})


ROUTES = [
    ("GET", ()),
    ("POST", ()),
    ("GET", ("nightly",)),
    ("DELETE", ("nightly",)),
    ("POST", ("nightly", "pause")),
    ("POST", ("nightly", "resume")),
    ("POST", ("nightly", "run-now")),
]


@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_every_schedule_route_refuses_a_request_without_auth(jp_fetch, pipeline_notebook, method, parts):
    body = {"body": json.dumps({"path": NB, "every": "10m"})} if method == "POST" else {}
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nbops", "schedules", *parts, method=method, headers={"Authorization": "token nope"}, params={"path": NB}, **body)
    assert info.value.code in (401, 403)


async def test_a_notebook_without_a_store_has_no_schedules(jp_fetch, pipeline_notebook, jp_root_dir):
    answer = await _json(_get(jp_fetch))
    assert answer["schedules"] == [] and answer["store"]["kind"] == "sqlite"
    assert not (jp_root_dir / "work" / ".nbops").exists()  # asking creates nothing
    code, body = await _error(_get(jp_fetch, "nightly"))
    assert code == 404 and "no schedule named nightly" in body["message"], body


async def test_add_list_show_pause_resume_run_now_and_remove(jp_fetch, pipeline_notebook, jp_root_dir):
    added = await _post(jp_fetch, name="tenmin", every="10m", params={"n_rows": 50}, notify=["https://user:pw@hooks.example.com/x?token=secret"])
    assert added.code == 201
    added = json.loads(added.body)
    s = added["schedule"]
    assert (s["name"], s["trigger"], s["params"], s["paused"], s["broken"]) == ("tenmin", {"kind": "every", "seconds": 600}, {"n_rows": 50}, False, None)
    assert s["notebook"] == str((jp_root_dir / NB).resolve())
    assert "pw" not in json.dumps(s) and "secret" not in json.dumps(s)  # targets come back masked
    assert len(s["next"]) == 5 and added["firings"] == [] and added["warnings"] == []
    # A cron in a zone, with the default name; and a schedule of another notebook in the same store.
    nightly = await _json(_post(jp_fetch, cron="0 3 * * *", tz="Europe/Berlin"))
    assert nightly["schedule"]["name"] == "small_pipeline-cron"
    assert nightly["schedule"]["trigger"] == {"kind": "cron", "cron": "0 3 * * *", "tz": "Europe/Berlin"}
    assert all(t.endswith(("+01:00", "+02:00")) and "T03:00:00" in t for t in nightly["schedule"]["next"])
    other = jp_root_dir / "work" / "other.ipynb"
    other.write_text((jp_root_dir / NB).read_text())
    await _json(jp_fetch("nbops", "schedules", method="POST", body=json.dumps({"path": "work/other.ipynb", "every": "1h"})))

    listed = await _json(_get(jp_fetch))
    assert [x["name"] for x in listed["schedules"]] == ["small_pipeline-cron", "tenmin"]  # this notebook's only
    assert listed["store"]["location"].endswith(".nbops")
    assert [len(x["next"]) for x in listed["schedules"]] == [1, 1]

    paused = await _json(_post(jp_fetch, "tenmin", "pause"))
    assert paused["paused"] is True and paused["status"] == "paused" and paused["next"] == []
    assert (await _json(_get(jp_fetch, "tenmin")))["schedule"]["paused"] is True
    resumed = await _json(_post(jp_fetch, "tenmin", "resume"))
    assert resumed["paused"] is False and len(resumed["next"]) == 1
    events = (await _json(_get(jp_fetch, "tenmin")))["events"]
    assert [e["kind"] for e in events] == ["resumed", "paused"]

    # Run now answers at once with the queued firing; the run goes on in the server.
    started = time.monotonic()
    queued = await _post(jp_fetch, "tenmin", "run-now")
    assert queued.code == 202
    queued = json.loads(queued.body)
    assert time.monotonic() - started < 20  # not the run's length: answered once the firing is recorded
    assert queued["key"].startswith("manual:") and queued["status"] in ("queued", "running")  # the run had not ended
    firing = await _wait_firing(jp_fetch, "tenmin", queued["key"])
    assert firing["status"] == "succeeded", firing
    assert firing["trigger"]["kind"] == "manual" and firing["run_id"]
    run = await _json(jp_fetch("nbops", "runs", firing["run_id"], params={"path": NB}))
    assert run["status"] == "succeeded" and run["params"]["n_rows"] == 50
    listed = await _json(_get(jp_fetch))
    assert next(x for x in listed["schedules"] if x["name"] == "tenmin")["last"]["key"] == queued["key"]

    removed = await _json(_delete(jp_fetch, "tenmin"))
    assert removed["removed"] == "tenmin"
    code, body = await _error(_get(jp_fetch, "tenmin"))
    assert code == 404 and "no schedule named tenmin" in body["message"]
    assert [x["name"] for x in (await _json(_get(jp_fetch)))["schedules"]] == ["small_pipeline-cron"]


async def _wait_firing(jp_fetch, name: str, key: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = await _json(_get(jp_fetch, name))
        firing = next(f for f in shown["firings"] if f["key"] == key)
        if firing["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return firing
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({}, 400, "exactly one trigger"),
        ({"every": "10m", "cron": "0 3 * * *"}, 400, "exactly one trigger"),
        ({"cron": "0 25 * * *"}, 400, "hour"),
        ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, 400, "Mars/Olympus"),
        ({"every": "soon"}, 400, "soon"),
        ({"every": 10}, 400, "must be a string"),
        ({"every": "10m", "name": "Bad Name"}, 400, "invalid schedule name"),
        ({"every": "10m", "name": "x" * 200}, 400, "over the 128"),
        ({"every": "10m", "params": [1]}, 400, "'params' must be an object"),
        ({"every": "10m", "params": {"nope": 1}}, 400, "nope"),
        ({"every": "10m", "executor": "../x"}, 400, "not an executor name"),
        ({"every": "10m", "notify": "ftp://x"}, 400, "ftp://x"),
        ({"every": "10m", "notify": [1]}, 400, "list of strings"),
        ({"every": "10m", "notify_on": ["sometimes"]}, 400, "sometimes"),
        ({"on_change": {"a": 1}}, 400, "list of strings"),
        ({"after": "nosuch"}, 404, "nosuch"),
        ({"every": "10m", "debounce": [1]}, 400, "debounce"),
    ],
)
async def test_bad_input_is_a_clear_error(jp_fetch, pipeline_notebook, payload, status, words):
    code, body = await _error(_post(jp_fetch, **payload))
    assert code == status, body
    assert words in body["message"], body
    assert body.get("fix"), body


async def test_bad_names_paths_and_unknown_schedules(jp_fetch, pipeline_notebook):
    await _post(jp_fetch, name="tenmin", every="10m")
    code, body = await _error(_post(jp_fetch, every="10m", name="tenmin"))
    assert code == 400 and "exists already" in body["message"]
    for parts in (("Bad Name",), ("x" * 200,), ("Bad", "pause")):
        call = _get(jp_fetch, *parts) if len(parts) == 1 else _post(jp_fetch, *parts)
        code, body = await _error(call)
        assert code == 400 and ("invalid schedule name" in body["message"] or "over the 128" in body["message"]), body
    for call in (
        _get(jp_fetch, "nope"),
        _post(jp_fetch, "nope", "pause"),
        _post(jp_fetch, "nope", "resume"),
        _post(jp_fetch, "nope", "run-now"),
        _delete(jp_fetch, "nope"),
    ):
        code, body = await _error(call)
        assert code == 404 and "no schedule named nope" in body["message"] and "tenmin" in body["fix"], body
    with pytest.raises(HTTPClientError) as info:  # no such action: no route (tornado's own 404 page)
        await _post(jp_fetch, "tenmin", "explode")
    assert info.value.code == 404
    code, body = await _error(jp_fetch("nbops", "schedules", method="POST", body="{not json"))
    assert code == 400 and "not valid JSON" in body["message"]
    code, body = await _error(jp_fetch("nbops", "schedules", method="POST", body=json.dumps({"path": "../x.ipynb", "every": "10m"})))
    assert code == 400 and "'..'" in body["message"]
    code, body = await _error(_get(jp_fetch, path="work/missing.ipynb"))
    assert code == 404


async def test_run_now_of_a_broken_schedule_is_refused_with_the_reason(jp_fetch, pipeline_notebook, jp_root_dir):
    await _post(jp_fetch, name="tenmin", every="10m")
    nb = jp_root_dir / NB
    content = json.loads(nb.read_text())
    content["cells"].append({"cell_type": "code", "metadata": {"tags": ["stage:load"]}, "source": "def broken(:", "outputs": [], "execution_count": None})
    nb.write_text(json.dumps(content))  # a syntax error in a stage: an analysis error
    code, body = await _error(_post(jp_fetch, "tenmin", "run-now"))
    assert code == 400 and "schedule tenmin is broken" in body["message"], body
    shown = await _json(_get(jp_fetch, "tenmin"))
    assert shown["schedule"]["broken"] and shown["schedule"]["status"] == "broken"


async def test_data_and_after_triggers(jp_fetch, pipeline_notebook, jp_root_dir):
    watched = await _json(_post(jp_fetch, name="fresh-data", on_change=["data/*.csv"], debounce=2))
    assert watched["schedule"]["trigger"] == {"kind": "on_change", "watch": ["data/*.csv"], "debounce": 2.0}
    assert watched["schedule"]["next"] == []  # no due times: it fires on a change
    assert any("data/*.csv" in w for w in watched["warnings"]), watched["warnings"]  # matches nothing yet
    follow = await _json(_post(jp_fetch, name="follow", after="fresh-data"))
    assert follow["schedule"]["trigger"] == {"kind": "after", "schedule": "fresh-data"}
    # A schedule others run after cannot go first.
    code, body = await _error(_delete(jp_fetch, "fresh-data"))
    assert code == 400 and "follow" in body["message"], body
    assert (await _json(_delete(jp_fetch, "follow")))["removed"] == "follow"
    assert (await _json(_delete(jp_fetch, "fresh-data")))["removed"] == "fresh-data"
