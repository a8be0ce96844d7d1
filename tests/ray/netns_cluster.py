"""A real 2-node Ray cluster inside a network namespace of its own.

Ray binds to the machine's network address and ignores
``--node-ip-address=127.0.0.1``; inside a fresh network namespace the only
interface is loopback, so every Ray process (and the driver) talks over
127.0.0.1 and nothing leaves the machine. One long-lived holder process
(``unshare -n sleep infinity``) owns the namespace; every command runs in it
with ``nsenter -t HOLDER -n``.

Used by ``tests/ray/`` and ``benchmarks/bench_ray.py``. Needs root (for
``unshare -n``) and ``ray`` installed; ``unavailable()`` says why not.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["NetnsRayCluster", "unavailable"]

HEAD_PORT = 6380
# `ray start` on a loaded machine (2 cores shared by many processes) can miss Ray's
# own deadlines ("RPC error: Deadline Exceeded"): give it longer, and try again.
START_ATTEMPTS = 3
START_TIMEOUT_S = 180


def unavailable() -> str | None:
    """Why a namespaced cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "Ray tests need root to make a network namespace (unshare -n)"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"Ray tests need '{tool}' (util-linux / iproute2)"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed: pip install 'nbops[ray]'"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not allowed here: {probe.stderr.strip()}"
    return None


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


