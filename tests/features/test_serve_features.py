"""``nbops serve MODEL@ALIAS --features TABLE`` end to end: a model trained in a real run on a
point-in-time training set, the table materialized, a real ``nbops serve`` process; a request
that carries only the entity id is answered from the online features (SQLite and Redis).
"""

from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pandas as pd
import pytest

from nbops import api, features, models
from nbops.features.online import materialize
from tests.conftest import NBOPS, build_notebook
from tests.models.conftest import wait_until_healthy
from tests.services import free_port, redis  # noqa: F401

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

TABLE, PLAN, MODEL = "cust_feats", "cust_plan", "feat_model"
COLUMNS = ["spend", "visits", "tenure"]  # what the model takes; PLAN's "plan" column it does not
TRAIN = (
    "import pandas as pd\nimport nbops\nfrom nbops import features\nfrom sklearn.ensemble import HistGradientBoostingClassifier\n"
    "labels = pd.read_parquet('labels.parquet')\n"
    f"train = features.training_set(labels, ['{TABLE}:latest'], timestamp='label_time')\n"
    f"X = train[{COLUMNS!r}]\n"
    "model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, train['y'])\n"
    f"nbops.log_model(model, '{MODEL}', input_example=X.head())"
)


def _table(seed: int, entities: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = entities * 4
    return pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(entities), 4),
            "event_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.tile([0, 10, 20, 30], entities), unit="D"),
            "spend": rng.gamma(2, 30, rows).round(2),
            "visits": rng.integers(0, 20, rows),
            "tenure": rng.uniform(1, 60, rows).round(1),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A feature table (v1), a model trained on it in a real run (``feat_model@production``)."""
    folder = tmp_path_factory.mktemp("serve_features")
    nb = build_notebook(folder, [(TRAIN, ["stage:train"])], name="train.ipynb")
    table = _table(seed=3)
    features.publish(table, TABLE, entity="customer_id", timestamp="event_time", near=nb)
    plan = table[["customer_id", "event_time"]].assign(plan=np.where(table.customer_id % 3 == 0, "pro", "basic"))
    features.publish(plan, PLAN, entity="customer_id", timestamp="event_time", near=nb)
    for name in (TABLE, PLAN):
        materialize(name, near=nb)
    rng = np.random.default_rng(4)
    labels = pd.DataFrame({"customer_id": np.arange(120), "label_time": pd.Timestamp("2024-01-15") + pd.to_timedelta(rng.integers(0, 30, 120), unit="D")})
    labels["y"] = (rng.random(120) < 0.5).astype(int)
    labels.to_parquet(folder / "labels.parquet")
    run = api.run(nb)
    assert run["status"] == "succeeded", run
    assert run["models"] == [{"name": MODEL, "version": 1}]
    models.promote(MODEL, 1, "production", near=nb)
    return nb, table


def _latest(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("event_time").groupby("customer_id").tail(1).set_index("customer_id")


def _expected(nb, rows: pd.DataFrame) -> list:
    from nbops.runtime import flavors

    return flavors.predict(models.load(f"{MODEL}@production", near=nb), "sklearn", rows[COLUMNS])["predictions"].tolist()


def _serve(nb, port: int, env: dict) -> subprocess.Popen:
    cmd = [*NBOPS, "serve", f"{MODEL}@production", "--features", TABLE, "--port", str(port), "--notebook", str(nb), "--poll", "0"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def service(request, trained):
    """A real ``nbops serve`` process over the table's online copy in SQLite (the default) or Redis."""
    nb, table = trained
    env = {k: v for k, v in os.environ.items() if k not in ("NBOPS_STORE", "NBOPS_ONLINE")}
    if request.param == "redis":
        env["NBOPS_ONLINE"] = request.getfixturevalue("redis").new_db()
    materialize(TABLE, version=1, online=env.get("NBOPS_ONLINE"), near=nb)
    port = free_port()
    proc = _serve(nb, port, env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_until_healthy(proc, client, "nbops serve --features")
        yield client, nb, table, env.get("NBOPS_ONLINE")
    finally:
        client.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        materialize(TABLE, version=1, online=env.get("NBOPS_ONLINE"), near=nb)  # as the next service expects it


def test_a_request_with_only_the_entity_id_is_enriched_and_answered(service):
    client, nb, table, _ = service
    ids = [5, 17, 42, 99, 0]
    r = client.post("/predict", json={"records": [{"customer_id": i} for i in ids]})
    assert r.status_code == 200, r.text
    # The same answer as the model on each customer's latest offline row.
    assert r.json()["predictions"] == _expected(nb, _latest(table).loc[ids])
    # Columns form too; a value the request carries itself wins over the online one.
    r = client.post("/predict", json={"columns": {"customer_id": [5, 17], "spend": [0.0, 10_000.0]}})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == _expected(nb, _latest(table).loc[[5, 17]].assign(spend=[0.0, 10_000.0]))


def test_get_features_returns_the_stored_values(service):
    client, _, table, _ = service
    r = client.get("/features", params=[("table", TABLE), ("id", "17"), ("id", "3")])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["table"], body["entity"], body["ids"]) == (TABLE, "customer_id", [17, 3])
    want = _latest(table).loc[[17, 3]]
    got = [{c: row[c] for c in ["customer_id", *COLUMNS]} for row in body["rows"]]
    assert got == [{"customer_id": i} | {c: (v.item() if hasattr(v, "item") else v) for c, v in want.loc[i, COLUMNS].items()} for i in (17, 3)]
    assert client.get("/features", params={"table": "nope", "id": "1"}).status_code == 404
    assert client.get("/features", params={"table": TABLE}).status_code == 422


