"""The online store: materialize the latest row per entity, look ids up, freshness.

Every behaviour runs on the embedded SQLite store and on a real Redis server
(Debian's redis-server, started by tests/services.py on 127.0.0.1).
"""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

from nbops import features
from nbops.errors import NotFoundError, StoreError, UsageError
from nbops.features.online import freshness, materialize, online_tables
from nbops.features.online import online as lookup
from tests.services import postgres, redis, s3, store_backend  # noqa: F401

T = pd.Timestamp


@pytest.fixture(scope="module")
def near(tmp_path_factory):
    """One embedded store for the module: each test publishes tables of its own name."""
    return tmp_path_factory.mktemp("online") / "nb.ipynb"


@pytest.fixture(params=["sqlite", "redis"])
def where(request, near):
    """``online=`` for the backend under test: None (the store's online.db) or a fresh Redis database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("redis").new_db()


def _table(seed: int, entities: int = 200, rows: int = 1500) -> pd.DataFrame:
    """A feature table of every kind of column the online stores keep, with nulls and NaNs."""
    rng = np.random.default_rng(seed)
    ts = T("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90 * 86400, rows), unit="s")
    df = pd.DataFrame(
        {
            "customer_id": rng.integers(0, entities, rows),
            "event_time": ts,
            "spend": rng.normal(50, 20, rows),
            "orders": rng.integers(0, 1000, rows),
            "plan": rng.choice(["basic", "plus", "pro", "é ü 中"], rows),
            "active": rng.random(rows) < 0.5,
            "last_seen": ts - pd.to_timedelta(rng.integers(0, 3600, rows), unit="s"),
            "tags": [list(map(int, rng.integers(0, 9, rng.integers(0, 4)))) for _ in range(rows)],
        }
    )
    df.loc[rng.random(rows) < 0.1, "spend"] = np.nan
    df["note"] = pd.Series(rng.choice(["a", "b", None], rows), dtype=object)
    return df.drop_duplicates(["customer_id", "event_time"]).reset_index(drop=True)


def _norm(v):
    """A cell as plain Python, so offline (DuckDB, Parquet) and online values compare."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_norm(x) for x in v]
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list]:
    return [[_norm(frame[c].iloc[i]) for c in columns] for i in range(len(frame))]


def test_online_values_agree_with_the_offline_table_at_each_entity_latest_time(near, where):
    name = f"agree_{'redis' if where else 'sqlite'}"
    df = _table(seed=1)
    features.publish(df, name, entity="customer_id", timestamp="event_time", near=near)
    out = materialize(name, online=where, near=near)
    assert out["rows"] == df.customer_id.nunique() and out["version"] == 1 and out["kind"] == ("redis" if where else "sqlite")
    # The offline answer: a point-in-time training set at each entity's own latest time.
    latest = df.groupby("customer_id", as_index=False).event_time.max().rename(columns={"event_time": "label_time"})
    offline = features.training_set(latest, [name], timestamp="label_time", near=near)
    ids = list(latest.customer_id) + [10_000, -1]  # two entities the table never saw
    got = lookup([name], ids, online=where, near=near)
    cols = ["spend", "orders", "plan", "active", "last_seen", "tags", "note"]
    assert list(got.columns) == ["customer_id", *cols]
    assert list(got.customer_id) == ids
    assert _rows(got.head(len(latest)), cols) == _rows(offline, cols)
    assert _rows(got.tail(2), cols) == [[None] * len(cols)] * 2
    assert got.attrs["missing"] == {name: [10_000, -1]}
    # And the same as a plain pandas answer: the row with the greatest timestamp per entity.
    by_pandas = df.sort_values("event_time").groupby("customer_id").tail(1).set_index("customer_id").loc[latest.customer_id]
    assert _rows(got.head(len(latest)), ["spend", "plan", "tags"]) == _rows(by_pandas, ["spend", "plan", "tags"])
    # Types come back as the offline table has them.
    assert str(got.last_seen.dtype) == str(df.last_seen.dtype) and got.spend.dtype == np.float64


