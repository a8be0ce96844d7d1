"""Publishing feature tables: versions, schema changes, bad input, lineage through real runs,
the CLI, and the team store (PostgreSQL + S3)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nbops import api, features, models
from nbops.errors import NotFoundError, UsageError
from nbops.features import tables
from tests.conftest import build_notebook, run_cli
from tests.services import postgres, s3, store_backend  # noqa: F401

FEAT_CELLS = [
    ("drop_spend = False", ["parameters"]),
    (
        "import pandas as pd\nfrom nbops import features\n"
        "stats = pd.DataFrame({'customer_id': [1, 1, 2], 'event_time': pd.to_datetime(['2024-01-01', '2024-01-05', '2024-01-02']),"
        " 'spend': [10.0, 20.0, 5.0]})\n"
        "if drop_spend:\n    stats = stats.drop(columns='spend')\n"
        "features.publish(stats, 'nb_stats', entity='customer_id', timestamp='event_time', description='spend per customer')",
        ["stage:stats"],
    ),
    ("n_rows = len(stats)", ["stage:count"]),  # makes stats an output of its stage
]
TRAIN_CELLS = [
    (
        "import pandas as pd\nimport nbops\nfrom nbops import features\nfrom sklearn.linear_model import LogisticRegression\n"
        "labels = pd.DataFrame({'customer_id': [1, 2, 1, 2], 'label_time': pd.to_datetime(['2024-01-02', '2024-01-03', '2024-01-06', '2023-12-01']),"
        " 'y': [0, 1, 1, 0]})\n"
        "train = features.training_set(labels, ['nb_stats:latest'], timestamp='label_time')\n"
        "spend = train['spend'].tolist()\n"
        "model = LogisticRegression().fit(train[['spend']].fillna(0), train['y'])\n"
        "nbops.log_model(model, 'nb_spend_model', input_example=train[['spend']].fillna(0))",
        ["stage:train"],
    ),
]


def _frame(times=("2024-01-01", "2024-01-02"), **extra):
    return pd.DataFrame({"customer_id": [1, 2], "event_time": pd.to_datetime(list(times)), "spend": [1.0, 2.0], **extra})


def _publish(df, name, near, **kw):
    return features.publish(df, name, entity="customer_id", timestamp="event_time", near=near, **kw)


@pytest.fixture
def near(tmp_path):
    return tmp_path / "nb.ipynb"


# -- versions and schema changes --------------------------------------------------------
def test_versions_schema_and_interactive_lineage(near):
    v1 = _publish(_frame(), "stats", near, description="spend")
    assert (v1["version"], v1["rows"], v1["entities"], v1["ref"]) == (1, 2, 2, "stats:v1")
    assert v1["columns"] == [
        {"name": "customer_id", "dtype": "int64"},
        {"name": "event_time", "dtype": "datetime64[us]"},
        {"name": "spend", "dtype": "float64"},
    ]
    assert (v1["min_ts"], v1["max_ts"]) == ("2024-01-01T00:00:00", "2024-01-02T00:00:00")
    v2 = _publish(_frame(orders=[3, 4]), "stats", near)  # an added column is fine
    assert (v2["version"], v2["breaking"]) == (2, False)
    shown = features.show("stats", near=near)
    assert [v["version"] for v in shown["versions"]] == [1, 2] and shown["version"]["version"] == 2
    assert shown["lineage"] == {"run_id": None, "note": "published outside a run: no code or data lineage"}
    assert shown["description"] == "spend"
    d = features.diff("stats", "v1", "v2", near=near)
    assert (d["added"], d["removed"], d["retyped"], d["breaking"]) == (["orders"], [], [], False)
    assert d["rows"] == {"from": 2, "to": 2, "change": 0}
    # A finer time unit is not a change of type.
    frame = _frame(orders=[3, 4])
    frame["event_time"] = frame["event_time"].astype("datetime64[ns]")
    assert _publish(frame, "stats", near)["breaking"] is False


def test_removed_and_retyped_columns_are_breaking(near):
    _publish(_frame(orders=[3, 4]), "stats", near)
    with pytest.raises(UsageError, match=r"removes orders \(against v1\): a breaking change") as err:
        _publish(_frame(), "stats", near)
    assert "allow_breaking=True" in err.value.fix and "--allow-breaking" in err.value.fix
    with pytest.raises(UsageError, match=r"retypes spend \(float64 → str\)"):
        _publish(_frame(orders=[3, 4]).assign(spend=["a", "b"]), "stats", near)
    v2 = _publish(_frame(), "stats", near, allow_breaking=True)
    assert (v2["version"], v2["breaking"]) == (2, True)
    assert features.diff("stats", 1, "latest", near=near)["removed"] == ["orders"]
    assert [t["latest"] for t in features.list_tables(near=near)] == [2]


def test_bad_input_is_named(near):
    with pytest.raises(UsageError, match="the entity column 'cid' is not in the frame") as err:
        features.publish(_frame(), "stats", entity="cid", timestamp="event_time", near=near)
    assert "customer_id, event_time, spend" in err.value.fix
    with pytest.raises(UsageError, match="the timestamp column 'ts' is not in the frame"):
        features.publish(_frame(), "stats", entity="customer_id", timestamp="ts", near=near)
    mixed = _frame().astype({"event_time": object})
    mixed.loc[1, "event_time"] = pd.Timestamp("2024-01-03", tz="UTC")
    with pytest.raises(UsageError, match="'event_time' mixes naive and timezone-aware"):
        _publish(mixed, "stats", near)
    with pytest.raises(UsageError, match="entity column 'customer_id' has 1 empty value"):
        _publish(_frame().assign(customer_id=[1, None]), "stats", near)
    with pytest.raises(UsageError, match="invalid feature table name"):
        _publish(_frame(), "bad name", near)
    with pytest.raises(UsageError, match="dedupe must be"):
        _publish(_frame(), "stats", near, dedupe="first")
    # Across versions: a table is naive or aware, and keeps its entity and timestamp columns.
    _publish(_frame(), "stats", near)
    with pytest.raises(UsageError, match=r"stats has naive timestamps .*this frame's 'event_time' is timezone-aware"):
        _publish(_frame().assign(event_time=lambda d: d["event_time"].dt.tz_localize("UTC")), "stats", near)
    with pytest.raises(UsageError, match="keyed by entity 'customer_id'"):
        features.publish(_frame().rename(columns={"customer_id": "cid"}), "stats", entity="cid", timestamp="event_time", near=near)
    with pytest.raises(NotFoundError, match="no feature table 'nope'") as err:
        features.read("nope:latest", near=near)
    assert "stats" in err.value.fix
    with pytest.raises(NotFoundError, match="feature table stats has no version v4"):
        features.read("stats:v4", near=near)
    with pytest.raises(UsageError, match="invalid version"):
        features.read("stats:vv", near=near)


def test_read_returns_the_frame_and_explore_builds_from_it(near):
    import nbops

    frame = _frame(orders=[3, 4])
    _publish(frame, "stats", near)
    back = features.read("stats:v1", near=near)
    pd.testing.assert_frame_equal(back, frame)
    pd.testing.assert_frame_equal(features.read("stats:latest", near=near), frame)
    view = nbops.explore(back)
    assert view.summary.n_rows == 2 and {c.name for c in view.summary.columns} >= {"spend", "orders"}
    assert "text/html" in view._repr_mimebundle_()


# -- inside real runs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("featproject")
    return build_notebook(folder, FEAT_CELLS, "feat.ipynb"), build_notebook(folder, TRAIN_CELLS, "train.ipynb")


def test_publish_in_a_run_training_set_lineage_and_cli(project):
    feat_nb, train_nb = project
    first = api.run(feat_nb)
    assert first["status"] == "succeeded" and first["features"] == [{"name": "nb_stats", "version": 1}]
    shown = features.show("nb_stats", near=feat_nb)
    v1 = shown["version"]
    assert (v1["run_id"], v1["stage"], v1["var"], v1["rows"]) == (first["id"], "stats", "feature:nb_stats", 3)
    assert shown["lineage"]["run_id"] == first["id"] and shown["lineage"]["stage_code_sha256"]
    assert shown["description"] == "spend per customer"
    # Same code and data: the stage is reused from the cache and publishes nothing new.
    again = api.run(feat_nb)
    assert [s["status"] for s in again["stages"]] == ["cached", "cached"] and "features" not in again
    assert [v["version"] for v in features.show("nb_stats", near=feat_nb)["versions"]] == [1]

    trained = api.run(train_nb)
    assert trained["status"] == "succeeded", trained
    assert trained["models"] == [{"name": "nb_spend_model", "version": 1}]
    used = {"path": "feature:nb_stats:v1", "feature": "nb_stats", "version": 1, "sha256": v1["sha256"]}
    proc = run_cli("runs", "show", trained["id"], "--notebook", str(train_nb), "--json")
    assert proc.returncode == 0, proc.stderr
    stage = json.loads(proc.stdout)["stages"][0]
    assert used in stage["inputs"]
    assert used in models.show("nb_spend_model@1", near=train_nb)["lineage"]["inputs"]

    # A breaking change in a run: the run succeeds, the table is refused, naming the column and the run.
    with pytest.raises(UsageError, match=r"feature table nb_stats \(stage stats\) was not published: .*removes spend") as err:
        api.run(feat_nb, {"drop_spend": True})
    run_id = err.value.message.split()[1]
    assert f"nbops features publish {run_id} --stage stats --var feature:nb_stats" in err.value.fix
    publish = ["features", "publish", run_id, "--stage", "stats", "--name", "nb_stats", "--entity", "customer_id", "--timestamp", "event_time",
               "--notebook", str(feat_nb), "--json"]  # fmt: skip
    proc = run_cli(*publish, "--var", "feature:nb_stats")
    assert proc.returncode == 2 and "removes spend" in proc.stderr
    proc = run_cli(*publish, "--var", "feature:nb_stats", "--allow-breaking")
    assert proc.returncode == 0, proc.stderr
    assert {k: json.loads(proc.stdout)[k] for k in ("version", "breaking", "run_id")} == {"version": 2, "breaking": True, "run_id": run_id}
    # A plain DataFrame output of a stage, as a table of its own.
    proc = run_cli(*[x if x != "nb_stats" else "nb_stats_out" for x in publish], "--var", "stats")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["var"] == "stats"

    proc = run_cli("features", "diff", "nb_stats", "v1", "v2", "--notebook", str(feat_nb), "--json")
    assert proc.returncode == 0, proc.stderr
    assert {k: json.loads(proc.stdout)[k] for k in ("removed", "added", "breaking")} == {"removed": ["spend"], "added": [], "breaking": True}
    text = run_cli("features", "diff", "nb_stats", "v1", "v2", "--notebook", str(feat_nb)).stdout
    assert "- spend" in text and "breaking" in text
    listed = json.loads(run_cli("features", "ls", "--notebook", str(feat_nb), "--json").stdout)
    assert {t["name"]: t["latest"] for t in listed} == {"nb_stats": 2, "nb_stats_out": 1}
    text = run_cli("features", "show", "nb_stats:v1", "--notebook", str(feat_nb)).stdout
    assert "nb_stats v1" in text and f"run {first['id']}" in text
    proc = run_cli("features", "show", "nb_stats:v7", "--notebook", str(feat_nb))
    assert proc.returncode != 0 and "has no version v7" in proc.stderr


# -- the team store --------------------------------------------------------------------
@pytest.mark.parametrize("store_backend", ["pg-s3"], indirect=True)
def test_publish_and_training_set_on_the_team_store(store_backend, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    feat_nb, train_nb = build_notebook(tmp_path, FEAT_CELLS, "feat.ipynb"), build_notebook(tmp_path, TRAIN_CELLS, "train.ipynb")
    for nb in (feat_nb, train_nb):
        proc = run_cli("run", str(nb), "--json", cwd=tmp_path, env=store_backend.env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    trained = json.loads(proc.stdout)
    for key, value in store_backend.env.items():
        monkeypatch.setenv(key, value)
    rs, fs = tables.open_features(near=feat_nb)
    version = fs.version("nb_stats")
    assert rs.kind == "postgresql" and rs.objects.location.startswith("s3://") and rs.objects.has(version["sha256"])
    assert version["run_id"] and version["stage"] == "stats"
    stage = rs.get_run(trained["id"])["stages"][0]
    assert {"path": "feature:nb_stats:v1", "feature": "nb_stats", "version": 1, "sha256": version["sha256"]} in stage["inputs"]
    labels = pd.DataFrame({"customer_id": [1, 2, 1, 2], "label_time": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-06", "2023-12-01"])})
    out = features.training_set(labels, ["nb_stats:v1"], timestamp="label_time", near=feat_nb)
    assert out["spend"].tolist()[:3] == [10.0, 5.0, 20.0] and pd.isna(out["spend"].iloc[3])
    assert tables.parquet_path(rs, version).is_relative_to(rs.root)  # a verified local copy of the S3 object
