"""A pool of warm Jupyter kernels, so a stage never waits for one to start.

A kernel is started (and has imported the marshalling runtime, numpy and
pandas) in the background while earlier stages run; a stage takes a ready
kernel, uses it once, and it is shut down: kernels are never reused across
stages, so no state leaks from one stage into another. Kernels talk over
IPC sockets in a private temp folder (``tempdirs``), not TCP; their connection
files and logs sit there too, so nothing is left behind when the folder goes.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from nbops.execute.tempdirs import new_dir

__all__ = ["KernelPool", "start_kernel", "shutdown_kernel", "stop_kernel", "WARMUP_CODE"]

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
    kernel_name: str,
    cwd: str,
    env: dict[str, str] | None = None,
    sockets: str | None = None,
    warm: bool = True,
    timeout: float = 60,
    launched: Callable[[AsyncKernelManager], None] | None = None,
    template: dict | None = None,
) -> AsyncKernelManager:
    """Start a kernel in ``cwd`` and wait until it answers (and has warmed up).
    ``launched`` is told the manager as soon as the process exists, so a Ctrl-C
    meanwhile can kill a kernel that is still starting. ``template``: a handle from
    ``forkserver.TemplateSet.get``: the kernel is forked from it (already warm), not launched."""
    t0 = time.perf_counter()
    own = sockets is None
    sockets = sockets or new_dir("nbops-k")
    key = uuid.uuid4().hex[:8]
    # The connection file beside the sockets, not in Jupyter's runtime folder: it goes with them.
    km = AsyncKernelManager(
        kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, key), connection_file=os.path.join(sockets, f"kernel-{key}.json")
    )
    if own:
        km.nbops_own_dir = sockets  # type: ignore[attr-defined]
    _track_clients(km)
    km.nbops_start = {"kernel_start": "launch"}  # type: ignore[attr-defined]
    if template is not None:
        from nbops.execute.forkserver_kernel import ForkProvisioner

        km.kernel_id = uuid.uuid4().hex
        km.provisioner = ForkProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        km.provisioner.template = template
        warm = False  # the template imported all of WARMUP_CODE and more
    kernel_env = dict(os.environ if env is None else env)
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # The kernel process's own stdout/stderr (not cell output, which travels
    # over the protocol) go to a log: crash messages are read back when a
    # kernel dies, and orphaned kernels don't write on the user's terminal.
    km.nbops_log = os.path.join(sockets, f"kernel-{key}.log")  # type: ignore[attr-defined]
    log = open(km.nbops_log, "wb")  # type: ignore[attr-defined]
    try:
        run_sync(km.start_kernel)(cwd=cwd, env=kernel_env, stdout=log, stderr=log)
    finally:
        log.close()
    if launched is not None:
        launched(km)
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        if warm:
            kc.execute_interactive(WARMUP_CODE, timeout=timeout, output_hook=lambda msg: None)
    finally:
        kc.stop_channels()
    km.nbops_start["ready_ms"] = round((time.perf_counter() - t0) * 1000, 1)  # type: ignore[attr-defined]
    return km


def _track_clients(km: AsyncKernelManager) -> None:
    """Remember every client made from ``km``, so shutdown stops their channels.

    papermill (nbclient) given a kernel it does not own never stops the client it
    made, and that client's heartbeat thread and sockets outlive the kernel: a
    long-lived process (the server, a sweep) ran out of zmq sockets after ~100 stages."""
    made: list = []
    original = km.client

    def client(**kwargs):
        kc = original(**kwargs)
        made.append(kc)
        return kc

    km.client = client  # type: ignore[method-assign]
    km.nbops_clients = made  # type: ignore[attr-defined]


def shutdown_kernel(km: AsyncKernelManager) -> None:
    for kc in getattr(km, "nbops_clients", ()):
        try:
            kc.stop_channels()
        except Exception:  # noqa: BLE001 - a client half set up: nothing of it to stop
            pass
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception as exc:  # already dead, or its manager is: either way the kernel is gone
        km.nbops_shutdown_error = exc  # type: ignore[attr-defined]
    own = getattr(km, "nbops_own_dir", None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


def stop_kernel(km: AsyncKernelManager, grace: float = 0.3) -> None:
    """Ctrl-C: interrupt the kernel (the cell sees KeyboardInterrupt), then kill it.

    Signals go straight to the kernel's process group, from any thread, without
    the manager's event loop, which the stage thread may be using right now;
    the stage thread then sees a dead kernel and ends. ``grace=0``: just kill."""
    provisioner = getattr(km, "provisioner", None)
    pgid = getattr(provisioner, "pgid", None)
    if not pgid or pgid == os.getpgrp():
        return  # not launched yet (whoever launches it sees the pool closed), or not in a group of its own
    try:
        if grace:
            os.killpg(pgid, signal.SIGINT)
            time.sleep(grace)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # gone already
        return
    process = getattr(provisioner, "process", None)
    if process is not None:
        try:
            process.wait(timeout=1)  # reap it: no zombie in a long-lived process (a sweep, the server)
        except subprocess.TimeoutExpired:  # stuck in the kernel (D state): it dies when it wakes
            pass


class KernelPool:
    """Keeps ``size`` kernels started for one (kernel name, cwd)."""

    def __init__(self, kernel_name: str, cwd: str, size: int, env: dict[str, str] | None = None, budget: int | None = None, template: dict | None = None):
        """``template``: fork the kernels from it (``forkserver``) instead of launching them. ``budget``: how many kernels the caller expects to use in all. On two cores a
        kernel warmed for nobody costs the running stage a second of CPU, so the pool
        starts no more than that (a ``take`` past it still gets a kernel, started then)."""
        self.kernel_name, self.cwd, self.env = kernel_name, cwd, env
        self.budget, self.template = budget, template
        self._spawned = 0
        self.size = max(0, size if budget is None else min(size, budget))
        self.sockets = new_dir("nbops-k")
        self._ready: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._starting = 0
        self._launched: list[AsyncKernelManager] = []  # started, not yet handed out
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
            km = start_kernel(self.kernel_name, self.cwd, self.env, self.sockets, launched=self._track, template=self.template)
        except Exception as exc:  # surfaced to whoever takes this slot
            km = exc
        with self._lock:
            self._starting -= 1
            closed = self._closed
        if closed and not isinstance(km, Exception):
            shutdown_kernel(km)
        else:
            self._ready.put(km)

    def _track(self, km: AsyncKernelManager) -> None:
        with self._lock:
            self._launched.append(km)
            closed = self._closed
        if closed:  # closed while this one launched
            stop_kernel(km, grace=0)

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
            with self._lock:
                if km in self._launched:
                    self._launched.remove(km)
            if run_sync(km.is_alive)():
                return km
            shutdown_kernel(km)  # died while waiting: take the next one

    def close(self) -> None:
        """Kill every kernel not handed out, warm or still starting, and remove the sockets.
        Killed, not asked to shut down: nobody will use them, and it is instant."""
        with self._lock:
            self._closed = True
            kms, self._launched = self._launched, []
        for km in kms:
            stop_kernel(km, grace=0)
        shutil.rmtree(self.sockets, ignore_errors=True)