def test_lookup_order_duplicates_string_ids_and_clashing_columns(near, where):
    tag = "redis" if where else "sqlite"
    a, b = f"clash_a_{tag}", f"clash_b_{tag}"
    frame = pd.DataFrame({"customer_id": [1, 2, 3], "event_time": pd.to_datetime(["2024-01-01"] * 3), "spend": [1.0, 2.0, 3.0], "visits": [7, 8, 9]})
    features.publish(frame, a, entity="customer_id", timestamp="event_time", near=near)
    other = frame.assign(spend=[10.0, 20.0, 30.0]).drop(columns="visits").assign(region=["n", "s", "e"])
    features.publish(other, b, entity="customer_id", timestamp="event_time", near=near)
    for n in (a, b):
        materialize(n, online=where, near=near)
    got = lookup([a, b], [3, "1", 3, 2.0, 42], online=where, near=near)
    # spend is in both tables: table__spend for each, as training_set names them; "1" and 2.0 are ids 1 and 2.
    assert list(got.columns) == ["customer_id", f"{a}__spend", "visits", f"{b}__spend", "region"]
    assert _rows(got, [f"{a}__spend", "visits", f"{b}__spend", "region"]) == [
        [3.0, 9, 30.0, "e"], [1.0, 7, 10.0, "n"], [3.0, 9, 30.0, "e"], [2.0, 8, 20.0, "s"], [None, None, None, None],
    ]  # fmt: skip
    assert _rows(lookup([a], [], online=where, near=near), ["visits"]) == []


