"""The Ray executor: each stage is a Ray task on some node of a cluster.

A stage becomes one Ray task asking for the stage's ``num_gpus`` / ``num_cpus``
/ ``memory``. Nothing on a worker reads the driver's filesystem:

- the stage notebook and the upstream files it reads (``StageTask.input_files``)
  travel as object refs (``ray.put`` once per file, shared by every consumer);
- the source notebook's folder (the stages' working directory, for relative
  data paths) travels as the job's ``runtime_env`` ``working_dir``, without the
  run store and big files; the ``nbops`` package travels as a ``py_module``;
- the task rebuilds ``<artifact_dir>/<upstream>/`` in a temp folder, runs the
  stage with papermill (``run_stage``) on a fresh kernel, and sends back every
  file of ``<artifact_dir>/<stage>/`` plus the executed notebook as bytes. The
  driver writes the notebook to ``task.output_notebook``; the scheduler writes
  the files and records them. Workers never open the run store.

Ray's own retries are off (``max_retries=0``): a lost node or crashed worker
comes back as a failed outcome marked ``retryable``, and the scheduler's
``retries:`` policy is the only one, so a run never retries twice over or hangs
on a dead node. A stage no live node could ever hold (asks for more GPUs than
any node has) waits ``node_wait`` seconds for such a node to join, then fails
with a message that says so, instead of queueing forever.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from nbops.errors import MissingExtraError, UsageError
from nbops.execute.base import Executor, StageErrorInfo, StageOutcome, StageTask

__all__ = ["RayExecutor"]

log = logging.getLogger("nbops.ray")

# Never shipped to workers in the working_dir (gitignore syntax, relative to it).
DEFAULT_EXCLUDES = [".nbops/", ".git/", ".ipynb_checkpoints/", "__pycache__/", ".venv*/", "venv/", "node_modules/", "*.pyc"]
# Files above this size stay behind (Ray caps a working_dir at 500 MiB); read them from shared storage.
MAX_SHIPPED_FILE = int(os.environ.get("NBOPS_RAY_MAX_FILE_MB", "50")) * 2**20

_RETRYABLE = (
    "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
    "ObjectFetchTimedOutError", "ObjectReconstructionFailedError", "RaySystemError", "OutOfMemoryError",
    "RpcError", "ObjectStoreFullError",
)  # fmt: skip


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--executor ray", "ray", "ray") from None
    return ray


class RayExecutor(Executor):
    """Runs each stage as a Ray task on a cluster (``address``, ``$RAY_ADDRESS`` or a local ``ray start``).

    ``address="local"`` starts a throwaway single-machine cluster in this
    process instead of connecting to one.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cwd: str = ".",
        kernel_name: str = "python3",
        store: Any = None,
        node_wait: float | None = None,
        ship_nbops: bool = True,
        excludes: list[str] | None = None,
        **_: Any,
    ):
        self._ray = ray = _import_ray()
        self.cwd = os.path.abspath(cwd)
        self.kernel_name = kernel_name
        self.address = address or os.environ.get("RAY_ADDRESS") or "auto"
        self.node_wait = float(os.environ.get("NBOPS_RAY_NODE_WAIT", "60") if node_wait is None else node_wait)
        self._lock = threading.Lock()
        self._running: dict[Any, str] = {}  # ObjectRef -> stage
        self._refs: dict[tuple, Any] = {}  # (path, size, mtime) -> ObjectRef of the file's bytes
        self._nodes: tuple[float, list[dict]] = (0.0, [])
        self._closed = False
        self.runtime_env = _runtime_env(self.cwd, store, ship_nbops, excludes)
        self._owns_connection = not ray.is_initialized()
        self._task_env: dict | None = None
        if self._owns_connection:
            _probe(self.address)
            self._connect()
        else:  # the user's session is already connected: ship the environment with each task
            self._task_env = self.runtime_env
        # Ray ends a GPU task's worker after one call (max_calls=1) to free the GPU
        # memory the worker holds. Here the stage's kernel, a child shut down after
        # the stage, holds it: the worker and its warm kernel may stay.
        self._remote = ray.remote(max_calls=0)(_stage_on_worker)

    def _connect(self) -> None:
        ray = self._ray
        kwargs: dict[str, Any] = dict(
            runtime_env=self.runtime_env, namespace="nbops", logging_level=logging.WARNING, log_to_driver=False,
        )
        if self.address == "local":
            kwargs["include_dashboard"] = False
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise _no_cluster(self.address, str(exc)) from None
        except Exception as exc:
            if type(exc).__name__ == "AuthenticationError" or "token" in str(exc).lower():
                raise UsageError(
                    f"could not join the Ray cluster at {self.address!r}: {exc}",
                    "use the cluster's auth token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, with RAY_AUTH_MODE=token)",
                ) from None
            if "runtime_env" in str(exc) or "working_dir" in str(exc) or type(exc).__name__ == "RuntimeEnvSetupError":
                raise UsageError(
                    f"could not send the notebook's folder {self.cwd} to the Ray cluster: {exc}",
                    "make the folder smaller (Ray caps a working_dir at 500 MiB): move big data to shared storage, "
                    "or lower NBOPS_RAY_MAX_FILE_MB so big files stay behind",
                ) from None
            raise

    # -- submit ----------------------------------------------------------------------------
    def submit(self, task: StageTask) -> Future:
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        submitted = time.time()
        try:
            args = self._ship(task)
        except OSError as exc:
            fut.set_result(_failed(task, submitted, StageErrorInfo(
                "InputsMissing", f"could not read the stage's inputs to send them to Ray: {exc}")))
            return fut
        problem = self._infeasible(task)
        if problem is None:
            self._launch(task, args, fut, submitted)
        else:  # maybe a node is joining (autoscaler, restarted worker): wait for one, off the scheduler's thread
            threading.Thread(target=self._launch_when_feasible, args=(task, args, fut, submitted),
                             daemon=True, name=f"nbops-ray-wait-{task.stage}").start()
        return fut

    def _ship(self, task: StageTask) -> tuple[Any, list[str], list[Any]]:
        """Object refs of the stage notebook and of each upstream file it reads."""
        notebook = self._put(Path(task.notebook))
        names, refs = [], []
        for rel in task.input_files:
            names.append(rel)
            refs.append(self._put(Path(task.artifact_dir) / rel))
        return notebook, names, refs

    def _put(self, path: Path) -> Any:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            ref = self._refs.get(key)
        if ref is None:
            ref = self._ray.put(path.read_bytes())
            with self._lock:
                self._refs[key] = ref
        return ref

    def _launch(self, task: StageTask, args: tuple, fut: Future, submitted: float) -> None:
        notebook, names, refs = args
        options: dict[str, Any] = dict(
            num_cpus=task.cpus, num_gpus=task.gpus, max_retries=0, retry_exceptions=False, name=f"nbops:{task.stage}",
        )
        if task.memory:
            options["memory"] = int(task.memory)
        if self._task_env is not None:
            options["runtime_env"] = self._task_env
        try:
            ref = self._remote.options(**options).remote(task, notebook, names, *refs)
        except Exception as exc:  # a broken connection: the scheduler's retry may find it back
            fut.set_result(_failed(task, submitted, StageErrorInfo(type(exc).__name__, f"could not submit to Ray: {exc}", retryable=True)))
            return
        with self._lock:
            self._running[ref] = task.stage
        ref.future().add_done_callback(lambda rf: self._finish(task, ref, rf, fut, submitted))

    def _launch_when_feasible(self, task: StageTask, args: tuple, fut: Future, submitted: float) -> None:
        deadline = time.time() + self.node_wait
        problem = self._infeasible(task)
        while problem is not None and time.time() < deadline and not self._closed:
            time.sleep(1)
            problem = self._infeasible(task, fresh=True)
        if problem is None:
            self._launch(task, args, fut, submitted)
        else:
            fut.set_result(_failed(task, submitted, StageErrorInfo(
                "NoNodeForStage",
                f"no live node of the Ray cluster can run stage {task.stage!r}: {problem} "
                f"(waited {self.node_wait:g} s for one to join). Add such a node, or lower the stage's gpus:/cpus:/memory: tags",
            )))

    def _finish(self, task: StageTask, ref: Any, rf: Future, fut: Future, submitted: float) -> None:
        with self._lock:
            self._running.pop(ref, None)
        try:
            outcome, executed = rf.result()
        except BaseException as exc:  # noqa: BLE001 - every Ray failure becomes an outcome
            fut.set_result(_failed(task, submitted, _error_from_ray(task, exc)))
            return
        try:
            if executed is not None:
                Path(task.output_notebook).parent.mkdir(parents=True, exist_ok=True)
                Path(task.output_notebook).write_bytes(executed)
                outcome.executed_notebook = task.output_notebook
            else:
                outcome.executed_notebook = None
        except OSError as exc:
            outcome.status = "failed"
            outcome.error = StageErrorInfo("OSError", f"could not write the executed notebook: {exc}")
        outcome.worker["executor"] = "ray"
        # Time from submit until the stage started on its worker: scheduling, worker start, shipping.
        outcome.worker["ray_wait_s"] = round(outcome.worker.get("task_started", submitted) - submitted, 3)
        fut.set_result(outcome)

    # -- resources -------------------------------------------------------------------------
    def _alive_nodes(self, fresh: bool = False) -> list[dict]:
        at, nodes = self._nodes
        if fresh or time.time() - at > 2:
            nodes = [n for n in self._ray.nodes() if n.get("Alive")]
            self._nodes = (time.time(), nodes)
        return nodes

    def _infeasible(self, task: StageTask, fresh: bool = False) -> str | None:
        """Why no live node could ever hold ``task`` (its totals, not what is free now), or None."""
        want = {"GPU": float(task.gpus or 0), "CPU": float(task.cpus or 0), "memory": float(task.memory or 0)}
        try:
            nodes = self._alive_nodes(fresh)
        except Exception:
            return None  # can't tell: let Ray decide
        for node in nodes:
            have = node.get("Resources", {})
            if all(have.get(k, 0.0) >= v for k, v in want.items() if v):
                return None
        asked = ", ".join(f"{k}={v:g}" for k, v in want.items() if v) or "nothing"
        largest = max((n.get("Resources", {}).get("GPU", 0.0) for n in nodes), default=0.0)
        return f"it asks for {asked}; {len(nodes)} live node(s), at most {largest:g} GPU(s) on one"

    # -- lifecycle ---------------------------------------------------------------------------
    def cancel_all(self) -> None:
        with self._lock:
            refs = list(self._running)
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.cancel_all()
        with self._lock:
            self._refs.clear()
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()

    def describe(self) -> dict[str, Any]:
        try:
            nodes = self._alive_nodes(fresh=True)
        except Exception:
            nodes = []
        total = lambda key: sum(n.get("Resources", {}).get(key, 0.0) for n in nodes)  # noqa: E731
        return {
            "name": self.name,
            "address": self.address,
            "ray_version": self._ray.__version__,
            "nodes": len(nodes),
            "gpus": total("GPU"),
            "cpus": total("CPU"),
        }


