"""The local executor: the embedded default. Threads drive warm kernels.

Kernels are forked from a warm template (``forkserver``: the imports done once,
a fork per stage) where that is safe, else taken from a pool of launched
kernels; each stage's ``worker`` record says which (``kernel_start``: "fork"
with the template and the fork time, or "pool" with the reason).

Stage threads are daemon threads, not a ``ThreadPoolExecutor``'s: Python joins
those at exit, so a Ctrl-C would wait for a stage thread stuck in a kernel call
(up to its 60 s timeout). On Ctrl-C the driver calls ``cancel_all``: every
running kernel is interrupted, then killed, and its stage thread ends.
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.execute import forkserver
from nbops.execute.base import Executor, StageOutcome, StageTask
from nbops.execute.kernels import KernelPool, start_kernel, stop_kernel
from nbops.execute.provenance import detect_gpus
from nbops.execute.stage_runner import run_stage
from nbops.status import RUNNING

__all__ = ["LocalExecutor"]


class _GpuSlots:
    """Hands out distinct GPU ids; a stage waits until enough are free."""

    def __init__(self, ids: list[str]):
        self.free = list(ids)
        self.total = len(ids)
        self.cond = threading.Condition()

    def acquire(self, n: int) -> list[str]:
        if n <= 0 or self.total == 0:
            return []
        n = min(n, self.total)  # more than the machine has: give it all of them
        with self.cond:
            self.cond.wait_for(lambda: len(self.free) >= n)
            taken, self.free = self.free[:n], self.free[n:]
            return taken

    def release(self, ids: list[str]) -> None:
        with self.cond:
            self.free.extend(ids)
            self.cond.notify_all()


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, jobs: int | None = None, kernel_name: str = "python3", cwd: str = ".", gpus: list[str] | None = None, store: Any = None, **_: Any):
        self.jobs = max(1, jobs or min(4, os.cpu_count() or 1))
        self.kernel_name, self.cwd = kernel_name, os.path.abspath(cwd)
        self._slots = threading.BoundedSemaphore(self.jobs)
        self._gpus = _GpuSlots(detect_gpus() if gpus is None else gpus)
        self._pools: dict[str, KernelPool] = {}  # "pool", or a template id -> its forked kernels
        self._budget: int | None = None
        self._fork_reason: str | None = None  # None: not decided yet; "": fork is possible
        self._plans: dict[str, tuple[dict | None, str | None]] = {}  # stage notebooks folder -> (template handle, why none)
        self._plan_lock = threading.Lock()
        self._running: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        if store is not None:
            remove_dead_artifacts(store)

    def warm_up(self, expected: int | None = None, folder: str | None = None) -> None:
        """Start kernels now, while the driver still plans (called by the scheduler).
        ``expected``: how many stages will likely run, so no kernel is warmed for nothing.
        ``folder``: the stage notebooks, whose imports choose the template; without it
        the template is found when the first stage asks (the notebooks are in its task)."""
        with self._lock:
            if expected:
                self._budget = (self._budget or 0) + expected
            pools = list(self._pools.values())
        for pool in pools:
            if expected:
                pool.expect(expected)
        if self._fork_reason is None:
            self._fork_reason = forkserver.fork_unavailable(self.kernel_name) or ""
        if self._fork_reason:
            self._pool_for("pool", None)
        elif folder:
            threading.Thread(target=self._plan, args=(str(folder),), daemon=True, name="nbops-template").start()

    def _pool_for(self, key: str, template: dict | None) -> KernelPool:
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = KernelPool(self.kernel_name, self.cwd, size=self.jobs, budget=self._budget, template=template)
            return pool

    def _plan(self, folder: str) -> tuple[dict | None, str | None]:
        """The template to fork this folder's stages from (asked once per folder), or why none."""
        with self._plan_lock:
            if folder not in self._plans:
                spec, reason = forkserver.plan(self.kernel_name, folder, self.cwd)
                handle = None
                if spec is not None:
                    try:
                        handle = forkserver.templates().get(spec)
                    except Exception as exc:  # noqa: BLE001 - any failure to get a template means: the pool, and say why
                        reason = getattr(exc, "message", None) or str(exc)
                self._plans[folder] = (handle, reason)
            return self._plans[folder]

    def _take(self, task: StageTask) -> Any:
        """A kernel for ``task``: forked from its template, or from the pool (with the reason)."""
        if self._fork_reason is None:
            self._fork_reason = forkserver.fork_unavailable(self.kernel_name) or ""
        reason = self._fork_reason
        if not reason:
            folder = os.path.dirname(os.path.abspath(task.notebook))
            for again in (False, True):
                handle, reason = self._plan(folder)
                if handle is None:
                    break
                try:
                    km = self._pool_for(handle["id"], handle).take()
                    self._register(task.stage, km)
                    return km
                except forkserver.TemplateUnavailable as exc:
                    # The template died (killed, its daemon stopped): ask once more, which makes
                    # it again; failing twice, this run goes on with the pool and says why.
                    reason = exc.message
                    with self._lock:
                        dead = self._pools.pop(handle["id"], None)
                    if dead is not None:
                        dead.close()
                    with self._plan_lock:
                        if again:
                            self._plans[folder] = (None, reason)
                        else:
                            self._plans.pop(folder, None)
        km = self._pool_for("pool", None).take()
        km.nbops_start.update(kernel_start="pool", reason=reason)
        self._register(task.stage, km)
        return km

    def submit(self, task: StageTask) -> Future:
        future: Future = Future()
        threading.Thread(target=self._drive, args=(task, future), daemon=True, name=f"nbops-stage-{task.stage}").start()
        return future

    def _drive(self, task: StageTask, future: Future) -> None:
        with self._slots:  # at most ``jobs`` stages at once
            if self._closed:  # cancelled (Ctrl-C) while this stage waited for a slot
                future.cancel()
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._run(task))
            except BaseException as exc:  # the scheduler records it as a broken executor
                future.set_exception(exc)

    def _register(self, stage: str, km: Any) -> None:
        with self._lock:
            self._running[stage] = km
            closed = self._closed
        if closed:  # cancelled while this kernel started
            stop_kernel(km, grace=0)

    def _run(self, task: StageTask) -> StageOutcome:
        gpu_ids = self._gpus.acquire(task.gpus)
        try:
            if task.kernel_name == self.kernel_name and os.path.abspath(task.cwd) == self.cwd:
                km = self._take(task)
            else:
                km = start_kernel(task.kernel_name, task.cwd, warm=False, launched=lambda k: self._register(task.stage, k))
                km.nbops_start.update(reason="another kernel or folder than the run's")
            outcome = run_stage(task, km, gpu_ids)
            outcome.worker["executor"] = "local"
            outcome.worker.update(getattr(km, "nbops_start", {}))
            return outcome
        finally:
            with self._lock:
                self._running.pop(task.stage, None)
            self._gpus.release(gpu_ids)

    def cancel_all(self) -> None:
        """Ctrl-C: no new stage starts; each running kernel is interrupted, then killed (together)."""
        with self._lock:
            self._closed = True
            kms = list(self._running.values())
        stoppers = [threading.Thread(target=stop_kernel, args=(km,), daemon=True) for km in kms]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=3)
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def close(self) -> None:
        self.cancel_all()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "jobs": self.jobs, "gpus": self._gpus.total}


def remove_dead_artifacts(store: Any) -> list[Path]:
    """``runs/<id>/artifacts/`` (and ``notebooks/``) of runs that ended without cleaning up (a killed nbops).

    A finished run removes its own (every artifact is in ``objects/``); one still
    there belongs to a running run, or to a dead one, which the store marks
    interrupted when asked."""
    runs = Path(store.root) / "runs"
    try:
        candidates = [d for d in runs.iterdir() if (d / "artifacts").is_dir()]
    except OSError:  # no runs yet
        return []
    removed = []
    for run_dir in candidates:
        try:
            status = store.get_run(run_dir.name)["status"]
        except NbopsError:  # a folder without a run: a run killed before it was recorded
            status = None
        if status != RUNNING:
            shutil.rmtree(run_dir / "artifacts", ignore_errors=True)
            removed.append(run_dir / "artifacts")
            # The notebook of the stage that was running when nbops died is partial and
            # unscrubbed (secrets); the finished ones are objects, made again on demand.
            shutil.rmtree(run_dir / "notebooks", ignore_errors=True)
    return removed
