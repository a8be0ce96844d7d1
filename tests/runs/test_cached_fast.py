"""A fully cached re-run does nothing: no kernel, no pandas/numpy/papermill/SQLAlchemy in the
CLI process, and still every change (data file, local module, parameter, notebook) re-runs
the right stage. Real kernels for the first run and the re-runs, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops import api
from nbops.plan import lite_store

from ..conftest import build_notebook

HEAVY = ("pandas", "numpy", "papermill", "nbformat", "jupyter_client", "sqlalchemy", "alembic", "zmq")

# The CLI as a user runs it, reporting at exit which modules its process imported.
PROBE = """
import json, sys
from nbops.cli.main import main
code = main(sys.argv[1:])
print("MODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
sys.exit(code)
"""


def cli_run(nb: Path, *args: str) -> tuple[dict, set[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBOPS_STORE", "NBOPS_OBJECTS")}
    out = subprocess.run([sys.executable, "-c", PROBE, "run", str(nb), "--json", *args], cwd=nb.parent, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stderr.splitlines() if x.startswith("MODULES "))
    return json.loads(out.stdout), set(json.loads(line.removeprefix("MODULES ")))


def statuses(run: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in run["stages"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Three stages: ``load`` reads a CSV with pandas, ``train`` imports a local module and
    reads parameter ``k``, ``report`` reads only ``train``'s output."""
    (tmp_path / "data.csv").write_text("x\n1\n2\n3\n")
    (tmp_path / "helper.py").write_text("def scale(v):\n    return v * 10\n")
    return build_notebook(
        tmp_path,
        [
            ("k = 2", ["parameters"]),
            ("import pandas as pd\ntotal = int(pd.read_csv('data.csv').x.sum())", ["stage:load"]),
            ("import helper\nscore = helper.scale(total) + k", ["stage:train"]),
            ("summary = f'score={score}'", ["stage:report"]),
        ],
    )


def edit_cell(path: Path, index: int, source: str) -> None:
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = source
    path.write_text(json.dumps(nb))


def test_cached_rerun_imports_nothing_heavy_and_sees_every_change(project: Path):
    first, _ = cli_run(project)
    assert set(statuses(first).values()) == {"succeeded"}
    assert first["stages"][1]["scalars"]["score"] == 62

    again, modules = cli_run(project)
    assert set(statuses(again).values()) == {"cached"}
    assert all(s["cached_from"] == first["id"] for s in again["stages"])
    assert not modules & set(HEAVY), f"a fully cached run imported {sorted(modules & set(HEAVY))}"
    assert again["executor"] == {"name": "local", "kernels": 0}  # no kernel: jupyter_client was not even imported
    assert again["id"] in {r["id"] for r in api.list_runs(project)}  # recorded where every reader finds it

    # A data file: same size, new content, same mtime second: the hash decides, not the stat.
    data = project.parent / "data.csv"
    st = data.stat()
    data.write_text("x\n1\n2\n4\n")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed, _ = cli_run(project)
    assert statuses(changed)["load"] == "succeeded", changed["stages"][0]["reason"]
    assert changed["stages"][1]["scalars"]["score"] == 72

    # A local module: only the stage that imported it.
    (project.parent / "helper.py").write_text("def scale(v):\n    return v * 100\n")
    module, _ = cli_run(project)
    assert statuses(module) == {"load": "cached", "train": "succeeded", "report": "succeeded"}
    assert "helper" in module["stages"][1]["reason"]["detail"]

    # A parameter only train reads.
    param, _ = cli_run(project, "-p", "k=3")
    assert statuses(param) == {"load": "cached", "train": "succeeded", "report": "succeeded"}
    back, modules = cli_run(project, "-p", "k=3")
    assert set(statuses(back).values()) == {"cached"} and not modules & set(HEAVY)

    # The notebook: an edit to the last stage re-runs it alone (the analysis is redone once).
    edit_cell(project, 3, "summary = f'score is {score}'")
    edited, _ = cli_run(project, "-p", "k=3")
    assert statuses(edited) == {"load": "cached", "train": "cached", "report": "succeeded"}
    cached, modules = cli_run(project, "-p", "k=3")
    assert set(statuses(cached).values()) == {"cached"} and not modules & set(HEAVY)


def test_fast_record_is_the_ordinary_record(project: Path):
    """The same run recorded by the standard-library path and by RunStore reads the same."""
    api.run(project)
    fast = api.run(project)
    ordinary = api.run(project, context=api.RunContext())  # a context: always the ordinary path
    assert fast["executor"] == {"name": "local", "kernels": 0} and ordinary["executor"] == {"name": "local", "kernels": 0}

    def comparable(run: dict) -> dict:
        drop = {"id", "started_at", "ended_at", "duration_s", "env", "git"}
        out = {k: v for k, v in run.items() if k not in drop}
        out["stages"] = [{k: v for k, v in s.items() if k not in ("started_at", "ended_at", "duration_s")} for s in run["stages"]]
        return out

    assert comparable(fast) == comparable(ordinary)
    assert fast["env"].keys() == ordinary["env"].keys()
    # What the fast path returned is what the store now says, read the ordinary way.
    shown = api.get_run(fast["id"], path=project)
    assert shown.pop("store") == str(project.parent / ".nbops") and shown == fast
    assert lite_store.run_json(api.open_store(None, project).get_run(fast["id"])) == fast


def test_lite_store_matches_the_schema():
    from nbops.store import schema
    from nbops.store.database import Database  # noqa: F401  (the revisions it knows)

    assert lite_store.JSON_RUN == schema.JSON_RUN and lite_store.JSON_STAGE == schema.JSON_STAGE
    assert lite_store._head() == schema.HEAD


def test_damaged_pipeline_folder_falls_back_and_is_rebuilt(project: Path):
    api.run(project)
    spec_json = next((project.parent / ".nbops" / "pipelines").glob("*/spec.json"))
    stage_nb = spec_json.parent / "stages" / "train.ipynb"
    stage_nb.write_text(stage_nb.read_text().replace("helper.scale(total)", "helper.scale(total) * 0"))
    again = api.run(project)  # the edited stage notebook is regenerated from the source, not run
    assert set(statuses(again).values()) == {"cached"}
    assert "* 0" not in stage_nb.read_text()


def test_package_listing_follows_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbops.plan import environment

    site = tmp_path / "site"
    (site / "fakepkg_nbops-1.0.dist-info").mkdir(parents=True)
    (site / "fakepkg_nbops-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg-nbops\nVersion: 1.0\n")
    monkeypatch.setenv("NBOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    assert environment.installed_packages()["fakepkg-nbops"] == "1.0"
    # An upgrade: the old dist-info goes, a new one comes (the folder's mtime changes; a
    # little later than the first listing, as any real install is, past the clock's tick).
    time.sleep(0.05)
    (site / "fakepkg_nbops-1.0.dist-info" / "METADATA").unlink()
    (site / "fakepkg_nbops-1.0.dist-info").rmdir()
    (site / "fakepkg_nbops-2.0.dist-info").mkdir()
    (site / "fakepkg_nbops-2.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg-nbops\nVersion: 2.0\n")
    assert environment.installed_packages()["fakepkg-nbops"] == "2.0"
