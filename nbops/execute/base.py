"""The executor interface: how a stage gets run, wherever that is.

The scheduling loop (``nbops.execute.scheduler``) is written once; an
executor only decides *where* a ``StageTask`` runs. ``submit`` returns a
``concurrent.futures.Future`` resolving to a ``StageOutcome``; it must never
raise for a failing stage (that is an outcome with ``status="failed"``), only
for a broken executor.

A task is self-contained data: the stage notebook path, its parameters, the
folder where its upstream artifacts are (``artifact_dir/<upstream>/``) and
where it writes its own (``artifact_dir/<stage>/``), and where the executed
notebook goes. The driver alone reads those folders back into the run store.
"""

from __future__ import annotations

import abc
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Executor", "StageTask", "StageOutcome", "StageErrorInfo"]


@dataclass
class StageTask:
    run_id: str
    stage: str
    notebook: str  # path of the generated stage notebook (papermill input)
    output_notebook: str  # where the executed notebook is written
    parameters: dict[str, Any]  # injected by papermill, incl. nbops_artifact_dir
    artifact_dir: str  # <artifact_dir>/<upstream>/ holds inputs, <stage>/ gets outputs
    cwd: str  # the source notebook's folder, as in Jupyter
    kernel_name: str = "python3"
    gpus: int = 0
    cpus: float = 1
    memory: int | None = None  # bytes
    timeout: float | None = None  # seconds, whole stage
    attempt: int = 1
    cache_key: str = ""
    # Relative paths of the upstream outputs this stage reads, for executors
    # that must ship them (Ray); local executors read artifact_dir directly.
    input_files: list[str] = field(default_factory=list)


@dataclass
class StageErrorInfo:
    ename: str
    evalue: str
    cell_index: int | None = None  # index in the *stage* notebook
    cell_source: str | None = None
    traceback: str | None = None
    retryable: bool = False  # e.g. a lost worker node, not a user exception

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class StageOutcome:
    stage: str
    status: str  # "succeeded" | "failed"
    started_at: float
    ended_at: float
    executed_notebook: str | None = None
    error: StageErrorInfo | None = None
    # Where it ran: host, pid, gpu ids, CUDA_VISIBLE_DEVICES, ray node id...
    worker: dict[str, Any] = field(default_factory=dict)
    # For remote executors: files of <artifact_dir>/<stage>/ brought back (with shared
    # objects: only the records and ingest.OBJECT_INDEX, which names the rest by digest).
    output_files: dict[str, bytes] | None = None


class Executor(abc.ABC):
    """Runs stage tasks. Subclasses: ``LocalExecutor``, ``RayExecutor``."""

    name: str = "?"
    # True when the stages read their inputs from the store's objects themselves (Ray
    # workers with shared objects): the driver need not copy reused outputs into
    # artifact_dir. Otherwise every input must be a file there (ingest.materialize_inputs).
    reads_objects: bool = False

    @abc.abstractmethod
    def submit(self, task: StageTask) -> Future:
        """Start ``task``; the future resolves to a ``StageOutcome``."""

    def cancel_all(self) -> None:
        """Stop every running task (Ctrl-C)."""

    def close(self) -> None:
        """Release kernels, workers, connections."""

    def describe(self) -> dict[str, Any]:
        """What the run record says about the executor."""
        return {"name": self.name}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
