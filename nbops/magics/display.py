"""What the magics show: each view renders library JSON as HTML (JupyterLab,
VS Code, classic) and as plain text (terminal IPython, logs), nothing else.

A view is an object with ``_repr_html_`` and ``__repr__``, so IPython sends
both ``text/html`` and ``text/plain`` and the frontend picks. ``.data`` holds
the JSON it was made from, for code that wants the values
(``g = %nbops graph`` then ``g.data["stages"]``).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from nbops.status import COLOUR, ICON
from nbops.text import cell_ref, format_number

__all__ = ["GraphView", "RunsView", "RunView", "RunProgressView", "ShownError", "text_table"]

# JupyterLab's CSS variables (so dark themes work), falling back to nbops.status's colours elsewhere.
_JP_VAR = {"succeeded": "--jp-success-color1", "cached": "--jp-info-color1", "failed": "--jp-error-color1",
           "interrupted": "--jp-error-color1", "running": "--jp-warn-color1", "skipped": "--jp-ui-font-color2",
           "pending": "--jp-ui-font-color2"}  # fmt: skip
_COLOUR = {status: f"var({var}, {COLOUR[status]})" for status, var in _JP_VAR.items()}
_COLOUR["retry"] = _COLOUR["running"]
_ICON = {**ICON, "retry": "↻"}
_TABLE = "border-collapse:collapse;font-size:var(--jp-code-font-size, 13px);margin:4px 0"
_CELL = "text-align:left;padding:2px 12px 2px 0;vertical-align:top;border:none"
_MUTED = "color:var(--jp-ui-font-color2, #757575)"
_ANSI = {"red": "\x1b[31m", "yellow": "\x1b[33m", "reset": "\x1b[0m"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_fmt = format_number


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def _pairs(values: dict | None) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in (values or {}).items())


def _status_html(status: str) -> str:
    colour = _COLOUR.get(status, "inherit")
    return (f'<span class="nbops-status nbops-status-{_e(status)}" style="color:{colour};font-weight:600">'
            f"{_ICON.get(status, '')} {_e(status)}</span>")  # fmt: skip


def _table_html(headers: list[str], rows: list[list[str]], css_class: str) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    head = "".join(f'<th style="{_CELL}">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{c}</td>' for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}" style="{_TABLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) if i < len(row) - 1 else str(c) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _issue_where(issue: dict) -> str:
    return f"{cell_ref(issue['cell'], issue.get('first_line'))}: " if issue.get("cell") is not None else ""


def _error_where(err: dict) -> str:
    return f" in {cell_ref(err['cell'], err.get('first_line'))}" if err.get("cell") is not None else ""


def _reason(reason: dict | None) -> str:
    """Why a stage ran or was reused: ``params: n_estimators: 100 → 50``."""
    if not reason:
        return ""
    return f"{reason.get('kind')}: {reason['detail']}" if reason.get("detail") else str(reason.get("kind"))


def _notice_html(notices: list[str]) -> str:
    """A notice that starts with "warning:" stands out; the others are muted."""
    return "".join(f'<div class="nbops-notice" style="{"color:" + _COLOUR["running"] if n.startswith("warning:") else _MUTED}">{_e(n)}</div>'
                   for n in notices)  # fmt: skip


def _notice_text(notices: list[str]) -> list[str]:
    return [n if n.startswith("warning:") else f"note: {n}" for n in notices]


class _View:
    data: Any

    def _repr_html_(self) -> str:
        return f'<div class="nbops-view">{self.html()}</div>'

    def __repr__(self) -> str:
        return self.text()

    def html(self) -> str:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError


# -- graph ---------------------------------------------------------------------------------------


def _resources(stage: dict) -> str:
    parts = [f"{k}:{v}" for k, v in stage["resources"].items() if v not in (None, 0)]
    if not stage.get("cache", True):
        parts.append("cache:off")
    return " ".join(parts)


class GraphView(_View):
    """The stage graph of a notebook (``api.graph`` JSON)."""

    def __init__(self, graph: dict, notices: list[str] | None = None):
        self.data = graph
        self.notices = notices or []

    def _rows(self) -> list[list[str]]:
        rows = []
        for s in self.data["stages"]:
            by_producer: dict[str, list[str]] = {}
            for var, producer in s["inputs"].items():
                by_producer.setdefault(producer, []).append(var)
            inputs = "; ".join(f"{', '.join(names)} ← {producer}" for producer, names in by_producer.items())
            after = ", ".join(u for u in s["upstream"] if u not in s["inputs"].values())
            rows.append([s["name"] + (" (implicit)" if s["implicit"] else ""), ", ".join(map(str, s["cells"])),
                         inputs + (f"; after {after}" if after else ""), ", ".join(s["outputs"]),
                         ", ".join(s["parameters"]), _resources(s)])  # fmt: skip
        return rows

    _HEADERS = ["stage", "cells", "inputs", "exports", "parameters", "resources"]

    def _summary(self) -> str:
        g = self.data
        return f"{g['notebook']}: {len(g['stages'])} stages, {len(g['parameters'])} parameters"

    def html(self) -> str:
        g = self.data
        parts = [f"<div><b>{_e(self._summary())}</b></div>"]
        if g["parameters"]:
            params = ", ".join(f"{p['name']}={p['default']!r} ({p['type']})" for p in g["parameters"])
            parts.append(f"<div>parameters: <code>{_e(params)}</code></div>")
        rows = [[f"<b>{_e(r[0])}</b>", *(_e(c) for c in r[1:])] for r in self._rows()]
        parts.append(_table_html(self._HEADERS, rows, "nbops-graph"))
        for kind, colour in (("errors", _COLOUR["failed"]), ("warnings", _COLOUR["running"])):
            for i in g[kind]:
                parts.append(f'<div class="nbops-{kind[:-1]}" style="color:{colour}">{kind[:-1]}: {_e(_issue_where(i) + i["message"])}'
                             f'<div style="{_MUTED};margin-left:1.5em">fix: {_e(i["fix"])}</div></div>')  # fmt: skip
        return _notice_html(self.notices) + "".join(parts)

    def text(self) -> str:
        g = self.data
        lines = [*_notice_text(self.notices), self._summary()]
        if g["parameters"]:
            lines.append("parameters: " + ", ".join(f"{p['name']}={p['default']!r} ({p['type']})" for p in g["parameters"]))
        lines += ["", text_table(self._HEADERS, self._rows())]
        for kind in ("errors", "warnings"):
            for i in g[kind]:
                lines += [f"{kind[:-1]}: {_issue_where(i)}{i['message']}", f"  fix: {i['fix']}"]
        return "\n".join(lines)


# -- runs ----------------------------------------------------------------------------------------


def _started(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ")


def author(run: dict) -> str:
    """Who ran a run, ``user@host``; "" for a record older than both."""
    user, host = run.get("user"), run.get("host")
    return f"{user or '?'}@{host}" if host else (user or "")


def _store_of(run: dict, store: str | None) -> str:
    """The store a run JSON names (a masked location), else the one the caller resolved."""
    named = run.get("store")
    if isinstance(named, dict):
        return named.get("location") or store or ""
    return named or store or ""


class RunsView(_View):
    """Runs of a notebook, newest first (``api.list_runs`` JSON)."""

    _HEADERS = ["run", "status", "started", "by", "duration", "kind", "params", "metrics", "stages"]

    def __init__(self, runs: list[dict], where: str, notices: list[str] | None = None, store: str | None = None):
        self.data = runs
        self.where = where
        self.notices = notices or []
        self.store = store  # masked location: which store these runs were read from

    def _row(self, r: dict) -> list[str]:
        return [r["id"], r["status"], _started(r.get("started_at")), author(r), _seconds(r.get("duration_s")), r.get("kind") or "",
                _pairs(r.get("params")), _pairs(r.get("metrics"))]  # fmt: skip

    def _store_line(self) -> str:
        return f"store {self.store}" if self.store else ""

    def html(self) -> str:
        head = f"<div><b>runs of {_e(self.where)}</b></div>"
        if self.store:
            head += f'<div class="nbops-store" style="{_MUTED}">{_e(self._store_line())}</div>'

        if not self.data:
            return _notice_html(self.notices) + head + "<div>no runs yet: <code>%nbops run</code></div>"
        rows = []
        for r in self.data:
            row = [_e(c) for c in self._row(r)]
            row[0] = f"<code>{row[0]}</code>"
            row[1] = _status_html(r["status"])
            stages = " ".join(f'<span title="{_e(s["status"])}" style="color:{_COLOUR.get(s["status"], "inherit")}">'
                              f'{_ICON.get(s["status"], "")}{_e(s["name"])}</span>' for s in r.get("stages", []))  # fmt: skip
            rows.append([*row, stages])
        return _notice_html(self.notices) + head + _table_html(self._HEADERS, rows, "nbops-runs")

    def text(self) -> str:
        lines = [*_notice_text(self.notices), f"runs of {self.where}", *([self._store_line()] if self.store else [])]
        if not self.data:
            return "\n".join([*lines, "no runs yet: %nbops run"])
        rows = [[*self._row(r), " ".join(f"{s['name']}:{s['status']}" for s in r.get("stages", []))] for r in self.data]
        return "\n".join([*lines, text_table(self._HEADERS, rows)])


class RunView(_View):
    """One run: status, metrics, stages, and the failed stage's cell and error (``api.get_run`` JSON)."""

    _HEADERS = ["stage", "status", "time", "outputs", "why", "metrics / error"]

    def __init__(self, run: dict, notices: list[str] | None = None, store: str | None = None):
        self.data = run
        self.notices = notices or []
        self.store = _store_of(run, store)  # masked location

    def _where(self) -> list[tuple[str, str]]:
        """(label, value): who ran it and the store it is recorded in, when known."""
        return [(label, value) for label, value in (("by", author(self.data)), ("store", self.store)) if value]

    def _failed(self) -> dict | None:
        return next((s for s in self.data["stages"] if s["status"] == "failed"), None)

    def _stage_note(self, s: dict) -> str:
        note = _pairs(s.get("metrics"))
        if s.get("error") and s["status"] == "failed":
            e = s["error"]
            note = f"{e.get('ename')}: {str(e.get('evalue'))[:160]}{_error_where(e)}"
        if s.get("cached_from"):
            note = (note + " " if note else "") + f"(from {s['cached_from']})"
        return note

    def _rows(self) -> list[list[str]]:
        return [[s["name"], s["status"], _seconds(s.get("duration_s")), ", ".join(s.get("outputs") or {})[:60],
                 _reason(s.get("reason")), self._stage_note(s)] for s in self.data["stages"]]  # fmt: skip

    def _title(self) -> str:
        r = self.data
        kind = r.get("kind") or "run"
        parent = f" of {r['parent_id']}" if r.get("parent_id") else ""
        took = f" in {r['duration_s']:.1f}s" if r.get("duration_s") is not None else ""
        return f"{kind}{parent} {r['id']}", took

    def _failure(self) -> str | None:
        failed = self._failed()
        if failed is None:
            return None
        e = failed.get("error") or {}
        return f"stage {failed['name']} failed{_error_where(e)}: {e.get('ename')}: {e.get('evalue')}"

    def _hints(self) -> list[str]:
        r = self.data
        failed = self._failed()
        if failed:
            return [f"executed notebook: !nbops open {r['id']} {failed['name']}", f"continue from the failed stage: !nbops resume {r['id']}"]
        return []

    def html(self) -> str:
        r = self.data
        title, took = self._title()
        parts = [f"<div><b>{_e(title)}</b> {_status_html(r['status'])}{_e(took)}</div>",
                 f'<div style="{_MUTED}">{_e(r.get("notebook") or "")}</div>']  # fmt: skip
        parts += [f'<div class="nbops-{label}" style="{_MUTED}">{_e(label)} {_e(value)}</div>' for label, value in self._where()]
        if r.get("params"):
            parts.append(f"<div>params: <code>{_e(_pairs(r['params']))}</code></div>")
        if r.get("metrics"):
            parts.append(f"<div>metrics: <b>{_e(_pairs(r['metrics']))}</b></div>")
        rows = []
        for s, row in zip(r["stages"], self._rows()):
            cells = [f"<b>{_e(row[0])}</b>", _status_html(s["status"]), *(_e(c) for c in row[2:])]
            if s["status"] == "failed":
                cells[-1] = f'<span style="color:{_COLOUR["failed"]}">{cells[-1]}</span>'
            rows.append(cells)
        parts.append(_table_html(self._HEADERS, rows, "nbops-run"))
        parts += [f"<div><code>{_e(c['stage'])}/{_e(c['name'])}</code> {_status_html('succeeded' if c.get('passed') else 'failed')}"
                  f" observed {_e(_fmt(c.get('observed')))}, threshold {_e(_fmt(c.get('threshold')))}</div>"
                  for s in r["stages"] for c in s.get("checks") or []]  # fmt: skip
        if self._failure():
            parts.append(f'<div class="nbops-failure" style="color:{_COLOUR["failed"]};font-weight:600">{_e(self._failure())}</div>')
        parts += [f'<div style="{_MUTED}">{_e(h)}</div>' for h in self._hints()]
        return _notice_html(self.notices) + "".join(parts)

    def text(self) -> str:
        r = self.data
        title, took = self._title()
        lines = [*_notice_text(self.notices), f"{title} {r['status']}{took}", f"notebook  {r.get('notebook') or ''}"]
        lines += [f"{label:<10}{value}" for label, value in self._where()]
        if r.get("params"):
            lines.append(f"params    {_pairs(r['params'])}")
        if r.get("metrics"):
            lines.append(f"metrics   {_pairs(r['metrics'])}")
        lines += ["", text_table(self._HEADERS, self._rows())]
        for s in r["stages"]:
            for c in s.get("checks") or []:
                state = "PASS" if c.get("passed") else "FAIL"
                lines.append(f"{state} {c.get('stage')}/{c.get('name')}: observed {_fmt(c.get('observed'))}, threshold {_fmt(c.get('threshold'))}")
        return "\n".join(lines + [x for x in [self._failure()] if x] + self._hints())


