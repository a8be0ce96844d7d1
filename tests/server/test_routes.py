"""The /nbops/ routes: auth, input validation, confinement to the root, happy paths."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import HTTPClientError

ROUTES = [
    ("POST", ("nbops", "graph")),
    ("GET", ("nbops", "graph")),
    ("GET", ("nbops", "plan")),
    ("GET", ("nbops", "store")),
    ("GET", ("nbops", "runs")),
    ("POST", ("nbops", "runs")),
    ("GET", ("nbops", "runs", "20261130-013000-ab12cd")),
    ("GET", ("nbops", "runs", "20261130-013000-ab12cd", "stages", "load", "notebook")),
]


def _body(method: str, payload: dict | None = None) -> dict:
    return {"body": json.dumps(payload or {})} if method == "POST" else {}


async def _error(fetch_call) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await fetch_call
    body = info.value.response.body if info.value.response is not None else b"{}"
    return info.value.code, json.loads(body or b"{}")


@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_every_route_refuses_a_request_without_auth(jp_fetch, method, parts, pipeline_notebook):
    code, _ = await _error(
        jp_fetch(
            *parts,
            method=method,
            headers={"Authorization": "token not-the-token"},
            params={"path": pipeline_notebook},
            **_body(method, {"path": pipeline_notebook}),
        )
    )
    assert code in (401, 403)


@pytest.mark.parametrize(
    "path",
    ["../outside.ipynb", "work/../../outside.ipynb", "/etc/passwd.ipynb", "", "work/small_pipeline.py"],
)
@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_a_path_outside_the_root_or_not_a_notebook_is_refused(jp_fetch, method, parts, path, pipeline_notebook):
    code, body = await _error(jp_fetch(*parts, method=method, params={"path": path}, **_body(method, {"path": path})))
    assert code == 400
    assert body["error"] == "UsageError"
    assert body["message"]


async def test_a_symlink_leading_out_of_the_root_is_refused(jp_fetch, jp_root_dir, tmp_path_factory, pipeline_notebook):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.ipynb").write_text((jp_root_dir / pipeline_notebook).read_text())
    (jp_root_dir / "work" / "link.ipynb").symlink_to(outside / "secret.ipynb")
    code, body = await _error(jp_fetch("nbops", "graph", method="POST", body=json.dumps({"path": "work/link.ipynb"})))
    assert code == 400
    assert "outside the server root" in body["message"]


@pytest.mark.parametrize("run_id", ["..", "a b", "x;rm -rf", "....ipynb"])
async def test_a_bad_run_id_is_refused(jp_fetch, run_id, pipeline_notebook):
    code, body = await _error(jp_fetch("nbops", "runs", run_id, params={"path": pipeline_notebook}))
    assert code == 400
    assert body["message"]
    code, _ = await _error(jp_fetch("nbops", "runs", run_id, "stages", "load", "notebook", params={"path": pipeline_notebook}))
    assert code == 400


@pytest.mark.parametrize("stage", ["1load", "a.b", "..", "load-x"])
async def test_a_bad_stage_name_is_refused(jp_fetch, stage, pipeline_notebook):
    code, body = await _error(jp_fetch("nbops", "runs", "20261130-013000-ab12cd", "stages", stage, "notebook", params={"path": pipeline_notebook}))
    assert code == 400
    assert body["message"]


@pytest.mark.parametrize(
    ("parts", "body", "needle"),
    [
        (("nbops", "graph"), "{not json", "not valid JSON"),
        (("nbops", "graph"), "[1, 2]", "JSON object"),
        (("nbops", "graph"), "{}", "'path' is missing"),
        (("nbops", "graph"), '{"path": 3}', "'path' is missing"),
        (("nbops", "graph"), '{"path": "work/small_pipeline.ipynb", "content": "text"}', "'content'"),
        (("nbops", "runs"), "", "JSON object"),
        (("nbops", "runs"), '{"params": {}}', "'path' is missing"),
        (("nbops", "runs"), '{"path": "work/small_pipeline.ipynb", "params": [1]}', "'params'"),
        (("nbops", "runs"), '{"path": "work/small_pipeline.ipynb", "executor": "../x"}', "executor"),
    ],
)
async def test_a_malformed_body_is_a_400_with_a_message(jp_fetch, parts, body, needle, pipeline_notebook):
    code, answer = await _error(jp_fetch(*parts, method="POST", body=body, allow_nonstandard_methods=True))
    assert code == 400
    assert needle in answer["message"]


async def test_a_missing_path_query_is_a_400(jp_fetch, pipeline_notebook):
    code, answer = await _error(jp_fetch("nbops", "runs"))
    assert code == 400
    assert "'path' is missing" in answer["message"]


async def test_a_bad_limit_is_a_400(jp_fetch, pipeline_notebook):
    code, answer = await _error(jp_fetch("nbops", "runs", params={"path": pipeline_notebook, "limit": "-1"}))
    assert code == 400
    assert "limit" in answer["message"]


async def test_graph_of_a_tagged_notebook(jp_fetch, pipeline_notebook):
    response = await jp_fetch("nbops", "graph", method="POST", body=json.dumps({"path": pipeline_notebook}))
    graph = json.loads(response.body)
    assert graph["schema"] == "nbops.graph/1"
    assert [s["name"] for s in graph["stages"]] == ["load", "features", "evaluate"]
    edges = {(e["source"], e["target"]): e["variables"] for e in graph["edges"]}
    assert "df" in edges[("load", "features")]
    assert "features" in edges[("features", "evaluate")]
    assert {p["name"] for p in graph["parameters"]} == {"n_rows", "threshold"}
    assert graph["errors"] == []


async def test_graph_reads_the_unsaved_content_when_given(jp_fetch, jp_root_dir, pipeline_notebook):
    content = json.loads((jp_root_dir / pipeline_notebook).read_text())
    for cell in content["cells"]:
        cell["metadata"]["tags"] = ["stage:score" if t == "stage:evaluate" else t for t in cell["metadata"].get("tags", [])]
    response = await jp_fetch("nbops", "graph", method="POST", body=json.dumps({"path": pipeline_notebook, "content": content}))
    assert [s["name"] for s in json.loads(response.body)["stages"]] == ["load", "features", "score"]


async def test_graph_errors_are_in_the_answer_not_a_failure(jp_fetch, jp_root_dir, pipeline_notebook):
    content = json.loads((jp_root_dir / pipeline_notebook).read_text())
    content["cells"][5]["metadata"]["tags"] = ["stage:features", "after:nowhere"]
    response = await jp_fetch("nbops", "graph", method="POST", body=json.dumps({"path": pipeline_notebook, "content": content}))
    errors = json.loads(response.body)["errors"]
    assert errors and errors[0]["cell"] == 5


@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_a_missing_notebook_is_a_404_with_a_message(jp_fetch, method, parts, pipeline_notebook):
    path = "work/none.ipynb"
    code, answer = await _error(jp_fetch(*parts, method=method, params={"path": path}, **_body(method, {"path": path})))
    assert code == 404
    assert answer["error"] == "NotFoundError"
    assert "none.ipynb" in answer["message"]


async def test_an_unknown_run_is_a_404(jp_fetch, pipeline_notebook):
    code, answer = await _error(jp_fetch("nbops", "runs", "20261130-013000-ab12cd", params={"path": pipeline_notebook}))
    assert code == 404
    assert answer["error"] == "NotFoundError"


async def test_unknown_parameters_are_refused_before_anything_runs(jp_fetch, pipeline_notebook):
    code, answer = await _error(jp_fetch("nbops", "runs", method="POST", body=json.dumps({"path": pipeline_notebook, "params": {"nope": 1}})))
    assert code == 400
    assert answer["error"] == "ParameterError"


async def _wait_for_run(jp_fetch, run_id: str, path: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = await jp_fetch("nbops", "runs", run_id, params={"path": path})
        run = json.loads(response.body)
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, f"run {run_id} still running after {timeout}s: {run}"
        await asyncio.sleep(0.5)


async def test_start_a_run_poll_it_and_read_an_executed_notebook(jp_fetch, pipeline_notebook):
    response = await jp_fetch(
        "nbops",
        "runs",
        method="POST",
        body=json.dumps({"path": pipeline_notebook, "params": {"n_rows": "70"}, "executor": "local"}),
    )
    assert response.code == 201
    run_id = json.loads(response.body)["id"]

    run = await _wait_for_run(jp_fetch, run_id, pipeline_notebook)
    assert run["status"] == "succeeded", run
    assert [s["name"] for s in run["stages"]] == ["load", "features", "evaluate"]
    assert {s["status"] for s in run["stages"]} == {"succeeded"}
    assert run["params"]["n_rows"] == 70
    assert run["metrics"]["rows"] == 70
    assert "positive_rate" in run["metrics"]

    listed = json.loads((await jp_fetch("nbops", "runs", params={"path": pipeline_notebook})).body)
    assert listed["runs"][0]["id"] == run_id
    assert listed["store"]["kind"] == "sqlite"

    response = await jp_fetch("nbops", "runs", run_id, "stages", "evaluate", "notebook", params={"path": pipeline_notebook})
    notebook = json.loads(response.body)
    assert notebook["nbformat"] == 4
    sources = "\n".join("".join(c["source"]) for c in notebook["cells"])
    assert "positive_rate" in sources

    code, _ = await _error(jp_fetch("nbops", "runs", run_id, "stages", "nowhere", "notebook", params={"path": pipeline_notebook}))
    assert code == 404


async def test_plan_says_what_would_run_and_why_without_writing_anything(jp_fetch, jp_root_dir, pipeline_notebook):
    response = await jp_fetch("nbops", "plan", params={"path": pipeline_notebook})
    plan = json.loads(response.body)
    assert [s["name"] for s in plan["stages"]] == ["load", "features", "evaluate"]
    assert {s["action"] for s in plan["stages"]} == {"run"}
    assert plan["stages"][0]["reason"]["kind"] == "first-run"
    assert all(s["reason"]["detail"] for s in plan["stages"])
    # A read: no run store, no folder appears beside the notebook.
    assert sorted(p.name for p in (jp_root_dir / "work").iterdir()) == ["small_pipeline.ipynb"]


async def test_plan_of_a_notebook_with_graph_errors_is_a_400_naming_the_cell(jp_fetch, jp_root_dir, pipeline_notebook):
    nb_file = jp_root_dir / pipeline_notebook
    content = json.loads(nb_file.read_text())
    content["cells"][5]["metadata"]["tags"] = ["stage:features", "after:nowhere"]
    nb_file.write_text(json.dumps(content))
    code, answer = await _error(jp_fetch("nbops", "plan", params={"path": pipeline_notebook}))
    assert code == 400
    assert answer["error"] == "GraphError"
    assert "nowhere" in json.dumps(answer)


async def test_plan_after_a_run_reuses_and_names_the_edited_stage(jp_fetch, jp_root_dir, pipeline_notebook):
    response = await jp_fetch("nbops", "runs", method="POST", body=json.dumps({"path": pipeline_notebook}))
    run = await _wait_for_run(jp_fetch, json.loads(response.body)["id"], pipeline_notebook)
    assert run["status"] == "succeeded", run
    assert all(s["reason"]["kind"] for s in run["stages"])

    nb_file = jp_root_dir / pipeline_notebook
    content = json.loads(nb_file.read_text())
    content["cells"][5]["source"] = 'features = df.assign(z=df["y"] > threshold / 2)'
    nb_file.write_text(json.dumps(content))
    plan = json.loads((await jp_fetch("nbops", "plan", params={"path": pipeline_notebook})).body)
    by_name = {s["name"]: s for s in plan["stages"]}
    assert by_name["load"]["action"] == "reuse", by_name["load"]
    assert by_name["features"]["action"] == "run"
    assert by_name["features"]["reason"]["kind"] == "code"
    assert by_name["evaluate"]["action"] == "run"
    assert by_name["evaluate"]["reason"]["kind"] == "upstream"
