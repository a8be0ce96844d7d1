"""Warm templates that fork a fresh kernel per stage in milliseconds.

A template (``forkserver_child``) is a process of the kernel's interpreter that
has imported ipykernel and what the notebook imports; asked over a Unix socket,
it forks a kernel that binds its connection file's sockets and runs IPKernelApp.
Each stage is still its own process: nothing of one stage reaches the next.

One template per ``TemplateSpec``: interpreter, import set, the environment
variables imports read, and a stamp of what is installed (``env_hash``). A spec
whose stamp changed replaces its template (a package was installed): the old
imports are stale. Templates live in a ``TemplateSet`` owned by one process: the
``nbops daemon`` for the CLI (``daemon.py``), the Jupyter server, the kernel
running ``%nbops run``, or any other process using ``nbops.api.run``.

Where fork is not safe (not Linux, a kernel that is not ipykernel, an import
that starts threads or initializes CUDA, ``NBOPS_FORK=0``) ``plan`` gives the
reason and the executor uses the warm pool instead, and says so in the run.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.execute.forkserver_plan import TemplateSpec, fork_unavailable, kernel_python, notebook_imports, plan

__all__ = [
    "TemplateSpec", "TemplateSet", "TemplateUnavailable", "plan", "fork_unavailable", "kernel_python", "request", "notebook_imports",
    "own_templates", "use_daemon", "in_cli", "templates",
]  # fmt: skip

CHILD = Path(__file__).with_name("forkserver_child.py")
# Load the child by path: ``-m nbops.execute...`` would import nbops.execute (the scheduler, the store) into every kernel.
LOADER = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('nbops_template', sys.argv[1]); m = u.module_from_spec(s); "
    "s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))"
)


class TemplateUnavailable(NbopsError):
    """No template for this run: the executor falls back to the warm pool."""


# -- talking -------------------------------------------------------------------


def request(path: str, message: dict, timeout: float = 10) -> dict:
    """One JSON line to a Unix socket, one back. OSError when nobody answers in ``timeout``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(message).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise ConnectionError(f"{path}: closed without an answer")
    return json.loads(buf)


# -- owning --------------------------------------------------------------------


