"""Remote data is part of the key through its version (ETag, version id, Last-Modified)."""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from nbops import api


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_folder(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving a folder (Last-Modified from the file's mtime)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _notebook(folder: Path, url: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"url = {url!r}", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import pandas as pd\ntotal = int(pd.read_csv(url)['x'].sum())", metadata={"tags": ["stage:fetch"]}),
    ]
    path = folder / "remote.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_remote_csv_is_versioned_by_last_modified(tmp_path: Path, http_folder):
    served, base = http_folder
    data = served / "sales.csv"
    data.write_text("x\n1\n2\n3\n")
    work = tmp_path / "nb"
    work.mkdir()
    nb = _notebook(work, f"{base}/sales.csv")

    first = api.run(nb, metric_names=["total"])
    assert first["status"] == "succeeded" and first["metrics"]["total"] == 6
    (remote,) = [d for d in first["stages"][0]["deps"] if d["kind"] == "remote"]
    assert remote["url"] == f"{base}/sales.csv" and "Last-Modified" in remote["fingerprint"]

    assert api.run(nb)["stages"][0]["reason"]["kind"] == "cached"

    data.write_text("x\n1\n2\n4\n")  # same size, other bytes: the server's Last-Modified moves
    later = data.stat().st_mtime + 5
    os.utime(data, (later, later))
    changed = api.run(nb, metric_names=["total"])
    reason = changed["stages"][0]["reason"]
    assert reason["kind"] == "input" and f"{base}/sales.csv" in reason["detail"], reason
    assert changed["metrics"]["total"] == 7