# -- driver-side helpers -------------------------------------------------------------------


def _no_cluster(address: str, why: str) -> UsageError:
    return UsageError(
        f"no Ray cluster to connect to at {address!r}: {why}".strip(),
        "start one with 'ray start --head --num-gpus N' (then plain --executor ray finds it), or point nbops "
        "at one: --address ray://HEAD:10001 or RAY_ADDRESS=HEAD:6379; '--address local' starts a "
        "throwaway single-machine cluster",
    )


def _probe(address: str, timeout: float = 5) -> None:
    """Fail in seconds, not minutes (Ray retries a dead address for long), when nothing listens there."""
    original = address
    if address == "local":
        return
    if address == "auto":  # the cluster `ray start` recorded on this machine, which may be long gone
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
        except ImportError:  # a Ray without it: let ray.init find out
            return
        try:
            address = canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as exc:
            raise _no_cluster("auto", str(exc)) from None
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise _no_cluster(original, f"nothing answers at {target} ({exc.strerror or exc})") from None


def _runtime_env(cwd: str, store: Any, ship_nbops: bool, excludes: list[str] | None) -> dict[str, Any]:
    """What reaches the workers: the stages' working folder and the nbops package."""
    skip = list(DEFAULT_EXCLUDES) + list(excludes or [])
    root = getattr(store, "root", None)
    if root is not None:
        try:
            skip.append("/" + Path(root).resolve().relative_to(Path(cwd).resolve()).as_posix() + "/")
        except ValueError:
            pass  # the store is elsewhere: nothing to leave out
    big = _big_files(cwd)
    if big:
        log.warning("not sent to Ray workers (over %d MB): %s", MAX_SHIPPED_FILE >> 20, ", ".join(big[:10]))
    env: dict[str, Any] = {"working_dir": cwd, "excludes": skip + ["/" + p for p in big]}
    if ship_nbops:
        import nbops

        env["py_modules"] = [str(Path(nbops.__file__).parent)]
    return env


