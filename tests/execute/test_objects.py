"""Objects that cross stages: classes and functions the notebook defines travel inside the artifact.

Each consumer below uses an object without naming its class (so the class never
reaches its kernel as code): an nn.Module from a setup cell (torch.save), a
transformer class defined in the train stage inside a pipeline with a lambda
(joblib), a dataclass, a closure and a class defined one stage before the
instance is made (pickle), and a plug-in serializer's value. Each runs through
``nbops.api.run`` on real kernels and, converted, stage by stage under the
plain ``papermill`` CLI. What truly cannot cross still fails clearly.

The fixtures tests/notebooks/objects_*.ipynb are written by this module
(python -m tests.execute.test_objects) and checked against it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbops import api

from ..conftest import NOTEBOOKS

sys.path.insert(0, str(NOTEBOOKS))
from _generate import nb  # noqa: E402  (the one fixture-notebook builder)

FIXTURES = {
    # An nn.Module subclass in a setup cell: only train names MLP, so only train
    # gets that cell; evaluate just calls net(X_test). torch.save stores classes by reference.
    "objects_torch": nb(
        (["setup"], "import torch\nfrom torch import nn"),
        (
            ["setup"],
            (
                "class MLP(nn.Module):\n"
                "    def __init__(self, n_in, hidden):\n"
                "        super().__init__()\n"
                "        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, 1))\n\n"
                "    def forward(self, x):\n"
                "        return self.body(x).squeeze(-1)"
            ),
        ),
        (
            ["stage:data"],
            (
                "torch.manual_seed(0)\n"
                "X = torch.randn(256, 3)\n"
                "y = X @ torch.tensor([1.0, -2.0, 0.5])\n"
                "X_train, y_train, X_test, y_test = X[:200], y[:200], X[200:], y[200:]"
            ),
        ),
        (
            ["stage:train"],
            (
                "net = MLP(3, 16)\n"
                "opt = torch.optim.Adam(net.parameters(), lr=0.05)\n"
                "for _ in range(150):\n"
                "    opt.zero_grad()\n"
                "    ((net(X_train) - y_train) ** 2).mean().backward()\n"
                "    opt.step()\n"
                "with torch.no_grad():\n"
                "    mse_in_train = float(((net(X_test) - y_test) ** 2).mean())"
            ),
        ),
        (["stage:evaluate"], "with torch.no_grad():\n    mse = float(((net(X_test) - y_test) ** 2).mean())"),
        (["metrics"], "mse\nmse_in_train"),
    ),
    # A transformer class defined inside the train stage, fitted inside
    # make_pipeline next to a lambda; evaluate calls pipe.score (joblib).
    "objects_sklearn": nb(
        (
            ["setup"],
            "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import FunctionTransformer",
        ),
        (
            ["stage:data"],
            (
                "rng = np.random.default_rng(0)\n"
                "X = rng.normal(size=(300, 4))\n"
                "y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)\n"
                "X_train, X_test, y_train, y_test = X[:200], X[200:], y[:200], y[200:]"
            ),
        ),
        (
            ["stage:train"],
            (
                "from sklearn.base import BaseEstimator, TransformerMixin\n\n\n"
                "class Standardize(BaseEstimator, TransformerMixin):\n"
                "    def fit(self, X, y=None):\n"
                "        self.mean_, self.std_ = X.mean(axis=0), X.std(axis=0)\n"
                "        return self\n\n"
                "    def transform(self, X):\n"
                "        return (X - self.mean_) / self.std_\n\n\n"
                "pipe = make_pipeline(Standardize(), FunctionTransformer(lambda x: np.clip(x, -3, 3)), LogisticRegression())\n"
                "pipe.fit(X_train, y_train)\n"
                "score_in_train = pipe.score(X_test, y_test)"
            ),
        ),
        (["stage:evaluate"], "accuracy = pipe.score(X_test, y_test)"),
        (["metrics"], "accuracy\nscore_in_train"),
    ),
    # Plain pickle: a dataclass from setup, a class and a closure factory defined
    # in stage define, instances made in build, used in use (which names none of
    # them), and re-saved by use for report.
    "objects_pickle": nb(
        (
            ["setup"],
            (
                "from dataclasses import dataclass\n\n\n"
                "@dataclass\n"
                "class Config:\n"
                "    scale: float\n"
                "    offset: float\n\n\n"
                "def affine(cfg, x):\n"
                "    return cfg.scale * x + cfg.offset"
            ),
        ),
        (
            ["stage:define"],
            (
                "class Accumulator:\n"
                "    def __init__(self, start):\n"
                "        self.total = start\n\n"
                "    def add(self, values):\n"
                "        for v in values:\n"
                "            self.total += v\n"
                "        return self\n\n\n"
                "def make_scaler(k):\n"
                "    def scaler(x):\n"
                "        return x * k\n"
                "    return scaler"
            ),
        ),
        (
            ["stage:build"],
            ("cfg = Config(2.0, 1.0)\nacc = Accumulator(10).add([1, 2, 3])\nops = {'double': make_scaler(2), 'affine': affine, 'square': lambda x: x * x}"),
        ),
        (
            ["stage:use"],
            (
                "result = acc.total + ops['double'](5) + ops['affine'](cfg, 3) + ops['square'](4)\n"
                "kinds = type(cfg).__name__ + '/' + type(acc).__name__\n"
                "acc = acc.add([100])"
            ),
        ),
        (["stage:report"], "final = acc.total"),
        (["metrics"], "result\nfinal"),
    ),
    # What truly cannot cross: an open socket and a generator.
    "objects_unserializable": nb(
        (["stage:connect"], "import socket\nconn = socket.socket()\nrows = (i for i in range(3))"),
        (["stage:consume"], "print(conn, list(rows))"),
    ),
    # A value written by a plug-in serializer (entry point nbops.serializers) whose class is notebook-defined.
    "objects_plugin": nb(
        (
            ["stage:make"],
            (
                "class Bag:\n"
                "    def __init__(self, items):\n"
                "        self.items = list(items)\n\n"
                "    def total(self):\n"
                "        return sum(self.items)\n\n\n"
                "bag = Bag([1, 2, 3])"
            ),
        ),
        (["stage:use"], "bag_total = bag.total()"),
        (["metrics"], "bag_total"),
    ),
}

# What each fixture's consumers compute: the number the tests expect.
EXPECTED = {
    "objects_pickle": {"result": 16 + 10 + 7 + 16, "final": 116},
    "objects_plugin": {"bag_total": 6},
}


PLUGIN = """
import pickle