class NetnsRayCluster:
    """Head + one worker node, each with ``cpus`` logical CPUs and one logical GPU."""

    def __init__(self, cpus: int = 1, gpus: int = 1, worker_memory: int | None = None, head_memory: int | None = None):
        self.cpus, self.gpus = cpus, gpus
        self.head_memory, self.worker_memory = head_memory, worker_memory
        # Short path: Ray's unix sockets live under the temp dir (108-byte limit).
        self.tmp = Path(tempfile.mkdtemp(prefix="nbr-", dir="/tmp"))
        self.token_path = self.tmp / "auth_token"
        self.token_path.write_text(secrets.token_hex(16))
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ADDRESS": f"127.0.0.1:{HEAD_PORT}",
            # A lost node is noticed within seconds, not the default ~30 s.
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
            "RAY_health_check_timeout_ms": "1000",
            # Ray's start-up waits, raised from 30-60 s: a busy machine starts the GCS slowly.
            "RAY_gcs_server_port_wait_time_s": "180",
            "RAY_gcs_server_request_timeout_seconds": "180",
            "RAY_gcs_rpc_server_reconnect_timeout_s": "180",
            "RAY_raylet_start_wait_time_s": "180",
        }
        self.holder: subprocess.Popen | None = None
        self.worker_pids: list[int] = []
        self.worker_count = 0

    # -- namespace ---------------------------------------------------------------------
    def ns(self, *cmd: str) -> list[str]:
        assert self.holder is not None, "cluster not started"
        return ["nsenter", "-t", str(self.holder.pid), "-n", *cmd]

    def run(
        self, *cmd: str, timeout: float = 120, check: bool = True, env: dict | None = None, cwd: str | os.PathLike | None = None
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.ns(*cmd), capture_output=True, text=True, timeout=timeout, env={**self.env, **(env or {})}, cwd=cwd)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def popen(self, *cmd: str, env: dict | None = None, cwd: str | os.PathLike | None = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.ns(*cmd), env={**self.env, **(env or {})}, cwd=cwd, **kw)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> NetnsRayCluster:
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sleep", "infinity"], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 10
        while True:  # the holder is in its own namespace once its netns link differs from ours
            try:
                if os.readlink(f"/proc/{self.holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("unshare -n did not start")
            time.sleep(0.02)
        self.run("ip", "link", "set", "lo", "up")
        try:
            self._start_head()
            self.add_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def _node_args(self, index: int, memory: int | None) -> list[str]:
        args = ["--num-cpus", str(self.cpus), "--num-gpus", str(self.gpus), "--disable-usage-stats", "--resources", json.dumps({f"nbops_node_{index}": 1})]
        if memory:
            args += ["--memory", str(memory)]
        return args

    def _start_head(self) -> None:
        self._ray_start(
            "head",
            "--head",
            f"--port={HEAD_PORT}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.tmp}/r",
            "--include-dashboard=false",
            *self._node_args(0, self.head_memory),
        )

    def _ray_start(self, what: str, *args: str) -> None:
        """``ray start ARGS``, retried: a failed attempt's processes are killed before the next one."""
        for attempt in range(1, START_ATTEMPTS + 1):
            before = set(self._ns_pids())
            try:
                self.run(_ray_bin(), "start", *args, timeout=START_TIMEOUT_S)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                said = exc.stderr if isinstance(exc, subprocess.TimeoutExpired) else str(exc)
                said = said.decode(errors="replace") if isinstance(said, bytes) else (said or "")
                print(f"netns_cluster: ray start ({what}) attempt {attempt} failed: {said[-1500:]}", file=sys.stderr, flush=True)
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(f"ray start ({what}) failed {START_ATTEMPTS} times; last: {exc}") from None
                _kill_all([p for p in self._ns_pids() if p not in before])
                time.sleep(5 * attempt)  # let the machine breathe before the next try

    def add_worker(self) -> int:
        """Start one more worker node; returns the pid of its raylet."""
        self.worker_count += 1
        index = self.worker_count
        before = self._raylets()
        # Several nodes on one address: the agents' fixed default ports must differ.
        base = 52000 + 100 * index
        self._ray_start(
            f"worker {index}",
            f"--address=127.0.0.1:{HEAD_PORT}",
            "--node-ip-address=127.0.0.1",
            f"--dashboard-agent-listen-port={base + 1}",
            f"--dashboard-agent-grpc-port={base + 2}",
            f"--runtime-env-agent-port={base + 3}",
            f"--metrics-export-port={base + 4}",
            *self._node_args(index, self.worker_memory),
        )
        new = [p for p in self._raylets() if p not in before]
        self.worker_pids.extend(new)
        self.wait_nodes(1 + self.alive_workers())
        return new[0] if new else -1

    def alive_workers(self) -> int:
        return sum(1 for p in self.worker_pids if _alive(p))

    def _raylets(self) -> list[int]:
        """Raylets running in this namespace."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{pid}/ns/net") != os.readlink(f"/proc/{self.holder.pid}/ns/net"):
                    continue
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if cmd.endswith(b"/raylet"):
                found.append(int(pid))
        return found

    def wait_nodes(self, n: int, timeout: float = 180) -> None:
        code = (
            "import ray, time, sys\n"
            "ray.init(logging_level='ERROR')\n"
            f"deadline = time.time() + {timeout}\n"
            f"while sum(1 for x in ray.nodes() if x['Alive']) < {n}:\n"
            "    if time.time() > deadline: sys.exit('nodes did not come up')\n"
            "    time.sleep(0.2)\n"
        )
        self.run(sys.executable, "-c", code, timeout=timeout + 30)

    def kill_worker_node(self, raylet_pid: int) -> None:
        """Lose a worker node abruptly: its raylet and everything it started."""
        victims = [raylet_pid] + _descendants(raylet_pid)
        # The node's agents are siblings started by `ray start`; they stop once
        # the raylet is gone. Kill the raylet's whole process group to be sure.
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.holder is None:
            return
        # Every process of this cluster lives in the namespace: stop those (not `ray stop`, which
        # stops every Ray process of the machine, other users' clusters included).
        _kill_all(self._ns_pids())
        self.holder.kill()
        self.holder.wait()
        self.holder = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _ns_pids(self) -> list[int]:
        mine = os.readlink(f"/proc/{self.holder.pid}/ns/net")  # type: ignore[union-attr]
        out = []
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != self.holder.pid:  # type: ignore[union-attr]
                try:
                    if os.readlink(f"/proc/{pid}/ns/net") == mine:
                        out.append(int(pid))
                except OSError:
                    pass
        return out

    def __enter__(self) -> NetnsRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_all(pids: list[int], grace: float = 5) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while sig == signal.SIGTERM and any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
