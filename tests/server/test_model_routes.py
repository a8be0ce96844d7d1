"""The /nbops/models routes on a real Jupyter server over a store made by real runs.

tiny_model.ipynb is run twice (``first_col=1``: accuracy ~0.5; ``first_col=0``:
~0.9) once per module; each test gets its own copy of the folder and its
store in the server root, so promotions in one test never show in another.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

NB = "models/tiny_model.ipynb"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "browser" / "notebooks"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder with the notebook, its store and two runs: (folder, worse run id, better run id)."""
    from nbops import api

    folder = tmp_path_factory.mktemp("models")
    shutil.copy(NOTEBOOKS / "tiny_model.ipynb", folder / "tiny_model.ipynb")
    worse = api.run(folder / "tiny_model.ipynb", {"first_col": 1})
    better = api.run(folder / "tiny_model.ipynb", {"first_col": 0})
    assert worse["status"] == better["status"] == "succeeded", (worse, better)
    assert worse["metrics"]["accuracy"] < better["metrics"]["accuracy"]
    return folder, worse, better


@pytest.fixture
def store(trained, jp_root_dir):
    folder, worse, better = trained
    shutil.copytree(folder, jp_root_dir / "models")
    return worse, better


async def _error(fetch_call) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await fetch_call
    body = info.value.response.body if info.value.response is not None else b"{}"
    return info.value.code, json.loads(body or b"{}")


def _post(jp_fetch, *parts, **payload):
    return jp_fetch("nbops", "models", *parts, method="POST", body=json.dumps({"path": NB, **payload}))


def _get(jp_fetch, *parts):
    return jp_fetch("nbops", "models", *parts, params={"path": NB})


async def _json(call) -> dict:
    return json.loads((await call).body)


ROUTES = [
    ("GET", ()),
    ("GET", ("tiny",)),
    ("GET", ("tiny", "history")),
    ("POST", ("tiny", "promote")),
    ("POST", ("tiny", "rollback")),
    ("POST", ("register",)),
]


@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_every_model_route_refuses_a_request_without_auth(jp_fetch, method, parts, store):
    body = {"body": json.dumps({"path": NB, "version": 1, "alias": "production"})} if method == "POST" else {}
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nbops", "models", *parts, method=method, headers={"Authorization": "token nope"}, params={"path": NB}, **body)
    assert info.value.code in (401, 403)


async def test_a_notebook_without_a_store_has_no_models(jp_fetch, pipeline_notebook, jp_root_dir):
    answer = json.loads((await jp_fetch("nbops", "models", params={"path": pipeline_notebook})).body)
    assert answer["models"] == []
    assert answer["store"]["kind"] == "sqlite"
    assert not (jp_root_dir / "work" / ".nbops").exists()  # asking creates nothing
    code, body = await _error(jp_fetch("nbops", "models", "churn", params={"path": pipeline_notebook}))
    assert code == 404, body


async def test_register_promote_gate_rollback_and_history(jp_fetch, store):
    worse, better = store
    v1 = await _json(_post(jp_fetch, "register", run=worse["id"], stage="train", var="model", name="tiny", message="baseline"))
    assert (v1["name"], v1["version"], v1["run_id"], v1["stage"], v1["var"]) == ("tiny", 1, worse["id"], "train", "model")
    assert v1["flavor"] == "sklearn" and v1["message"] == "baseline"
    assert v1["metrics"]["accuracy"] == pytest.approx(worse["metrics"]["accuracy"])
    v2 = await _json(_post(jp_fetch, "register", run=better["id"], stage="train", var="model", name="tiny"))
    assert v2["version"] == 2

    listed = await _json(_get(jp_fetch))
    assert [(m["name"], m["latest"]) for m in listed["models"]] == [("tiny", 2)]
    assert listed["store"]["location"].endswith(".nbops")

    moved = await _json(_post(jp_fetch, "tiny", "promote", version=1, alias="production", message="first"))
    assert (moved["from"], moved["to"]) == (None, 1)
    # The better version passes "better than production"; the gate's verdict comes back.
    moved = await _json(_post(jp_fetch, "tiny", "promote", version="2", alias="production", better_than="production", require=["accuracy>=0.8"]))
    assert (moved["from"], moved["to"]) == (1, 2)
    assert [g["passed"] for g in moved["gates"]] == [True, True]

    # A failed gate: 409 with both values, and nothing moved.
    code, body = await _error(_post(jp_fetch, "tiny", "promote", version=1, alias="production", better_than="production"))
    assert code == 409 and body["error"] == "GateError"
    assert f"{worse['metrics']['accuracy']}" in body["message"] and f"{better['metrics']['accuracy']}" in body["message"]
    code, body = await _error(_post(jp_fetch, "tiny", "promote", version=1, alias="staging", require=["accuracy>=0.99"]))
    assert code == 409 and "accuracy>=0.99" in body["message"] and str(worse["metrics"]["accuracy"]) in body["message"]

    shown = await _json(_get(jp_fetch, "tiny"))
    assert shown["aliases"] == {"production": 2}
    assert [(v["version"], v["aliases"], v["run_id"]) for v in shown["versions"]] == [(1, [], worse["id"]), (2, ["production"], better["id"])]

    back = await _json(_post(jp_fetch, "tiny", "rollback", alias="production", message="v2 misbehaves"))
    assert (back["from"], back["to"]) == (2, 1)
    history = (await _json(_get(jp_fetch, "tiny", "history")))["history"]
    assert [(e["action"], e["alias"], e["from"], e["to"], e["message"]) for e in history] == [
        ("promote", "production", None, 1, "first"),
        ("promote", "production", 1, 2, None),
        ("rollback", "production", 2, 1, "v2 misbehaves"),
    ]
    assert all(e["user"] and e["at"] for e in history)
    assert (await _json(_get(jp_fetch, "tiny")))["aliases"] == {"production": 1}
    # Nothing to go back to any more: a clear 400, not a crash.
    code, body = await _error(_post(jp_fetch, "tiny", "rollback", alias="production"))
    assert code == 400 and "no earlier version" in body["message"]
    # "register" is a route for POST only: GET reads it as a model name.
    code, body = await _error(_get(jp_fetch, "register"))
    assert code == 404 and "no model 'register'" in body["message"]