def test_a_new_materialization_is_served_without_a_restart(service):
    client, nb, table, online = service
    changed = table.assign(event_time=table.event_time + pd.Timedelta("60D"), spend=table.spend * 2)
    v2 = features.publish(changed, TABLE, entity="customer_id", timestamp="event_time", near=nb)["version"]
    materialize(TABLE, version=v2, online=online, near=nb)
    r = client.get("/features", params=[("table", TABLE), ("id", "17")])
    assert r.json()["rows"][0]["spend"] == pytest.approx(_latest(changed).loc[17, "spend"])
    r = client.post("/predict", json={"records": [{"customer_id": 17}, {"customer_id": 42}]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == _expected(nb, _latest(changed).loc[[17, 42]])


def test_a_request_without_the_entity_is_refused(service):
    client, *_ = service
    r = client.post("/predict", json={"records": [{"spend": 1.0}]})
    assert r.status_code == 422 and "customer_id" in r.text


# -- in-process services (Starlette's test client) for what needs no second process ------------------
def _client(nb, tables: list[str]):
    from starlette.testclient import TestClient

    from nbops.models.serve import create_app

    return TestClient(create_app(f"{MODEL}@production", near=nb, features=tables, poll=0))


def test_feature_columns_the_model_does_not_take_are_left_out(trained):
    """A table usually has more columns than one model uses: the enriched row keeps the signature's."""
    nb, table = trained
    with _client(nb, [TABLE, PLAN]) as client:
        r = client.post("/predict", json={"records": [{"customer_id": 5}, {"customer_id": 17}]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == _expected(nb, _latest(table).loc[[5, 17]])


def test_an_entity_with_no_online_row_is_refused_by_name(trained):
    nb, _ = trained
    with _client(nb, [TABLE]) as client:
        r = client.post("/predict", json={"records": [{"customer_id": 5}, {"customer_id": 10_000}]})
        assert r.status_code == 422 and "10000" in r.json()["message"] and TABLE in r.json()["message"], r.text


def test_the_example_notebooks_publish_train_materialize_and_serve(tmp_path):
    """README's tour: features.ipynb publishes, features_train.ipynb trains on a point-in-time
    set, the table is materialized, and a service answers a request that carries only ids."""
    import shutil

    from tests.conftest import EXAMPLES

    for name in ("features.ipynb", "features_train.ipynb"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    published = api.run(tmp_path / "features.ipynb", {"n_customers": 200})
    assert published["status"] == "succeeded" and published["features"] == [{"name": "customer_stats", "version": 1}], published
    trained = api.run(tmp_path / "features_train.ipynb")
    assert trained["status"] == "succeeded" and trained["models"] == [{"name": "churn_features", "version": 1}], trained
    lineage = models.show("churn_features@1", near=tmp_path / "features_train.ipynb")["lineage"]
    assert any(i.get("path") == "feature:customer_stats:v1" for i in lineage["inputs"])
    assert materialize("customer_stats", near=tmp_path / "features.ipynb")["rows"] > 150
    from starlette.testclient import TestClient

    from nbops.models.serve import create_app

    with TestClient(create_app("churn_features@latest", near=tmp_path / "features.ipynb", features=["customer_stats"], poll=0)) as client:
        r = client.post("/predict", json={"records": [{"customer_id": 17}, {"customer_id": 42}]})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2, r.text
