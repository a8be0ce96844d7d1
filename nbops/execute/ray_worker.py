"""What runs inside the Ray task, on a worker: rebuild the stage's inputs, run it, send its outputs back.

Nothing here reads the driver's filesystem or opens the run store: the stage
notebook and the upstream files arrive as bytes, the shipped ``working_dir`` is
the current folder, and every path in what goes back is rewritten in the
driver's terms.
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

from nbops.execute.base import StageOutcome, StageTask

__all__ = ["stage_on_worker"]


def stage_on_worker(task: StageTask, notebook: bytes, input_names: list[str], *inputs: bytes) -> tuple[StageOutcome, bytes | None]:
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
            task,
            notebook=str(stage_nb),
            output_notebook=str(executed_nb),
            artifact_dir=str(artifacts),
            cwd=here,
            parameters={**task.parameters, ARTIFACT_PARAM: str(artifacts)},
        )
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        outcome = run_stage(local, _warm_kernel(task.kernel_name, here), gpu_ids)
        ctx = ray.get_runtime_context()
        outcome.worker.update(
            {
                "node_id": ctx.get_node_id(),
                "node_ip": ray.util.get_node_ip_address(),
                "hostname": socket.gethostname(),
                "ray_gpu_ids": gpu_ids,
                "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                "task_id": ctx.get_task_id(),
                "task_started": task_started,
                "stage_started_s": round(outcome.started_at - task_started, 3),
            }
        )
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
