"""The scheduler's idle CPU with many schedules, and file change -> run started.

    python benchmarks/bench_scheduler.py [--schedules 1000] [--seconds 20] [--changes 5]

Idle: a store with ``--schedules`` schedules (all but 10 cron, due once a year;
10 watching a file each) and one ``nbops scheduler``-equivalent process on it.
The default poll (0.5 s: 10 data triggers are looked at twice a second). After a warm-up, its CPU time (user + system, from /proc) over ``--seconds`` is
% of one core (goal <= 2%). Side by side, the same loop re-reading every schedule
on every pass (no change stamp): the alternative the stamp avoids.

Change -> run: one schedule watches ``data/in.csv`` (default debounce 1 s); the
file is rewritten ``--changes`` times, each after the previous run ended.
Reported per poll period (1 s, 0.5 s: the default ``--poll``, and 0.25 s): the firing's
``started_at`` (claimed by the scheduler) minus the file's mtime (goal <= 2 s),
and the run's start (its worker process up, the run recorded) minus the mtime.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(store: Path, *, naive: bool, poll: float) -> subprocess.Popen:
    args = [sys.executable, __file__, "--child", "naive" if naive else "ours", "--store", str(store), "--poll", str(poll)]
    return subprocess.Popen(args, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("rows = open('data/in.csv').read().count(chr(10))", metadata={"tags": ["stage:count"]})]
    path = folder / "count.ipynb"
    nbformat.write(nb, path)
    return path


def idle(n: int, seconds: float) -> dict[str, float]:
    from nbops.store import open_store
    from nbops.store.schedules import ScheduleStore

    out = {}
    with tempfile.TemporaryDirectory(prefix="nbops-bench-sched-") as tmp:
        folder = Path(tmp)
        nb = _notebook(folder)
        (folder / "data").mkdir()
        ss = ScheduleStore(open_store(str(folder / ".nbops"), None))
        t = time.perf_counter()
        for i in range(n):
            if i < 10:
                (folder / "data" / f"w{i}.csv").write_text("a\n1\n")
                trigger = {"kind": "on_change", "watch": [f"data/w{i}.csv"], "debounce": 1.0}
            else:
                trigger = {"kind": "cron", "cron": "0 3 1 1 *", "tz": "UTC"}
            ss.add(f"s{i:04d}", notebook=str(nb), trigger=trigger)
        print(f"  {n} schedules written in {time.perf_counter() - t:.1f} s")
        for naive in (False, True):
            proc = _spawn(folder / ".nbops", naive=naive, poll=0.5)
            time.sleep(8)  # imports, the first full read, the watch baselines
            c0, t0 = _cpu_s(proc.pid), time.monotonic()
            time.sleep(seconds)
            share = 100 * (_cpu_s(proc.pid) - c0) / (time.monotonic() - t0)
            _stop(proc)
            out["naive" if naive else "ours"] = share
            print(f"  {'re-read every pass' if naive else 'change stamp (nbops)':<22} {share:6.2f} % of a core")
    return out


def change_to_run(changes: int, poll: float) -> tuple[list[float], list[float]]:
    from nbops.store import open_store
    from nbops.store.schedules import ScheduleStore

    claimed, recorded = [], []
    with tempfile.TemporaryDirectory(prefix="nbops-bench-change-") as tmp:
        folder = Path(tmp)
        nb = _notebook(folder)
        (folder / "data").mkdir()
        data = folder / "data" / "in.csv"
        data.write_text("a\n0\n")
        rs = open_store(str(folder / ".nbops"), None)
        ss = ScheduleStore(rs)
        ss.add("watch", notebook=str(nb), trigger={"kind": "on_change", "watch": ["data/in.csv"], "debounce": 1.0})
        proc = _spawn(folder / ".nbops", naive=False, poll=poll)
        try:
            _until(lambda: (ss.get("watch")["state"] or {}).get("baseline"), 60)
            for i in range(changes):
                data.write_text("a\n" + "\n".join(str(j) for j in range(i + 2)) + "\n")
                written = data.stat().st_mtime
                f = _until(lambda w=written: next((f for f in ss.firings("watch", limit=None) if f["created_at"] >= w - 0.5 and f.get("started_at")), None), 60)
                f = _until(lambda k=f["key"]: (g := ss.firing("watch", k))["status"] in ("succeeded", "failed") and g, 120)
                claimed.append(f["started_at"] - written)
                recorded.append(rs.get_run(f["run_id"])["started_at"] - written)
                time.sleep(0.5)
        finally:
            _stop(proc)
    return claimed, recorded


def _until(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.02)
    raise SystemExit("timed out: the scheduler did not react")


def child(store: str, naive: bool, poll: float) -> int:
    from nbops.automate.scheduler import Scheduler

    class Rereading(Scheduler):
        def _reload(self) -> None:
            self._stamp = None  # forget the stamp: every pass reads every schedule
            super()._reload()

    return (Rereading if naive else Scheduler)(store, tick_s=poll).serve_forever(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--child", choices=["ours", "naive"], help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        sys.exit(child(a.store, a.child == "naive", a.poll))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared with other work: numbers are upper bounds)")
    print(f"idle CPU of one scheduler with {a.schedules} schedules, over {a.seconds:g} s:")
    cpu = idle(a.schedules, a.seconds)
    ratio = cpu["naive"] / cpu["ours"] if cpu["ours"] > 0 else float("inf")
    print(f"  goal <= 2 %: {'met' if cpu['ours'] <= 2 else 'NOT met'}; re-reading costs {ratio:.1f}x")
    for poll in (1.0, 0.5, 0.25):
        claimed, recorded = change_to_run(a.changes, poll)
        print(f"file change -> run started, poll {poll:g} s, debounce 1 s ({a.changes} changes):")
        print(f"  firing claimed: median {statistics.median(claimed):.2f} s, max {max(claimed):.2f} s (goal <= 2 s)")
        print(f"  run recorded:   median {statistics.median(recorded):.2f} s, max {max(recorded):.2f} s (worker process start included)")


if __name__ == "__main__":
    main()
