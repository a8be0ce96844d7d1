"""The model registry's rules: what a reference means, registering a stage output,
promotion behind gates, rollback, history, and loading the live object.

Records are in the run store (``nbops.store.registry``), so the registry is the
same on the embedded and the team store; the bytes are the run's objects.
"""

from __future__ import annotations

import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError, NotFoundError, UsageError
from nbops.history import run_metrics
from nbops.runtime import flavors
from nbops.runtime.files import digest_matches
from nbops.status import DONE_OK
from nbops.store import RunStore, open_store, validate_run_id
from nbops.store.registry import Registry

__all__ = [
    "GateError", "ModelRef", "parse_ref", "open_registry", "register", "register_logged", "list_models", "show", "resolve",
    "promote", "rollback", "history", "load", "load_version", "check_gates", "parse_gate", "version_json",
]  # fmt: skip

NAME_RE = flavors.MODEL_NAME_RE


class GateError(NbopsError):
    """A promotion gate did not hold: nothing moved."""

    exit_code = 1
    http_status = 409


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None  # None with alias None: the latest version
    alias: str | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.version}" if self.version is not None else f"@{self.alias}" if self.alias else "")


def validate_name(value: str, what: str = "model name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise UsageError(f"invalid {what} {value!r}", "use letters, digits, '_', '-' and '.', starting with a letter or digit (e.g. churn)")
    return value


def validate_alias(value: str) -> str:
    validate_name(value, "alias")
    if value.isdigit() or value == "latest":
        raise UsageError(f"invalid alias {value!r}: it reads as a version", "name aliases with a word, e.g. production or staging")
    return value


def parse_ref(ref: str) -> ModelRef:
    """``MODEL``, ``MODEL@latest`` (the newest version), ``MODEL@3`` or ``MODEL@ALIAS``."""
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"invalid model reference {ref!r}", "write MODEL, MODEL@VERSION or MODEL@ALIAS, e.g. churn@production")
    name, _, tail = ref.partition("@")
    validate_name(name)
    if not tail or tail == "latest":
        return ModelRef(name)
    if tail.isdigit():
        return ModelRef(name, version=int(tail))
    return ModelRef(name, alias=validate_alias(tail))


def open_registry(store: str | os.PathLike | None = None, near: str | os.PathLike | None = None, *, create: bool = False) -> tuple[RunStore, Registry]:
    """The run store (found as every surface finds it: flag, environment, nbops.toml, ``.nbops/``) and its registry."""
    rs = open_store(store, near, create=create)
    return rs, Registry(rs)


def _unknown_model(reg: Registry, name: str) -> NotFoundError:
    known = [m["name"] for m in reg.models()]
    hint = f"models in this store: {', '.join(known)}" if known else "register one: nbops models register RUN --stage STAGE --var NAME --name MODEL"
    return NotFoundError(f"no model {name!r} in the store {reg.store.location}", hint)


def resolve(ref: str | ModelRef, *, store=None, near=None, registry: Registry | None = None) -> dict[str, Any]:
    """The version a reference names, as a dict (with its ``aliases``)."""
    reg = registry or open_registry(store, near)[1]
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if not reg.has_model(ref.name):
        raise _unknown_model(reg, ref.name)
    aliases = reg.aliases(ref.name)
    number = ref.version
    if ref.alias is not None:
        number = aliases.get(ref.alias)
        if number is None:
            raise NotFoundError(
                f"model {ref.name} has no alias {ref.alias!r}",
                f"aliases: {', '.join(f'{a} → v{v}' for a, v in aliases.items())}"
                if aliases
                else f"promote a version first: nbops models promote {ref.name} VERSION --alias {ref.alias}",
            )
    if number is None:
        versions = reg.versions(ref.name)
        found = versions[-1] if versions else None
    else:
        found = reg.version(ref.name, number)
    if found is None:
        latest = (reg.versions(ref.name) or [{"version": 0}])[-1]["version"]
        raise NotFoundError(f"model {ref.name} has no version {number}", f"its versions are 1 to {latest}" if latest else "it has no versions")
    found["aliases"] = sorted(a for a, v in aliases.items() if v == found["version"])
    return found


