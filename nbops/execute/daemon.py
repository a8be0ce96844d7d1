"""``nbops daemon``: keeps kernel templates warm across CLI commands.

A CLI command is a short process; a template (``forkserver``) takes seconds to
import pandas and scikit-learn. The daemon owns the templates between commands:
the CLI asks it for the template of a spec (``op: template``) and then forks
kernels from that template's socket itself. The daemon exits after an idle
timeout (``NBOPS_DAEMON_IDLE`` seconds, default 600), closing its templates.

Safety: the sockets are in a per-user folder of mode 0700, and every connection's
peer is checked (``SO_PEERCRED``: the same uid), so no other user gets a kernel.
Liveness: the daemon holds an exclusive ``flock`` on ``daemon.lock`` for its
whole life, so "is it running" never trusts a pid file or a socket file: a socket
left by a killed daemon is found stale at once (the lock is free), removed, and a
new daemon started; a daemon that holds the lock but does not answer within a
few seconds is killed and replaced. The CLI never waits more than that.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nbops.errors import UsageError
from nbops.execute.forkserver import TemplateSet, TemplateSpec, TemplateUnavailable, request
from nbops.execute.forkserver_child import peer, read_line, rss_bytes

__all__ = ["runtime_dir", "serve", "ensure", "stop", "status", "prewarm", "DaemonTemplates", "idle_timeout"]

PING_TIMEOUT = 3.0
_DETACH = "import subprocess, sys; subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, start_new_session=True)"


def idle_timeout() -> float:
    try:
        return float(os.environ.get("NBOPS_DAEMON_IDLE", "600"))
    except ValueError as exc:
        raise UsageError(f"NBOPS_DAEMON_IDLE={os.environ['NBOPS_DAEMON_IDLE']!r} is not a number of seconds", "e.g. NBOPS_DAEMON_IDLE=600") from exc


def runtime_dir() -> Path:
    """The daemon's private folder: NBOPS_DAEMON_DIR, else $XDG_RUNTIME_DIR/nbops, else /tmp/nbops-daemon-UID."""
    given = os.environ.get("NBOPS_DAEMON_DIR")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(given) if given else (Path(xdg) / "nbops" if xdg else Path(f"/tmp/nbops-daemon-{os.getuid()}"))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if st.st_uid != os.getuid() or not os.path.isdir(path) or os.path.islink(path):
        raise UsageError(f"{path} belongs to another user (or is a link): the daemon's sockets must be private", "set NBOPS_DAEMON_DIR to a folder of yours")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _paths(root: Path) -> dict[str, Path]:
    return {k: root / f"daemon.{k}" for k in ("sock", "pid", "lock", "log")}


# -- the daemon ----------------------------------------------------------------