@pytest.mark.parametrize(
    ("parts", "payload", "status", "words"),
    [
        (("register",), {"run": "../x", "stage": "train", "var": "model", "name": "m"}, 400, "run"),
        (("register",), {"stage": "train", "var": "model", "name": "m"}, 400, "'run' is missing"),
        (("register",), {"run": "RUN", "stage": "1train", "var": "model", "name": "m"}, 400, "stage name"),
        (("register",), {"run": "RUN", "stage": "train", "var": "a-b", "name": "m"}, 400, "not a variable name"),
        (("register",), {"run": "RUN", "stage": "train", "var": "model", "name": "a b"}, 400, "invalid model name"),
        (("register",), {"run": "RUN", "stage": "train", "var": "nope", "name": "m"}, 404, "has no output 'nope'"),
        (("register",), {"run": "RUN", "stage": "fit", "var": "model", "name": "m"}, 404, "has no stage 'fit'"),
        (("register",), {"run": "RUN", "stage": "data", "var": "X", "name": "m"}, 400, "not a model"),
        (("register",), {"run": "RUN", "stage": "train", "var": "model", "name": "m", "message": "x" * 5000}, 400, "over the 2000"),
        (("tiny", "promote"), {"version": "two", "alias": "production"}, 400, "version number"),
        (("tiny", "promote"), {"version": 1}, 400, "'alias' is missing"),
        (("tiny", "promote"), {"version": 1, "alias": "3"}, 400, "reads as a version"),
        (("tiny", "promote"), {"version": 1, "alias": "prod", "require": "accuracy>0.5"}, 400, "list of conditions"),
        (("tiny", "promote"), {"version": 1, "alias": "prod", "require": ["accuracy is good"]}, 400, "cannot read the gate"),
        (("tiny", "promote"), {"version": 9, "alias": "prod"}, 404, "no version 9"),
        (("nope", "promote"), {"version": 1, "alias": "prod"}, 404, "no model 'nope'"),
        (("tiny", "rollback"), {"alias": 7}, 400, "must be a string"),
        (("tiny", "rollback"), {"alias": "staging"}, 400, "no earlier version"),
        (("a b", "rollback"), {"alias": "staging"}, 400, "invalid model name"),
    ],
)
async def test_bad_input_is_a_clear_error(jp_fetch, store, parts, payload, status, words):
    worse, _ = store
    await _post(jp_fetch, "register", run=worse["id"], stage="train", var="model", name="tiny")
    if payload.get("run") == "RUN":
        payload = {**payload, "run": worse["id"]}
    code, body = await _error(_post(jp_fetch, *parts, **payload))
    assert code == status, body
    assert words in body["message"], body
    assert body.get("fix")


async def test_bad_bodies_and_paths_are_refused(jp_fetch, store):
    code, body = await _error(jp_fetch("nbops", "models", "tiny", "promote", method="POST", body="{not json"))
    assert code == 400 and "not valid JSON" in body["message"]
    code, body = await _error(jp_fetch("nbops", "models", "tiny", "promote", method="POST", body=json.dumps({"path": "../x.ipynb", "version": 1})))
    assert code == 400 and "'..'" in body["message"]
    code, _ = await _error(jp_fetch("nbops", "models", params={"path": "/etc/passwd.ipynb"}))
    assert code == 400
    code, body = await _error(jp_fetch("nbops", "models", "x" * 200, params={"path": NB}))
    assert code == 400 and "invalid model name" in body["message"]
    code, body = await _error(_get(jp_fetch, "nope", "history"))
    assert code == 404 and "no model 'nope'" in body["message"]
