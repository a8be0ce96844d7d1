"""The one scheduling loop: plan -> cache lookups -> executor -> run store.

Written once for every executor (``local``, ``ray``): a stage is ready when
all its upstream stages succeeded or were reused; a ready stage is reused
from the cache (or from the run being resumed) when its key has a successful
record, else submitted; the loop waits for the first future to finish,
records the outcome, retries per ``retries:``, and marks everything
downstream of a failure ``skipped``. Only this driver writes the store.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from nbops.execute.base import Executor, StageErrorInfo, StageOutcome, StageTask
from nbops.execute.provenance import capture_env, git_state
from nbops.plan import is_secret, mask_secrets, stage_cache_key
from nbops.runtime.context import read_records
from nbops.runtime.marshal import MANIFEST, SCALARS
from nbops.spec import ARTIFACT_PARAM, PipelineSpec, StageSpec
from nbops.store import RunStore, new_run_id, sha256_file

__all__ = ["RunRequest", "execute_run", "Progress"]

Progress = Callable[[str, str, dict[str, Any]], None]  # (event, stage, info)


@dataclass
class RunRequest:
    spec: PipelineSpec
    params: dict[str, Any]  # resolved and typed
    store: RunStore
    notebook: str  # the source notebook, as shown to the user
    cwd: str  # where stages run: the source notebook's folder
    no_cache: bool = False
    kind: str = "run"  # run | resume | rerun | trial
    parent_id: str | None = None
    reuse: dict[str, dict] = field(default_factory=dict)  # stage -> succeeded record (resume)
    metric_names: list[str] = field(default_factory=list)  # scalar variables to report as metrics
    study: str | None = None
    trial: int | None = None
    run_id: str | None = None
    on_created: Callable[[str], None] | None = None


def execute_run(req: RunRequest, executor: Executor, progress: Progress | None = None) -> str:
    """Run the pipeline; returns the run id. The record says how it went."""
    return _Run(req, executor, progress or (lambda *a: None)).go()


class _Run:
    def __init__(self, req: RunRequest, executor: Executor, progress: Progress):
        self.req, self.executor, self.progress = req, executor, progress
        self.store = req.store
        self.spec = req.spec
        self.run_id = req.run_id or new_run_id()
        self.dir = self.store.run_dir(self.run_id)
        self.artifacts = self.dir / "artifacts"
        self.notebooks = self.dir / "notebooks"
        self.position = {s.name: i for i, s in enumerate(self.spec.stages)}
        self.status: dict[str, str] = {s.name: "pending" for s in self.spec.stages}
        self.outputs: dict[str, dict[str, dict]] = {}  # stage -> var -> {sha256, file, serializer}
        self.attempts: dict[str, int] = {}
        self.secret_names = [k for k in req.params if is_secret(k)]

    # -- lifecycle -----------------------------------------------------------
    def go(self) -> str:
        req = self.req
        self.expected = expected = self.stages_expected_to_run()
        if hasattr(self.executor, "warm_up") and expected:
            # Kernels start now, in the background, while provenance is recorded and the
            # cache is searched: the first stage to run finds one ready.
            self.executor.warm_up(expected=expected)
        env = capture_env(self.spec.kernel_name)
        self.fingerprint = env["fingerprint"]
        self.store.create_run(
            self.run_id,
            notebook=req.notebook,
            pipeline_dir=str(self.spec.folder),
            pipeline_sha256=_pipeline_hash(self.spec),
            notebook_sha256=self.spec.source_sha256,
            params=mask_secrets(req.params),
            env=env,
            git=git_state(req.cwd),
            executor=json.dumps(self.executor.describe()),
            kind=req.kind,
            parent_id=req.parent_id,
            study=req.study,
            trial=req.trial,
            report={"metric_names": req.metric_names, "no_cache": req.no_cache},
        )
        for s in self.spec.stages:
            self.store.put_stage(self.run_id, s.name, self.position[s.name], status="pending")
        if req.on_created:
            req.on_created(self.run_id)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.notebooks.mkdir(parents=True, exist_ok=True)
        beat = _Heartbeat(self.store, self.run_id)
        try:
            self.loop()
        except KeyboardInterrupt:
            self.executor.cancel_all()
            self.finish_interrupted()
            raise
        finally:
            beat.stop()
            shutil.rmtree(self.artifacts, ignore_errors=True)  # every artifact is in objects/
        failed = [n for n, s in self.status.items() if s == "failed"]
        self.store.update_run(self.run_id, status="failed" if failed else "succeeded", ended_at=time.time())
        self.progress("run_done", "", {"run_id": self.run_id, "status": "failed" if failed else "succeeded"})
        return self.run_id

    def stages_expected_to_run(self) -> int:
        """How many stages will run rather than come from the cache: a dry run of the
        lookups the loop will do (a stage downstream of one that runs counts as running)."""
        from nbops.execute.provenance import env_fingerprint

        fingerprint = env_fingerprint(self.spec.kernel_name)
        outputs: dict[str, dict] = {}
        runs = 0
        for stage in self.spec.stages:
            record = self.req.reuse.get(stage.name)
            if record is None and stage.cache and not self.req.no_cache and all(u in outputs for u in stage.upstream):
                inputs = {var: outputs[producer][var]["sha256"] for var, producer in stage.inputs.items()}
                record = self.store.find_cached(stage_cache_key(stage, self.req.params, inputs, fingerprint))
                if record is not None and not _data_unchanged(record):
                    record = None
            if record is None:
                runs += 1
            else:
                outputs[stage.name] = record["outputs"]
        return runs

    def finish_interrupted(self) -> None:
        for name, status in self.status.items():
            if status == "running":
                self.set_stage(name, "failed", error={"ename": "KeyboardInterrupt", "evalue": "cancelled with Ctrl-C"}, ended_at=time.time())
            elif status == "pending":
                self.set_stage(name, "skipped")
        self.store.update_run(self.run_id, status="interrupted", ended_at=time.time())

    def set_stage(self, name: str, status: str, **fields: Any) -> None:
        self.status[name] = status
        self.store.put_stage(self.run_id, name, self.position[name], status=status, **fields)

    # -- the loop --------------------------------------------------------------
    def loop(self) -> None:
        running: dict[Future, StageTask] = {}
        while True:
            progressed = True
            while progressed:  # cache hits can make more stages ready at once
                progressed = False
                for stage in self.spec.stages:
                    if self.status[stage.name] != "pending":
                        continue
                    ups = [self.status[u] for u in stage.upstream]
                    if any(u in ("failed", "skipped") for u in ups):
                        self.set_stage(stage.name, "skipped")
                        self.progress("skipped", stage.name, {})
                        progressed = True
                    elif all(u in ("succeeded", "cached") for u in ups):
                        progressed = True
                        if not self.try_reuse(stage):
                            if hasattr(self.executor, "warm_up") and not self.expected:
                                self.expected = 1  # the dry run guessed "all cached"; it was wrong
                                self.executor.warm_up(expected=1)
                            task = self.make_task(stage)
                            running[self.executor.submit(task)] = task
                            self.set_stage(stage.name, "running", started_at=time.time(), cache_key=task.cache_key, attempts=task.attempt)
                            self.progress("started", stage.name, {"attempt": task.attempt})
            if not running:
                return
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                task = running.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # the executor itself broke
                    outcome = StageOutcome(task.stage, "failed", time.time(), time.time(),
                                           error=StageErrorInfo(type(exc).__name__, str(exc), retryable=True))
                retry = self.record(task, outcome)
                if retry:
                    running[self.executor.submit(retry)] = retry

    # -- reuse -----------------------------------------------------------------
    def input_hashes(self, stage: StageSpec) -> dict[str, str]:
        return {var: self.outputs[producer][var]["sha256"] for var, producer in stage.inputs.items()}

    def cache_key(self, stage: StageSpec) -> str:
        return stage_cache_key(stage, self.req.params, self.input_hashes(stage), self.fingerprint)

    def try_reuse(self, stage: StageSpec) -> bool:
        key = self.cache_key(stage)
        record = self.req.reuse.get(stage.name)
        if record is None and stage.cache and not self.req.no_cache:
            record = self.store.find_cached(key)
            if record is not None and not _data_unchanged(record):
                record = None
        if record is None:
            return False
        for var, meta in record["outputs"].items():
            self.store.objects.materialize(meta["sha256"], self.artifacts / stage.name / meta["file"])
        self.write_manifest(stage.name, record["outputs"])
        self.outputs[stage.name] = record["outputs"]
        now = time.time()
        self.set_stage(
            stage.name, "cached", started_at=now, ended_at=now, cache_key=key,
            cached_from=record.get("cached_from") or record["run_id"],
            notebook_sha256=record["notebook_sha256"], outputs=record["outputs"], scalars=record["scalars"],
            metrics=record["metrics"], checks=record["checks"], inputs=record["inputs"], artifacts=record["artifacts"],
            worker=record["worker"],
        )
        self.store.objects.materialize(record["notebook_sha256"], self.notebooks / f"{stage.name}.ipynb")
        self.progress("cached", stage.name, {"from": record["run_id"]})
        return True

    def write_manifest(self, stage: str, outputs: dict[str, dict]) -> None:
        manifest = {"stage": stage, "outputs": {v: {k: m[k] for k in ("file", "serializer", "type", "series") if k in m} for v, m in outputs.items()}}
        path = self.artifacts / stage / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True))

    # -- submit ----------------------------------------------------------------
    def make_task(self, stage: StageSpec, attempt: int = 1) -> StageTask:
        params = {name: self.req.params[name] for name in stage.parameters}
        params[ARTIFACT_PARAM] = str(self.artifacts)
        res = stage.resources
        # A fresh output folder: a retried stage must not see a half-written first attempt.
        shutil.rmtree(self.artifacts / stage.name, ignore_errors=True)
        task = StageTask(
            run_id=self.run_id,
            stage=stage.name,
            notebook=str(self.spec.folder / stage.notebook),
            output_notebook=str(self.notebooks / f"{stage.name}.ipynb"),
            parameters=params,
            artifact_dir=str(self.artifacts),
            cwd=self.req.cwd,
            kernel_name=self.spec.kernel_name,
            gpus=int(res.get("gpus") or 0),
            cpus=float(res.get("cpus") or 1),
            memory=res.get("memory"),
            timeout=res.get("timeout"),
            attempt=attempt,
            input_files=[f"{p}/{self.outputs[p][v]['file']}" for v, p in sorted(stage.inputs.items())]
            + sorted({f"{p}/{MANIFEST}" for p in stage.inputs.values()}),
        )
        task.cache_key = self.cache_key(stage)
        Path(task.output_notebook).unlink(missing_ok=True)  # a retry's earlier notebook is an object now
        return task

    # -- record ------------------------------------------------------------------
    def record(self, task: StageTask, outcome: StageOutcome) -> StageTask | None:
        stage = self.spec.stage(task.stage)
        out_dir = self.artifacts / stage.name
        if outcome.output_files is not None:  # a remote executor brought the files back
            _write_files(out_dir, outcome.output_files)
        notebook_sha = self.ingest_notebook(outcome)
        common = dict(
            started_at=outcome.started_at, ended_at=outcome.ended_at, cache_key=task.cache_key,
            notebook_sha256=notebook_sha, metrics=read_records(out_dir, "metrics"), checks=read_records(out_dir, "checks"),
            inputs=read_records(out_dir, "inputs"), worker=outcome.worker, attempts=task.attempt,
        )
        if outcome.status == "succeeded":
            try:
                outputs = self.ingest_outputs(stage, out_dir)
            except (OSError, ValueError, KeyError) as exc:
                outcome.status = "failed"
                outcome.error = StageErrorInfo("OutputsMissing", f"the stage's outputs could not be read: {exc}")
            else:
                scalars = _read_json(out_dir / SCALARS, {})
                self.outputs[stage.name] = outputs
                self.set_stage(stage.name, "succeeded", outputs=outputs, scalars=scalars,
                               artifacts=self.ingest_logged(out_dir), error=None, **common)
                self.progress("succeeded", stage.name, {"seconds": outcome.ended_at - outcome.started_at})
                return None
        error = self.describe_error(outcome)
        retries = int(stage.resources.get("retries") or 0)
        if task.attempt <= retries:
            self.progress("retry", stage.name, {"attempt": task.attempt, "error": error})
            self.set_stage(stage.name, "running", error=error, **{**common, "ended_at": None})
            retry = self.make_task(stage, task.attempt + 1)
            return retry
        self.set_stage(stage.name, "failed", error=error, **common)
        self.progress("failed", stage.name, {"seconds": outcome.ended_at - outcome.started_at, "error": error})
        return None

    def describe_error(self, outcome: StageOutcome) -> dict[str, Any]:
        err = outcome.error.to_json() if outcome.error else {"ename": "Error", "evalue": "unknown failure"}
        if len(err.get("traceback") or "") > 20000:  # keep records small; the notebook has it all
            err["traceback"] = err["traceback"][-20000:]
        path = outcome.executed_notebook
        if path and os.path.exists(path):
            try:
                nb = nbformat.read(path, as_version=4)
                for cell in nb.cells:
                    if any(o.get("output_type") == "error" for o in cell.get("outputs", [])) or cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
                        source_cell = cell.get("metadata", {}).get("nbops", {}).get("source_cell")
                        err["cell"] = source_cell
                        err["first_line"] = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
                        err["generated"] = source_cell is None
                        break
            except Exception:
                pass
        return err

    def ingest_notebook(self, outcome: StageOutcome) -> str | None:
        path = outcome.executed_notebook
        if not path or not os.path.exists(path):
            return None
        if self.secret_names:
            _mask_notebook(Path(path), self.secret_names)
        return self.store.objects.put_file(path, move=True)

    def ingest_outputs(self, stage: StageSpec, out_dir: Path) -> dict[str, dict]:
        manifest = json.loads((out_dir / MANIFEST).read_text())["outputs"]
        outputs = {}
        for var in stage.outputs:
            meta = dict(manifest[var])
            file = out_dir / meta["file"]
            size = file.stat().st_size
            # A digest the stage computed while writing is trusted only for the same size.
            known = meta.get("sha256") if meta.get("bytes") == size else None
            meta["bytes"] = size
            meta["sha256"] = self.store.objects.put_file(file, move=True, digest=known)
            outputs[var] = meta
        return outputs

    def ingest_logged(self, out_dir: Path) -> list[dict]:
        logged = []
        for rec in read_records(out_dir, "artifacts"):
            file = out_dir / "_logged" / rec["file"]
            if file.exists():
                logged.append({**rec, "sha256": self.store.objects.put_file(file, move=True), "bytes": file.stat().st_size})
        return logged


class _Heartbeat:
    """Tells readers on other machines that this driver is alive."""

    def __init__(self, store: RunStore, run_id: str, every: float = 10):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store, run_id, every), daemon=True)
        self._thread.start()

    def _beat(self, store: RunStore, run_id: str, every: float) -> None:
        while not self._stop.wait(every):
            try:
                store.heartbeat(run_id)
            except Exception:
                pass

    def stop(self) -> None:
        self._stop.set()


def _pipeline_hash(spec: PipelineSpec) -> str:
    import hashlib

    return hashlib.sha256("".join(s.code_sha256 for s in spec.stages).encode()).hexdigest()


def _data_unchanged(record: dict) -> bool:
    """A cached stage read data files: are they still the same bytes?"""
    for item in record.get("inputs") or []:
        try:
            if sha256_file(item["abspath"]) != item["sha256"]:
                return False
        except (OSError, KeyError):
            return False
    return True


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return default


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = (folder / rel).resolve()
        if not str(target).startswith(str(folder.resolve()) + os.sep):
            continue  # never write outside the stage folder
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def _mask_notebook(path: Path, secret_names: list[str]) -> None:
    """Secrets never reach the store: mask them in papermill's injected cell and metadata."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            lines = []
            for line in cell.source.splitlines():
                name = line.split("=", 1)[0].strip()
                lines.append(f'{name} = "***"' if "=" in line and name in secret_names else line)
            cell.source = "\n".join(lines)
    params = nb.metadata.get("papermill", {}).get("parameters", {})
    for name in secret_names:
        if name in params:
            params[name] = "***"
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
