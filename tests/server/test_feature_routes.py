"""The /nbops/features routes on a real Jupyter server: tables, versions and freshness.

Tables are published beside the notebook through the library (as a notebook
would, outside a run) and materialized into the embedded online store.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tornado.httpclient import HTTPClientError


def _frame(days: int, extra: bool = False) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "customer_id": [1, 2, 1, 2][: 2 * days],
            "event_time": pd.to_datetime(["2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02"][: 2 * days], utc=True),
            "spend": [10.0, 20.0, 11.0, 21.0][: 2 * days],
        }
    )
    return df.assign(visits=[1, 2, 3, 4][: 2 * days]) if extra else df


@pytest.fixture
def published(jp_root_dir, pipeline_notebook, monkeypatch):
    """customer_stats v1 (one day) materialized, then v2 (two days, a new column); orders v1, never materialized."""
    from nbops import features

    monkeypatch.delenv("NBOPS_ONLINE", raising=False)
    near = jp_root_dir / pipeline_notebook
    features.publish(_frame(1), "customer_stats", entity="customer_id", timestamp="event_time", description="spend per day", near=near)
    features.materialize("customer_stats", near=near)
    features.publish(_frame(2, extra=True), "customer_stats", entity="customer_id", timestamp="event_time", near=near)
    features.publish(_frame(2), "orders", entity="customer_id", timestamp="event_time", near=near)
    return near


async def _error(fetch_call) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await fetch_call
    body = info.value.response.body if info.value.response is not None else b"{}"
    return info.value.code, json.loads(body or b"{}")


@pytest.mark.parametrize("parts", [("nbops", "features"), ("nbops", "features", "customer_stats")])
async def test_feature_routes_refuse_a_request_without_auth(jp_fetch, pipeline_notebook, parts):
    code, _ = await _error(jp_fetch(*parts, headers={"Authorization": "token nope"}, params={"path": pipeline_notebook}))
    assert code in (401, 403)


async def test_a_notebook_without_a_store_has_no_tables(jp_fetch, jp_root_dir, pipeline_notebook):
    answer = json.loads((await jp_fetch("nbops", "features", params={"path": pipeline_notebook})).body)
    assert answer["tables"] == [] and answer["store"]["kind"] == "sqlite"
    assert not (jp_root_dir / "work" / ".nbops").exists()


async def test_tables_versions_and_freshness(jp_fetch, pipeline_notebook, published):
    from nbops import features

    answer = json.loads((await jp_fetch("nbops", "features", params={"path": pipeline_notebook})).body)
    tables = {t["name"]: t for t in answer["tables"]}
    assert sorted(tables) == ["customer_stats", "orders"]
    stats = tables["customer_stats"]
    assert (stats["entity"], stats["timestamp"], stats["latest"], stats["description"]) == ("customer_id", "event_time", 2, "spend per day")
    online = stats["online"]
    assert (online["status"], online["version"], online["latest_version"], online["versions_behind"]) == ("behind", 1, 2, 1)
    assert online["lag_seconds"] == 86400  # the newest online feature time is a day behind the offline table's
    assert online["materialized_at"] and "1 version behind v2" in online["summary"]
    assert tables["orders"]["online"]["status"] == "never"

    shown = json.loads((await jp_fetch("nbops", "features", "customer_stats", params={"path": pipeline_notebook})).body)
    assert [(v["version"], v["rows"], v["entities"]) for v in shown["versions"]] == [(1, 2, 2), (2, 4, 2)]
    assert [c["name"] for c in shown["versions"][1]["columns"]] == ["customer_id", "event_time", "spend", "visits"]
    assert shown["version"]["version"] == 2 and shown["online"]["status"] == "behind"
    first = json.loads((await jp_fetch("nbops", "features", "customer_stats:v1", params={"path": pipeline_notebook})).body)
    assert first["version"]["version"] == 1

    features.materialize("customer_stats", near=published)
    shown = json.loads((await jp_fetch("nbops", "features", "customer_stats", params={"path": pipeline_notebook})).body)
    assert (shown["online"]["status"], shown["online"]["version"], shown["online"]["lag_seconds"]) == ("fresh", 2, 0)


@pytest.mark.parametrize(
    ("table", "status", "words"),
    [
        ("a b", 400, "invalid feature table name"),
        ("nope", 404, "no feature table 'nope'"),
        ("orders:v0", 400, "invalid version"),
        ("orders:v7", 404, "no version v7"),
    ],
)
async def test_bad_table_names_are_clear_errors(jp_fetch, pipeline_notebook, published, table, status, words):
    code, body = await _error(jp_fetch("nbops", "features", table, params={"path": pipeline_notebook}))
    assert code == status and words in body["message"], body
    assert body["fix"]


async def test_a_path_outside_the_root_is_refused(jp_fetch):
    code, body = await _error(jp_fetch("nbops", "features", params={"path": "../x.ipynb"}))
    assert code == 400 and "'..'" in body["message"]
