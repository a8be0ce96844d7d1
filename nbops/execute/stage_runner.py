"""Run one stage notebook through papermill, on a given (or new) kernel.

This is what the local executor calls in a worker thread and what a Ray task
calls on a worker node. It never raises for a failing stage: the failure is
a ``StageOutcome`` with the exception, the cell, and the executed notebook
(papermill's error marking included) kept.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from typing import Any

from nbops.execute.base import StageErrorInfo, StageOutcome, StageTask
from nbops.execute.kernels import shutdown_kernel, start_kernel
from nbops.status import FAILED, SUCCEEDED

__all__ = ["run_stage", "gpu_preamble"]


def gpu_preamble(gpu_ids: list[str] | None) -> str:
    """Code run in the kernel first: which GPUs the stage may see.

    A stage that asked for no GPU sees none (as Ray does), so it cannot
    take memory from the stage that asked for one.
    """
    value = ",".join(gpu_ids or [])
    return f"import os as _os\n_os.environ['CUDA_VISIBLE_DEVICES'] = {value!r}\ndel _os\n"


def _run_in_kernel(km: Any, code: str) -> None:
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    finally:
        kc.stop_channels()


def _failed_cell(nb: Any) -> tuple[int | None, Any]:
    """The cell holding the error output, or the one that was running when the kernel died."""
    running = None
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i, cell
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if status in ("running", "failed") and running is None:
            running = (i, cell)
    return running if running else (None, None)


def run_stage(task: StageTask, km: Any = None, gpu_ids: list[str] | None = None) -> StageOutcome:
    """Execute ``task`` with papermill; ``km`` is a started kernel or None for a fresh one."""
    # papermill is imported here, not at module import: `import nbops` stays light.
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError
    from papermill.execute import prepare_notebook_metadata, raise_for_execution_errors, remove_error_markers
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    started = time.time()
    worker = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "gpu_ids": list(gpu_ids or []),
        "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids or []),
    }
    if task.gpus and not gpu_ids:
        worker["gpu_note"] = f"asked for {task.gpus} GPU(s); none available here, ran on CPU"
    timer = None
    timed_out = threading.Event()
    try:
        if km is None:
            km = start_kernel(task.kernel_name, task.cwd, warm=False)
        _run_in_kernel(km, gpu_preamble(gpu_ids))
        nb = load_notebook_node(task.notebook)
        nb = parameterize_notebook(nb, task.parameters, report_mode=False, kernel_name=task.kernel_name, language="python")
        nb = prepare_notebook_metadata(nb, task.notebook, task.output_notebook, False)
        nb = remove_error_markers(nb)
        if task.timeout:

            def expire() -> None:
                timed_out.set()
                shutdown_kernel(km)

            timer = threading.Timer(task.timeout, expire)
            timer.daemon = True
            timer.start()
        nb = papermill_engines.execute_notebook_with_engine(
            None,
            nb,
            kernel_name=task.kernel_name,
            input_path=task.notebook,
            output_path=task.output_notebook,
            progress_bar=False,
            log_output=False,
            start_timeout=60,
            execution_timeout=task.timeout,
            km=km,
        )
        raise_for_execution_errors(nb, task.output_notebook)
        return StageOutcome(task.stage, SUCCEEDED, started, time.time(), task.output_notebook, None, worker)
    except PapermillExecutionError as exc:
        error = StageErrorInfo(exc.ename, str(exc.evalue), exc.cell_index, exc.source, "\n".join(exc.traceback or []))
    except Exception as exc:  # dead kernel, timeout, papermill/nbclient failures
        error = _error_from_exception(task, exc, timed_out.is_set(), getattr(km, "nbops_log", None))
    finally:
        if timer is not None:
            timer.cancel()
        if km is not None:  # kernels are used once: no state leaks into the next stage
            shutdown_kernel(km)
    return StageOutcome(
        task.stage,
        FAILED,
        started,
        time.time(),
        task.output_notebook if os.path.exists(task.output_notebook) else None,
        error,
        worker,
    )


def _log_tail(path: str | None, limit: int = 1500) -> str:
    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            text = f.read().decode(errors="replace")
    except (OSError, TypeError):
        return ""
    lines = [ln for ln in text.splitlines() if "Parent appears to have exited" not in ln and ln.strip()]
    return "\n".join(lines)[-limit:]


def _error_from_exception(task: StageTask, exc: Exception, timed_out: bool, log_path: str | None = None) -> StageErrorInfo:
    name = type(exc).__name__
    cell_index, source = None, None
    if os.path.exists(task.output_notebook):
        import nbformat

        try:
            nb = nbformat.read(task.output_notebook, as_version=4)
            cell_index, cell = _failed_cell(nb)
            source = cell.get("source") if cell is not None else None
        except (OSError, ValueError):  # half-written by a dying kernel: the error still stands, without its cell
            cell_index, source = None, None
    if timed_out or name == "CellTimeoutError":
        return StageErrorInfo("TimeoutError", f"stage {task.stage!r} ran past its timeout of {task.timeout:g} s", cell_index, source)
    if name == "DeadKernelError":
        tail = _log_tail(log_path)
        return StageErrorInfo(
            "DeadKernelError",
            "the kernel died while running the stage (os._exit, a crash, or out of memory)" + (f"; kernel log: {tail}" if tail else ""),
            cell_index,
            source,
        )
    return StageErrorInfo(name, str(exc), cell_index, source, traceback.format_exc())
