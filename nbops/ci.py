"""Headless CI: run a pipeline once, judge it, and write JUnit XML (``nbops test``).

A test run is an ordinary run, in a fresh temporary store unless one is given,
so nothing is reused from a developer's earlier runs. It passes when every
stage succeeded (or was reused from the given store) and every check passed;
a check in warn mode never fails it. The JUnit report has one ``<testcase>``
per stage and one per check (classname ``<pipeline>.<stage>``); a failure
names the stage, the source cell (index and first line), the exception, and
for a check what it observed against its threshold. The executed stage
notebooks are copied into an artifacts folder and referenced from the XML.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops import api
from nbops.errors import UsageError
from nbops.runtime.check import check_status
from nbops.text import cell_ref, format_number, to_json_text

__all__ = ["TestCase", "TestReport", "run_tests", "junit_xml", "write_junit", "default_artifacts_dir"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Characters XML 1.0 cannot hold (tracebacks sometimes carry them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass
class TestCase:
    """One JUnit test case: a stage, or a check inside a stage."""

    __test__ = False  # not a pytest class

    classname: str  # "<pipeline>.<stage>"
    name: str  # "stage <name>" or the check's name
    kind: str  # "stage" | "check"
    stage: str
    status: str  # "passed" | "failed" | "skipped" | "warned"
    time_s: float = 0.0
    message: str = ""  # one line: why it failed or was skipped
    ename: str = ""  # exception / failure type
    details: str = ""  # traceback, or the check's full record
    output: str = ""  # <system-out>
    notebook: str | None = None  # the copied executed notebook, relative to the JUnit file when there is one

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class TestReport:
    """What ``run_tests`` found; ``exit_code`` is 0 only when nothing failed."""

    __test__ = False

    pipeline: str
    notebook: str
    run: dict[str, Any]  # the run JSON
    cases: list[TestCase]
    store: str | None  # None when the temporary store was removed
    artifacts_dir: str | None
    notebooks: dict[str, str] = field(default_factory=dict)  # stage -> copied executed notebook
    junit_path: str | None = None

    @property
    def failures(self) -> list[TestCase]:
        return [c for c in self.cases if c.failed]

    @property
    def passed(self) -> bool:
        return self.run["status"] == "succeeded" and not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        out = {"tests": len(self.cases), "passed": 0, "failed": 0, "skipped": 0, "warned": 0}
        for c in self.cases:
            out[c.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "notebook": self.notebook, "run_id": self.run["id"], "status": self.run["status"],
            "passed": self.passed, "exit_code": self.exit_code, "counts": self.counts(), "store": self.store,
            "artifacts_dir": self.artifacts_dir, "junit": self.junit_path, "notebooks": self.notebooks,
            "metrics": self.run["metrics"], "params": self.run["params"],
            "cases": [{k: v for k, v in vars(c).items()} for c in self.cases],
        }  # fmt: skip


def default_artifacts_dir(junit: str | os.PathLike) -> Path:
    """``report.xml`` -> ``report-artifacts/`` beside it."""
    path = Path(junit)
    return path.with_name(f"{path.stem}-artifacts")


def run_tests(
    target: str | os.PathLike,
    *,
    params: Mapping[str, Any] | None = None,
    params_file: str | None = None,
    assignments: list[str] | None = None,
    junit: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    artifacts: str | os.PathLike | None = None,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    metric_names: list[str] | None = None,
    progress: Callable | None = None,
) -> TestReport:
    """Run ``target`` (a notebook or converted pipeline folder) as a test.

    ``store=None``: a fresh temporary store, removed afterwards (every stage
    really runs). ``artifacts``: where the executed stage notebooks are
    copied (default: ``<junit stem>-artifacts/`` beside ``junit``; none are
    kept when neither is given). Bad input (missing notebook, graph errors,
    unknown or mistyped parameters) raises an ``NbopsError`` before anything
    runs. A failing stage or check is in the report, never raised.
    """
    if not Path(target).exists():
        raise UsageError(f"{target} not found", "pass a notebook (.ipynb) or a folder made by 'nbops convert'")
    if params_file and not Path(params_file).is_file():
        raise UsageError(f"parameters file {params_file} not found", "check the -f path")
    temporary = store is None
    store_dir = Path(tempfile.mkdtemp(prefix="nbops-test-")) if temporary else Path(store)
    try:
        prep = api.prepare(target, store_dir)
        run = api.run(
            target, params, params_file=params_file, assignments=assignments, executor=executor, jobs=jobs,
            address=address, metric_names=metric_names, progress=progress, context=api.RunContext(prepared=prep),
        )  # fmt: skip
        pipeline = prep.spec.name
        art_dir = Path(artifacts) if artifacts else (default_artifacts_dir(junit) if junit else None)
        notebooks = _copy_notebooks(run, store_dir, art_dir) if art_dir else {}
        ref_base = Path(junit).resolve().parent if junit else None
        cases = build_cases(pipeline, run, {k: _relative(v, ref_base) for k, v in notebooks.items()})
        report = TestReport(
            pipeline=pipeline, notebook=prep.notebook, run=run, cases=cases,
            store=None if temporary else str(Path(store_dir).resolve()),
            artifacts_dir=str(art_dir.resolve()) if art_dir else None, notebooks=notebooks,
        )  # fmt: skip
        if art_dir:
            (art_dir / "run.json").write_text(to_json_text(run, indent=2))
        if junit:
            write_junit(report, junit)
        return report
    finally:
        if temporary:
            shutil.rmtree(store_dir, ignore_errors=True)


def _copy_notebooks(run: dict, store_dir: Path, art_dir: Path) -> dict[str, str]:
    art_dir.mkdir(parents=True, exist_ok=True)
    copied = {}
    for s in run["stages"]:
        if not s["has_notebook"]:
            continue
        src = api.stage_notebook(run["id"], s["name"], store=store_dir)
        dst = art_dir / f"{s['name']}.ipynb"
        shutil.copyfile(src, dst)
        copied[s["name"]] = str(dst.resolve())
    return copied


def _relative(path: str, base: Path | None) -> str:
    if base is None:
        return path
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return path


def _clean(text: Any) -> str:
    return _NOT_XML.sub("", _ANSI.sub("", "" if text is None else str(text)))


def _fmt(value: Any) -> str:
    """Numbers as people read them (6 digits: CI compares them); dicts and lists as JSON."""
    if isinstance(value, (dict, list)):
        return to_json_text(value, sort_keys=True)
    return format_number(value, digits=6)


def _where(error: dict) -> str:
    """``cell 5 ("x = f(y)")`` of the source notebook, when the error names one."""
    if error.get("cell") is not None:
        return cell_ref(error["cell"], error.get("first_line"))
    if error.get("generated"):
        return f'a generated cell ("{error.get("first_line", "")}")'
    return ""


def build_cases(pipeline: str, run: dict, notebooks: Mapping[str, str] | None = None) -> list[TestCase]:
    """The test cases of a run JSON: each stage, then each of its checks."""
    notebooks = notebooks or {}
    failed_stages = {s["name"] for s in run["stages"] if s["status"] == "failed"}
    cases: list[TestCase] = []
    for s in run["stages"]:
        classname = f"{pipeline}.{s['name']}"
        nb = notebooks.get(s["name"])
        out = [f"executed notebook: {nb}", f"[[ATTACHMENT|{nb}]]"] if nb else []
        case = TestCase(classname, f"stage {s['name']}", "stage", s["name"], "passed", s.get("duration_s") or 0.0, notebook=nb)
        if s["status"] == "cached":
            out.insert(0, f"reused from run {s.get('cached_from')} (cache key {str(s.get('cache_key'))[:12]})")
        elif s["status"] == "failed":
            e = s.get("error") or {}
            where = _where(e)
            case.status, case.ename = "failed", _clean(e.get("ename") or "Error")
            case.message = _clean(f"stage {s['name']} failed" + (f" at {where}" if where else "") + f": {case.ename}: {e.get('evalue', '')}")
            failed_checks = [c for c in s["checks"] if check_status(c) == "FAIL"]
            if failed_checks:
                c = failed_checks[-1]
                case.message += _clean(f" (check {c.get('name')}: observed {_fmt(c.get('observed'))}, threshold {_fmt(c.get('threshold'))})")
            case.details = _clean(e.get("traceback") or e.get("evalue") or "")
        elif s["status"] in ("skipped", "pending", "running"):
            ups = sorted(failed_stages)
            case.status = "skipped"
            case.message = f"stage {s['name']} did not run" + (f": upstream stage {', '.join(ups)} failed" if ups else f" (status {s['status']})")
        case.output = _clean("\n".join(out))
        cases.append(case)
        for c in s["checks"]:
            cases.append(_check_case(classname, s["name"], c, nb))
    return cases


def _check_case(classname: str, stage: str, record: dict, notebook: str | None) -> TestCase:
    status = check_status(record)
    observed, threshold = _fmt(record.get("observed")), _fmt(record.get("threshold"))
    case = TestCase(classname, str(record.get("name")), "check", stage, {"PASS": "passed", "WARN": "warned", "FAIL": "failed"}[status],
                    notebook=notebook)  # fmt: skip
    line = f"{status} check {record.get('name')} in stage {stage}: observed {observed}, threshold {threshold}"
    if record.get("message"):
        line += f" ({record['message']})"
    case.output = _clean(line)
    if status == "FAIL":
        case.ename = "CheckFailed"
        case.message = _clean(f"check {record.get('name')} failed in stage {stage}: observed {observed}, threshold {threshold}")
        case.details = _clean(to_json_text(record, indent=1, sort_keys=True))
    return case


def junit_xml(report: TestReport) -> str:
    """The JUnit XML text of a report (one <testsuite> for the pipeline)."""
    counts = report.counts()
    run = report.run
    suites = ET.Element("testsuites", name="nbops test", tests=str(counts["tests"]), failures=str(counts["failed"]),
                        errors="0", skipped=str(counts["skipped"]), time=f"{run.get('duration_s') or 0:.3f}")  # fmt: skip
    suite = ET.SubElement(suites, "testsuite", name=report.pipeline, tests=str(counts["tests"]), failures=str(counts["failed"]),
                          errors="0", skipped=str(counts["skipped"]), time=f"{run.get('duration_s') or 0:.3f}",
                          timestamp=str(run.get("started_at") or ""), file=os.path.basename(report.notebook))  # fmt: skip
    props = ET.SubElement(suite, "properties")
    for name, value in [("run_id", run["id"]), ("run_status", run["status"]), ("notebook", report.notebook),
                        ("store", report.store or "(temporary, removed)"), ("artifacts", report.artifacts_dir or "")]:  # fmt: skip
        ET.SubElement(props, "property", name=name, value=_clean(value))
    for k, v in sorted(run["params"].items()):
        ET.SubElement(props, "property", name=f"param.{k}", value=_clean(_fmt(v)))
    for k, v in sorted(run["metrics"].items()):
        ET.SubElement(props, "property", name=f"metric.{k}", value=_clean(_fmt(v)))
    for c in report.cases:
        tc = ET.SubElement(suite, "testcase", classname=c.classname, name=c.name, time=f"{c.time_s or 0:.3f}",
                           file=os.path.basename(report.notebook))  # fmt: skip
        if c.notebook:
            tp = ET.SubElement(tc, "properties")
            ET.SubElement(tp, "property", name="executed_notebook", value=c.notebook)
            ET.SubElement(tp, "property", name="attachment", value=c.notebook)
        if c.status == "failed":
            ET.SubElement(tc, "failure", message=c.message, type=c.ename).text = c.details or c.message
        elif c.status == "skipped":
            ET.SubElement(tc, "skipped", message=c.message)
        if c.output:
            ET.SubElement(tc, "system-out").text = c.output
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(report: TestReport, path: str | os.PathLike) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(junit_xml(report), encoding="utf-8")
    report.junit_path = str(target.resolve())
    return target