# -- registering ---------------------------------------------------------------------
def register(run_id: str, stage: str, var: str, name: str, *, message: str | None = None, store=None, near=None) -> dict[str, Any]:
    """Register the output ``var`` of ``stage`` in run ``run_id`` as a new version of ``name``."""
    validate_name(name)
    rs, reg = open_registry(store, near)
    run = rs.get_run(validate_run_id(run_id))
    stage_rec = next((s for s in run["stages"] if s["name"] == stage), None)
    if stage_rec is None:
        raise NotFoundError(f"run {run_id} has no stage {stage!r}", f"stages: {', '.join(s['name'] for s in run['stages'])}")
    if stage_rec["status"] not in DONE_OK:  # a cached stage has its outputs too: those of the run it reused
        raise UsageError(f"stage {stage} of run {run_id} did not succeed ({stage_rec['status']}): it has no outputs to register", f"nbops resume {run_id}")
    outputs = stage_rec.get("outputs") or {}
    if var not in outputs:
        listed = ", ".join(sorted(outputs)) or "none"
        raise NotFoundError(f"stage {stage} of run {run_id} has no output {var!r}", f"its outputs: {listed}")
    meta = outputs[var]
    obj = load_object(rs, meta["sha256"], meta["file"], meta["serializer"], meta.get("bytes"))
    flavor = flavors.flavor_of(obj)
    if flavor is None:
        raise UsageError(
            f"{var} of stage {stage} (run {run_id}) is a {meta.get('type') or type(obj).__name__}, not a model",
            f"register an object with a predict() method (scikit-learn, xgboost, lightgbm), a torch module or a function; flavors: {', '.join(flavors.FLAVORS)}",
        )
    signature = flavors.infer_signature(obj, flavor, _fed_signatures(rs, run, stage))
    return _add(reg, run, stage_rec, var, name, meta, flavor, signature, obj, source="register", message=message)


def register_logged(rs: RunStore, run: dict) -> list[dict[str, Any]]:
    """Register the models that stages of a succeeded run logged with ``nbops.log_model``.

    A stage reused from the cache logged nothing new: its model is registered only
    when no version of that model holds those bytes yet (the run that first logged it
    failed after the stage), so reusing a stage does not make a version per run."""
    if run["status"] != "succeeded":
        return []
    done = []
    reg = Registry(rs)
    for s in run["stages"]:
        for logged in s.get("artifacts") or []:
            if not (logged.get("model") and logged.get("sha256")):
                continue
            if s.get("cached_from") and any(v["sha256"] == logged["sha256"] for v in reg.versions(logged["model"])):
                continue
            done.append({"name": logged["model"], "version": _register_value(rs, run, s, logged)})
    return done


def _register_value(rs: RunStore, run: dict, stage_rec: dict, logged: dict) -> int:
    """A model a stage logged (its flavor and signature were found in the kernel,
    where the object and the input example were)."""
    reg = Registry(rs)
    meta = {"sha256": logged["sha256"], "bytes": logged.get("bytes"), "file": f"_logged/{logged['file']}", "serializer": logged["serializer"]}
    extra = {"type": logged.get("type"), "classes": logged.get("classes")}
    return _add(reg, run, stage_rec, logged["name"], logged["model"], meta, logged["flavor"], logged.get("signature") or {}, None,
                source="log_model", message=logged.get("message"), extra=extra)["version"]  # fmt: skip


def _add(reg, run, stage_rec, var, name, meta, flavor, signature, obj, *, source, message, extra=None) -> dict[str, Any]:
    extra = dict(extra or {})
    if obj is not None:
        extra["type"] = f"{type(obj).__module__}.{type(obj).__qualname__}"
        extra["classes"] = flavors.classes_of(obj)
    extra["resources"] = _stage_resources(run, stage_rec["name"])
    version = reg.add_version(
        name, run_id=run["id"], stage=stage_rec["name"], var=var, sha256=meta["sha256"], bytes=meta.get("bytes"), file=meta["file"],
        serializer=meta["serializer"], flavor=flavor, signature=signature, metrics=run_metrics(run), params=run.get("params") or {},
        extra={k: v for k, v in extra.items() if v is not None}, source=source, message=message,
    )  # fmt: skip
    return resolve(ModelRef(name, version=version), registry=reg)


