"""Benchmark: a 20-trial nbops sweep against a loop of plain papermill runs.

    python benchmarks/bench_sweep.py [--trials 20] [--parallel 2] [--no-papermill]

The notebook (``benchmarks/notebooks/sweep_bench.ipynb``) has a ``prepare``
stage doing ~2-3 s of numpy feature work and a fast ``train`` stage that
reads only the swept ``alpha``. ``nbops sweep`` (a fresh temporary store)
runs ``prepare`` once and reuses it in every later trial, and keeps a warm
kernel ready for the next trial's ``train``. The baseline runs the whole
source notebook with ``papermill.execute_notebook`` once per trial, with the
same ``alpha`` values the sweep tried (its trials' parameters), in order.
Both sides are timed end to end (kernel starts included); the sweep's
kernels come from a template forked per stage (issue 15), the loop pays
papermill's kernel start and imports every trial. Goal: the sequential sweep
at least 10x faster than the papermill loop.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nbops import sweep  # noqa: E402

NOTEBOOK = ROOT / "benchmarks" / "notebooks" / "sweep_bench.ipynb"
GOAL_RATIO = 10.0


def time_sweep(trials: int, parallel: int, seed: int) -> tuple[float, list[float], dict]:
    store = Path(tempfile.mkdtemp(prefix="nbops-bench-"))
    try:
        start = time.perf_counter()
        out = sweep.run_sweep(NOTEBOOK, space=["alpha=loguniform(1e-3,1e2)"], objectives=["val_mse:min"], trials=trials,
                              parallel=parallel, study="bench", store=store, seed=seed)  # fmt: skip
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(store, ignore_errors=True)
    failed = [t for t in out["trials"] if t["state"] != "COMPLETE"]
    if failed:
        raise SystemExit(f"{len(failed)} sweep trials failed: {failed[0]['error']}")
    alphas = [t["params"]["alpha"] for t in sorted(out["trials"], key=lambda t: t["number"])]
    return seconds, alphas, out


def time_papermill(alphas: list[float]) -> tuple[float, list[float]]:
    import papermill as pm

    out_dir = Path(tempfile.mkdtemp(prefix="nbops-bench-pm-"))
    try:
        start = time.perf_counter()
        for i, alpha in enumerate(alphas):
            pm.execute_notebook(str(NOTEBOOK), str(out_dir / f"trial-{i}.ipynb"), parameters={"alpha": alpha},
                                progress_bar=False, log_output=False, cwd=str(NOTEBOOK.parent))  # fmt: skip
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return seconds, alphas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="also time the sweep with this many trials at once (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-papermill", action="store_true", help="skip the baseline")
    a = parser.parse_args()

    print(f"timing nbops sweep, {a.trials} trials, 1 at a time...", file=sys.stderr)
    seq_s, alphas, out = time_sweep(a.trials, 1, a.seed)
    cache = out["session"]["cache"]["prepare"]
    rows = [(f"nbops sweep, {a.trials} trials, sequential", seq_s)]
    if a.parallel > 1:
        print(f"timing nbops sweep, {a.trials} trials, {a.parallel} at a time...", file=sys.stderr)
        par_s, _, _ = time_sweep(a.trials, a.parallel, a.seed)
        rows.append((f"nbops sweep, {a.trials} trials, --parallel {a.parallel}", par_s))
    pm_s = None
    if not a.no_papermill:
        print(f"timing {a.trials} papermill runs of the whole notebook (same alphas)...", file=sys.stderr)
        pm_s, _ = time_papermill(alphas)
        rows.append((f"papermill loop, {a.trials} runs", pm_s))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'seconds':>8}  {'per trial':>9}  {'papermill / this':>16}")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 9}  {'-' * 16}")
    for name, seconds in rows:
        ratio = f"{pm_s / seconds:.1f}x" if pm_s else "-"
        print(f"{name:<{width}}  {seconds:>8.1f}  {seconds / a.trials:>9.2f}  {ratio:>16}")
    print(f"\nprepare stage: ran {cache['ran']}x, reused {cache['cached']}x in the sequential sweep")
    if pm_s:
        ratio = pm_s / seq_s
        print(f"goal: sequential sweep >= {GOAL_RATIO:.0f}x faster than the papermill loop: {'met' if ratio >= GOAL_RATIO else 'MISSED'} ({ratio:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