class _Daemon:
    def __init__(self, root: Path, idle: float, clock: Any = time.monotonic):
        self.root, self.idle, self.clock = root, idle, clock
        self.paths = _paths(root)
        self.templates = TemplateSet(root / "templates", idle=idle)
        self.started = time.time()
        self.last = clock()
        self.busy = 0
        self.stopping = False
        self.lock = threading.Lock()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                _, uid, _ = peer(conn)
                if uid != os.getuid():
                    conn.sendall(b'{"error": "not your daemon"}\n')
                    return
                req = read_line(conn)
                conn.settimeout(None)
                reply = self.answer(req)
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except (OSError, ValueError):  # a client gone or garbled: the daemon carries on
                pass
            finally:
                with self.lock:
                    self.busy -= 1
                    self.last = self.clock()

    def answer(self, req: dict) -> dict:
        op = req.get("op")
        if op == "ping":
            return {"pid": os.getpid(), "started": self.started}
        if op == "status":
            return {"pid": os.getpid(), "started": self.started, "uptime_s": round(time.time() - self.started, 1), "idle_timeout_s": self.idle,
                    "rss": rss_bytes(), "folder": str(self.root), "templates": self.templates.status()}  # fmt: skip
        if op == "template":
            try:
                return {"handle": self.templates.get(TemplateSpec.from_json(req["spec"]), env=req.get("env"))}
            except (TemplateUnavailable, KeyError, TypeError, OSError) as exc:
                return {"error": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"}
        if op == "stop":
            self.stopping = True
            return {"ok": True}
        return {"error": f"unknown op {op!r}"}

    def run(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock = self.paths["sock"]
        sock.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            listener.bind(str(sock))
        finally:
            os.umask(old)
        listener.listen(64)
        self.paths["pid"].write_text(str(os.getpid()))
        try:
            while not self.stopping:
                ready, _, _ = select.select([listener], [], [], 0.5)
                if ready:
                    conn, _ = listener.accept()
                    with self.lock:
                        self.busy += 1
                    threading.Thread(target=self.handle, args=(conn,), daemon=True, name="nbops-daemon-conn").start()
                    continue
                self.templates.sweep()
                with self.lock:
                    idle = self.busy == 0 and self.clock() - self.last > self.idle
                if idle:
                    break
        finally:
            listener.close()
            sock.unlink(missing_ok=True)
            self.paths["pid"].unlink(missing_ok=True)
            self.templates.close()


def serve(idle: float | None = None, root: Path | None = None) -> int:
    """Run the daemon in this process until stopped or idle. 1 when another one holds the lock."""
    root = root or runtime_dir()
    paths = _paths(root)
    lock = open(paths["lock"], "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return 1
    daemon = _Daemon(root, idle_timeout() if idle is None else idle)

    def stop_now(*_: Any) -> None:  # SIGTERM, or Ctrl-C in the foreground: close the templates, remove the socket
        daemon.stopping = True

    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)
    try:
        daemon.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lock.close()
    return 0


# -- the client ----------------------------------------------------------------


def _lock_free(path: Path) -> bool:
    """Nobody holds the daemon's lock: no daemon lives, whatever files are left."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def _pid(paths: dict[str, Path]) -> int | None:
    try:
        return int(paths["pid"].read_text().strip())
    except (OSError, ValueError):
        return None


def _ping(paths: dict[str, Path]) -> dict | None:
    try:
        return request(str(paths["sock"]), {"op": "ping"}, timeout=PING_TIMEOUT)
    except (OSError, ValueError):
        return None


def _clear_stale(paths: dict[str, Path]) -> str | None:
    """Remove what a dead or hung daemon left; says what it found."""
    if _lock_free(paths["lock"]):
        found = "a stale socket" if paths["sock"].exists() else None
        paths["sock"].unlink(missing_ok=True)
        paths["pid"].unlink(missing_ok=True)
        return found
    pid = _pid(paths)
    if pid and _is_daemon(pid):  # holds the lock, does not answer: hung (stopped, deadlocked)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _lock_free(paths["lock"]):
            time.sleep(0.05)
        paths["sock"].unlink(missing_ok=True)
        paths["pid"].unlink(missing_ok=True)
        return f"a daemon that did not answer (pid {pid}, killed)"
    return None


def _is_daemon(pid: int) -> bool:
    try:
        return b"nbops.execute.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def ensure(start: bool = True, timeout: float = 20) -> dict | None:
    """The running daemon's ping answer, starting one if needed (and ``start``). Bounded in time."""
    root = runtime_dir()
    paths = _paths(root)
    answer = _ping(paths)
    if answer or not start:
        return answer
    with open(root / "start.lock", "a") as starting:  # two commands at once start one daemon
        fcntl.flock(starting, fcntl.LOCK_EX)
        answer = _ping(paths)
        if answer:
            return answer
        _clear_stale(paths)
        with open(paths["log"], "ab") as log:
            # Through a short-lived middle process, so the daemon is nobody's child here: a
            # long-lived caller (a sweep, the tests) would otherwise keep it as a zombie once killed.
            subprocess.run(
                [sys.executable, "-c", _DETACH, sys.executable, "-m", "nbops.execute.daemon"],
                cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, close_fds=True, timeout=30,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = _ping(paths) if paths["sock"].exists() else None
            if answer:
                return answer
            time.sleep(0.05)
    raise TemplateUnavailable(f"nbops daemon did not start within {timeout:g} s (log: {paths['log']})", "run `nbops daemon` in a terminal to see why")


def status() -> dict:
    paths = _paths(runtime_dir())
    try:
        return {"running": True, **request(str(paths["sock"]), {"op": "status"}, timeout=PING_TIMEOUT)}
    except (OSError, ValueError):
        return {"running": False, "folder": str(paths["sock"].parent), "stale": paths["sock"].exists()}


def stop(timeout: float = 10) -> dict:
    """Stop the daemon (its templates with it). Removes what a dead one left."""
    paths = _paths(runtime_dir())
    pid = _pid(paths)
    try:
        request(str(paths["sock"]), {"op": "stop"}, timeout=PING_TIMEOUT)
    except (OSError, ValueError):
        found = _clear_stale(paths)
        return {"stopped": False, "cleared": found}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _lock_free(paths["lock"]):
        time.sleep(0.05)
    return {"stopped": True, "pid": pid}


class DaemonTemplates:
    """``TemplateSet.get`` answered by the daemon (started on first use)."""

    def get(self, spec: TemplateSpec, env: dict[str, str] | None = None) -> dict:
        ensure()
        sock = str(_paths(runtime_dir())["sock"])
        try:
            reply = request(sock, {"op": "template", "spec": spec.to_json(), "env": dict(os.environ if env is None else env)}, timeout=300)
        except (OSError, ValueError) as exc:
            raise TemplateUnavailable(f"nbops daemon: {exc}", "the run uses the warm kernel pool; `nbops daemon status` says more") from exc
        if "handle" not in reply:
            raise TemplateUnavailable(f"nbops daemon: {reply.get('error')}", "the run uses the warm kernel pool")
        return {**reply["handle"], "daemon": True}


def prewarm(kernel_name: str, folder: str, cwd: str) -> dict:
    """Make the daemon's template for the stage notebooks in ``folder`` now."""
    from nbops.execute.forkserver import plan

    spec, reason = plan(kernel_name, folder, cwd)
    if spec is None:
        raise TemplateUnavailable(f"no template for this notebook: {reason}", "runs use the warm kernel pool")
    return DaemonTemplates().get(spec)


if __name__ == "__main__":
    sys.exit(serve())