def _stage_resources(run: dict, stage: str) -> dict:
    try:
        from nbops.spec import load_pipeline

        spec = load_pipeline(run["pipeline_dir"])
        return dict(next(s.resources for s in spec.stages if s.name == stage))
    except Exception:  # noqa: BLE001 - an old or moved pipeline folder: resources are optional metadata
        return {}


def _fed_signatures(rs: RunStore, run: dict, stage: str) -> list[dict]:
    """Signatures of the tables and arrays the stages of the run produced (their schema
    only, no rows read): the candidates for what ``stage`` fed its model. The model's own
    stage counts too: a stage often builds its frame and fits on it (``X`` beside ``model``)."""
    out = []
    for s in run["stages"]:
        if s["status"] not in DONE_OK:
            continue
        for meta in (s.get("outputs") or {}).values():
            if meta.get("serializer") not in ("pandas", "numpy"):
                continue
            try:
                path = object_path(rs, meta["sha256"], meta["file"], meta.get("bytes"), verify=False)
                out.append(schema_signature(path, meta["serializer"]))
            except (OSError, ValueError, NbopsError):
                continue
    return out


def schema_signature(path: Path, serializer: str) -> dict:
    if serializer == "numpy":
        import numpy as np

        return flavors.signature_of(np.load(path, mmap_mode="r", allow_pickle=False))
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        schema = pa.ipc.open_file(source).schema
    return flavors.signature_of(schema.empty_table().to_pandas())


# -- loading -------------------------------------------------------------------------
def object_path(rs: RunStore, digest: str, file: str, size: int | None, *, verify: bool = True) -> Path:
    """A local copy of an object, kept under the workspace's ``models/`` by digest, its
    bytes checked against the digest unless ``verify`` is False (a schema-only read).

    Checked on every call, not only when the copy is made: on a local store the copy is
    a hard link to the object, so bytes damaged in ``objects/`` later show up here too,
    and a damaged pickle must never be unpickled."""
    target = rs.root / "models" / digest[:2] / digest / Path(file).name
    fresh = not target.exists()
    if fresh:
        rs.objects.materialize(digest, target, size=size)
    if verify and not (fresh and getattr(rs.objects, "materialize_verifies", False)) and not digest_matches(target, digest):
        target.unlink(missing_ok=True)
        from nbops.errors import CorruptObjectError

        raise CorruptObjectError(digest, "its bytes do not match its hash", target)
    return target


def load_object(rs: RunStore, digest: str, file: str, serializer: str, size: int | None) -> Any:
    from nbops.runtime.marshal import load_value

    path = object_path(rs, digest, file, size)
    try:
        return load_value(path, serializer)
    except NbopsError:
        raise
    except (ImportError, AttributeError, ModuleNotFoundError) as exc:
        raise UsageError(
            f"the model object {digest[:12]} ({serializer}) cannot be loaded here: {exc}",
            "install the packages the training stage used (see 'nbops models show' → lineage → environment)",
        ) from None


def load_version(version: dict, *, store=None, near=None, rs: RunStore | None = None) -> Any:
    rs = rs or open_registry(store, near)[0]
    return load_object(rs, version["sha256"], version["file"], version["serializer"], version.get("bytes"))


def load(ref: str, *, store=None, near=None) -> Any:
    """The live object of ``MODEL``, ``MODEL@VERSION`` or ``MODEL@ALIAS``."""
    rs, reg = open_registry(store, near)
    return load_version(resolve(ref, registry=reg), rs=rs)


# -- reading -------------------------------------------------------------------------
def version_json(v: dict) -> dict[str, Any]:
    from nbops.store import iso

    keep = (
        "name",
        "version",
        "run_id",
        "stage",
        "var",
        "sha256",
        "bytes",
        "flavor",
        "signature",
        "metrics",
        "params",
        "source",
        "message",
        "created_by",
        "aliases",
    )
    return {k: v.get(k) for k in keep} | {"created_at": iso(v.get("created_at")), "type": (v.get("extra") or {}).get("type"), "extra": v.get("extra") or {}}


