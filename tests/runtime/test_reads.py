"""What a stage reads, seen from inside a real kernel (audit hook + lazy wrappers)."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from nbops.runtime.context import read_records

jupyter_client = pytest.importorskip("jupyter_client")


class Kernel:
    """A real ipykernel started in ``cwd``, with its own temp folder (pytest's
    tmp_path lies under /tmp, which the tracker rightly ignores as temporary)."""

    def __init__(self, cwd: Path, tmpdir: Path):
        import os

        env = {**os.environ, "TMPDIR": str(tmpdir)}
        self.km, self.kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, code: str) -> str:
        out: list[str] = []
        reply = self.kc.execute_interactive(textwrap.dedent(code), timeout=120, output_hook=lambda m: _collect(m, out))
        if reply["content"]["status"] != "ok":
            raise AssertionError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}\n{''.join(out)}")
        return "".join(out)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _collect(msg: dict, out: list[str]) -> None:
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
    elif msg["msg_type"] == "error":
        out.append("\n".join(msg["content"]["traceback"]))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    import joblib
    import numpy as np
    import pandas as pd

    root = tmp_path_factory.mktemp("reads") / "proj"
    data = root / "data"
    data.mkdir(parents=True)
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    df.to_csv(data / "x.csv", index=False)
    df.to_csv(data / "y.csv", index=False)
    df.to_parquet(data / "x.parquet")
    df.to_feather(data / "x.feather")
    np.save(data / "x.npy", np.arange(3))
    np.savetxt(data / "x.txt", np.arange(3))
    np.arange(3).tofile(data / "x.bin")
    joblib.dump({"a": 1}, data / "x.joblib")
    (data / "listed").mkdir()
    (root / "helpers.py").write_text("VALUE = 41\n")
    return root


@pytest.fixture(scope="module")
def kernel(project: Path, tmp_path_factory):
    k = Kernel(project, tmp_path_factory.mktemp("kerneltmp"))
    yield k
    k.close()


def _stage(kernel: Kernel, project: Path, name: str, body: str) -> list[dict]:
    art = project.parent / "artifacts"
    kernel.run(f"import nbops.runtime.context as _c; _c.begin_stage({name!r}, {str(art)!r})")
    kernel.run(body)
    kernel.run("_c.finish_stage()")
    return read_records(art / name, "reads")


def _files(records: list[dict]) -> set[str]:
    return {Path(r["abspath"]).name for r in records if r["kind"] == "file"}


READERS = {
    "pd.read_csv": ("pandas", "import pandas as pd; pd.read_csv('data/x.csv')", "x.csv"),
    "pd.read_csv pyarrow": ("pyarrow", "import pandas as pd; pd.read_csv('data/y.csv', engine='pyarrow')", "y.csv"),
    "pd.read_parquet": ("pyarrow", "import pandas as pd; pd.read_parquet('data/x.parquet')", "x.parquet"),
    "pq.read_table": ("pyarrow", "import pyarrow.parquet as pq; pq.read_table('data/x.parquet')", "x.parquet"),
    "pq.ParquetFile": ("pyarrow", "import pyarrow.parquet as pq; pq.ParquetFile('data/x.parquet').read()", "x.parquet"),
    "pyarrow.csv": ("pyarrow", "import pyarrow.csv as pc; pc.read_csv('data/x.csv')", "x.csv"),
    "pyarrow.feather": ("pyarrow", "import pyarrow.feather as pf; pf.read_table('data/x.feather')", "x.feather"),
    "pd.read_feather": ("pyarrow", "import pandas as pd; pd.read_feather('data/x.feather')", "x.feather"),
    "np.load": ("numpy", "import numpy as np; np.load('data/x.npy')", "x.npy"),
    "np.loadtxt": ("numpy", "import numpy as np; np.loadtxt('data/x.txt')", "x.txt"),
    "np.fromfile": ("numpy", "import numpy as np; np.fromfile('data/x.bin')", "x.bin"),
    "joblib.load": ("joblib", "import joblib; joblib.load('data/x.joblib')", "x.joblib"),
    "torch.load": ("torch", "import torch; torch.save({'a': 1}, 'data/t.pt')", None),
    "PIL.Image.open": ("PIL", "from PIL import Image; Image.open('data/x.png').load()", "x.png"),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_each_reader_is_recorded(kernel, project, reader):
    package, code, expected = READERS[reader]
    pytest.importorskip(package)
    if reader == "torch.load":  # the file is made outside the stage, then loaded inside
        import torch

        torch.save({"a": 1}, project / "data" / "x.pt")
        code, expected = "import torch; torch.load('data/x.pt')", "x.pt"
    if reader == "PIL.Image.open":
        from PIL import Image

        Image.new("RGB", (2, 2)).save(project / "data" / "x.png")
    records = _stage(kernel, project, reader.replace(" ", "_").replace(".", "_"), code)
    assert expected in _files(records), records
    mine = next(r for r in records if r["kind"] == "file" and r["abspath"].endswith(expected))
    assert mine["path"] == f"data/{expected}" and mine["abspath"] == str((project / "data" / expected).resolve())


def test_written_then_read_and_temp_files_are_not_reads(kernel, project):
    records = _stage(
        kernel,
        project,
        "own_files",
        """
        import tempfile, os, pandas as pd
        pd.DataFrame({'a': [1]}).to_parquet('data/made.parquet'); pd.read_parquet('data/made.parquet')
        with open('data/made.txt', 'w') as f: f.write('x')
        open('data/made.txt').read()
        tmp = os.path.join(tempfile.gettempdir(), 'scratch.txt')
        open(tmp, 'w').write('x'); open(tmp).read()
        open('data/x.csv').read()
    """,
    )
    assert _files(records) == {"x.csv"}


def test_local_module_listing_and_packages(kernel, project):
    records = _stage(
        kernel,
        project,
        "code",
        """
        import glob, os, pathlib, numpy
        import helpers
        glob.glob('data/*.csv'); os.listdir('data/listed')
    """,
    )
    assert {"kind": "module", "name": "helpers", "abspath": str((project / "helpers.py").resolve())} in records
    dirs = {r["abspath"] for r in records if r["kind"] == "dir"}
    assert {str((project / "data").resolve()), str((project / "data" / "listed").resolve())} <= dirs
    packages = next(r for r in records if r["kind"] == "packages")["versions"]
    assert "numpy" in packages and "nbops" not in packages and "ipykernel" not in packages
    assert "helpers.py" not in _files(records)  # code is a module dep, not a data file


def test_unseen_sources_are_named_once(kernel, project):
    records = _stage(
        kernel,
        project,
        "unseen",
        """
        import sqlite3, pandas as pd
        con = sqlite3.connect('data/db.sqlite'); con.execute('create table if not exists t (a)')
        for _ in range(3):
            pd.read_sql('select * from t', con)
    """,
    )
    assert [r for r in records if r["kind"] == "unseen"] == [{"kind": "unseen", "what": "pd.read_sql(...)"}]
    assert "db.sqlite" in _files(records)  # a sqlite file is a file


def test_tracking_cost_per_open(kernel, project):
    """10,000 opens with and without the tracker (printed; the bound is loose on a busy machine)."""
    (project / "many").mkdir(exist_ok=True)
    for i in range(10_000):
        (project / "many" / f"f{i}").write_text("x")
    loop = "import time, os\nt = time.perf_counter()\nfor i in range(10_000):\n    open(f'many/f{i}').close()\nprint(time.perf_counter() - t)"
    plain = float(kernel.run(loop))
    art = str(project.parent / "artifacts")
    kernel.run(f"import nbops.runtime.context as _c; _c.begin_stage('cost', {art!r})")
    tracked = float(kernel.run(loop))
    t = time.perf_counter()
    kernel.run("_c.finish_stage()")
    finish = time.perf_counter() - t
    records = read_records(Path(art) / "cost", "reads")
    assert sum(r["kind"] == "file" for r in records) == 10_000
    print(f"\n10,000 opens: {plain * 1000:.0f} ms plain, {tracked * 1000:.0f} ms tracked; finish_stage {finish * 1000:.0f} ms")
    assert tracked < plain * 3 + 0.5