def _big_files(cwd: str, limit: int = 20000) -> list[str]:
    pruned = {d.rstrip("/") for d in DEFAULT_EXCLUDES if d.endswith("/")}
    found, seen = [], 0
    for folder, dirs, files in os.walk(cwd):
        dirs[:] = [d for d in dirs if d not in pruned]
        for name in files:
            seen += 1
            path = os.path.join(folder, name)
            try:
                if os.path.getsize(path) > MAX_SHIPPED_FILE:
                    found.append(os.path.relpath(path, cwd).replace(os.sep, "/"))
            except OSError:
                pass
        if seen > limit:
            break
    return sorted(found)


def _failed(task: StageTask, started: float, error: StageErrorInfo, worker: dict | None = None) -> StageOutcome:
    return StageOutcome(task.stage, "failed", started, time.time(), None, error, {"executor": "ray", **(worker or {})})


def _error_from_ray(task: StageTask, exc: BaseException) -> StageErrorInfo:
    name = type(exc).__name__
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc).strip().splitlines()
    short = text[0] if text else name
    if "TaskCancelledError" in kinds:
        return StageErrorInfo("KeyboardInterrupt", f"stage {task.stage!r} was cancelled on the Ray cluster")
    if "RuntimeEnvSetupError" in kinds:
        return StageErrorInfo(name, "a Ray worker could not set up the stage's environment (working_dir / py_modules): "
                              + "\n".join(text[-5:]), traceback=str(exc))
    if kinds & set(_RETRYABLE):
        return StageErrorInfo(name, f"the Ray worker running stage {task.stage!r} was lost ({short})",
                              traceback=str(exc), retryable=True)
    if "RayTaskError" in kinds:  # nbops itself failed on the worker (not the stage's code: that is an outcome)
        cause = getattr(exc, "cause", None)
        return StageErrorInfo(type(cause).__name__ if cause is not None else name,
                              f"nbops failed on the Ray worker: {cause if cause is not None else short}", traceback=str(exc))
    # Anything else (a dropped Ray Client connection...) may well pass on a second try.
    return StageErrorInfo(name, short, traceback=str(exc), retryable=isinstance(exc, ConnectionError))


