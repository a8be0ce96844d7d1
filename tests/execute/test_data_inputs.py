"""The cache sees the data and the code outside the notebook (issue 17), end to end.

Real kernels, real files: each stage reads its file with a different reader
(pandas, open, numpy, parquet, joblib, torch, pathlib, glob, os.listdir,
pyarrow's csv engine); the run's deps hold those files, and the next run
re-runs exactly the stages whose file changed, with a reason naming it.
Local modules (beside the notebook, in ``src/`` on sys.path) are code; files a
stage writes itself and temp files are not inputs; a SQL query is reported as
a source nbops cannot fingerprint. The dry run sees a changed file without
starting a kernel. Kale's titanic notebook (trimmed of its plots) re-runs from
its read of ``data/train.csv``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops import api

from ..conftest import build_notebook

KALE_TITANIC = Path(__file__).resolve().parent.parent / "notebooks" / "kale" / "titanic-ml-dataset"


def build(folder: Path, cells: list[tuple[str, list[str]]], name: str = "inputs.ipynb") -> Path:
    return build_notebook(folder, cells, name)


def reasons(run: dict) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["reason"]["kind"], s["reason"]["detail"]) for s in run["stages"]}


def kinds(run: dict) -> dict[str, str]:
    return {name: kind for name, (kind, _) in reasons(run).items()}


def ran(run: dict) -> set[str]:
    return {name for name, kind in kinds(run).items() if kind != "cached"}


def rewrite_same(path: Path) -> None:
    """Same bytes, new mtime (and, through a rename, a new inode)."""
    data = path.read_bytes()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    os.utime(path, (time.time() + 5, time.time() + 5))


# -- one stage per reader --------------------------------------------------------------

# stage -> (metric it computes, file or folder it reads)
READERS = {
    "csv": ("csv_total", "data.csv"),
    "text": ("text_len", "notes.txt"),
    "npy": ("npy_total", "arr.npy"),
    "parquet": ("pq_total", "table.parquet"),
    "joblib_": ("jl_w", "model.joblib"),
    "torch_": ("pt_total", "tensor.pt"),
    "pathtext": ("words", "words.txt"),
    "globbed": ("glob_total", "parts"),
    "listed": ("list_count", "listed"),
    "arrow": ("arrow_total", "arrow.csv"),
}


def write_data(folder: Path, k: int) -> None:
    """Every data file, with values that depend on ``k`` (same k → same bytes)."""
    import joblib
    import torch

    (folder / "data.csv").write_text(f"x\n1\n2\n{k}\n")
    (folder / "notes.txt").write_text("n" * (10 + k))
    np.save(folder / "arr.npy", np.arange(k + 3))
    pd.DataFrame({"x": [k, 2 * k]}).to_parquet(folder / "table.parquet")
    joblib.dump({"w": k}, folder / "model.joblib")
    torch.save(torch.tensor([1.0, float(k)]), folder / "tensor.pt")
    (folder / "words.txt").write_text(" ".join(["w"] * (k + 1)))
    (folder / "parts").mkdir(exist_ok=True)
    (folder / "parts" / "a.csv").write_text(f"x\n{k}\n")
    (folder / "parts" / "b.csv").write_text("x\n100\n")
    (folder / "listed").mkdir(exist_ok=True)
    (folder / "listed" / "one.txt").write_text(str(k))
    (folder / "arrow.csv").write_text(f"x\n{k}\n{k}\n")


@pytest.fixture
def readers(tmp_path: Path) -> Path:
    write_data(tmp_path, 3)
    return build(tmp_path, [
        ("import glob\nimport os\nfrom pathlib import Path\n\nimport joblib\nimport numpy as np\nimport pandas as pd\nimport torch", ["setup"]),
        ("csv_total = int(pd.read_csv('data.csv')['x'].sum())", ["stage:csv"]),
        ("text_len = len(open('notes.txt').read())", ["stage:text"]),
        ("npy_total = int(np.load('arr.npy').sum())", ["stage:npy"]),
        ("pq_total = int(pd.read_parquet('table.parquet')['x'].sum())", ["stage:parquet"]),
        ("jl_w = joblib.load('model.joblib')['w']", ["stage:joblib_"]),
        ("pt_total = float(torch.load('tensor.pt').sum())", ["stage:torch_"]),
        ("words = len(Path('words.txt').read_text().split())", ["stage:pathtext"]),
        ("glob_total = int(sum(pd.read_csv(f)['x'].sum() for f in sorted(glob.glob('parts/*.csv'))))", ["stage:globbed"]),
        ("list_count = len(os.listdir('listed'))", ["stage:listed"]),
        ("arrow_total = int(pd.read_csv('arrow.csv', engine='pyarrow')['x'].sum())", ["stage:arrow"]),
    ])  # fmt: skip


METRICS = [metric for metric, _ in READERS.values()]


def test_each_reader_is_an_input(readers: Path):
    folder = readers.parent
    first = api.run(readers, metric_names=METRICS)
    assert first["status"] == "succeeded", [s["error"] for s in first["stages"] if s["error"]]
    assert first["metrics"] == {
        "csv_total": 6, "text_len": 13, "npy_total": 15, "pq_total": 9, "jl_w": 3, "pt_total": 4.0,
        "words": 4, "glob_total": 103, "list_count": 1, "arrow_total": 6,
    }  # fmt: skip
    for stage in first["stages"]:
        shown = {d["path"] for d in stage["data"]}
        want = READERS[stage["name"]][1]
        assert want in shown, (stage["name"], shown)  # relative to the notebook's folder
        assert not any(p.startswith(("/", "..")) for p in shown), (stage["name"], shown)
    globbed = {d["path"] for d in next(s for s in first["stages"] if s["name"] == "globbed")["data"]}
    assert {"parts", "parts/a.csv", "parts/b.csv"} <= globbed

    # Identical bytes, new mtimes (and inodes): nothing to do.
    for path in folder.rglob("*"):
        if path.is_file() and ".nbops" not in path.parts and path.suffix != ".ipynb":
            rewrite_same(path)
    same = api.run(readers, metric_names=METRICS)
    assert set(kinds(same).values()) == {"cached"}, reasons(same)

    # New content in every file: every stage re-runs, saying which file changed.
    write_data(folder, 5)
    changed = api.run(readers, metric_names=METRICS)
    assert changed["status"] == "succeeded"
    why = reasons(changed)
    for stage, (_, path) in READERS.items():
        kind, detail = why[stage]
        assert kind == "input", (stage, why[stage])
        assert path in detail, (stage, detail)
    assert changed["metrics"] == {
        "csv_total": 8, "text_len": 15, "npy_total": 28, "pq_total": 15, "jl_w": 5, "pt_total": 6.0,
        "words": 6, "glob_total": 105, "list_count": 1, "arrow_total": 10,
    }  # fmt: skip

    # A new file in the globbed and in the listed folder: those two stages only.
    (folder / "parts" / "c.csv").write_text("x\n1000\n")
    (folder / "listed" / "two.txt").write_text("2")
    added = api.run(readers, metric_names=METRICS)
    assert ran(added) == {"globbed", "listed"}, reasons(added)
    assert "parts" in reasons(added)["globbed"][1] and "2 → 3 entries" in reasons(added)["globbed"][1]
    assert "listed" in reasons(added)["listed"][1]
    assert added["metrics"]["glob_total"] == 1105 and added["metrics"]["list_count"] == 2

    # A deleted file: its stage runs (the file is the reason) and fails naming it, in the user's cell.
    (folder / "model.joblib").unlink()
    gone = api.run(readers)
    assert gone["status"] == "failed"
    assert ran(gone) == {"joblib_"}, reasons(gone)
    assert reasons(gone)["joblib_"] == ("input", "model.joblib was deleted")
    error = next(s for s in gone["stages"] if s["name"] == "joblib_")["error"]
    assert error["ename"] == "FileNotFoundError" and "model.joblib" in error["evalue"]
    assert error["cell"] == 5 and error["first_line"] == "jl_w = joblib.load('model.joblib')['w']" and not error["generated"]


# -- code outside the notebook -----------------------------------------------------------


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    (tmp_path / "helpers.py").write_text("def scale(x):\n    return x * 2\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "srcmod.py").write_text("def offset(x):\n    return x + 10\n")
    (tmp_path / "base.csv").write_text("x\n1\n2\n")
    return build(tmp_path, [
        ("import pandas as pd", ["setup"]),
        ("from helpers import scale", ["setup"]),
        ("import sys\nsys.path.insert(0, 'src')\nfrom srcmod import offset", ["setup"]),
        ("base = int(pd.read_csv('base.csv')['x'].sum())", ["stage:load"]),
        ("scaled = scale(base)", ["stage:scaled"]),
        ("report = scaled + 1", ["stage:report"]),
        ("shifted = offset(base)", ["stage:shifted"]),
        ("import tempfile\n"
         "os_ = __import__('os')\n"
         "os_.makedirs('made', exist_ok=True)\n"
         "pd.DataFrame({'x': [base, base]}).to_csv('made/own.csv', index=False)\n"
         "own = int(pd.read_csv('made/own.csv')['x'].sum())\n"
         "with tempfile.NamedTemporaryFile('w+', suffix='.txt') as f:\n"
         "    f.write('scratch'); f.flush()\n"
         "    own += len(open(f.name).read())\n"
         "tmpdir = tempfile.mkdtemp()\n"
         "open(os_.path.join(tmpdir, 'keep.txt'), 'w').write('kept')\n"
         "own += len(open(os_.path.join(tmpdir, 'keep.txt')).read())", ["stage:own_files"]),
    ])  # fmt: skip


def test_local_modules_are_code_and_own_files_are_not_inputs(modules: Path):
    folder = modules.parent
    first = api.run(modules, metric_names=["report", "shifted", "own"])
    assert first["status"] == "succeeded", [s["error"] for s in first["stages"] if s["error"]]
    assert first["metrics"] == {"report": 7, "shifted": 13, "own": 6 + 7 + 4}
    deps = {s["name"]: {d["key"] for d in s["deps"]} for s in first["stages"]}
    assert "module:helpers" in deps["scaled"] and "module:helpers" not in deps["load"] | deps["shifted"]
    assert "module:srcmod" in deps["shifted"] and "module:srcmod" not in deps["scaled"]
    own = next(s for s in first["stages"] if s["name"] == "own_files")
    assert own["data"] == [], own["data"]  # what it wrote and read back, and its temp files

    again = api.run(modules)
    assert set(kinds(again).values()) == {"cached"}, reasons(again)

    # The same value from new code: the stage re-runs, its downstream is reused.
    (folder / "helpers.py").write_text("def scale(x):\n    return x + x  # same value\n")
    same_value = api.run(modules, metric_names=["report"])
    assert kinds(same_value) == {"load": "cached", "scaled": "code", "report": "cached", "shifted": "cached", "own_files": "cached"}
    assert reasons(same_value)["scaled"][1] == "module helpers (helpers.py) changed"

    (folder / "helpers.py").write_text("def scale(x):\n    return x * 3\n")
    new_value = api.run(modules, metric_names=["report"])
    assert kinds(new_value) == {"load": "cached", "scaled": "code", "report": "upstream", "shifted": "cached", "own_files": "cached"}
    assert new_value["metrics"]["report"] == 10

    (folder / "src" / "srcmod.py").write_text("def offset(x):\n    return x + 20\n")
    src = api.run(modules, metric_names=["shifted"])
    assert ran(src) == {"shifted"} and reasons(src)["shifted"] == ("code", "module srcmod (src/srcmod.py) changed")
    assert src["metrics"]["shifted"] == 23


def test_a_sql_query_is_reported_as_unseen(tmp_path: Path):
    import sqlite3

    with sqlite3.connect(tmp_path / "shop.db") as con:
        con.execute("CREATE TABLE sales (amount INTEGER)")
        con.executemany("INSERT INTO sales VALUES (?)", [(5,), (7,)])
    con.close()
    nb = build(tmp_path, [
        ("import sqlite3\nimport pandas as pd\ncon = sqlite3.connect('shop.db')\n"
         "total = int(pd.read_sql('SELECT SUM(amount) AS s FROM sales', con)['s'][0])\ncon.close()", ["stage:query"]),
    ])  # fmt: skip
    events = []
    run = api.run(nb, metric_names=["total"], progress=lambda event, stage, info: events.append((event, stage, info)))
    assert run["status"] == "succeeded" and run["metrics"]["total"] == 12
    notes = [info["message"] for event, stage, info in events if event == "note" and stage == "query"]
    assert len(notes) == 1 and "read_sql" in notes[0] and "cannot fingerprint" in notes[0], events
    deps = run["stages"][0]["deps"]
    assert any(d["kind"] == "unseen" for d in deps)
    assert any(d["kind"] == "file" and d["path"] == "shop.db" for d in deps)  # the sqlite file itself is data
    events.clear()
    again = api.run(nb, progress=lambda event, stage, info: events.append((event, stage, info)))
    assert again["stages"][0]["status"] == "cached"
    notes = [info["message"] for event, stage, info in events if event == "note" and stage == "query"]
    assert len(notes) == 1 and "this cached result may be stale" in notes[0]  # reused: said again, where it matters


def test_dry_run_sees_a_changed_file_without_a_kernel(tmp_path: Path):
    (tmp_path / "data.csv").write_text("x\n1\n")
    nb = build(tmp_path, [
        ("import pandas as pd\ndf = pd.read_csv('data.csv')", ["stage:load"]),
        ("total = int(df['x'].sum())", ["stage:total"]),
        ("other = 2", ["stage:other"]),
    ])  # fmt: skip
    assert api.run(nb)["status"] == "succeeded"
    (tmp_path / "data.csv").write_text("x\n2\n")
    started = time.perf_counter()
    plan = api.plan_run(nb)
    seconds = time.perf_counter() - started
    print(f"plan_run after a data change: {seconds:.3f} s")
    assert [(s["name"], s["action"], s["reason"]["kind"]) for s in plan["stages"]] == [
        ("load", "run", "input"), ("total", "run", "upstream"), ("other", "reuse", "cached"),
    ]  # fmt: skip
    assert "data.csv changed" in plan["stages"][0]["reason"]["detail"]
    assert seconds < 1.0  # a kernel alone takes longer to start


# -- Kale's titanic notebook ---------------------------------------------------------------


def trimmed_titanic(folder: Path) -> Path:
    """Kale's notebook without its plots (seaborn and matplotlib are not dependencies)
    and with a seeded random age fill, so equal inputs give equal outputs."""
    path = folder / "titanic_dataset_ml.ipynb"
    nb = json.loads(path.read_text())
    cells = []
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "skip" in (cell["metadata"].get("tags") or []):
            continue
        if "import seaborn" in source or "matplotlib" in source:
            source = "\n".join(ln for ln in source.splitlines() if "seaborn" not in ln and "matplotlib" not in ln and "style" not in ln)
        source = source.replace("rand_age = np.random.randint(", "rand_age = np.random.RandomState(0).randint(")
        cell["source"] = source
        cells.append(cell)
    nb["cells"] = cells
    path.write_text(json.dumps(nb))
    return path


def test_kale_titanic_reruns_from_its_read(tmp_path: Path):
    folder = tmp_path / "titanic"
    shutil.copytree(KALE_TITANIC, folder, ignore=shutil.ignore_patterns(".nbops"))
    nb = trimmed_titanic(folder)
    first = api.run(nb)
    assert first["status"] == "succeeded", [s["error"] for s in first["stages"] if s["error"]]
    load = next(s for s in first["stages"] if s["name"] == "loaddata")
    assert {d["path"] for d in load["data"]} == {"data/train.csv", "data/test.csv"}
    assert set(kinds(api.run(nb)).values()) == {"cached"}

    # One passenger's ticket: dropped in feature engineering, so the models are reused.
    train = folder / "data" / "train.csv"
    lines = train.read_text().splitlines(keepends=True)
    row = pd.read_csv(train).index[pd.read_csv(train)["Ticket"] == "A/5 21171"][0] + 1
    assert "A/5 21171" in lines[row]
    lines[row] = lines[row].replace("A/5 21171", "A/5 21172")
    train.write_text("".join(lines))
    ticket = api.run(nb)
    assert ticket["status"] == "succeeded"
    assert kinds(ticket)["loaddata"] == "input" and "data/train.csv changed" in reasons(ticket)["loaddata"][1]
    assert kinds(ticket)["datapreprocessing"] == "upstream" and kinds(ticket)["featureengineering"] == "upstream"
    models = {"randomforest", "logisticregression", "naivebayes", "svm", "decisiontree", "results"}
    assert {kinds(ticket)[m] for m in models} == {"cached"}, reasons(ticket)

    # One passenger's fate: everything downstream of the read runs again.
    lines[row] = lines[row].replace("1,0,3,", "1,1,3,", 1)
    train.write_text("".join(lines))
    fate = api.run(nb)
    assert kinds(fate)["loaddata"] == "input"
    assert {kinds(fate)[m] for m in models - {"results"}} == {"upstream"}, reasons(fate)
