"""A secret parameter's value never leaves in clear: not in the store, the terminal, ``runs show`` or the report.

The stages here do everything a careless notebook does with a token: print it,
log it, show it as a rich output, use it as a metric name and in a check's
data, and raise an exception that quotes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from nbops import api
from nbops.plan.secrets import Scrubber
from tests.conftest import run_cli

SECRET = "S3cr3tValue-XYZ"
FORMS = [SECRET.encode(), repr(SECRET.encode()).encode()]  # as is, and b'...' (both hold the value itself)

LEAK = """\
import logging
import nbops
import pandas as pd
from IPython.display import HTML, display
print('token is', api_token)
print(repr(api_token.encode()))
logging.getLogger('client').warning('connecting with %s', api_token)
display(HTML(f'<b>{api_token}</b>'))
nbops.log_metric(f'latency {api_token}', 1.0)
nbops.check.allowed_values(pd.DataFrame({'who': [api_token]}), 'who', ['nobody'], name=f'auth {api_token}', warn=True)
length = len(api_token)
api_token"""

USE = """\
if mode == 'raise':
    raise ValueError(f"bad token {api_token}")
used = length * 2"""


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("api_token = 'dev-token'\nmode = 'raise'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(LEAK, metadata={"tags": ["stage:leak"]}),
        nbformat.v4.new_code_cell(USE, metadata={"tags": ["stage:use"]}),
    ]
    path = folder / "secret_params.ipynb"
    nbformat.write(nb, path)
    return path


def _leaks(folder: Path) -> list[str]:
    """Every file under ``folder`` (objects, runs.db and its WAL included) that holds the value."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(form in data for form in FORMS):
            found.append(str(path.relative_to(folder)))
    return found


def test_scrubber_masks_the_value_and_its_quoted_bytes_and_url_forms():
    scrub = Scrubber([SECRET, "it's a/b", "abc"])
    text = f"{SECRET} {SECRET!r} {SECRET.encode()!r} {'it' + chr(39) + 's a/b'!r} it%27s%20a%2Fb it%27s+a%2Fb abc"
    assert scrub.text(text) == "*** '***' b'***' \"***\" *** *** abc"  # "abc" is too short to be a secret
    assert scrub.json({SECRET: [SECRET, 3, (f"x{SECRET}",)]}) == {"***": ["***", 3, ("x***",)]}
    assert not Scrubber([]) and Scrubber([]).text(SECRET) == SECRET


def test_a_failed_run_keeps_the_secret_out_of_its_error_records_and_notebooks(tmp_path: Path):
    nb = _notebook(tmp_path)
    run = api.run(nb, {"api_token": SECRET})
    assert run["status"] == "failed"
    leak, use = run["stages"]
    assert use["status"] == "failed"
    assert use["error"]["ename"] == "ValueError" and use["error"]["evalue"] == "bad token ***"
    assert "bad token ***" in use["error"]["traceback"]
    assert list(leak["metrics"]) == ["latency ***"]
    assert leak["checks"][0]["name"] == "auth ***" and "***" in leak["checks"][0]["message"]
    executed = (tmp_path / ".nbops" / "objects").rglob("*")
    texts = [p.read_text(errors="replace") for p in executed if p.is_file()]
    shown = next(t for t in texts if "token is" in t)
    assert "token is ***" in shown and "<b>***</b>" in shown and "connecting with ***" in shown and "b'***'" in shown
    assert json.dumps(run).count(SECRET) == 0
    assert _leaks(tmp_path / ".nbops") == []


@pytest.mark.parametrize("verb", ["resume", "rerun"])
def test_cli_run_show_report_resume_and_rerun_never_print_the_secret(tmp_path: Path, verb: str):
    nb = _notebook(tmp_path)
    first = run_cli("run", str(nb), "-p", f"api_token={SECRET}", cwd=tmp_path)
    assert first.returncode != 0, first.stdout + first.stderr
    terminal = first.stdout + first.stderr
    assert "bad token ***" in terminal, terminal
    shown = run_cli("runs", "show", "latest", "--notebook", str(nb), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    run_id = record["id"]
    report = run_cli("report", run_id, "--notebook", str(nb), "-o", str(tmp_path / "r.html"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert "***" in page

    # The store does not keep the secret, so resume and rerun ask for it again.
    again = run_cli(verb, run_id, "--notebook", str(nb), cwd=tmp_path)
    assert again.returncode != 0 and "api_token" in again.stdout + again.stderr
    extra = ["-p", "mode=ok"] if verb == "resume" else []
    later = run_cli(verb, run_id, "--notebook", str(nb), "-p", f"api_token={SECRET}", *extra, "--json", cwd=tmp_path)
    outputs = [terminal, shown.stdout + shown.stderr, report.stdout + report.stderr, page, again.stdout + again.stderr, later.stdout + later.stderr]
    if verb == "resume":
        assert later.returncode == 0, later.stdout + later.stderr
        resumed = json.loads(later.stdout)
        assert resumed["status"] == "succeeded" and [s["status"] for s in resumed["stages"]] == ["cached", "succeeded"]
    else:
        assert later.returncode != 0  # the same failure, reproduced
        assert "bad token ***" in later.stdout + later.stderr
    assert [SECRET in text for text in outputs] == [False] * len(outputs)
    assert _leaks(tmp_path / ".nbops") == []
