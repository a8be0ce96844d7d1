"""The Ray executor: each stage is a Ray task on some node of a cluster.

A stage becomes one Ray task asking for the stage's ``num_gpus`` / ``num_cpus``
/ ``memory``. Nothing on a worker reads the driver's filesystem:

- the stage notebook travels as an object ref (``ray.put`` once per file);
- the source notebook's folder (the stages' working directory, for relative
  data paths) travels as the job's ``runtime_env`` ``working_dir``, without the
  run store and big files; the ``nbops`` package travels as a ``py_module``;
- the task rebuilds ``<artifact_dir>/<upstream>/`` in a temp folder, runs the
  stage with papermill (``run_stage``) on a fresh kernel, and sends back the
  stage's records and the executed notebook as bytes. The driver writes the
  notebook to ``task.output_notebook``; the scheduler writes the files and
  records them (``execute/ingest.py``). Workers never open the run records.

How upstream files and outputs travel depends on the store's objects
(``outputs_via`` in each stage's ``worker`` record, and in ``describe()``):

- shared objects (``store.objects.shared``: ``s3://``, ``gs://``, ``az://``, an
  explicit ``file:///shared/path``): the worker is sent the objects' URL and,
  for each upstream file, its sha256 and size; it materializes the inputs from
  the objects (re-hashed), stores every output file there itself, and returns
  only their digests and sizes (``ingest.OBJECT_INDEX``). No payload byte
  passes through the driver, which records the outputs without reading them.
  The URL carries no credentials: a worker reaches the objects with its own
  environment (``AWS_*`` variables or an instance role, a mounted folder).
  nbops forwards no environment variable; Ray's ``runtime_env`` here is only
  ``working_dir`` and ``py_modules``, so the nodes' ``ray start`` environment
  (or their instance role) must grant access, as it does for any Ray job.
- objects only this machine reaches (the default ``.nbops/objects``): upstream
  files travel as object refs (``ray.put`` once per file, shared by every
  consumer) and every output file comes back as bytes in the task result.

Ray's own retries are off (``max_retries=0``): a lost node or crashed worker
comes back as a failed outcome marked ``retryable``, and the scheduler's
``retries:`` policy is the only one, so a run never retries twice over or hangs
on a dead node. A stage no live node could ever hold (asks for more GPUs than
any node has) waits ``node_wait`` seconds for such a node to join, then fails
with a message that says so, instead of queueing forever.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from nbops.execute.base import Executor, StageErrorInfo, StageOutcome, StageTask
from nbops.execute.ingest import read_object_index
from nbops.execute.ray_cluster import connect, import_ray, infeasible, probe, resolve_address, runtime_env
from nbops.execute.ray_worker import VIA_DRIVER, VIA_OBJECTS, stage_on_worker

__all__ = ["RayExecutor"]

_RETRYABLE = (
    "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
    "ObjectFetchTimedOutError", "ObjectReconstructionFailedError", "RaySystemError", "OutOfMemoryError",
    "RpcError", "ObjectStoreFullError",
)  # fmt: skip


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
        self._ray = ray = import_ray()
        self.cwd = os.path.abspath(cwd)
        self.kernel_name = kernel_name
        self.address = resolve_address(address)
        self.node_wait = float(os.environ.get("NBOPS_RAY_NODE_WAIT", "60") if node_wait is None else node_wait)
        self._lock = threading.Lock()
        self._running: dict[Any, str] = {}  # ObjectRef -> stage
        self._refs: dict[tuple, Any] = {}  # (path, size, mtime) -> ObjectRef of the file's bytes
        self._nodes: tuple[float, list[dict]] = (0.0, [])
        self._closed = False
        objects = getattr(store, "objects", None)
        # Workers read and write the objects themselves when they can reach them; the scheduler
        # asks this too (an executor that reads objects needs no input copied to this machine).
        self.reads_objects = bool(getattr(objects, "shared", False))
        self._objects_url: str | None = objects.location if self.reads_objects else None
        self.runtime_env = runtime_env(self.cwd, store, ship_nbops, excludes)
        self._owns_connection = not ray.is_initialized()
        self._task_env: dict | None = None
        if self._owns_connection:
            probe(self.address)
            connect(ray, self.address, self.runtime_env, self.cwd)
        else:  # the user's session is already connected: ship the environment with each task
            self._task_env = self.runtime_env
        # Ray ends a GPU task's worker after one call (max_calls=1) to free the GPU
        # memory the worker holds. Here the stage's kernel, a child shut down after
        # the stage, holds it: the worker and its warm kernel may stay.
        self._remote = ray.remote(max_calls=0)(stage_on_worker)

    # -- submit ----------------------------------------------------------------------------
    def submit(self, task: StageTask) -> Future:
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        submitted = time.time()
        try:
            args = self._ship(task)
        except OSError as exc:
            fut.set_result(_failed(task, submitted, StageErrorInfo("InputsMissing", f"could not read the stage's inputs to send them to Ray: {exc}")))
            return fut
        problem = self._infeasible(task)
        if problem is None:
            self._launch(task, args, fut, submitted)
        else:  # maybe a node is joining (autoscaler, restarted worker): wait for one, off the scheduler's thread
            threading.Thread(target=self._launch_when_feasible, args=(task, args, fut, submitted), daemon=True, name=f"nbops-ray-wait-{task.stage}").start()
        return fut

    def _ship(self, task: StageTask) -> tuple[Any, list[str], list[Any]]:
        """The stage notebook's object ref, and for each upstream file it reads its
        {sha256, bytes} in the shared objects, else an object ref of its bytes."""
        notebook = self._put(Path(task.notebook))
        names, inputs = [], []
        indexes: dict[str, dict] = {}
        for rel in task.input_files:
            names.append(rel)
            entry = self._in_objects(Path(task.artifact_dir), rel, indexes) if self.reads_objects else None
            inputs.append(entry if entry is not None else self._put(Path(task.artifact_dir) / rel))
        return notebook, names, inputs

    @staticmethod
    def _in_objects(artifact_dir: Path, rel: str, indexes: dict[str, dict]) -> dict | None:
        producer, _, name = rel.partition("/")
        if producer not in indexes:
            indexes[producer] = read_object_index(artifact_dir / producer)
        entry = indexes[producer].get(name)
        return None if entry is None else {"sha256": entry["sha256"], "bytes": entry["bytes"]}

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
        notebook, names, inputs = args
        options: dict[str, Any] = dict(
            num_cpus=task.cpus,
            num_gpus=task.gpus,
            max_retries=0,
            retry_exceptions=False,
            name=f"nbops:{task.stage}",
        )
        if task.memory:
            options["memory"] = int(task.memory)
        if self._task_env is not None:
            options["runtime_env"] = self._task_env
        try:
            ref = self._remote.options(**options).remote(task, notebook, names, self._objects_url, *inputs)
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
            fut.set_result(
                _failed(
                    task,
                    submitted,
                    StageErrorInfo(
                        "NoNodeForStage",
                        f"no live node of the Ray cluster can run stage {task.stage!r}: {problem} "
                        f"(waited {self.node_wait:g} s for one to join). Add such a node, or lower the stage's gpus:/cpus:/memory: tags",
                    ),
                )
            )

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
        try:
            nodes = self._alive_nodes(fresh)
        except Exception:  # noqa: BLE001 - can't tell: let Ray decide
            return None
        return infeasible(nodes, task.gpus, task.cpus, task.memory or 0)

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
            "outputs_via": VIA_OBJECTS if self.reads_objects else VIA_DRIVER,
        }


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
        return StageErrorInfo(
            name, "a Ray worker could not set up the stage's environment (working_dir / py_modules): " + "\n".join(text[-5:]), traceback=str(exc)
        )
    if kinds & set(_RETRYABLE):
        return StageErrorInfo(name, f"the Ray worker running stage {task.stage!r} was lost ({short})", traceback=str(exc), retryable=True)
    if "RayTaskError" in kinds:  # nbops itself failed on the worker (not the stage's code: that is an outcome)
        cause = getattr(exc, "cause", None)
        return StageErrorInfo(
            type(cause).__name__ if cause is not None else name, f"nbops failed on the Ray worker: {cause if cause is not None else short}", traceback=str(exc)
        )
    # Anything else (a dropped Ray Client connection...) may well pass on a second try.
    return StageErrorInfo(name, short, traceback=str(exc), retryable=isinstance(exc, ConnectionError))