from nbops.runtime import byvalue
from nbops.runtime.serializers import Serializer


class BagSerializer(Serializer):
    \"\"\"Objects whose class is named Bag: a header, then a pickle carrying notebook code by value.\"\"\"

    name, ext, priority = "bag", ".bag", 60

    def accepts(self, value):
        return type(value).__name__ == "Bag"

    def dump(self, value, f):
        f.write(b"BAG1")
        byvalue.dump_by_value(value, f)

    def load(self, path):
        with open(path, "rb") as f:
            if f.read(4) != b"BAG1":
                raise ValueError(f"{path} is not a bag file")
            return pickle.load(f)
"""


@pytest.fixture
def bag_plugin(tmp_path, monkeypatch) -> Path:
    """A real installed plug-in: a module plus a dist-info with the entry point, on PYTHONPATH."""
    site = tmp_path / "plugin-site"
    info = site / "nbops_bag_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "nbops_bag_plugin.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nbops-bag-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nbops.serializers]\nbag = nbops_bag_plugin:BagSerializer\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def stage(run: dict, name: str) -> dict:
    return next(s for s in run["stages"] if s["name"] == name)


def run_ok(notebook: Path, store: Path) -> dict:
    run = api.run(notebook, store=store)
    errors = {s["name"]: s["error"] for s in run["stages"] if s["error"]}
    assert run["status"] == "succeeded", json.dumps(errors, indent=1)
    return run


def test_fixtures_are_what_the_builder_writes():
    for name, doc in FIXTURES.items():
        assert (NOTEBOOKS / f"{name}.ipynb").read_text() == nbformat.writes(doc) + "\n", f"{name}.ipynb is stale: python -m tests.execute.test_objects"


def test_torch_module_from_a_setup_cell_reaches_a_stage_that_never_names_it(workdir, tmp_path):
    run = run_ok(workdir / "objects_torch.ipynb", tmp_path / "store")
    net = stage(run, "train")["outputs"]["net"]
    assert (net["serializer"], net["type"]) == ("torch", "__main__.MLP")
    # evaluate's net is the trained one: the same test error, to the last bit
    assert run["metrics"]["mse"] == run["metrics"]["mse_in_train"] < 0.5


def test_sklearn_pipeline_with_a_stage_defined_transformer_and_a_lambda(workdir, tmp_path):
    run = run_ok(workdir / "objects_sklearn.ipynb", tmp_path / "store")
    assert stage(run, "train")["outputs"]["pipe"]["serializer"] == "sklearn"
    assert run["metrics"]["accuracy"] == run["metrics"]["score_in_train"] > 0.9


def test_dataclass_closure_lambda_and_a_class_made_one_stage_later(workdir, tmp_path):
    run = run_ok(workdir / "objects_pickle.ipynb", tmp_path / "store")
    assert {k: run["metrics"][k] for k in EXPECTED["objects_pickle"]} == EXPECTED["objects_pickle"]
    outputs = stage(run, "build")["outputs"]
    assert outputs["cfg"]["type"] == "__main__.Config" and outputs["acc"]["type"] == "__main__.Accumulator"
    assert stage(run, "use")["outputs"]["acc"]["serializer"] == "pickle"  # re-saved by a stage without the class


def test_plug_in_serializer_carries_a_notebook_class(workdir, tmp_path, bag_plugin):
    run = run_ok(workdir / "objects_plugin.ipynb", tmp_path / "store")
    assert stage(run, "make")["outputs"]["bag"]["serializer"] == "bag"
    assert run["metrics"]["bag_total"] == EXPECTED["objects_plugin"]["bag_total"]


def test_socket_and_generator_still_fail_clearly(workdir, tmp_path):
    run = api.run(workdir / "objects_unserializable.ipynb", store=tmp_path / "store")
    assert run["status"] == "failed"
    assert {s["name"]: s["status"] for s in run["stages"]} == {"connect": "failed", "consume": "skipped"}
    err = stage(run, "connect")["error"]
    assert err["ename"] == "MarshalError"
    assert ("'conn'" in err["evalue"] or "'rows'" in err["evalue"]) and "'consume'" in err["evalue"]
    assert "socket" in err["evalue"] or "generator" in err["evalue"]


def test_only_values_with_notebook_code_go_by_value(tmp_path, monkeypatch):
    """Importable values keep the fast by-reference path; a __main__ class travels by value."""
    import torch
    from sklearn.linear_model import LinearRegression

    import __main__
    from nbops.runtime import marshal

    # What a notebook cell makes: a class of __main__, found there, so plain pickle succeeds by reference.
    Point = type("Point", (), {"__module__": "__main__", "norm": lambda self: abs(self.x) + abs(self.y)})
    monkeypatch.setattr(__main__, "Point", Point, raising=False)
    point = Point()
    point.x, point.y = 3, -4
    values = {"point": point, "plain": {"a": [1, 2]}, "model": LinearRegression(), "layer": torch.nn.Linear(2, 1)}
    values["view"] = {"k": 1}.keys()  # plain pickle refuses it, cloudpickle reduces it
    marshal.end("s", str(tmp_path), values, outputs={k: ["t"] for k in values})
    by_value = {p.stem for p in (tmp_path / "s").iterdir() if b"cloudpickle" in p.read_bytes()}
    assert by_value == {"point", "view"}
    assert list(marshal.load_input(str(tmp_path), "s", "view", "t")) == ["k"]
    code = f"from nbops.runtime import marshal; print(marshal.load_input({str(tmp_path)!r}, 's', 'point', 't').norm())"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "7", loaded.stderr[-2000:]


def run_under_papermill(notebook: Path, tmp_path: Path) -> Path:
    """Convert, then run each stage notebook with the papermill CLI in DAG order; returns the artifact folder."""
    out, artifacts = tmp_path / "pipeline", tmp_path / "artifacts"
    spec = api.convert(notebook, out)
    for s in spec.stages:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "papermill",
                str(out / s.notebook),
                str(tmp_path / f"{s.name}.out.ipynb"),
                "-p",
                "nbops_artifact_dir",
                str(artifacts),
                "--cwd",
                str(notebook.parent),
                "--no-progress-bar",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"stage {s.name}:\n{result.stderr[-3000:]}"
    return artifacts


def scalars(artifacts: Path, stage_name: str) -> dict:
    return json.loads((artifacts / stage_name / "scalars.json").read_text())


def test_converted_stages_run_under_plain_papermill(workdir, tmp_path, bag_plugin):
    torch_art = run_under_papermill(workdir / "objects_torch.ipynb", tmp_path / "torch")
    assert scalars(torch_art, "evaluate")["mse"] == scalars(torch_art, "train")["mse_in_train"]
    sk_art = run_under_papermill(workdir / "objects_sklearn.ipynb", tmp_path / "sklearn")
    assert scalars(sk_art, "evaluate")["accuracy"] == scalars(sk_art, "train")["score_in_train"]
    pk_art = run_under_papermill(workdir / "objects_pickle.ipynb", tmp_path / "pickle")
    assert scalars(pk_art, "use")["result"] == EXPECTED["objects_pickle"]["result"]
    assert scalars(pk_art, "report")["final"] == EXPECTED["objects_pickle"]["final"]
    bag_art = run_under_papermill(workdir / "objects_plugin.ipynb", tmp_path / "plugin")
    assert scalars(bag_art, "use")["bag_total"] == EXPECTED["objects_plugin"]["bag_total"]


def write(folder: Path = NOTEBOOKS) -> None:
    for name, doc in FIXTURES.items():
        nbformat.write(doc, folder / f"{name}.ipynb")


if __name__ == "__main__":
    write()