# -- worker side ---------------------------------------------------------------------------


def _stage_on_worker(task: StageTask, notebook: bytes, input_names: list[str], *inputs: bytes) -> tuple[StageOutcome, bytes | None]:
    """The Ray task: rebuild the stage's inputs here, run it, send its outputs back."""
    import shutil

    import ray

    from nbops.execute.stage_runner import run_stage
    from nbops.spec import ARTIFACT_PARAM

    task_started = time.time()
    root = Path(tempfile.mkdtemp(prefix=f"nbops-{task.stage}-"))
    try:
        artifacts = root / "artifacts"
        for rel, data in zip(input_names, inputs):
            _write_inside(artifacts, rel, data)
        (artifacts / task.stage).mkdir(parents=True, exist_ok=True)
        stage_nb = root / "stage.ipynb"
        stage_nb.write_bytes(notebook)
        executed_nb = root / "executed.ipynb"
        here = os.getcwd()  # the shipped working_dir
        local = dataclasses.replace(
            task, notebook=str(stage_nb), output_notebook=str(executed_nb), artifact_dir=str(artifacts), cwd=here,
            parameters={**task.parameters, ARTIFACT_PARAM: str(artifacts)},
        )
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        outcome = run_stage(local, _warm_kernel(task.kernel_name, here), gpu_ids)
        ctx = ray.get_runtime_context()
        outcome.worker.update({
            "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "ray_gpu_ids": gpu_ids,
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "task_id": ctx.get_task_id(),
            "task_started": task_started,
            "stage_started_s": round(outcome.started_at - task_started, 3),
        })
        # Paths on this worker mean nothing to the driver: say them in the driver's terms.
        renames = {str(artifacts): task.artifact_dir, str(stage_nb): task.notebook, str(executed_nb): task.output_notebook, here: task.cwd}
        outcome.output_files = _collect(artifacts / task.stage, renames)
        executed = _rename_paths(executed_nb.read_bytes(), renames) if executed_nb.exists() else None
        outcome.executed_notebook = None
        if outcome.error is not None:
            outcome.error.traceback = _rename_text(outcome.error.traceback, renames)
        return outcome, executed
    finally:
        shutil.rmtree(root, ignore_errors=True)


