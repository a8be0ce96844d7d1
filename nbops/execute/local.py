"""The local executor: the embedded default. Threads drive warm kernels."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from nbops.execute.base import Executor, StageOutcome, StageTask
from nbops.execute.kernels import KernelPool, shutdown_kernel
from nbops.execute.provenance import detect_gpus
from nbops.execute.stage_runner import run_stage

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

    def __init__(self, jobs: int | None = None, kernel_name: str = "python3", cwd: str = ".", gpus: list[str] | None = None, **_: Any):
        self.jobs = max(1, jobs or min(4, os.cpu_count() or 1))
        self.kernel_name, self.cwd = kernel_name, os.path.abspath(cwd)
        self._threads = ThreadPoolExecutor(self.jobs, thread_name_prefix="nbops-stage")
        self._gpus = _GpuSlots(detect_gpus() if gpus is None else gpus)
        self._pool: KernelPool | None = None
        self._running: dict[str, Any] = {}
        self._lock = threading.Lock()

    def warm_up(self, expected: int | None = None) -> None:
        """Start kernels now, while the driver still plans (called by the scheduler).
        ``expected``: how many stages will likely run, so no kernel is warmed for nothing."""
        if self._pool is None:
            self._pool = KernelPool(self.kernel_name, self.cwd, size=self.jobs, budget=expected)
        elif expected:
            self._pool.expect(expected)

    def submit(self, task: StageTask) -> Future:
        return self._threads.submit(self._run, task)

    def _run(self, task: StageTask) -> StageOutcome:
        gpu_ids = self._gpus.acquire(task.gpus)
        try:
            km = None
            if task.kernel_name == self.kernel_name and os.path.abspath(task.cwd) == self.cwd:
                self.warm_up()
                km = self._pool.take()  # type: ignore[union-attr]
                with self._lock:
                    self._running[task.stage] = km
            outcome = run_stage(task, km, gpu_ids)
            outcome.worker["executor"] = "local"
            return outcome
        finally:
            with self._lock:
                self._running.pop(task.stage, None)
            self._gpus.release(gpu_ids)

    def cancel_all(self) -> None:
        with self._lock:
            kms = list(self._running.values())
        for km in kms:
            shutdown_kernel(km)

    def close(self) -> None:
        self.cancel_all()
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._pool.close()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "jobs": self.jobs, "gpus": self._gpus.total}
