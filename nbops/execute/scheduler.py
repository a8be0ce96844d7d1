"""The one scheduling loop: plan -> reuse decisions -> executor -> run store.

Written once for every executor (``local``, ``ray``): a stage is ready when
all its upstream stages succeeded or were reused; ``plan.ReusePlanner``
decides whether a ready stage is reused (from the cache, or from the run
being resumed) and why; otherwise it is submitted. The loop waits for the
first future to finish, records the outcome (``execute/ingest.py``), retries
per ``retries:``, and marks everything downstream of a failure ``skipped``.
Only this driver writes the store.

The store can break under a run (a team store's object server or database
going away): a stage whose outputs cannot be stored or loaded fails with the
store's message, no further stage starts, the run is recorded ``failed``, and
then the store's error is raised (a StoreError, exit code 3) naming the run to
``nbops resume``. When the records themselves cannot be written, the run stops
at once with that error; readers mark it ``interrupted`` once this driver is
gone.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import CorruptObjectError, StoreError
from nbops.execute.base import Executor, StageErrorInfo, StageOutcome, StageTask
from nbops.execute.provenance import capture_env, git_state
from nbops.plan import REUSE, Decision, ReusePlanner, is_secret
from nbops.plan.cached_run import run_fields
from nbops.plan.secrets import Scrubber
from nbops.spec import ARTIFACT_PARAM, PipelineSpec, StageSpec
from nbops.status import DONE_OK, FAILED, INTERRUPTED, PENDING, RUNNING, SKIPPED, SUCCEEDED

if TYPE_CHECKING:  # the store's module (and SQLAlchemy) is the caller's to import: a RunStore is handed in
    from nbops.store import RunStore

# execute/ingest.py (storing a stage's outputs) is imported when a stage ran: a fully cached run never needs it.

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
        if req.run_id is None:
            from nbops.store import new_run_id
        self.run_id = req.run_id or new_run_id()
        self.dir = self.store.run_dir(self.run_id)
        self.artifacts = self.dir / "artifacts"
        self.notebooks = self.dir / "notebooks"
        self.position = {s.name: i for i, s in enumerate(self.spec.stages)}
        self.status: dict[str, str] = {s.name: PENDING for s in self.spec.stages}
        self.outputs: dict[str, dict[str, dict]] = {}  # stage -> var -> {sha256, file, serializer}
        self.decisions: dict[str, Decision] = {}
        self.reused: set[str] = set()  # stages whose outputs came from the store
        self.verified: set[str] = set()  # objects re-hashed in this run
        self.unwritten: set[str] = set()  # reused stages whose manifest is written when a stage that runs loads them
        self.secret_names = [k for k in req.params if is_secret(k)]
        self.scrub = Scrubber.from_params(req.params)  # secret values never reach a record, a notebook or the terminal
        self.planner = ReusePlanner(self.spec, req.params, self.store, notebook=req.notebook, cwd=req.cwd, no_cache=req.no_cache, resumed=req.reuse)
        self.broken: StoreError | None = None  # the store failed under a stage: no further stage starts

    # -- lifecycle -----------------------------------------------------------
    def go(self) -> str:
        req = self.req
        # The dry run's decisions are kept by the planner: the loop below asks again only
        # for a stage whose inputs came out differently (one store query per stage).
        self.expected = sum(d.action != REUSE for d in self.planner.dry_run(reads=False))
        warm_up = getattr(self.executor, "warm_up", None) if self.expected else None
        if warm_up:
            # Kernels start now, in the background, while provenance is recorded:
            # the first stage to run finds one ready.
            warm_up(expected=self.expected)
        fields = run_fields(
            self.spec, req.notebook, req.params, env=capture_env(self.spec.kernel_name), git=git_state(req.cwd), executor=self.executor.describe(),
            kind=req.kind, parent_id=req.parent_id, study=req.study, trial=req.trial, metric_names=req.metric_names, no_cache=req.no_cache,
        )  # fmt: skip
        self.store.create_run(self.run_id, **fields)
        for s in self.spec.stages:
            self.store.put_stage(self.run_id, s.name, self.position[s.name], status=PENDING)
        if req.on_created:
            req.on_created(self.run_id)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.notebooks.mkdir(parents=True, exist_ok=True)
        beat = _Heartbeat(self.store, self.run_id)
        try:
            self.loop()
            status = FAILED if FAILED in self.status.values() else SUCCEEDED
            self.store.update_run(self.run_id, status=status, ended_at=time.time())
        except KeyboardInterrupt:
            self.executor.cancel_all()
            self.finish_interrupted()
            raise
        except StoreError as exc:  # the records cannot be written: nothing more can be kept
            self.executor.cancel_all()
            self.try_mark_failed()
            raise self.resumable(exc, "stopped") from None
        finally:
            beat.stop()
            shutil.rmtree(self.artifacts, ignore_errors=True)  # every artifact is in objects/
        self.progress("run_done", "", {"run_id": self.run_id, "status": status})
        if self.broken is not None:
            raise self.resumable(self.broken, "failed")
        return self.run_id

    def resumable(self, exc: StoreError, how: str) -> StoreError:
        """The store's error, naming this run and how to continue it once the store is back."""
        return StoreError(f"run {self.run_id} {how}: {exc.message}", f"{exc.fix}; then continue it: nbops resume {self.run_id}")

    def finish_interrupted(self) -> None:
        for name, status in self.status.items():
            if status == RUNNING:
                error = {"ename": "KeyboardInterrupt", "evalue": "cancelled with Ctrl-C"}
                self.set_stage(name, FAILED, error=error, ended_at=time.time())
                # papermill wrote it cell by cell, unscrubbed, and may still be writing: never kept
                (self.notebooks / f"{name}.ipynb").unlink(missing_ok=True)
            elif status == PENDING:
                self.set_stage(name, SKIPPED)
        self.store.update_run(self.run_id, status=INTERRUPTED, ended_at=time.time())

    def try_mark_failed(self) -> None:
        """Record the run as failed if the database still answers; when it does not, the
        next reader marks the run interrupted once this process has exited."""
        try:
            self.store.update_run(self.run_id, status=FAILED, ended_at=time.time())
        except StoreError:
            pass

    def store_failed(self, name: str, exc: StoreError, started_at: float | None = None) -> None:
        """The store failed while a stage's outputs were stored or loaded: that stage fails
        with the store's message (no retry: the store, not the stage, is at fault) and no
        other stage starts. Raises StoreError when the failure cannot be recorded either."""
        self.broken = self.broken or exc
        error = {"ename": type(exc).__name__, "evalue": exc.message, "fix": exc.fix}
        now = time.time()
        self.set_stage(name, FAILED, error=error, ended_at=now, **({"started_at": started_at} if started_at else {}))
        self.progress(FAILED, name, {"seconds": now - (started_at or now), "error": error})

    def set_stage(self, name: str, status: str, **fields: Any) -> None:
        self.status[name] = status
        self.store.put_stage(self.run_id, name, self.position[name], status=status, **fields)

    # -- the loop --------------------------------------------------------------
    def loop(self) -> None:
        running: dict[Future, StageTask] = {}
        while True:
            progressed = True
            while progressed:  # reused stages can make more stages ready at once
                progressed = False
                for stage in self.spec.stages:
                    if self.status[stage.name] != PENDING:
                        continue
                    ups = [self.status[u] for u in stage.upstream]
                    if self.broken is not None or any(u in (FAILED, SKIPPED) for u in ups):
                        self.set_stage(stage.name, SKIPPED)
                        self.progress("skipped", stage.name, {})
                        progressed = True
                    elif all(u in DONE_OK for u in ups):
                        progressed = True
                        try:
                            task = self.start(stage)
                        except StoreError as exc:  # a reused output could not be loaded
                            self.store_failed(stage.name, exc)
                            continue
                        if task is not None:
                            running[self.executor.submit(task)] = task
            if not running:
                return
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                task = running.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # the executor itself broke
                    now = time.time()
                    error = StageErrorInfo(type(exc).__name__, str(exc), retryable=True)
                    outcome = StageOutcome(task.stage, FAILED, now, now, error=error)
                try:
                    retry = self.record(task, outcome)
                except StoreError as exc:  # its outputs or notebook could not be stored
                    self.store_failed(task.stage, exc, outcome.started_at)
                    retry = None
                if retry:
                    running[self.executor.submit(retry)] = retry

    def start(self, stage: StageSpec) -> StageTask | None:
        """Reuse ``stage`` or make its task; None when reused (or when a damaged
        input sends its producer back to be recomputed first)."""
        if not self.inputs_intact(stage):
            return None
        inputs = {var: self.outputs[producer][var]["sha256"] for var, producer in stage.inputs.items()}
        reran = [u for u in stage.upstream if self.status[u] == SUCCEEDED]
        decision = self.decisions[stage.name] = self.planner.decide(stage, inputs, reran)
        if decision.action == REUSE:
            try:
                self.reuse(stage, decision)
                return None
            except CorruptObjectError as exc:  # an object store that re-hashes what it hands out found it damaged
                self.reused.discard(stage.name)
                self.progress("note", stage.name, {"message": f"a stored output of stage {stage.name!r} is {exc.problem}: recomputing it"})
                self.store.objects.delete(exc.digest)  # the next decision sees it missing: reason "damaged"
                decision = self.decisions[stage.name] = self.planner.decide(stage, inputs, reran, remembered=False)
                if decision.action == REUSE:  # another execution with intact objects
                    self.reuse(stage, decision)
                    return None
        warm_up = getattr(self.executor, "warm_up", None)
        if warm_up and not self.expected:
            self.expected = 1  # the dry run said "all reused"; a file changed since
            warm_up(expected=1)
        task = self.make_task(stage)
        self.set_stage(
            stage.name, RUNNING, started_at=time.time(), cache_key=task.cache_key, attempts=task.attempt,
            reason=decision.reason.to_json(), key_parts=decision.key_parts,
        )  # fmt: skip
        self.progress("started", stage.name, {"attempt": task.attempt, "reason": decision.reason.to_json()})
        return task

    def inputs_intact(self, stage: StageSpec) -> bool:
        """Objects a stage will load from the store are re-hashed first (once per
        run): a stage never unpickles bytes whose hash does not match. A damaged
        one is removed and the stage that made it goes back to pending, so the
        next pass recomputes it."""
        for var, producer in sorted(stage.inputs.items()):
            digest = self.outputs[producer][var]["sha256"]
            if producer not in self.reused or digest in self.verified:
                continue
            if self.store.objects.verify(digest):
                self.verified.add(digest)
                continue
            self.progress(
                "note", producer, {"message": f"the stored {var!r} of stage {producer!r} is damaged (object {digest[:12]}): recomputing {producer!r}"}
            )
            self.store.objects.delete(digest)  # a cache lookup now sees it missing
            self.planner.forget(producer)
            shutil.rmtree(self.artifacts / producer, ignore_errors=True)
            self.reused.discard(producer)
            del self.outputs[producer]
            self.set_stage(producer, PENDING)
            return False
        return True

    def reuse(self, stage: StageSpec, decision: Decision) -> None:
        record = decision.record
        self.reused.add(stage.name)
        if getattr(self.store.objects, "materialize_verifies", False) and not self.executor.reads_objects:
            # A remote store re-hashes what it downloads: fetched now, once, and inputs_intact need not fetch it again.
            for meta in record["outputs"].values():
                self.store.objects.materialize(meta["sha256"], self.artifacts / stage.name / meta["file"], size=meta.get("bytes"))
                self.verified.add(meta["sha256"])
            self.write_manifest(stage.name, record["outputs"])
        else:
            # Nothing is copied yet: a stage that runs and loads these outputs gets them then
            # (make_task); a fully cached run writes nothing into its artifacts folder.
            self.unwritten.add(stage.name)
        self.outputs[stage.name] = record["outputs"]
        fields = decision.reused_fields(time.time())
        self.set_stage(stage.name, fields.pop("status"), **fields)
        # The executed notebook stays an object (checked present by the planner): history.stage_notebook
        # links it into the run folder when someone opens it.
        self.progress("cached", stage.name, {"from": record["run_id"], "reason": decision.reason.to_json()})
        self.note_unseen(stage.name, record.get("deps") or [], reused=True)

    # -- submit ----------------------------------------------------------------
    def make_task(self, stage: StageSpec, attempt: int = 1) -> StageTask:
        params = {name: self.req.params[name] for name in stage.parameters}
        params[ARTIFACT_PARAM] = str(self.artifacts)
        res = stage.resources
        # A fresh output folder: a retried stage must not see a half-written first attempt.
        shutil.rmtree(self.artifacts / stage.name, ignore_errors=True)
        from nbops.runtime.marshal import MANIFEST  # marshalling is imported when a stage runs

        input_files = [f"{p}/{self.outputs[p][v]['file']}" for v, p in sorted(stage.inputs.items())]
        for producer in sorted(set(stage.inputs.values()) & self.unwritten):
            self.write_manifest(producer, self.outputs[producer])
        if not self.executor.reads_objects:  # an input only in the objects (reused, or stored by a Ray worker): copied here now
            from nbops.execute.ingest import materialize_inputs

            materialize_inputs(self.artifacts, input_files, self.store.objects)
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
            input_files=input_files + sorted({f"{p}/{MANIFEST}" for p in stage.inputs.values()}),
            cache_key=self.decisions[stage.name].key or "",
        )
        Path(task.output_notebook).unlink(missing_ok=True)  # a retry's earlier notebook is an object now
        return task

    def write_manifest(self, stage: str, outputs: dict[str, dict]) -> None:
        """The manifest of reused outputs and the object index the executor sends digests from."""
        from nbops.execute.ingest import write_manifest

        write_manifest(self.artifacts, stage, outputs)
        self.unwritten.discard(stage)

    # -- record ------------------------------------------------------------------
    def record(self, task: StageTask, outcome: StageOutcome) -> StageTask | None:
        """Store a finished attempt; returns the next attempt's task when it is retried."""
        from nbops.execute.ingest import StageIngest, write_returned_files

        stage = self.spec.stage(task.stage)
        ingest = StageIngest(self.store, self.artifacts / stage.name, self.secret_names, self.scrub)
        if outcome.output_files is not None:  # a remote executor brought the files back
            try:
                write_returned_files(ingest.out_dir, outcome.output_files)
            except (OSError, ValueError) as exc:
                outcome.status, outcome.error = FAILED, StageErrorInfo("OutputsRejected", str(exc))
        common = dict(
            started_at=outcome.started_at, ended_at=outcome.ended_at, cache_key=task.cache_key,
            notebook_sha256=ingest.notebook(outcome), metrics=ingest.records("metrics"), checks=ingest.records("checks"),
            inputs=ingest.records("inputs"), worker=outcome.worker, attempts=task.attempt,
        )  # fmt: skip
        if outcome.status == SUCCEEDED:
            try:
                outputs = ingest.outputs(stage)
                deps = self.deps(stage, ingest)
            except (OSError, ValueError, KeyError) as exc:
                outcome.status = FAILED
                outcome.error = StageErrorInfo("OutputsMissing", f"the stage's outputs could not be read: {exc}")
            else:
                self.outputs[stage.name] = outputs
                self.set_stage(stage.name, SUCCEEDED, outputs=outputs, scalars=ingest.scalars(),
                               artifacts=ingest.logged(), error=None, deps=deps, **common)  # fmt: skip
                self.progress(SUCCEEDED, stage.name, {"seconds": outcome.ended_at - outcome.started_at})
                return None
        error = ingest.error(outcome)  # secrets masked, kernel log tails included
        if task.attempt <= int(stage.resources.get("retries") or 0):
            self.progress("retry", stage.name, {"attempt": task.attempt, "error": error})
            self.set_stage(stage.name, RUNNING, error=error, **{**common, "ended_at": None})
            return self.make_task(stage, task.attempt + 1)
        self.set_stage(stage.name, FAILED, error=error, **common)
        self.progress(FAILED, stage.name, {"seconds": outcome.ended_at - outcome.started_at, "error": error})
        return None

    def deps(self, stage: StageSpec, ingest: Any) -> list[dict]:
        """What the stage read, imported and ran against, fingerprinted now (the memo makes it cheap)."""
        from nbops.plan.fingerprint import deps_from_records

        deps = deps_from_records(ingest.records("reads"), self.req.cwd, self.planner.memo)
        self.note_unseen(stage.name, deps, reused=False)
        return deps

    def note_unseen(self, stage: str, deps: list[dict], reused: bool) -> None:
        """Say once per stage that it read a source nbops cannot fingerprint."""
        from nbops.plan.fingerprint import unseen_note

        message = unseen_note(deps, reused)
        if message:
            self.progress("note", stage, {"message": message})


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
            except Exception as exc:  # a busy or vanished store must not kill the run; the next beat retries
                self.last_error = exc

    def stop(self) -> None:
        self._stop.set()
