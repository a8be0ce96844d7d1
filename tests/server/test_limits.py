"""The server under hostile or heavy requests: size and depth limits, a busy analysis
that does not stall other requests, links out of the store, strict JSON, reads that make nothing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from nbops.server.handlers import MAX_BODY_BYTES, MAX_JSON_DEPTH
from nbops.store import RunStore

RUN_ID = "20261130-013000-ab12cd"


def _strict(text: bytes):
    def refuse(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant} in the answer")

    return json.loads(text, parse_constant=refuse)


async def _error(fetch_call) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await fetch_call
    return info.value.code, json.loads(info.value.response.body or b"{}")


async def test_a_body_over_the_limit_is_a_413_with_a_message(jp_fetch, pipeline_notebook):
    body = json.dumps({"path": pipeline_notebook, "content": {"pad": "x" * (MAX_BODY_BYTES + 1024)}})
    for route in ("graph", "runs"):
        code, answer = await _error(jp_fetch("nbops", route, method="POST", body=body))
        assert code == 413
        assert "16 MB limit" in answer["message"] and answer["fix"]


@pytest.mark.parametrize("depth", [10_000, MAX_JSON_DEPTH + 5])
async def test_json_nested_too_deep_is_a_400_not_a_crash(jp_fetch, pipeline_notebook, depth):
    deep = "[" * depth + "]" * depth
    for body in (deep, f'{{"path": "{pipeline_notebook}", "content": {{"cells": {deep}}}}}'):
        code, answer = await _error(jp_fetch("nbops", "graph", method="POST", body=body))
        assert code == 400
        assert "nests deeper than" in answer["message"]


async def test_a_big_analysis_does_not_block_other_requests(jp_fetch, jp_root_dir, pipeline_notebook):
    content = json.loads((jp_root_dir / pipeline_notebook).read_text())
    filler = "\n".join(f"v{i} = features['z'].sum() + {i}  # " + "pad " * 40 for i in range(4))
    for n in range(9000):
        tags = [f"stage:s{n}"] if n % 20 == 0 else []
        content["cells"].append({"cell_type": "code", "metadata": {"tags": tags}, "source": filler, "outputs": [], "execution_count": None})
    body = json.dumps({"path": pipeline_notebook, "content": content})
    assert len(body) > 4 * 2**20

    started = time.monotonic()
    graph_call = asyncio.ensure_future(jp_fetch("nbops", "graph", method="POST", body=body))
    await asyncio.sleep(0.2)  # the analysis is under way
    slowest, answered = 0.0, 0
    while not graph_call.done():
        t0 = time.monotonic()
        response = await jp_fetch("api", "status")
        assert response.code == 200
        slowest = max(slowest, time.monotonic() - t0)
        answered += 1
        await asyncio.sleep(0.1)
    graph = _strict((await graph_call).body)
    took = time.monotonic() - started
    assert len(graph["stages"]) >= 200
    assert slowest < 1.0, f"GET /api/status waited {slowest:.2f}s while the graph took {took:.2f}s"
    # A loop blocked by the analysis would answer once, after it: several answers show it was free.
    assert answered >= 3, f"only {answered} status answers while the graph took {took:.2f}s"


def _record_run(root: Path, notebook: Path, tmp: Path) -> tuple[RunStore, Path]:
    """A run record with one stage whose executed notebook is in the store, and a NaN metric."""
    rs = RunStore(notebook.parent / ".nbops")
    executed = tmp / "load.ipynb"
    executed.write_text(notebook.read_text())
    digest = rs.objects.put_file(executed)
    rs.create_run(RUN_ID, notebook=str(notebook), status="succeeded", params={"n_rows": 3})
    metrics = [{"name": "score", "value": float("nan"), "step": None}, {"name": "up", "value": float("inf"), "step": None}]
    rs.put_stage(RUN_ID, "load", 0, status="succeeded", notebook_sha256=digest, metrics=metrics)
    return rs, rs.run_dir(RUN_ID) / "notebooks" / "load.ipynb"


async def test_a_link_in_the_run_folder_to_a_file_outside_is_never_served(jp_fetch, jp_root_dir, pipeline_notebook, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("scratch")
    _, target = _record_run(jp_root_dir, jp_root_dir / pipeline_notebook, scratch)
    response = await jp_fetch("nbops", "runs", RUN_ID, "stages", "load", "notebook", params={"path": pipeline_notebook})
    assert json.loads(response.body)["nbformat"] == 4  # the honest file is served

    secret = scratch / "secret.txt"
    secret.write_text('{"secret": "do-not-serve"}')
    target.unlink()
    target.symlink_to(secret)
    code, answer = await _error(jp_fetch("nbops", "runs", RUN_ID, "stages", "load", "notebook", params={"path": pipeline_notebook}))
    assert code in (403, 404)
    assert "do-not-serve" not in json.dumps(answer)
    assert "outside the store" in answer["message"]


async def test_a_nan_metric_is_served_as_strict_json(jp_fetch, jp_root_dir, pipeline_notebook, tmp_path_factory):
    _record_run(jp_root_dir, jp_root_dir / pipeline_notebook, tmp_path_factory.mktemp("scratch"))
    listed = _strict((await jp_fetch("nbops", "runs", params={"path": pipeline_notebook})).body)
    assert listed["runs"][0]["metrics"] == {"score": "nan", "up": "inf"}
    run = _strict((await jp_fetch("nbops", "runs", RUN_ID, params={"path": pipeline_notebook})).body)
    assert run["stages"][0]["metrics"]["score"] == "nan"


async def test_reads_of_a_notebook_without_runs_make_no_folder(jp_fetch, jp_root_dir, pipeline_notebook):
    folder = jp_root_dir / "new" / "dir"
    folder.mkdir(parents=True)
    (folder / "x.ipynb").write_text((jp_root_dir / pipeline_notebook).read_text())
    path = "new/dir/x.ipynb"
    assert json.loads((await jp_fetch("nbops", "runs", params={"path": path})).body)["runs"] == []
    await jp_fetch("nbops", "store", params={"path": path})
    code, answer = await _error(jp_fetch("nbops", "runs", RUN_ID, params={"path": path}))
    assert code == 404 and "no runs yet" in answer["message"]
    code, answer = await _error(jp_fetch("nbops", "runs", RUN_ID, "stages", "load", "notebook", params={"path": path}))
    assert code == 404 and "no runs yet" in answer["message"]
    await jp_fetch("nbops", "plan", params={"path": path})
    await jp_fetch("nbops", "graph", params={"path": path})
    assert sorted(p.name for p in folder.iterdir()) == ["x.ipynb"]
