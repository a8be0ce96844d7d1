"""Batch prediction (``nbops predict`` / ``nbops.models.batch.predict_file``) with the
shared churn (scikit-learn, frame signature) and digits (torch, array signature) models:
outputs equal in-process predictions exactly, across chunk boundaries, for CSV and
Parquet, local and on S3 (moto); bad inputs are refused before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nbops import models
from nbops.cli.main import main
from nbops.errors import UsageError
from nbops.models import batch
from tests.models.conftest import churn_frame
from tests.services import s3  # noqa: F401

CHURN = "churn@production"


@pytest.fixture(scope="module")
def churn_model(churn):
    return models.load(CHURN, near=churn.notebook)


@pytest.fixture(scope="module")
def frame(churn):
    return churn_frame(churn)  # 500 rows, a shuffled (non-range) index as train_test_split leaves it


def _expected(model, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return model.predict(frame), model.predict_proba(frame)


def _assert_churn_output(out: pd.DataFrame, model, frame: pd.DataFrame) -> None:
    pred, proba = _expected(model, frame)
    assert len(out) == len(frame)
    np.testing.assert_array_equal(out["prediction"].to_numpy(), pred)
    for i, c in enumerate(model.classes_):
        np.testing.assert_array_equal(out[f"proba_{c}"].to_numpy(), proba[:, i])


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_parquet_in_and_out_match_in_process_predictions(churn, churn_model, frame, tmp_path):
    src, dst = tmp_path / "in.parquet", tmp_path / "out" / "scores.parquet"
    frame.to_parquet(src)  # pandas keeps the shuffled index as a column: not a model input
    result = batch.predict_file(CHURN, src, dst, chunk_rows=37, near=churn.notebook)
    assert result["rows"] == len(frame) and result["chunks"] == -(-len(frame) // 37)
    assert result["model"] == {"name": "churn", "version": 1, "run_id": churn.run["id"]}
    out = pd.read_parquet(dst)
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"]
    _assert_churn_output(out, churn_model, frame)
    meta = json.loads(pq.read_schema(dst).metadata[b"nbops"])
    assert (meta["model"], meta["version"], meta["run_id"]) == ("churn", 1, churn.run["id"])
    assert meta["sha256"] == churn.version["sha256"] and meta["aliases"] == ["production"]
    assert _leftovers(dst.parent) == [] and result["metadata"] is None


def test_csv_with_kept_id_column_and_sidecar(churn, churn_model, frame, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "scores.csv"
    with_ids = frame.reset_index(drop=True)
    with_ids.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    with_ids.to_csv(src, index=False)
    result = batch.predict_file(CHURN, src, dst, chunk_rows=64, keep=["customer_id"], near=churn.notebook)
    out = pd.read_csv(dst)
    assert list(out.columns) == ["customer_id", "prediction", "proba_0", "proba_1"]
    assert out["customer_id"].tolist() == with_ids["customer_id"].tolist()
    _assert_churn_output(out, churn_model, frame)
    side = json.loads((tmp_path / "scores.csv.nbops.json").read_text())
    assert result["metadata"] == str(dst) + ".nbops.json"
    assert (side["model"], side["version"], side["rows"]) == ("churn", 1, len(frame))


def test_a_float_column_written_as_integers_is_read_as_float_in_every_block(churn, churn_model, frame, tmp_path, monkeypatch):
    """monthly_fee is whole in the first rows and fractional later: pyarrow would type it
    int64 from its first block and fail on the next; the signature's float64 reads it right."""
    monkeypatch.setattr(batch, "_CSV_BLOCK_BYTES", 4096)  # many parse blocks in a small file
    frame = frame.copy()
    frame.iloc[:200, frame.columns.get_loc("monthly_fee")] = frame["monthly_fee"].iloc[:200].round()
    text = frame.to_csv(index=False)
    lines = text.splitlines()
    col = frame.columns.get_loc("monthly_fee")
    fixed = [lines[0]] + [",".join(v.removesuffix(".0") if i == col else v for i, v in enumerate(line.split(","))) for line in lines[1:]]
    src = tmp_path / "in.csv"
    src.write_text("\n".join(fixed) + "\n")
    assert fixed[1].split(",")[col].isdigit()
    out_path = tmp_path / "scores.parquet"
    batch.predict_file(CHURN, src, out_path, chunk_rows=100, near=churn.notebook)
    _assert_churn_output(pd.read_parquet(out_path), churn_model, frame)


def test_digits_torch_from_a_64_column_csv(digits, tmp_path):
    import torch
    from sklearn.datasets import load_digits

    X = (load_digits().data[:300] / 16.0).astype("float32")
    src = tmp_path / "pixels.csv"
    pd.DataFrame(X).add_prefix("px").to_csv(src, index=False)
    net = models.load(f"{digits.name}@1", near=digits.notebook)
    with torch.no_grad():
        logits = net(torch.from_numpy(X)).numpy()
    dst = tmp_path / "logits.parquet"
    result = batch.predict_file(f"{digits.name}@1", src, dst, near=digits.notebook)
    out = pd.read_parquet(dst)
    assert result["rows"] == 300 and list(out.columns) == [f"prediction_{i}" for i in range(10)]
    np.testing.assert_array_equal(out.to_numpy(), logits)
    # in chunks of 7 rows (torch may block a 7-row product differently: equal to a float32 ulp)
    batch.predict_file(f"{digits.name}@1", src, dst, chunk_rows=7, near=digits.notebook)
    np.testing.assert_allclose(pd.read_parquet(dst).to_numpy(), logits, rtol=1e-6, atol=1e-6)


