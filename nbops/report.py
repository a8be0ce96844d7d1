"""One self-contained HTML page for a run (``nbops report RUN -o report.html``).

The page is one notebook exported by nbconvert's ``HTMLExporter`` (lab
template, images embedded): a summary (run, parameters, metrics, checks,
stages), then every executed stage notebook with its outputs. Plotly figures
(output ``application/vnd.plotly.v1+json``, which nbconvert does not draw)
become a ``<div>`` drawn by ``Plotly.newPlot``, with plotly.js inlined once in
the page (``plotlyjs="inline"``, about 4.6 MB) or loaded from its CDN
(``"cdn"``). With ``"inline"`` nothing is fetched to read the page offline
except MathJax, used only by notebooks with LaTeX.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from pathlib import Path
from typing import Any

from nbops import api
from nbops.errors import MissingExtraError, NotFoundError, UsageError
from nbops.runtime.check import check_status
from nbops.status import COLOUR
from nbops.text import cell_ref, format_number, to_json_text

__all__ = ["build_report", "write_report", "resolve_run_id", "report_notebook", "PLOTLY_MIME"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_PLOTLYJS_MODES = ("inline", "cdn")


def resolve_run_id(run: str, *, path=None, store=None) -> str:
    """A run id as given, or ``latest`` (the newest run in the store, of ``path``'s notebook when given),
    or ``latest~N`` (N runs before the newest), so commands can be typed without copying an id."""
    if run == "latest" or run.startswith("latest~"):
        back = run.removeprefix("latest").removeprefix("~") or "0"
        if not back.isdigit():
            raise UsageError(f"{run!r} is not a run", "use a run id, latest, or latest~N (N runs before the newest)")
        runs = api.list_runs(path, store=store, limit=int(back) + 1)
        if len(runs) <= int(back):
            have = f"only {len(runs)} run(s)" if runs else "no runs yet"
            raise NotFoundError(f"{run}: this store has {have}", "run the notebook first, or pass --store / --notebook")
        return runs[int(back)]["id"]
    return api.validate_run_id(run)


def build_report(run: str, *, path=None, store=None, plotlyjs: str = "inline") -> str:
    """The HTML text of the report of ``run`` (a run id or ``latest``)."""
    if plotlyjs not in _PLOTLYJS_MODES:
        raise UsageError(f"plotlyjs must be one of {', '.join(_PLOTLYJS_MODES)}, got {plotlyjs!r}", "use inline (offline) or cdn")
    run_id = resolve_run_id(run, path=path, store=store)
    run_json = api.get_run(run_id, path=path, store=store)
    stage_nbs = {}
    for s in run_json["stages"]:
        if s["has_notebook"]:
            stage_nbs[s["name"]] = api.stage_notebook(run_id, s["name"], path=path, store=store)
    nb, has_plotly = report_notebook(run_json, stage_nbs)
    return _export(nb, has_plotly, plotlyjs)


def write_report(run: str, output: str | os.PathLike, *, path=None, store=None, plotlyjs: str = "inline") -> Path:
    """Write the report of ``run`` to ``output``; returns the path."""
    text = build_report(run, path=path, store=store, plotlyjs=plotlyjs)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


# -- the notebook behind the page ----------------------------------------------------------------


def report_notebook(run: dict[str, Any], stage_notebooks: dict[str, str | os.PathLike]) -> tuple[Any, bool]:
    """A notebook: summary cells, then each stage's executed cells. Returns (notebook, has plotly figures)."""
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.metadata["title"] = f"nbops run {run['id']}"
    cells = [new_markdown_cell(_summary_html(run))]
    has_plotly = False
    for s in run["stages"]:
        cells.append(new_markdown_cell(_stage_header_html(s)))
        source = stage_notebooks.get(s["name"])
        if source is None:
            continue
        executed = nbformat.read(source, as_version=4)
        if not nb.metadata.get("kernelspec") and executed.metadata.get("kernelspec"):
            nb.metadata["kernelspec"] = executed.metadata["kernelspec"]
            nb.metadata["language_info"] = executed.metadata.get("language_info", {"name": "python"})
        for cell in executed.cells:
            if cell.cell_type == "code":
                has_plotly |= _convert_plotly(cell)
            cells.append(cell)
    for i, cell in enumerate(cells):
        cell["id"] = f"report-{i}"  # stage notebooks reuse cell ids; one page needs them unique
    nb.cells = cells
    return nb, has_plotly


def _convert_plotly(cell: Any) -> bool:
    """Plotly's JSON output -> a div drawn by Plotly.newPlot (nbconvert leaves it out otherwise)."""
    found = False
    for out in cell.get("outputs", []):
        data = out.get("data") or {}
        if PLOTLY_MIME not in data:
            continue
        fig = data[PLOTLY_MIME]
        fig = json.loads(fig) if isinstance(fig, str) else fig
        div = f"plotly-{uuid.uuid4().hex[:12]}"
        payload = json.dumps({"data": fig.get("data", []), "layout": fig.get("layout", {}), "config": fig.get("config") or {"responsive": True}})
        payload = payload.replace("</", "<\\/")  # a string in the figure cannot close the <script>
        data["text/html"] = (
            f'<div id="{div}" class="plotly-graph-div nbops-plotly" style="height:450px; width:100%;"></div>\n'
            f'<script type="text/javascript">(function() {{ var f = {payload};\n'
            f'  if (window.Plotly) {{ Plotly.newPlot("{div}", f.data, f.layout, f.config); }}\n'
            f'  else {{ document.getElementById("{div}").textContent = "(plotly.js did not load: figure not drawn)"; }} }})();</script>'
        )
        del data[PLOTLY_MIME]
        found = True
    return found


def _esc(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = to_json_text(value, sort_keys=True)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = format_number(value, digits=6)
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], cls: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="nbops-{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """HTML already escaped."""


# Statuses as every surface shows them; check verdicts borrow the matching status colour.
_COLOURS = {**COLOUR, "PASS": COLOUR["succeeded"], "FAIL": COLOUR["failed"], "WARN": COLOUR["interrupted"]}


def _badge(text: str) -> _Raw:
    return _Raw(f'<strong style="color:{_COLOURS.get(text, "inherit")}">{html.escape(text)}</strong>')


def _summary_html(run: dict[str, Any]) -> str:
    git = run.get("git") or {}
    env = run.get("env") or {}
    executor = run.get("executor")
    executor = executor.get("name") if isinstance(executor, dict) else executor
    facts = [
        ["status", _badge(run["status"])],
        ["notebook", run.get("notebook")],
        ["kind", (run.get("kind") or "run") + (f" of {run['parent_id']}" if run.get("parent_id") else "")],
        ["started", run.get("started_at")],
        ["duration", f"{run['duration_s']} s" if run.get("duration_s") is not None else "-"],
        ["executor", executor],
        ["git", (git.get("commit") or "")[:12] + (" (dirty)" if git.get("dirty") else "") + (f" {git['branch']}" if git.get("branch") else "")],
        ["environment", f"python {env.get('python', '?')} · {env.get('platform', '')} · nbops {env.get('nbops', '?')}"],
    ]
    if run.get("study"):
        facts.insert(3, ["study", f"{run['study']} trial {run.get('trial')}"])
    parts = [f"<h1>nbops run {html.escape(run['id'])}</h1>", _table(["", ""], facts, "facts")]
    parts.append("<h2>Parameters</h2>")
    parts.append(_table(["parameter", "value"], [[k, v] for k, v in run["params"].items()], "params") if run["params"] else "<p>none</p>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_table(["metric", "value"], [[k, v] for k, v in run["metrics"].items()], "metrics") if run["metrics"] else "<p>none</p>")
    checks = [c for s in run["stages"] for c in s["checks"]]
    parts.append("<h2>Checks</h2>")
    if checks:
        rows = [[c.get("stage"), c.get("name"), _badge(check_status(c)), c.get("observed"), c.get("threshold"), c.get("message")] for c in checks]
        parts.append(_table(["stage", "check", "status", "observed", "threshold", "message"], rows, "checks"))
    else:
        parts.append("<p>none</p>")
    parts.append("<h2>Stages</h2>")
    rows = []
    for s in run["stages"]:
        note = f"reused from run {s['cached_from']}" if s.get("cached_from") else ""
        if s.get("error"):
            e = s["error"]
            where = f" at {cell_ref(e['cell'], e.get('first_line'))}" if e.get("cell") is not None else ""
            note = f"{e.get('ename')}: {e.get('evalue')}{where}"
        rows.append([_Raw(f'<a href="#stage-{html.escape(s["name"])}">{html.escape(s["name"])}</a>'), _badge(s["status"]),
                     f"{s['duration_s']:.2f} s" if s.get("duration_s") is not None else "", ", ".join(s["outputs"]),
                     " ".join(f"{k}={_esc(v)}" for k, v in s["metrics"].items()), note])  # fmt: skip
    parts.append(_table(["stage", "status", "time", "outputs", "metrics", "note"], rows, "stages"))
    return "\n".join(parts)


def _stage_header_html(stage: dict[str, Any]) -> str:
    name = html.escape(stage["name"])
    text = f'<h2 id="stage-{name}">Stage {name}: {_badge(stage["status"])}</h2>'
    if stage.get("cached_from"):
        text += f"<p>reused from run {html.escape(stage['cached_from'])} (the executed notebook below is that run's)</p>"
    if not stage["has_notebook"]:
        text += "<p>no executed notebook: the stage did not run</p>"
    return text


# -- export -----------------------------------------------------------------------------------------------


def _export(nb: Any, has_plotly: bool, plotlyjs: str) -> str:
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        raise MissingExtraError("nbops report", "report", "nbconvert") from None
    exporter = HTMLExporter(template_name="lab")
    exporter.embed_images = True
    body, _ = exporter.from_notebook_node(nb)
    # Self-contained means nothing fetched: the template's require.js (widgets are not rendered) and
    # MathJax (from cdnjs) go; LaTeX in markdown cells then shows as its source.
    body = "\n".join(line for line in body.split("\n") if not _external_script(line))
    if has_plotly:
        body = _with_plotlyjs(body, plotlyjs)
    return body


def _external_script(line: str) -> bool:
    return "<script src=" in line and ("require" in line or "mathjax" in line.lower() or "://" in line)


def _with_plotlyjs(page: str, mode: str) -> str:
    try:
        import plotly
    except ImportError:
        raise MissingExtraError("drawing plotly figures in nbops report", "widgets", "plotly") from None

    if mode == "cdn":
        script = f'<script src="https://cdn.plot.ly/plotly-{plotly.__version__}.min.js" charset="utf-8"></script>'
    else:
        from plotly.offline import get_plotlyjs

        script = f'<script type="text/javascript">window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>\n<script type="text/javascript">{get_plotlyjs()}</script>'
    # Before any other script, so plotly.js defines the global ``Plotly``.
    head = page.find("<head>")
    at = head + len("<head>") if head >= 0 else 0
    return page[:at] + "\n" + script + "\n" + page[at:]