def list_models(*, store=None, near=None) -> list[dict[str, Any]]:
    try:
        _, reg = open_registry(store, near)
    except NotFoundError:
        return []
    from nbops.store import iso

    return [
        {"name": m["name"], "latest": m["latest"], "aliases": m["aliases"], "created_by": m["created_by"], "created_at": iso(m["created_at"])}
        for m in reg.models()
    ]


def show(ref: str, *, store=None, near=None) -> dict[str, Any]:
    """One version with its lineage (the run: code, git, data, environment); every version when ``ref`` is a bare name."""
    rs, reg = open_registry(store, near)
    parsed = parse_ref(ref)
    if "@" not in ref:
        if not reg.has_model(parsed.name):
            raise _unknown_model(reg, parsed.name)
        aliases = reg.aliases(parsed.name)
        versions = [version_json(v | {"aliases": sorted(a for a, n in aliases.items() if n == v["version"])}) for v in reg.versions(parsed.name)]
        return {"name": parsed.name, "aliases": aliases, "versions": versions, "store": rs.location}
    v = resolve(parsed, registry=reg)
    return version_json(v) | {"lineage": lineage(rs, v), "store": rs.location}


def lineage(rs: RunStore, v: dict) -> dict[str, Any]:
    """Where a version came from: its run's notebook, code hashes, git state, data files and environment."""
    try:
        run = rs.get_run(v["run_id"])
    except NotFoundError:
        return {"run_id": v["run_id"], "missing": "the run is no longer in this store"}
    stage = next((s for s in run["stages"] if s["name"] == v["stage"]), {})
    data = [d for s in run["stages"] for d in (s.get("deps") or []) if d.get("kind") == "file"]
    return {
        "run_id": run["id"], "notebook": run.get("notebook"), "notebook_sha256": run.get("notebook_sha256"), "user": run.get("user"),
        "stage_code_sha256": stage.get("notebook_sha256"), "cache_key": stage.get("cache_key"), "git": run.get("git"),
        "data": data, "inputs": [i for s in run["stages"] for i in (s.get("inputs") or [])], "environment": run.get("env") or {},
        "params": run.get("params") or {},
    }  # fmt: skip


def history(name: str, *, store=None, near=None) -> list[dict[str, Any]]:
    """Every alias move of a model, oldest first: from, to, who, when, why."""
    from nbops.store import iso

    _, reg = open_registry(store, near)
    validate_name(name)
    if not reg.has_model(name):
        raise _unknown_model(reg, name)
    return [
        {"alias": e["alias"], "action": e["action"], "from": e["from_version"], "to": e["to_version"], "user": e["user"], "at": iso(e["at"]), "message": e["message"], "gates": e["gates"]}
        for e in reg.events(name)
    ]  # fmt: skip


# -- promotion -----------------------------------------------------------------------
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.eE+\-]+)\s*$")


def parse_gate(cond: object) -> tuple[str, str, float]:
    """``"accuracy>=0.80"`` as (metric, op, bound); UsageError for anything else (a schedule checks its gates when made)."""
    m = _CONDITION.match(cond) if isinstance(cond, str) else None
    if not m:
        raise UsageError(f"cannot read the gate {cond!r}", "write METRIC OP NUMBER, e.g. --require 'accuracy>=0.80' (ops: >= <= > < == !=)")
    return m.group(1), m.group(2), float(m.group(3))


def _metric_goal(run_id: str, name: str, rs: RunStore) -> str:
    """A metric's declared goal (``nbops.log_metric(..., goal="min")``), ``max`` otherwise."""
    try:
        run = rs.get_run(run_id)
    except NotFoundError:
        return "max"
    for s in run["stages"]:
        for m in s.get("metrics") or []:
            if m.get("name") == name and m.get("goal") in ("min", "max"):
                return m["goal"]
    return "max"


