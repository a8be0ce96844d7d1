"""The template process: imports once, forks a fresh kernel per stage.

Run as ``python -c LOADER SOCKET MODULE...`` (this file loaded by path, so the
template does not import ``nbops.execute`` and all it pulls in) with the kernel's interpreter, by whoever owns it (``forkserver.Template``). It imports
ipykernel and the modules the notebook imports, checks that forking is still
safe (one Python thread, no ZMQ context, CUDA not initialized), writes one JSON
line saying so on stdout, and then serves fork requests on a Unix socket.

This process starts no thread, ever: ``os.fork`` copies only the calling thread,
so a lock held by another thread would stay locked in every kernel. Its loop is
``select`` with a timeout, which also reaps exited kernels and notices an owner
that went away. Everything a kernel needs that is not safe to share (sockets,
a ZMQ context, threads, CUDA, the random state) is made in the child.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback

# What every kernel imports (kernels.WARMUP_CODE) plus the kernel itself. Not
# imported from nbops.execute.kernels: that pulls jupyter_client in, and with it
# nothing the kernel needs.
# ipykernel imports its shell and debugger (debugpy: ~0.4 s) while a kernel initializes:
# imported here, every fork skips that. None of them starts a thread or a ZMQ context.
BASE_MODULES = (
    "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
    "nbops.runtime.marshal", "numpy", "pandas", "pyarrow.feather",
)  # fmt: skip


def native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def safety() -> dict:
    """Whether forking now is safe, and why not."""
    problems = []
    if threading.active_count() != 1:
        names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        problems.append(f"an import started Python threads ({', '.join(names)})")
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        problems.append("a ZMQ context exists")
    cuda = False
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            cuda = bool(torch.cuda.is_initialized())  # asks, does not initialize
        except Exception:  # noqa: BLE001 - a torch without cuda support
            cuda = False
        if cuda:
            problems.append("an import initialized CUDA")
    # Native threads (OpenBLAS's pool) are not counted as a problem: OpenBLAS and
    # torch re-create their pools after fork (pthread_atfork); Python threads are not.
    return {"python_threads": threading.active_count(), "native_threads": native_threads(), "cuda_initialized": cuda, "problems": problems}


# Extra (setup-cell) package -> what it needs; a forked kernel counts one for its stage
# only when the stage imports it (nbops.runtime.preloaded).
CLOSURES: dict = {}


def import_all(modules: list[str]) -> tuple[list[str], dict[str, str]]:
    loaded, failed = [], {}
    before: set[str] | None = None
    for i, name in enumerate([*BASE_MODULES, *modules]):
        if i == len(BASE_MODULES):
            before = {n.partition(".")[0] for n in list(sys.modules)}
        if name in loaded or name in failed:
            continue
        try:
            importlib.import_module(name)
            loaded.append(name)
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a module too: the kernel will see it itself
            failed[name] = f"{type(exc).__name__}: {exc}"[:300]
    if before is not None:
        try:
            from nbops.runtime.preloaded import closures

            CLOSURES.update(closures(modules, before))
        except Exception:  # noqa: BLE001 - without them every pre-imported package counts for every stage: re-runs, never stale
            CLOSURES.clear()
    return loaded, failed


def peer(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (Linux SO_PEERCRED)."""
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


def read_line(conn: socket.socket, limit: int = 1 << 20) -> dict:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ValueError("request too long")
    return json.loads(buf or b"{}")


def reap(children: dict[int, float]) -> None:
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.pop(pid, None)


def child(req: dict, owner: int, listener: socket.socket, conn: socket.socket) -> None:
    """In the forked process: become a fresh kernel. Never returns."""
    code = 1
    try:
        listener.close()  # the template's socket is not the kernel's to accept on
        conn.close()
        os.setsid()  # a process group of its own: interrupt/kill reach the kernel and what it starts
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        # ``python -c`` put "" (the template's empty folder) first on sys.path; a kernel has its cwd there.
        if sys.path and sys.path[0] == "":
            sys.path[0] = req["cwd"]
        reseed()
        from nbops.runtime.preloaded import watch

        watch(CLOSURES)
        watch_owner(owner)
        from ipykernel.kernelapp import IPKernelApp

        sys.argv = ["ipykernel_launcher", "-f", req["connection_file"]]
        app = IPKernelApp.instance()
        app.initialize(sys.argv[1:])
        app.start()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001 - written to the kernel log, which nbops reads back when a kernel dies
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def reseed() -> None:
    """Each kernel its own random state, as a fresh process would have."""
    import random

    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()  # the legacy global state, seeded from the OS like a fresh import


def watch_owner(owner: int) -> None:
    """The kernel's parent is the template, not nbops: ipykernel's parent poller would
    watch the wrong process. This thread (in the child: threads are fine there) ends the
    kernel when the nbops process that asked for it is gone, as a launched kernel does."""
    if owner <= 1:
        return

    def poll() -> None:
        while True:
            time.sleep(1)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=poll, daemon=True, name="nbops-owner-poll").start()


def serve(path: str, info: dict) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    owner_ppid = os.getppid()
    children: dict[int, float] = {}
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the owner read its line: the pipe closes
    os.close(null)
    while True:
        ready, _, _ = select.select([listener], [], [], 0.25)
        reap(children)
        if os.getppid() != owner_ppid:  # the owner died: nobody can ask for kernels any more
            break
        if not ready:
            continue
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        with conn:
            if handle(conn, listener, children, info) == "stop":
                break
    listener.close()
    try:
        os.unlink(path)
    except OSError:
        pass


def handle(conn: socket.socket, listener: socket.socket, children: dict[int, float], info: dict) -> str | None:
    try:
        conn.settimeout(5)
        pid, uid, _ = peer(conn)
        if uid != os.getuid():  # another user must not get a kernel (and with it this user's files)
            conn.sendall(b'{"error": "not your template"}\n')
            return None
        req = read_line(conn)
        op = req.get("op")
        if op == "fork":
            again = safety()
            if again["problems"]:  # something started a thread since (should never happen: nothing runs here)
                conn.sendall(json.dumps({"error": "; ".join(again["problems"])}).encode() + b"\n")
                return None
            t0 = time.perf_counter()
            kid = os.fork()
            if kid == 0:
                child(req, int(req.get("owner") or pid), listener, conn)
            children[kid] = time.time()
            info["forks"] = info.get("forks", 0) + 1
            conn.sendall(json.dumps({"pid": kid, "fork_ms": round((time.perf_counter() - t0) * 1000, 2)}).encode() + b"\n")
        elif op == "info":
            conn.sendall(json.dumps({**info, "rss": rss_bytes(), "children": len(children)}).encode() + b"\n")
        elif op == "stop":
            conn.sendall(b'{"ok": true}\n')
            return "stop"
        else:
            conn.sendall(json.dumps({"error": f"unknown op {op!r}"}).encode() + b"\n")
    except (OSError, ValueError) as exc:  # a client that went away or sent garbage: the template carries on
        try:
            conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
        except OSError:
            pass
    return None


def main(argv: list[str]) -> int:
    path, modules = argv[0], argv[1:]
    t0 = time.perf_counter()
    loaded, failed = import_all(modules)
    info = {"pid": os.getpid(), "python": sys.executable, "loaded": loaded, "failed": failed, "import_s": round(time.perf_counter() - t0, 3)}
    info.update(safety())
    info["rss"] = rss_bytes()
    if info["problems"]:
        sys.stdout.write(json.dumps(info) + "\n")  # the owner falls back to the pool and says why
        return 3
    serve(path, info)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
