"""``nbops test``: run a pipeline headless, as CI does; JUnit XML; exit 0/1/2."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_run_options, add_store_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "test",
        help="run a pipeline as a test (CI): exit 0 only if every stage and check passed",
        description="Run the pipeline once in a fresh temporary store (unless --store), judge every stage and "
        "check, and write JUnit XML. Exit codes: 0 passed, 1 a stage or check failed, 2 bad input.",
    )
    p.add_argument("target", metavar="NOTEBOOK_OR_DIR")
    # A test runs every stage (fresh store): no --no-cache; --store has its own meaning here.
    add_run_options(p, cache=False, store=False)
    p.add_argument("--junit", metavar="XML", help="write a JUnit report here (one testcase per stage and per check)")
    p.add_argument("--artifacts", metavar="DIR", help="copy the executed stage notebooks here (default: <junit stem>-artifacts/)")
    add_store_options(
        p, store_help="run store to use and keep, e.g. for nbops report: a folder or a postgresql:// URL (default: a fresh temporary one, removed afterwards)"
    )
    return {"test": _cmd_test}


def _cmd_test(a: argparse.Namespace) -> int:
    from nbops import ci
    from nbops.cli import render

    report = ci.run_tests(
        a.target, params_file=a.params_file, assignments=a.param, junit=a.junit, store=a.store, artifacts=a.artifacts,
        executor=a.executor, jobs=a.jobs, address=a.address, metric_names=a.metric,
        progress=None if a.json else render.RunProgress(),
    )  # fmt: skip
    if a.json:
        render.print_json(report.to_json())
        return report.exit_code
    con = render.console
    from nbops.status import COLOUR

    marks = {"passed": f"[{COLOUR['succeeded']}]PASS[/]", "failed": f"[{COLOUR['failed']}]FAIL[/]",
             "skipped": f"[{COLOUR['skipped']}]SKIP[/]", "warned": f"[{COLOUR['interrupted']}]WARN[/]"}  # fmt: skip
    from rich.markup import escape

    for c in report.cases:
        label = c.name if c.kind == "stage" else f"  check {c.name}"
        con.print(f"{marks[c.status]} {escape(c.classname)}: {escape(label)}" + (f" — {escape(c.message)}" if c.message else ""))
    n = report.counts()
    summary = f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, {n['warned']} warned"
    metrics = render.pairs(report.run["metrics"])
    con.print(("[green]passed[/]" if report.passed else "[red]failed[/]") + f": {summary} · run {report.run['id']}"
              + (f" · metrics {escape(metrics)}" if metrics else ""))  # fmt: skip
    if report.junit_path:
        con.print(f"JUnit XML: {report.junit_path}")
    if report.artifacts_dir:
        con.print(f"executed notebooks: {report.artifacts_dir}")
    if report.store:
        con.print(f"HTML report: nbops report {report.run['id']} --store {report.store} -o report.html")
    else:
        # The test ran in a fresh temporary store (so every stage really ran, and nothing is left behind):
        # its run id means nothing to `nbops report` afterwards; say so and how to keep it.
        con.print(f"[dim]run {report.run['id']} was in a temporary store, now removed; "
                  "to keep it for nbops report, add --store DIR (e.g. --store .nbops-ci)[/]")  # fmt: skip
    return report.exit_code
