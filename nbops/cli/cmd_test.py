"""``nbops test``: run a pipeline headless, as CI does; JUnit XML; exit 0/1/2."""

from __future__ import annotations

import argparse
import os
from typing import Callable

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "test",
        help="run a pipeline as a test (CI): exit 0 only if every stage and check passed",
        description="Run the pipeline once in a fresh temporary store (unless --store), judge every stage and "
        "check, and write JUnit XML. Exit codes: 0 passed, 1 a stage or check failed, 2 bad input.",
    )
    p.add_argument("target", metavar="NOTEBOOK_OR_DIR")
    p.add_argument("-f", "--params-file", metavar="YAML", help="parameters from a YAML file (e.g. ci-params.yaml)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="set a parameter (repeatable)")
    p.add_argument("--junit", metavar="XML", help="write a JUnit report here (one testcase per stage and per check)")
    p.add_argument("--artifacts", metavar="DIR", help="copy the executed stage notebooks here (default: <junit stem>-artifacts/)")
    p.add_argument("--store", help="run store to use and keep (default: a fresh temporary one, removed afterwards)")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--address", help="Ray cluster address (or RAY_ADDRESS)")
    p.add_argument("--jobs", type=int, help="stages run in parallel (local executor)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME", help="record a scalar variable as a metric")
    p.add_argument("--json", action="store_true", help="print the test report as JSON")
    return {"test": _cmd_test}


def _cmd_test(a: argparse.Namespace) -> int:
    from nbops import ci
    from nbops.cli import render

    report = ci.run_tests(
        a.target, params_file=a.params_file, assignments=a.param, junit=a.junit, store=a.store, artifacts=a.artifacts,
        executor=a.executor, jobs=a.jobs, address=a.address or os.environ.get("RAY_ADDRESS"), metric_names=a.metric,
        progress=None if a.json else render.RunProgress(),
    )  # fmt: skip
    if a.json:
        render.print_json(report.to_json())
        return report.exit_code
    con = render.console
    marks = {"passed": "[green]PASS[/]", "failed": "[red]FAIL[/]", "skipped": "[dim]SKIP[/]", "warned": "[yellow]WARN[/]"}
    from rich.markup import escape

    for c in report.cases:
        label = c.name if c.kind == "stage" else f"  check {c.name}"
        con.print(f"{marks[c.status]} {escape(c.classname)}: {escape(label)}" + (f" — {escape(c.message)}" if c.message else ""))
    n = report.counts()
    summary = f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, {n['warned']} warned"
    con.print(("[green]passed[/]" if report.passed else "[red]failed[/]") + f": {summary} · run {report.run['id']}"
              + (" · metrics " + " ".join(f"{k}={render._fmt(v)}" for k, v in report.run["metrics"].items()) if report.run["metrics"] else ""))  # fmt: skip
    if report.junit_path:
        con.print(f"JUnit XML: {report.junit_path}")
    if report.artifacts_dir:
        con.print(f"executed notebooks: {report.artifacts_dir}")
    if report.store:
        con.print(f"HTML report: nbops report {report.run['id']} --store {report.store} -o report.html")
    return report.exit_code
