"""What runs inside the Ray task, on a worker: rebuild the stage's inputs, run it, send its outputs back.

Nothing here reads the driver's filesystem or opens the run records: the stage
notebook arrives as bytes, the shipped ``working_dir`` is the current folder,
and every path in what goes back is rewritten in the driver's terms.

Upstream files and outputs travel one of two ways (``outputs_via`` in the
stage's ``worker`` record):

- ``"driver"`` (objects only the driver can reach): inputs arrive as bytes and
  every file of the stage's folder goes back as bytes in the task result;
- ``"object store"`` (shared objects, ``objects_url`` given): an input given as
  {sha256, bytes} is materialized from the objects and re-hashed here; each
  payload file is stored in the objects from here (streamed, hashed here unless
  the stage hashed it while writing), and only the records
  (``ingest.is_record_file``) and ``ingest.OBJECT_INDEX`` go back. The worker
  reaches the objects with its own environment (AWS_* variables, an instance
  role, a mounted folder): the driver sends the URL, never credentials.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from nbops.errors import CorruptObjectError, StoreError
from nbops.execute.base import StageErrorInfo, StageOutcome, StageTask
from nbops.execute.ingest import OBJECT_INDEX, is_record_file
from nbops.runtime.files import digest_matches
from nbops.runtime.marshal import MANIFEST

__all__ = ["stage_on_worker", "VIA_DRIVER", "VIA_OBJECTS"]

VIA_DRIVER, VIA_OBJECTS = "driver", "object store"


def stage_on_worker(
    task: StageTask, notebook: bytes, input_names: list[str], objects_url: str | None, *inputs: bytes | dict
) -> tuple[StageOutcome, bytes | None]:
    """The Ray task: rebuild the stage's inputs here, run it, send its outputs back.

    Each input is its bytes, or {sha256, bytes} of an object at ``objects_url``; with
    ``objects_url`` the outputs go to the objects from here (see the module docstring)."""
    import shutil

    import ray

    from nbops.execute.stage_runner import run_stage
    from nbops.spec import ARTIFACT_PARAM

    task_started = time.time()
    root = Path(tempfile.mkdtemp(prefix=f"nbops-{task.stage}-"))
    try:
        artifacts = root / "artifacts"
        objects = _open_objects(objects_url, root) if objects_url else None
        try:
            for rel, data in zip(input_names, inputs):
                if isinstance(data, bytes):
                    _write_inside(artifacts, rel, data)
                else:
                    _fetch_inside(objects, artifacts, rel, data)
        except (StoreError, OSError, ValueError) as exc:
            return _inputs_failed(task, task_started, objects_url, exc), None
        (artifacts / task.stage).mkdir(parents=True, exist_ok=True)
        stage_nb = root / "stage.ipynb"
        stage_nb.write_bytes(notebook)
        executed_nb = root / "executed.ipynb"
        here = os.getcwd()  # the shipped working_dir
        local = dataclasses.replace(
            task,
            notebook=str(stage_nb),
            output_notebook=str(executed_nb),
            artifact_dir=str(artifacts),
            cwd=here,
            parameters={**task.parameters, ARTIFACT_PARAM: str(artifacts)},
        )
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        km = _warm_kernel(task.kernel_name, here)
        outcome = run_stage(local, km, gpu_ids)
        ctx = ray.get_runtime_context()
        outcome.worker.update(
            {
                **getattr(km, "nbops_start", {}),  # how its kernel started (launched warm on a Ray worker)
                "node_id": ctx.get_node_id(),
                "node_ip": ray.util.get_node_ip_address(),
                "hostname": socket.gethostname(),
                "ray_gpu_ids": gpu_ids,
                "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                "task_id": ctx.get_task_id(),
                "task_started": task_started,
                "stage_started_s": round(outcome.started_at - task_started, 3),
                "inputs_via": (VIA_OBJECTS if any(isinstance(d, dict) for d in inputs) else VIA_DRIVER) if inputs else None,
                "outputs_via": VIA_OBJECTS if objects else VIA_DRIVER,
            }
        )
        # Paths on this worker mean nothing to the driver: say them in the driver's terms.
        renames = {str(artifacts): task.artifact_dir, str(stage_nb): task.notebook, str(executed_nb): task.output_notebook, here: task.cwd}
        try:
            # A failed stage's payload is never recorded: it is not stored either.
            outcome.output_files = _collect(artifacts / task.stage, renames, objects, payload=outcome.status == "succeeded")
        except StoreError as exc:  # the objects went away under the stage: its retry may find them back
            outcome.status = "failed"
            outcome.error = StageErrorInfo(type(exc).__name__, f"the stage's outputs could not be stored from the Ray worker: {exc}", retryable=True)
            outcome.output_files = _collect(artifacts / task.stage, renames, objects, payload=False)
        executed = _rename_paths(executed_nb.read_bytes(), renames) if executed_nb.exists() else None
        outcome.executed_notebook = None
        if outcome.error is not None:
            outcome.error.traceback = _rename_text(outcome.error.traceback, renames)
        # What crossed back to the driver, besides this small record: the files' and notebook's bytes.
        outcome.worker["returned_bytes"] = sum(len(b) for b in outcome.output_files.values()) + len(executed or b"")
        return outcome, executed
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _open_objects(url: str, scratch: Path) -> Any:
    from nbops.store.objects import open_objects

    return open_objects(url, scratch)  # a URL always names the objects: the folder is never used


def _fetch_inside(objects: Any, folder: Path, rel: str, entry: dict) -> None:
    """Materialize an input object into ``folder/rel`` and re-hash the copy here: a stage
    never reads bytes that do not hash to the digest the driver recorded."""
    if objects is None:
        raise ValueError(f"input {rel!r} is in the objects, but no object store was given")
    target = _inside(folder, rel)
    objects.materialize(entry["sha256"], target, size=entry["bytes"])
    if not digest_matches(target, entry["sha256"]):
        target.unlink(missing_ok=True)
        raise CorruptObjectError(entry["sha256"], "damaged (its bytes no longer hash to its name)", objects.location)


def _inputs_failed(task: StageTask, started: float, objects_url: str | None, exc: BaseException) -> StageOutcome:
    # A damaged or missing object stays so on a retry; an unreachable store may come back.
    retryable = isinstance(exc, StoreError) and not isinstance(exc, CorruptObjectError)
    error = StageErrorInfo(type(exc).__name__, f"the Ray worker could not get the stage's inputs: {exc}", retryable=retryable)
    via = VIA_OBJECTS if objects_url else VIA_DRIVER
    worker = {"hostname": socket.gethostname(), "pid": os.getpid(), "task_started": started, "outputs_via": via, "returned_bytes": 0}
    return StageOutcome(task.stage, "failed", started, time.time(), None, error, worker, output_files={})


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


def _inside(folder: Path, rel: str) -> Path:
    target = (folder / rel).resolve()
    if not str(target).startswith(str(folder.resolve()) + os.sep):
        raise ValueError(f"input path {rel!r} leaves the artifact folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _write_inside(folder: Path, rel: str, data: bytes) -> None:
    _inside(folder, rel).write_bytes(data)


def _collect(folder: Path, renames: dict[str, str], objects: Any = None, payload: bool = True) -> dict[str, bytes]:
    """The stage's output folder as the driver gets it ({relative path: bytes}); records get driver paths.

    With ``objects``, payload files are stored there from here and only named, with their
    digest and size, in ``OBJECT_INDEX`` (without ``payload``: left out altogether)."""
    files: dict[str, bytes] = {}
    stored: dict[str, dict] = {}
    known = _manifest_digests(folder) if objects is not None else {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if objects is None or is_record_file(rel):
            data = path.read_bytes()
            files[rel] = _rename_paths(data, renames, as_json=True) if rel.endswith(".jsonl") else data
        elif payload:
            size = path.stat().st_size
            # A digest the stage computed while writing is trusted only for the same size (as in ingest).
            digest = known.get(rel, {}).get("sha256") if known.get(rel, {}).get("bytes") == size else None
            stored[rel] = {"sha256": objects.put_file(path, move=True, digest=digest), "bytes": size}
    if stored:
        files[OBJECT_INDEX] = json.dumps(stored, indent=1, sort_keys=True).encode()
    return files


def _manifest_digests(folder: Path) -> dict[str, dict]:
    try:
        outputs = json.loads((folder / MANIFEST).read_text())["outputs"]
    except (OSError, ValueError, KeyError):
        return {}
    return {m["file"]: m for m in outputs.values() if isinstance(m, dict) and "file" in m}


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
