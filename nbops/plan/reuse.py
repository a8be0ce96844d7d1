"""The cache decision for each stage: run it or reuse an earlier result, and why.

One lookup per stage, used by the dry run (``nbops run --dry-run``, the
panel's stale marks) and by the real run (``execute/scheduler.py``), so what
the dry run promises is what the run does.

A stage is reused when an earlier successful execution has the same key
(code, parameters, upstream outputs, base environment) *and* its deps still
hold: the files it read, the local modules it imported and the versions of
the packages it imported are unchanged. Otherwise it runs, and the reason
says what changed, compared with the last time this stage of this notebook
ran.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbops.plan.cache import cache_key, stage_cells, stage_key_parts
from nbops.plan.environment import base_environment, installed_packages
from nbops.plan.explain import Reason, explain_change, reason_from_changes
from nbops.spec import PipelineSpec, StageSpec
from nbops.status import CACHED

if TYPE_CHECKING:  # handed in by the caller: planning never opens a store itself
    from nbops.store import RunStore

__all__ = ["Decision", "ReusePlanner", "RUN", "REUSE"]

RUN, REUSE = "run", "reuse"


@dataclass
class Decision:
    stage: str
    action: str  # RUN | REUSE
    reason: Reason
    key: str | None  # None in a dry run when an upstream stage runs first
    key_parts: dict[str, Any]
    record: dict[str, Any] | None = None  # the execution reused
    reads: list[str] = field(default_factory=list)  # data files the code names (static)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.stage, "action": self.action, "reason": self.reason.to_json(), "reads": self.reads}

    def reused_fields(self, now: float) -> dict[str, Any]:
        """The stage record of a reuse: the execution's results, this decision's key and reason."""
        record = self.record
        assert record is not None
        return dict(
            status=CACHED, started_at=now, ended_at=now, cache_key=self.key, cached_from=record.get("cached_from") or record["run_id"],
            notebook_sha256=record["notebook_sha256"], outputs=record["outputs"], scalars=record["scalars"],
            metrics=record["metrics"], checks=record["checks"], inputs=record["inputs"], artifacts=record["artifacts"],
            worker=record["worker"], reason=self.reason.to_json(), key_parts=self.key_parts, deps=record.get("deps") or [],
        )  # fmt: skip


class ReusePlanner:
    def __init__(
        self,
        spec: PipelineSpec,
        params: Mapping[str, Any],
        store: RunStore | None,
        *,
        notebook: str,
        cwd: str,
        no_cache: bool = False,
        resumed: Mapping[str, dict] | None = None,
    ):
        self.spec, self.params, self.store = spec, params, store
        self.notebook, self.cwd, self.no_cache = notebook, cwd, no_cache
        self.resumed = dict(resumed or {})
        self.environment = base_environment(spec.kernel_name)
        self._cells: dict[str, list[dict]] = {}
        self._memo = None
        self._packages: dict[str, str] | None = None
        # (stage, key) -> the decision made for it: the run's loop asks again for each stage the
        # dry run decided, and gets the same answer without a second store query or dep check.
        self._decided: dict[tuple[str, str], Decision] = {}

    # -- the parts ---------------------------------------------------------------
    def cells(self, stage: StageSpec) -> list[dict]:
        if stage.name not in self._cells:
            doc = json.loads((self.spec.folder / stage.notebook).read_text(encoding="utf-8"))
            self._cells[stage.name] = stage_cells(doc)
        return self._cells[stage.name]

    def key_parts(self, stage: StageSpec, inputs: Mapping[str, str]) -> dict[str, Any]:
        return stage_key_parts(stage, self.params, inputs, self.environment, self.cells(stage))

    # -- deps (files, modules, packages) ------------------------------------------
    @property
    def memo(self):
        if self._memo is None and self.store is not None:
            from nbops.plan.fingerprint import HashMemo

            self._memo = HashMemo(self.store.root / "hashes.db")
        return self._memo

    def packages(self) -> dict[str, str]:
        if self._packages is None:
            self._packages = installed_packages()
        return self._packages

    def changed_deps(self, record: Mapping[str, Any]) -> list[dict]:
        deps = record.get("deps") or []
        if not deps:
            return []
        from nbops.plan.fingerprint import changed_deps

        return changed_deps(deps, self.cwd, self.memo, self.packages(), self._latest_feature)

    def _latest_feature(self, name: str) -> dict | None:
        from nbops.store.feature_store import FeatureStore

        return FeatureStore(self.store).version(name) if self.store is not None else None

    def damaged_objects(self, record: Mapping[str, Any]) -> list[str]:
        """The cheap check before a cache hit: every object the record needs is
        there with its size (its hash is checked when a stage loads it)."""
        found = []
        for var, meta in (record.get("outputs") or {}).items():
            problem = self.store.objects.check(meta["sha256"], meta.get("bytes"))
            if problem:
                found.append(f"output {var!r} {problem}")
        for logged in record.get("artifacts") or []:
            problem = self.store.objects.check(logged["sha256"], logged.get("bytes"))
            if problem:
                found.append(f"artifact {logged.get('name')!r} {problem}")
        if record.get("notebook_sha256") and self.store.objects.check(record["notebook_sha256"], None):
            found.append("executed notebook missing")
        return found

    # -- the decision ---------------------------------------------------------------
    def decide(self, stage: StageSpec, inputs: Mapping[str, str] | None, reran: list[str] = (), *, remembered: bool = True) -> Decision:
        """``inputs``: var -> sha256 of what the stage will load; None when an
        upstream stage must run first (dry run). ``reran``: upstream stages that ran.
        ``remembered=False``: decide again although this key was decided (an object was found damaged since)."""
        parts = self.key_parts(stage, inputs or {})
        key = cache_key(parts) if inputs is not None else None
        if key is None:
            return self._decide(stage, inputs, reran, parts, key)
        if remembered and (stage.name, key) in self._decided and not reran:
            return self._decided[(stage.name, key)]
        decision = self._decided[(stage.name, key)] = self._decide(stage, inputs, reran, parts, key)
        return decision

    def forget(self, stage: str) -> None:
        """Decide ``stage`` afresh next time (an output it was reused with turned out damaged)."""
        self._decided = {k: d for k, d in self._decided.items() if k[0] != stage}

    def _decide(self, stage: StageSpec, inputs: Mapping[str, str] | None, reran, parts: dict[str, Any], key: str | None) -> Decision:

        def run(kind: str, detail: str) -> Decision:
            return Decision(stage.name, RUN, Reason(kind, detail), key, parts)

        record = self.resumed.get(stage.name)
        if record is not None and self.store is not None and self.damaged_objects(record):
            record = None  # its result is damaged in the store: decided like any stage, so recomputed
        if record is not None:
            return Decision(stage.name, REUSE, Reason("resumed", f"succeeded in run {record['run_id']}, which this run resumes"), key, parts, record)
        if not stage.cache:
            return run("cache-off", "the stage is tagged cache:off: it always runs")
        if self.no_cache:
            return run("no-cache", "the cache was turned off for this run (--no-cache)")
        if inputs is None:
            ups = ", ".join(repr(u) for u in reran)
            return run("upstream", f"upstream stage {ups} runs first; this stage is reused only if its inputs come out the same")
        if self.store is None:
            return run("first-run", "no earlier run of this notebook in the store")
        first_changes, damaged = None, None
        for candidate in self.store.find_cached(key):
            damaged_now = self.damaged_objects(candidate)
            if damaged_now:
                damaged = damaged or (candidate, damaged_now)
                continue
            changes = self.changed_deps(candidate)
            if not changes:
                origin = candidate.get("cached_from") or candidate["run_id"]
                return Decision(stage.name, REUSE, Reason("cached", f"same code, parameters, inputs and environment as run {origin}"), key, parts, candidate)
            first_changes = first_changes or changes
        if first_changes:
            reason = reason_from_changes(first_changes)
            return run(reason.kind, reason.detail)
        if damaged:
            record, what = damaged
            return run("damaged", f"the result of run {record['run_id']} is damaged in the store ({', '.join(what)}): recomputing it")
        baseline = self.store.last_execution(self.notebook, stage.name)
        if baseline is None:
            return run("first-run", "no earlier run of this stage in the store")
        reason = explain_change(baseline.get("key_parts") or {}, parts, reran)
        if reason is None:  # same parts, yet no reusable record (deleted, or it failed)
            return run("first-run", "no successful earlier execution with the same code, parameters and inputs is in the store")
        return Decision(stage.name, RUN, reason, key, parts)

    def dry_run(self, reads: bool = True) -> list[Decision]:
        """What a run would do now, stage by stage, without running anything.
        ``reads``: also list the data files each stage's code names (parses the code: for people, not the run)."""
        outputs: dict[str, dict] = {}
        running: list[str] = []
        decisions = []
        for stage in self.spec.stages:
            waits_for = [p for p in sorted(set(stage.inputs.values())) if p in running]
            inputs = None if waits_for else {var: outputs[p][var]["sha256"] for var, p in stage.inputs.items()}
            decision = self.decide(stage, inputs, waits_for or [u for u in stage.upstream if u in running])
            decision.reads = self.static_reads(stage) if reads else []
            if decision.action == RUN:
                running.append(stage.name)
            else:
                outputs[stage.name] = decision.record["outputs"]
            decisions.append(decision)
        return decisions

    def static_reads(self, stage: StageSpec) -> list[str]:
        """Data files the stage's code names (string literals, parameter defaults)."""
        try:
            from nbops.graph.reads import static_reads
        except ImportError:
            return []
        doc = json.loads((self.spec.folder / stage.notebook).read_text(encoding="utf-8"))
        source = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in doc["cells"]
            if c.get("cell_type") == "code" and (c.get("metadata") or {}).get("nbops", {}).get("source_cell") is not None
        )
        try:
            return static_reads(source, self.params)
        except SyntaxError:
            return []
