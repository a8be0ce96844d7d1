"""Edge exports (``nbops models export`` / ``nbops.models.export.export_model``): churn
(scikit-learn RandomForest) to ONNX, digits (torch) to ONNX and TorchScript, each
run by its own runtime against the original; a mixed-dtype pipeline exported with
one input per column; refusals leave nothing at the output path."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from nbops import models
from nbops.cli.main import main
from nbops.errors import NotFoundError, UsageError
from nbops.models.export import ExportParityError, export_model
from tests.conftest import build_notebook
from tests.models.conftest import churn_frame

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

CHURN = "churn@production"


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_churn_onnx_labels_equal_and_probabilities_within_tolerance(churn, tmp_path):
    out = tmp_path / "edge" / "churn.onnx"
    result = export_model(CHURN, "onnx", out, sample_rows=300, near=churn.notebook)
    assert out.is_file() and result["bytes"] == out.stat().st_size
    assert (result["name"], result["version"], result["format"], result["flavor"]) == ("churn", 1, "onnx", "sklearn")
    assert result["sample_rows"] == 300 and result["sample_source"] == "X_train of stage features"
    assert result["opset"]["ai.onnx"] == 17 and result["inputs"] == ["input"]  # all features numeric: one float tensor
    assert result["label_mismatches"] == 0 and 0 <= result["max_diff"] <= result["tolerance"] == 1e-5
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]

    # Independently of the export's own check: held-out rows, labels and probabilities.
    model, frame = models.load(CHURN, near=churn.notebook), churn_frame(churn)
    sig_cols = [c["name"] for c in churn.version["signature"]["columns"]]
    labels, proba = _session(out).run(None, {"input": frame[sig_cols].to_numpy(np.float32)})
    assert labels.tolist() == model.predict(frame).tolist()
    assert np.abs(proba - model.predict_proba(frame)).max() <= 1e-5


def test_tolerance_zero_refuses_and_leaves_no_file(churn, tmp_path):
    # RandomForest probabilities summed in float32 differ from sklearn's float64 in the last bits.
    assert export_model(CHURN, "onnx", tmp_path / "ok.onnx", near=churn.notebook)["max_diff"] > 0
    out = tmp_path / "refused.onnx"
    with pytest.raises(ExportParityError) as err:
        export_model(CHURN, "onnx", out, tolerance=0, near=churn.notebook)
    assert "beyond the tolerance 0" in err.value.message and "nothing was written" in err.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.onnx"]
    # An existing file at the path is left as it was.
    out.write_bytes(b"previous")
    assert main(["models", "export", CHURN, "--format", "onnx", "-o", str(out), "--tolerance", "0", "--notebook", str(churn.notebook)]) == 1
    assert out.read_bytes() == b"previous"


def test_digits_onnx_and_torchscript_parity(digits, tmp_path):
    torch = pytest.importorskip("torch")
    net = models.load("digits", near=digits.notebook).eval()
    x = np.random.default_rng(1).random((50, 64), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()

    onnx_out = export_model("digits@1", "onnx", tmp_path / "digits.onnx", near=digits.notebook)
    assert onnx_out["flavor"] == "torch" and onnx_out["opset"]["ai.onnx"] == 17 and "dynamo=False" in onnx_out["exporter"]
    assert onnx_out["sample_source"] == "X_train of stage data"  # the training split, not generated rows
    assert onnx_out["max_diff"] <= onnx_out["tolerance"]
    (got,) = _session(tmp_path / "digits.onnx").run(None, {"input": x})  # a batch size unlike the sample's: dynamic rows
    assert np.abs(got - expected).max() <= 1e-4

    ts_out = export_model("digits", "torchscript", tmp_path / "digits.pt", tolerance=0, near=digits.notebook)
    assert ts_out["opset"] is None and ts_out["exporter"] in ("torch.jit.script", "torch.jit.trace") and ts_out["max_diff"] == 0
    loaded = torch.jit.load(io.BytesIO((tmp_path / "digits.pt").read_bytes()))
    with torch.no_grad():
        assert np.array_equal(loaded(torch.from_numpy(x)).numpy(), expected)


def test_sklearn_to_torchscript_and_bad_requests_name_what_is_supported(churn, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(UsageError) as err:
        export_model(CHURN, "torchscript", out, near=churn.notebook)
    assert "sklearn model" in err.value.message and "torchscript" in err.value.message
    assert "onnx: sklearn, torch" in err.value.fix and "torchscript: torch" in err.value.fix
    with pytest.raises(UsageError, match="unknown export format 'tflite'"):
        export_model(CHURN, "tflite", out, near=churn.notebook)
    with pytest.raises(NotFoundError):
        export_model("churn@nosuchalias", "onnx", out, near=churn.notebook)
    with pytest.raises(UsageError, match="is a folder"):
        export_model(CHURN, "onnx", tmp_path, near=churn.notebook)
    assert not out.exists()


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory):
    """A run with a plain function, an estimator skl2onnx has no converter for, a pipeline
    over a string column and a regressor fitted on a bare array (no such array among the
    run's outputs): registered as export-fn, export-centroid, export-mixed, export-ridge."""
    from nbops import api

    folder = tmp_path_factory.mktemp("export_odd")
    nb = build_notebook(folder, [
        ("import numpy as np\nimport pandas as pd", ["setup"]),
        ("rng = np.random.default_rng(0)\n"
         "X_train = pd.DataFrame({'age': rng.integers(18, 80, 300), 'income': rng.normal(50, 15, 300),"
         " 'plan': rng.choice(['basic', 'plus', 'pro'], 300)})\n"
         "y = ((X_train.age > 40) ^ (X_train.plan == 'pro')).astype(int)", ["stage:data"]),
        ("from sklearn.compose import ColumnTransformer\nfrom sklearn.linear_model import LogisticRegression\n"
         "from sklearn.neighbors import NearestCentroid\nfrom sklearn.pipeline import make_pipeline\n"
         "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
         "mixed = make_pipeline(ColumnTransformer([('num', StandardScaler(), ['age', 'income']),"
         " ('cat', OneHotEncoder(handle_unknown='ignore'), ['plan'])]), LogisticRegression()).fit(X_train, y)\n"
         "centroid = NearestCentroid().fit(X_train[['age', 'income']], y)\n"
         "from sklearn.linear_model import Ridge\nridge = Ridge().fit(X_train[['age', 'income']].to_numpy(), X_train.income * 1000)\n"
         "def double(x):\n    return x * 2", ["stage:train"]),
        ("score = float(mixed.score(X_train, y)) + float(centroid.score(X_train[['age', 'income']], y)) + double(0) + float(ridge.predict([[30, 40.0]])[0])", ["stage:use"]),
    ])  # fmt: skip
    run = api.run(nb)
    assert run["status"] == "succeeded", run
    for var in ("double", "centroid", "mixed", "ridge"):
        models.register(run["id"], "train", var, f"export-{'fn' if var == 'double' else var}", near=nb)
    return nb


def test_mixed_dtype_pipeline_exports_one_input_per_column(odd_models, tmp_path):
    out = tmp_path / "mixed.onnx"
    result = export_model("export-mixed", "onnx", out, near=odd_models)
    assert result["inputs"] == ["age", "income", "plan"] and "columns input" in result["exporter"]
    assert result["label_mismatches"] == 0 and result["max_diff"] <= 1e-5 and result["sample_source"] == "X_train of stage data"
    feeds = {"age": np.array([[25], [60]], np.int64), "income": np.array([[40.0], [70.0]], np.float32), "plan": np.array([["pro"], ["basic"]], object)}
    labels, proba = _session(out).run(None, feeds)
    assert labels.shape == (2,) and proba.shape == (2, 2)


def test_regressor_without_training_rows_is_checked_on_generated_rows(odd_models, tmp_path):
    result = export_model("export-ridge", "onnx", tmp_path / "ridge.onnx", sample_rows=64, near=odd_models)
    assert result["sample_source"] == "rows generated from the signature" and result["sample_rows"] == 64
    # Predictions in the tens of thousands: float32 keeps ~7 digits, so the default tolerance scales with them.
    assert result["tolerance"] > 1e-5 and result["max_diff"] <= result["tolerance"]
    with pytest.raises(ExportParityError, match="beyond the tolerance 1e-09"):
        export_model("export-ridge", "onnx", tmp_path / "strict.onnx", tolerance=1e-9, near=odd_models)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ridge.onnx"]


def test_unsupported_flavor_and_unconvertible_estimator(odd_models, tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(UsageError) as err:
        export_model("export-fn", "onnx", out, near=odd_models)
    assert "callable model" in err.value.message and "onnx: sklearn, torch" in err.value.fix
    with pytest.raises(UsageError) as err:
        export_model("export-centroid", "onnx", out, near=odd_models)
    assert "skl2onnx cannot convert export-centroid v1" in err.value.message and "NearestCentroid" in err.value.message
    assert "supported_converters" in err.value.fix
    assert not out.exists()


def test_cli_prints_the_result_and_exit_codes(churn, tmp_path, capsys):
    where = ["--notebook", str(churn.notebook)]
    out = tmp_path / "c.onnx"
    assert main(["models", "export", CHURN, "--format", "onnx", "-o", str(out), "--sample", "50", *where]) == 0
    text = capsys.readouterr().out
    assert "exported churn v1 (sklearn) to onnx" in text and "max difference" in text and "on 50 rows from X_train" in text
    assert main(["models", "export", CHURN, "--format", "onnx", "-o", str(out), "--json", *where]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "churn" and shown["version"] == 1 and shown["opset"]["ai.onnx"] == 17 and shown["sample_rows"] == 200
    assert main(["models", "export", CHURN, "--format", "torchscript", "-o", str(tmp_path / "c.pt"), *where]) == 2
    assert "cannot export sklearn models to torchscript" in capsys.readouterr().err
    assert main(["models", "export", "nosuch@production", "--format", "onnx", "-o", str(tmp_path / "n.onnx"), *where]) == 2
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "n.onnx").exists()
