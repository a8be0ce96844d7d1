"""A pool of warm Jupyter kernels, so a stage never waits for one to start.

A kernel is started (and has imported the marshalling runtime, numpy and
pandas) in the background while earlier stages run; a stage takes a ready
kernel, uses it once, and it is shut down: kernels are never reused across
stages, so no state leaks from one stage into another. Kernels talk over
IPC sockets in a private temp folder, not TCP.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import uuid
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

__all__ = ["KernelPool", "start_kernel", "shutdown_kernel", "WARMUP_CODE"]

WARMUP_CODE = """
import nbops.runtime.marshal
for _m in ("numpy", "pandas", "pyarrow.feather"):
    try:
        __import__(_m)
    except ImportError:  # not installed: the stage imports what it needs itself
        pass
del _m
"""


def start_kernel(
    kernel_name: str, cwd: str, env: dict[str, str] | None = None, sockets: str | None = None, warm: bool = True, timeout: float = 60
) -> AsyncKernelManager:
    """Start a kernel in ``cwd`` and wait until it answers (and has warmed up)."""
    sockets = sockets or tempfile.mkdtemp(prefix="nbops-k")
    km = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, uuid.uuid4().hex[:8]))
    kernel_env = dict(os.environ if env is None else env)
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # The kernel process's own stdout/stderr (not cell output, which travels
    # over the protocol) go to a log: crash messages are read back when a
    # kernel dies, and orphaned kernels don't write on the user's terminal.
    km.nbops_log = os.path.join(sockets, f"kernel-{uuid.uuid4().hex[:8]}.log")  # type: ignore[attr-defined]
    log = open(km.nbops_log, "wb")  # type: ignore[attr-defined]
    try:
        run_sync(km.start_kernel)(cwd=cwd, env=kernel_env, stdout=log, stderr=log)
    finally:
        log.close()
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        if warm:
            kc.execute_interactive(WARMUP_CODE, timeout=timeout, output_hook=lambda msg: None)
    finally:
        kc.stop_channels()
    return km


def shutdown_kernel(km: AsyncKernelManager) -> None:
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception as exc:  # already dead, or its manager is: either way the kernel is gone
        km.nbops_shutdown_error = exc  # type: ignore[attr-defined]


class KernelPool:
    """Keeps ``size`` kernels started for one (kernel name, cwd)."""

    def __init__(self, kernel_name: str, cwd: str, size: int, env: dict[str, str] | None = None, budget: int | None = None):
        """``budget``: how many kernels the caller expects to use in all. On two cores a
        kernel warmed for nobody costs the running stage a second of CPU, so the pool
        starts no more than that (a ``take`` past it still gets a kernel, started then)."""
        self.kernel_name, self.cwd, self.env = kernel_name, cwd, env
        self.budget = budget
        self._spawned = 0
        self.size = max(0, size if budget is None else min(size, budget))
        self.sockets = tempfile.mkdtemp(prefix="nbops-k")
        self._ready: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._starting = 0
        for _ in range(self.size):
            self._spawn()

    def expect(self, more: int) -> None:
        """Another run on this pool (a sweep keeps one executor): raise the budget, refill."""
        with self._lock:
            if self.budget is None:
                return
            self.budget += more
            missing = min(self.size, self.budget - self._spawned) - (self._ready.qsize() + self._starting)
        for _ in range(max(0, missing)):
            self._spawn()

    def _spawn(self, force: bool = False) -> None:
        with self._lock:
            if self._closed or (not force and self.budget is not None and self._spawned >= self.budget):
                return
            self._starting += 1
            self._spawned += 1
        threading.Thread(target=self._start_one, daemon=True, name="nbops-kernel-start").start()

    def _start_one(self) -> None:
        try:
            km = start_kernel(self.kernel_name, self.cwd, self.env, self.sockets)
        except Exception as exc:  # surfaced to whoever takes this slot
            km = exc
        with self._lock:
            self._starting -= 1
            closed = self._closed
        if closed and not isinstance(km, Exception):
            shutdown_kernel(km)
        else:
            self._ready.put(km)

    def take(self, timeout: float = 120) -> AsyncKernelManager:
        """A ready kernel; a replacement starts in the background at once (within the budget)."""
        with self._lock:
            starved = self._ready.empty() and self._starting == 0
        if starved:
            self._spawn(force=True)  # past the budget (a retry, say): start one for this caller
        self._spawn()
        while True:
            km = self._ready.get(timeout=timeout)
            if isinstance(km, Exception):
                raise km
            if run_sync(km.is_alive)():
                return km
            shutdown_kernel(km)  # died while waiting: take the next one

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                km = self._ready.get_nowait()
            except queue.Empty:
                break
            if not isinstance(km, Exception):
                threading.Thread(target=shutdown_kernel, args=(km,), daemon=True).start()
        shutil.rmtree(self.sockets, ignore_errors=True) if self._starting == 0 else None
