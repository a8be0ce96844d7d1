"""A kernel manager whose kernel is forked by a template, not launched.

jupyter_client lets a manager carry any ``KernelProvisioner``: this one writes the
connection file as the local one does, then asks the template to fork a kernel
that binds it. The kernel is the template's child, not ours, so its process is
followed by pid (``/proc``), signalled by process group (the child calls setsid),
and reaped by the template. papermill/nbclient drive the manager as any other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from nbops.execute.forkserver import TemplateUnavailable, request

__all__ = ["ForkProvisioner", "ForkedProcess"]


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid``; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return rest[0], rest[19]
    except (OSError, IndexError):
        return None


class ForkedProcess:
    """The part of ``subprocess.Popen`` that the provisioner and ``stop_kernel`` use, by pid."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        stat = _proc_stat(pid)
        self._started = stat[1] if stat else None

    def poll(self) -> int | None:
        if self.returncode is None:
            stat = _proc_stat(self.pid)
            # Gone, a zombie the template has not reaped yet, or the pid reused by another process.
            if stat is None or stat[0] in ("Z", "X") or stat[1] != self._started:
                self.returncode = -signal.SIGKILL  # the template reaped it: the real status is not ours to read
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)  # type: ignore[arg-type]
            time.sleep(0.01)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):
    """``launch_kernel`` asks the template (``template``: a handle from ``TemplateSet.get``)."""

    template: dict = {}

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        km = self.parent
        env = dict(kwargs.get("env") or os.environ)
        env.pop("JPY_PARENT_PID", None)  # the kernel's parent is the template; it watches this process itself
        cwd = str(kwargs.get("cwd") or os.getcwd())
        message = {"op": "fork", "connection_file": km.connection_file, "cwd": cwd, "env": env,
                   "log": getattr(km, "nbops_log", os.devnull), "owner": os.getpid()}  # fmt: skip
        try:
            reply = request(self.template["socket"], message, timeout=10)
        except (OSError, ValueError) as exc:
            raise TemplateUnavailable(f"template {self.template.get('id')} did not fork: {exc}", "the run falls back to the warm pool") from exc
        if "pid" not in reply:
            raise TemplateUnavailable(f"template {self.template.get('id')} refused to fork: {reply.get('error')}", "the run falls back to the warm pool")
        self.pid = self.pgid = reply["pid"]
        self.process = ForkedProcess(self.pid)
        self.cwd = cwd
        km.nbops_start = {"kernel_start": "fork", "template": self.template.get("id"), "fork_ms": reply.get("fork_ms"), "kernel_pid": self.pid}
        return self.connection_info