class Template:
    """One template process, owned (and killed) by this process."""

    def __init__(self, spec: TemplateSpec, root: Path, env: dict[str, str]):
        self.spec, self.id = spec, spec.id
        # A folder per process, not per spec: a replaced template's cleanup must not remove its successor's socket.
        # A Unix socket's path holds at most 107 bytes: a deep root (a test's folder) gives way to the temp folder.
        self.dir = Path(tempfile.mkdtemp(prefix=f"{spec.id[:8]}-", dir=root if len(str(root)) < 80 else None))
        self.socket = str(self.dir / "t.sock")
        self.log = str(self.dir / "template.log")
        self.created = self.last_used = time.time()
        self.info: dict[str, Any] | None = None
        self.error: str | None = None
        self._ready = threading.Event()
        self._reading = threading.Lock()
        full = {**env, **dict(spec.env)}
        full.pop("JPY_PARENT_PID", None)
        full.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # as kernels.start_kernel: debugpy's import warns otherwise
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [spec.python, "-c", LOADER, str(CHILD), self.socket, *spec.imports],
                cwd=self.dir, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> dict:
        with self._reading:  # two runs asking at once: one reads the ready line, the other waits for it
            if not self._ready.is_set():
                self._read_ready(timeout)
        if self.error:
            raise TemplateUnavailable(f"template {self.id}: {self.error}", "the run uses the warm kernel pool instead")
        return self.info  # type: ignore[return-value]

    def _read_ready(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.error = f"not ready after {timeout:g} s"
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            line += chunk
        try:
            self.info = json.loads(line) if line.strip() else None
        except ValueError:
            self.info = None
        if self.info is None and not self.error:
            self.error = "exited while importing: " + _tail(self.log)
        elif self.info and self.info.get("problems"):
            self.error = "fork is not safe here: " + "; ".join(self.info["problems"])
        self.proc.stdout.close()
        self._ready.set()
        if self.error:
            self.close()

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.error

    def handle(self) -> dict:
        """What a client needs to fork from it."""
        self.last_used = time.time()
        info = self.wait_ready()
        return {"id": self.id, "socket": self.socket, "pid": self.proc.pid, "imports": info.get("loaded", []), "failed": info.get("failed", {})}

    def status(self) -> dict:
        out = {"id": self.id, "pid": self.proc.pid, "alive": self.alive(), "imports": list(self.spec.imports), "python": self.spec.python,
               "age_s": round(time.time() - self.created, 1), "idle_s": round(time.time() - self.last_used, 1), "error": self.error}  # fmt: skip
        if self.alive() and self._ready.is_set():
            try:
                out.update(
                    {
                        k: v
                        for k, v in request(self.socket, {"op": "info"}, timeout=2).items()
                        if k in ("rss", "forks", "children", "import_s", "native_threads")
                    }
                )
            except (OSError, ValueError):
                pass
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _tail(path: str, limit: int = 800) -> str:
    try:
        return Path(path).read_text(errors="replace").strip()[-limit:] or "(no output)"
    except OSError:
        return "(no log)"


class TemplateSet:
    """Templates by spec; the least recently used beyond ``size`` and the idle ones go."""

    def __init__(self, root: str | os.PathLike | None = None, size: int = 4, idle: float = 600):
        from nbops.execute.tempdirs import new_dir

        self.root = Path(root) if root else Path(new_dir("nbops-tpl"))
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.size, self.idle = size, idle
        self.templates: dict[str, Template] = {}  # slot -> template
        self._lock = threading.Lock()

    def get(self, spec: TemplateSpec, env: dict[str, str] | None = None) -> dict:
        """A handle (``socket``, ``id``) of a ready template for ``spec``; made (and waited for) if needed."""
        stale: list[Template] = []
        with self._lock:
            t = self.templates.get(spec.slot)
            if t is not None and (t.id != spec.id or (t._ready.is_set() and not t.error and t.proc.poll() is not None)):
                stale.append(t)  # the environment moved (or it died): its imports are not what a kernel would import now
                t = None
            if t is None:
                t = self.templates[spec.slot] = Template(spec, self.root, dict(os.environ if env is None else env))
            t.last_used = time.time()
            stale += self._evict()
        for old in stale:
            old.close()
        return t.handle()  # a failed template stays (until evicted): the same spec fails at once, not after another import

    def _evict(self, now: float | None = None) -> list[Template]:
        now = time.time() if now is None else now
        out = [t for t in self.templates.values() if now - t.last_used > self.idle]
        ranked = sorted((t for t in self.templates.values() if t not in out), key=lambda t: t.last_used, reverse=True)
        out += ranked[self.size :]
        for t in out:
            self.templates.pop(t.spec.slot, None)
        return out

    def sweep(self, now: float | None = None) -> None:
        """Close templates idle past ``idle`` (called by the daemon's loop)."""
        with self._lock:
            old = self._evict(now)
        for t in old:
            t.close()

    def status(self) -> list[dict]:
        with self._lock:
            ts = list(self.templates.values())
        return [t.status() for t in ts]

    def close(self) -> None:
        with self._lock:
            ts, self.templates = list(self.templates.values()), {}
        for t in ts:
            t.close()
        shutil.rmtree(self.root, ignore_errors=True)


# -- whose templates -----------------------------------------------------------

_state: dict[str, Any] = {"own": None, "daemon": None}
_state_lock = threading.Lock()


def use_daemon(on: bool | None = True) -> None:
    """Whether templates come from ``nbops daemon``; None: decide by the process (``in_cli``)."""
    _state["daemon"] = on


def in_cli() -> bool:
    """This process is the ``nbops`` command: short-lived, so its templates live in the daemon.
    Decided from the process, not set by the CLI's parser: a test that builds the parser
    in its own process must not start sending that process's runs to a daemon."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return os.path.basename(sys.argv[0] if sys.argv else "") == "nbops" or getattr(spec, "name", None) in ("nbops.cli.main", "nbops.__main__")


def own_templates() -> TemplateSet:
    """This process's templates (the Jupyter server, a ``%nbops run`` kernel, a script), gone with it."""
    with _state_lock:
        if _state["own"] is None:
            _state["own"] = TemplateSet()
            atexit.register(close_own_templates)
        return _state["own"]


def close_own_templates() -> None:
    with _state_lock:
        own, _state["own"] = _state["own"], None
    if own is not None:
        own.close()


def templates() -> Any:
    """Where templates come from: the daemon for the CLI (unless NBOPS_DAEMON=0), else this process."""
    daemon = in_cli() if _state["daemon"] is None else _state["daemon"]
    if daemon and os.environ.get("NBOPS_DAEMON", "1") != "0":
        from nbops.execute.daemon import DaemonTemplates

        return DaemonTemplates()
    return own_templates()