# -- live progress -------------------------------------------------------------------------------


class RunProgressView(_View):
    """Fed by ``api.run(progress=...)`` events; ``on_change`` redraws it (a display update)."""

    _HEADERS = ["stage", "status", "time", "detail"]

    def __init__(self, notebook: str, stages: list[str], notices: list[str] | None = None,
                 on_change: Callable[[RunProgressView], None] | None = None):  # fmt: skip
        self.data = {"notebook": notebook, "run_id": None, "status": "starting",
                     "stages": {name: {"status": "pending", "detail": "", "seconds": None} for name in stages}}  # fmt: skip
        self.notices = notices or []
        self.on_change = on_change
        self.t0 = time.time()

    def created(self, run_id: str) -> None:
        self.data["run_id"], self.data["status"] = run_id, "running"
        self._changed()

    def __call__(self, event: str, stage: str, info: dict[str, Any]) -> None:
        if event == "run_done":
            self.data["status"] = info.get("status", "done")
            self.data["run_id"] = info.get("run_id") or self.data["run_id"]
        else:
            row = self.data["stages"].setdefault(stage, {"status": "pending", "detail": "", "seconds": None})
            row["status"] = {"started": "running"}.get(event, event)
            row["seconds"] = info.get("seconds")
            row["detail"] = self._detail(event, info)
        self._changed()

    @staticmethod
    def _detail(event: str, info: dict) -> str:
        if event == "cached":
            return f"reused from run {info.get('from')}"
        if event == "started" and info.get("attempt", 1) > 1:
            return f"attempt {info['attempt']}"
        if event in ("failed", "retry"):
            err = info.get("error") or {}
            return f"{err.get('ename')}: {str(err.get('evalue', ''))[:160]}{_error_where(err)}"
        return ""

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def _title(self) -> str:
        d = self.data
        run = f"run {d['run_id']}" if d["run_id"] else "run"
        return f"{run} of {d['notebook']}: {d['status']} ({time.time() - self.t0:.0f}s)"

    def _rows(self) -> list[list[str]]:
        return [[name, s["status"], _seconds(s["seconds"]), s["detail"]] for name, s in self.data["stages"].items()]

    def html(self) -> str:
        rows = [[f"<b>{_e(r[0])}</b>", _status_html(r[1]), _e(r[2]), _e(r[3])] for r in self._rows()]
        return _notice_html(self.notices) + f"<div><b>{_e(self._title())}</b></div>" + _table_html(self._HEADERS, rows, "nbops-progress")

    def text(self) -> str:
        return "\n".join([*_notice_text(self.notices), self._title(), text_table(self._HEADERS, self._rows())])

    def line(self, stage: str) -> str:
        """One stage's current state as a line (terminals print these instead of redrawing)."""
        s = self.data["stages"][stage]
        return f"  {_ICON.get(s['status'], '·')} {stage:<18} {s['status']:<9} {' '.join(x for x in (_seconds(s['seconds']), s['detail']) if x)}".rstrip()


# -- errors --------------------------------------------------------------------------------------


class ShownError(Exception):
    """An error the user should read, not debug: IPython shows ``_render_traceback_``
    (the message and its fix) instead of a traceback, and the cell counts as failed,
    so "Run All" stops there."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message, self.fix = message, fix

    def _render_traceback_(self) -> list[str]:
        lines = [f"{_ANSI['red']}nbops: {self.message}{_ANSI['reset']}"]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return lines