def test_digits_csv_of_the_wrong_width_is_refused(digits, tmp_path):
    src = tmp_path / "pixels.csv"
    pd.DataFrame(np.zeros((3, 63), dtype="float32")).add_prefix("px").to_csv(src, index=False)
    with pytest.raises(UsageError, match="expected 64 values per row, got 63"):
        batch.predict_file(f"{digits.name}@1", src, tmp_path / "out.csv", near=digits.notebook)
    assert not (tmp_path / "out.csv").exists()


def test_missing_extra_and_mistyped_columns_named_in_one_error(churn, frame, tmp_path):
    bad = frame.drop(columns=["support_calls"]).assign(customer_id=1, tenure_months="long")
    src, dst = tmp_path / "bad.csv", tmp_path / "out.parquet"
    bad.to_csv(src, index=False)
    with pytest.raises(UsageError) as info:
        batch.predict_file(CHURN, src, dst, near=churn.notebook)
    text = str(info.value)
    assert str(src) in text and "churn v1" in text
    assert "missing column 'support_calls'" in text and "unexpected column 'customer_id'" in text
    assert "column 'tenure_months' has dtype" in text and "--keep" in text
    assert not dst.exists() and _leftovers(tmp_path) == []
    with pytest.raises(UsageError, match="no column 'nope' to keep"):
        batch.predict_file(CHURN, src, dst, keep=["nope"], near=churn.notebook)


def test_a_bad_value_deep_in_the_file_leaves_no_output(churn, frame, tmp_path, monkeypatch):
    """The schema check passes on the first block; row 450 does not parse: the chunks
    already written are thrown away with their temporary file."""
    monkeypatch.setattr(batch, "_CSV_BLOCK_BYTES", 4096)
    bad = frame.reset_index(drop=True).astype({"monthly_fee": object})
    bad.loc[450, "monthly_fee"] = "lots"
    src, dst = tmp_path / "late.csv", tmp_path / "out.csv"
    bad.to_csv(src, index=False)
    with pytest.raises(UsageError, match=r"late\.csv cannot be read as CSV .*lots"):
        batch.predict_file(CHURN, src, dst, chunk_rows=50, near=churn.notebook)
    assert not dst.exists() and not (tmp_path / "out.csv.nbops.json").exists() and _leftovers(tmp_path) == []
    # an empty cell in an integer column: named with its rows
    bad = frame.reset_index(drop=True).astype({"tenure_months": object})
    bad.loc[420, "tenure_months"] = None
    bad.to_csv(src, index=False)
    with pytest.raises(UsageError, match=r"late\.csv, rows 401-450: cannot convert"):
        batch.predict_file(CHURN, src, dst, chunk_rows=50, near=churn.notebook)
    assert not dst.exists() and _leftovers(tmp_path) == []


def test_s3_round_trip(churn, churn_model, frame, s3, tmp_path):  # noqa: F811 - the fixture
    import s3fs

    bucket = s3.new_bucket()
    fs = s3fs.S3FileSystem()
    with fs.open(f"{bucket}/in/customers.parquet", "wb") as f:
        frame.to_parquet(f, index=False)
    result = batch.predict_file(CHURN, f"{bucket}/in/customers.parquet", f"{bucket}/out/scores.csv", chunk_rows=128, near=churn.notebook)
    assert result["rows"] == len(frame)
    fs.invalidate_cache()
    assert sorted(fs.ls(f"{bucket}/out")) == [f"{bucket[5:]}/out/scores.csv", f"{bucket[5:]}/out/scores.csv.nbops.json"]
    with fs.open(f"{bucket}/out/scores.csv") as f:
        _assert_churn_output(pd.read_csv(f), churn_model, frame)
    # and back: the S3 CSV as input, a local Parquet out
    local = tmp_path / "again.parquet"
    with fs.open(f"{bucket}/in/customers.csv", "w") as f:
        frame.to_csv(f, index=False)
    batch.predict_file(CHURN, f"{bucket}/in/customers.csv", local, near=churn.notebook)
    _assert_churn_output(pd.read_parquet(local), churn_model, frame)


def test_cli_exit_codes_and_json(churn, frame, tmp_path, capsys):
    src = tmp_path / "in.parquet"
    frame.head(20).to_parquet(src)
    where = ["--notebook", str(churn.notebook)]
    assert main(["predict", CHURN, str(src), "-o", str(tmp_path / "p.csv"), "--chunk-rows", "8", "--json", *where]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 20 and out["chunks"] == 3 and out["format"] == "csv"
    assert main(["predict", CHURN, str(src), "-o", str(tmp_path / "p.out"), "--format", "parquet", *where]) == 0
    assert "wrote 20 predictions of churn v1" in capsys.readouterr().out
    assert pq.read_metadata(tmp_path / "p.out").num_rows == 20
    # bad input: exit 2 with the message, never a traceback
    frame.head(5).assign(extra=1).to_parquet(tmp_path / "extra.parquet")
    assert main(["predict", CHURN, str(tmp_path / "extra.parquet"), "-o", str(tmp_path / "x.parquet"), *where]) == 2
    assert "unexpected column 'extra'" in capsys.readouterr().err
    assert main(["predict", "churn@nosuchalias", str(src), "-o", str(tmp_path / "x.parquet"), *where]) == 2
    assert "no alias 'nosuchalias'" in capsys.readouterr().err
    assert main(["predict", CHURN, str(tmp_path / "absent.csv"), "-o", str(tmp_path / "x.parquet"), *where]) == 2
    assert "no input file" in capsys.readouterr().err
    assert main(["predict", CHURN, str(src), "-o", str(tmp_path / "x.txt"), *where]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