def test_string_entities(near, where):
    name = f"by_email_{'redis' if where else 'sqlite'}"
    frame = pd.DataFrame({"email": ["a@x", "b@x", "a@x"], "at": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01"]), "n": [1, 2, 3]})
    features.publish(frame, name, entity="email", timestamp="at", near=near)
    materialize(name, online=where, near=near)
    got = lookup(name, ["b@x", "a@x", "zz"], online=where, near=near)
    assert list(got.columns) == ["email", "n"] and _rows(got, ["email", "n"]) == [["b@x", 2], ["a@x", 3], ["zz", None]]
    assert features.entity_of(name, near=near) == "email"


def test_a_new_version_replaces_the_old_and_leaves_nothing_behind(near, where, redis):  # noqa: F811
    name = f"replace_{'redis' if where else 'sqlite'}"
    v1 = pd.DataFrame({"customer_id": [1, 2, 3], "event_time": pd.to_datetime(["2024-01-01"] * 3), "spend": [1.0, 2.0, 3.0]})
    features.publish(v1, name, entity="customer_id", timestamp="event_time", near=near)
    materialize(name, online=where, near=near)
    # v2 drops entity 3 and adds a column: the online copy is v2 alone, not v1 with v2 on top.
    v2 = pd.DataFrame({"customer_id": [1, 2], "event_time": pd.to_datetime(["2024-02-01"] * 2), "spend": [5.0, 6.0], "visits": [1, 2]})
    features.publish(v2, name, entity="customer_id", timestamp="event_time", near=near)
    assert materialize(name, online=where, near=near)["version"] == 2
    got = lookup([name], [1, 2, 3], online=where, near=near)
    assert _rows(got, ["spend", "visits"]) == [[5.0, 1], [6.0, 2], [None, None]]
    # Back to v1 on request (TABLE:v1 or version=1).
    assert materialize(f"{name}:v1", online=where, near=near)["version"] == 1
    assert list(lookup([name], [3], online=where, near=near).columns) == ["customer_id", "spend"]
    if where:
        import redis as client

        keys = sorted(k.decode() for k in client.Redis.from_url(where).scan_iter(match=f"nbops:features:{name}*"))
        assert len(keys) == 4  # the meta hash and three entities: the v2 generation was unlinked
    else:
        db = sqlite3.connect(near.parent / ".nbops" / "online.db")
        physical = db.execute("SELECT physical FROM nbops_online WHERE name = ?", (name,)).fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        live = {r[0] for r in db.execute("SELECT physical FROM nbops_online")}
        assert physical in tables and tables - live == {"nbops_online"}  # no old physical table left
        db.close()
    assert any(t["name"] == name and t["version"] == 1 for t in online_tables(online=where, near=near))


def test_a_reader_never_sees_half_a_table(near, where):
    """Lookups in a thread while the table is rematerialized back and forth between two
    versions: every answer is all v1 or all v2 values, never a mix and never missing."""
    name = f"atomic_{'redis' if where else 'sqlite'}"
    ids = list(range(1500))
    for value, day in ((1.0, "2024-01-01"), (2.0, "2024-01-02")):
        frame = pd.DataFrame({"customer_id": ids, "event_time": pd.to_datetime([day] * len(ids)), "spend": [value] * len(ids)})
        features.publish(frame, name, entity="customer_id", timestamp="event_time", near=near)
    materialize(name, version=1, online=where, near=near)
    seen, errors, done = set(), [], threading.Event()
    probe = ids[::15]

    def read() -> None:
        while not done.is_set():
            try:
                seen.add(frozenset(lookup([name], probe, online=where, near=near).spend.tolist()))
            except Exception as exc:  # noqa: BLE001 - the assertion below reports it
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in (2, 1, 2, 1, 2):
            materialize(name, version=version, online=where, near=near)
    finally:
        done.set()
        reader.join(30)
    assert not errors, errors
    assert seen and seen <= {frozenset({1.0}), frozenset({2.0})}, seen


def test_freshness_follows_versions_and_online_stores(near, redis):  # noqa: F811
    name = "fresh"
    base = pd.DataFrame({"customer_id": [1, 2], "event_time": pd.to_datetime(["2024-03-01", "2024-03-02"]), "spend": [1.0, 2.0]})
    features.publish(base, name, entity="customer_id", timestamp="event_time", near=near)
    f = freshness(name, near=near)
    assert (f["materialized"], f["status"], f["latest_version"]) == (False, "never", 1)
    assert f"nbops features materialize {name}" in f["summary"]
    materialize(name, near=near)
    f = freshness(name, near=near)
    assert (f["status"], f["version"], f["versions_behind"], f["lag_seconds"], f["rows"]) == ("fresh", 1, 0, 0.0, 2)
    assert f["online"].endswith("online.db") and 0 <= f["age_seconds"] < 60
    # A later version with rows two days newer: one version and two days behind.
    features.publish(base.assign(event_time=pd.to_datetime(["2024-03-03", "2024-03-04"])), name, entity="customer_id", timestamp="event_time", near=near)
    f = freshness(name, near=near)
    assert (f["status"], f["version"], f["latest_version"], f["versions_behind"], f["lag_seconds"]) == ("behind", 1, 2, 1, 2 * 86400.0)
    assert "1 version behind v2" in f["summary"] and "2 d behind" in f["summary"]
    # The table in Redis too, with a password in the URL: the records keep it masked.
    conn = __import__("redis").Redis.from_url(redis.url)
    conn.config_set("requirepass", "s3cret")
    try:
        url = redis.url.replace("redis://", "redis://:s3cret@")
        materialize(name, online=url, near=near)
        f = freshness(name, near=near)
        assert f["status"] == "behind"
        assert [(e["online"], e["version"], e["status"]) for e in f["elsewhere"]] == [(url.replace("s3cret", "***"), 2, "fresh")]
        assert freshness(name, online=url, near=near)["status"] == "fresh"
        assert "s3cret" not in repr(features.show(name, near=near))
    finally:
        __import__("redis").Redis.from_url(url).config_set("requirepass", "")
    # features.show carries it (nbops features show, the panel).
    assert features.show(name, near=near)["online"]["status"] == "behind"


def test_bad_input_is_named(near, redis):  # noqa: F811
    frame = pd.DataFrame({"customer_id": [1], "event_time": pd.to_datetime(["2024-01-01"]), "spend": [1.0]})
    features.publish(frame, "unmaterialized", entity="customer_id", timestamp="event_time", near=near)
    with pytest.raises(NotFoundError, match="unmaterialized is not materialized") as e:
        lookup(["unmaterialized"], [1], near=near)
    assert "nbops features materialize unmaterialized" in e.value.fix
    with pytest.raises(NotFoundError, match="no feature table 'nope'"):
        materialize("nope", near=near)
    with pytest.raises(NotFoundError, match="no version v9"):
        materialize("unmaterialized", version=9, near=near)
    with pytest.raises(UsageError, match="invalid feature table name"):
        lookup(["../x"], [1], near=near)
    with pytest.raises(UsageError, match="unknown online store"):
        materialize("unmaterialized", online="memcached://127.0.0.1:1", near=near)
    with pytest.raises(UsageError, match="named twice"):
        lookup(["unmaterialized", "unmaterialized"], [1], near=near)
    # Redis down: a StoreError naming the server (no password), not a traceback from the client.
    url = redis.new_db()
    with redis.stopped():
        with pytest.raises(StoreError, match=f"Redis online store redis://127.0.0.1:{redis.port}"):
            materialize("unmaterialized", online=url, near=near)


def test_nbops_online_environment_and_the_cli(near, redis, cli, monkeypatch):  # noqa: F811
    frame = pd.DataFrame({"customer_id": [5], "event_time": pd.to_datetime(["2024-01-01"]), "spend": [9.5]})
    features.publish(frame, "via_env", entity="customer_id", timestamp="event_time", near=near)
    url = redis.new_db()
    r = cli("features", "materialize", "via_env", "--json", cwd=near.parent, env={"NBOPS_ONLINE": url})
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("NBOPS_ONLINE", url)
    assert lookup(["via_env"], [5], near=near).spend.tolist() == [9.5]
    monkeypatch.delenv("NBOPS_ONLINE")
    with pytest.raises(NotFoundError):  # the default (SQLite) store never got it
        lookup(["via_env"], [5], near=near)
    r = cli("features", "materialize", "nope", cwd=near.parent)
    assert r.returncode != 0 and "no feature table 'nope'" in r.stderr + r.stdout


@pytest.mark.parametrize("store_backend", ["pg-s3"], indirect=True)
def test_the_team_store_records_materializations(store_backend, redis, tmp_path, monkeypatch):  # noqa: F811
    """PostgreSQL + S3: the table comes from the bucket, the records go to the database, the
    embedded online store is a file in the local workspace, Redis is shared."""
    for key, value in store_backend.env.items():
        monkeypatch.setenv(key, value)
    near = tmp_path / "nb.ipynb"
    df = _table(seed=5, entities=50, rows=300)
    features.publish(df, "team_stats", entity="customer_id", timestamp="event_time", near=near)
    url = redis.new_db()
    for online in (None, url):
        assert materialize("team_stats", online=online, near=near)["rows"] == df.customer_id.nunique()
    from nbops.features.tables import open_features
    from nbops.store.feature_online import FeatureOnline

    rs, _ = open_features(near=near)
    assert rs.kind == "postgresql"
    assert {r["online"] for r in FeatureOnline(rs).materializations("team_stats")} == {str(rs.root / "online.db"), url}
    latest = df.sort_values("event_time").groupby("customer_id").tail(1).set_index("customer_id")
    ids = list(latest.index[:10])
    for online in (None, url):
        assert _rows(lookup(["team_stats"], ids, online=online, near=near), ["spend", "plan"]) == _rows(latest.loc[ids], ["spend", "plan"])
    assert freshness("team_stats", near=near)["elsewhere"][0]["online"] == url