def check_gates(rs: RunStore, reg: Registry, v: dict, require: list[str], better_than: str | None) -> list[dict]:
    """Each gate with its verdict and both values; raises GateError naming the first that failed."""
    results = []
    for cond in require:
        metric, op, bound = parse_gate(cond)
        value = v["metrics"].get(metric)
        ok = isinstance(value, (int, float)) and _OPS[op](value, bound)
        results.append({"gate": cond, "metric": metric, "value": value, "bound": bound, "passed": bool(ok)})
    if better_than is not None:
        validate_alias(better_than)
        holder_n = reg.alias(v["name"], better_than)
        if holder_n is None:
            results.append({"gate": f"better than {better_than}", "passed": True, "note": f"no version holds {better_than} yet"})
        else:
            holder = reg.version(v["name"], holder_n)
            named = [r["metric"] for r in results if "metric" in r]
            metrics = named or sorted(
                k for k in v["metrics"] if isinstance(v["metrics"][k], (int, float)) and isinstance(holder["metrics"].get(k), (int, float))
            )
            if not metrics:
                raise GateError(
                    f"cannot compare v{v['version']} with {better_than} (v{holder_n}): they share no numeric metric", "record the same metrics in both runs"
                )
            for metric in metrics:
                goal = _metric_goal(v["run_id"], metric, rs)
                mine, theirs = v["metrics"].get(metric), holder["metrics"].get(metric)
                ok = isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and (mine > theirs if goal == "max" else mine < theirs)
                results.append({"gate": f"{metric} better than {better_than}", "metric": metric, "goal": goal, "value": mine, "other": theirs,
                                "other_version": holder_n, "passed": bool(ok)})  # fmt: skip
    failed = [r for r in results if not r["passed"]]
    if failed:
        err = GateError(
            "promotion refused: " + "; ".join(_failure_text(v, r) for r in failed), "fix the model, or promote without the gate if this is on purpose"
        )
        err.gates = results  # every verdict, for a caller that records them (continuous training)
        raise err
    return results


def _failure_text(v: dict, r: dict) -> str:
    if "other" in r:
        return f"{r['metric']} of v{v['version']} is {r['value']}, not {'above' if r['goal'] == 'max' else 'below'} v{r['other_version']}'s {r['other']} ({r['gate']})"
    if r.get("value") is None:
        return f"{r['gate']}: run {v['run_id']} recorded no metric {r['metric']!r}"
    return f"{r['gate']} failed: {r['metric']} is {r['value']}"


def promote(name: str, version: int | str, alias: str, *, message=None, require=(), better_than=None, store=None, near=None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` after its gates hold; returns the move with the gates' verdicts."""
    rs, reg = open_registry(store, near)
    validate_name(name)
    validate_alias(alias)
    if isinstance(version, str):
        ref = parse_ref(version if "@" in version else f"{name}@{version}")
        if ref.name != name:
            raise UsageError(
                f"{version} is a version of {ref.name}, not of {name}", f"nbops models promote {ref.name} {version.partition('@')[2]} --alias {alias}"
            )
        if ref.version is None:
            raise UsageError(f"promote takes a version number, not {version!r}", f"e.g. nbops models promote {name} 3 --alias {alias}")
        version = ref.version
    v = resolve(ModelRef(name, version=int(version)), registry=reg)
    gates = check_gates(rs, reg, v, list(require), better_than)
    previous = reg.move_alias(name, alias, v["version"], action="promote", message=message, gates=gates)
    return {"name": name, "alias": alias, "from": previous, "to": v["version"], "gates": gates}


def rollback(name: str, alias: str, *, message=None, store=None, near=None) -> dict[str, Any]:
    """Move ``alias`` back to the version it held before the current one was promoted.

    Moves form a stack: a promotion pushes, a rollback pops, so rolling back
    twice goes two promotions back, not back and forth."""
    _, reg = open_registry(store, near)
    validate_name(name)
    validate_alias(alias)
    if not reg.has_model(name):
        raise _unknown_model(reg, name)
    stack: list[int] = []
    for e in reg.events(name, alias):
        if e["action"] == "rollback":
            stack.pop() if stack else None
        elif not stack or stack[-1] != e["to_version"]:  # promoting the version it holds moved nothing
            stack.append(e["to_version"])
    if len(stack) < 2:
        raise UsageError(f"{name}@{alias} has no earlier version to go back to", f"see: nbops models history {name}")
    target = stack[-2]
    previous = reg.move_alias(name, alias, target, action="rollback", message=message)
    return {"name": name, "alias": alias, "from": previous, "to": target, "gates": []}
