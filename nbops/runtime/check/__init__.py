"""Data and model checks, one line each in a stage cell: ``nbops.check.no_nulls(df)``.

A check measures one thing, compares it with a threshold, and then:

- in a run (``nbops.runtime.context.current()`` is set) appends a record to the
  stage's ``checks`` records, which the driver copies into the run store;
- prints one line, e.g. ``nbops check no_nulls[age]: PASS observed 0 nulls, threshold 0``
  (in a run it lands in the executed notebook; outside one it is the whole effect);
- returns a ``CheckResult``;
- raises ``CheckFailed`` (an ``AssertionError``) when it fails, unless it was
  called with ``warn=True``: then the failure is recorded and printed only.

The record, read as-is by the run store, ``nbops runs show`` and JUnit XML output::

    {
      "name":      str,           # e.g. "no_nulls[age,income]"; the ``name=`` argument when given
      "kind":      "data" | "model",
      "stage":     str | None,    # the running stage; None outside a run
      "passed":    bool,
      "observed":  JSON value,    # a number when the check measures one number, else a
                                  # small dict (documented on each check)
      "threshold": JSON value,    # likewise
      "message":   str,           # one human line with observed and threshold
      "warn":      bool,          # the check ran in warn mode: a failure does not fail the stage
    }

Its status is ``PASS`` if ``passed``, else ``WARN`` if ``warn``, else ``FAIL``
(``check_status``); ``summarize_checks`` counts them.

Argument mistakes (an unknown column, an unfitted model) raise ``UsageError``,
not ``CheckFailed``: they are bugs in the cell, not findings about the data.
Nulls are ``no_nulls``'s business: the other data checks ignore them.

scipy and scikit-learn (``pip install 'nbops[checks]'``) are imported only by the
checks that use them, so ``import nbops`` stays quick in every stage kernel.
"""

from nbops.runtime.check.data import (
    allowed_values,
    class_balance,
    distribution_close,
    in_range,
    max_correlation,
    no_nulls,
    row_count,
    unique,
)
from nbops.runtime.check.model import better_than_baseline, metric_at_least, metric_at_most, prediction_latency
from nbops.runtime.check.result import CheckFailed, CheckResult, check_status, summarize_checks

__all__ = [
    "CheckFailed",
    "CheckResult",
    "allowed_values",
    "better_than_baseline",
    "check_status",
    "class_balance",
    "distribution_close",
    "in_range",
    "max_correlation",
    "metric_at_least",
    "metric_at_most",
    "no_nulls",
    "prediction_latency",
    "row_count",
    "summarize_checks",
    "unique",
]