_POOLS: dict[tuple[str, str], Any] = {}  # per Ray worker process: (kernel, cwd) -> KernelPool of one


def _warm_kernel(kernel_name: str, cwd: str) -> Any:
    """A kernel started (and warmed up) while the previous stage ran here, or None for a fresh one.

    Ray keeps a worker process for the next task of the same job, so as on the
    local executor a stage need not wait for a kernel. A pool's spare kernel
    exits by itself when the worker does (ipykernel watches its parent).
    """
    if os.environ.get("NBOPS_RAY_WARM_KERNELS", "1") == "0":
        return None
    from nbops.execute.kernels import KernelPool

    key = (kernel_name, cwd)
    try:
        pool = _POOLS.get(key)
        if pool is None:
            import atexit

            pool = _POOLS[key] = KernelPool(kernel_name, cwd, size=1)
            atexit.register(pool.close)
        return pool.take(timeout=120)
    except Exception:
        _POOLS.pop(key, None)
        return None  # run_stage starts a fresh kernel and reports what goes wrong there


def _write_inside(folder: Path, rel: str, data: bytes) -> None:
    target = (folder / rel).resolve()
    if not str(target).startswith(str(folder.resolve()) + os.sep):
        raise ValueError(f"input path {rel!r} leaves the artifact folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _collect(folder: Path, renames: dict[str, str]) -> dict[str, bytes]:
    """Every file of the stage's output folder ({relative path: bytes}); records get driver paths."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            data = path.read_bytes()
            files[rel] = _rename_paths(data, renames, as_json=True) if rel.endswith(".jsonl") else data
    return files


def _rename_paths(data: bytes, renames: dict[str, str], as_json: bool = True) -> bytes:
    """Replace worker paths by the driver's inside JSON text (longest first, JSON-escaped)."""
    for old, new in sorted(renames.items(), key=lambda kv: -len(kv[0])):
        if old and old != new:
            data = data.replace(json.dumps(old)[1:-1].encode(), json.dumps(new)[1:-1].encode())
    return data


def _rename_text(text: str | None, renames: dict[str, str]) -> str | None:
    if not text:
        return text
    for old, new in sorted(renames.items(), key=lambda kv: -len(kv[0])):
        if old and old != new:
            text = text.replace(old, new)
    return text
