"""What the Airflow and KFP exports share: the converted pipeline, its parameter
values, its schedule, resource formats, and writing the output in one step.

An export converts the notebook exactly as ``nbops convert`` does (same
analysis, same errors, same stage notebooks), so a notebook that does not
convert does not export either.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NotFoundError, UsageError
from nbops.graph import StageGraph
from nbops.spec import ParamSpec

__all__ = [
    "Schedule",
    "export_params",
    "schedule_from_cron",
    "schedule_from_store",
    "identifier",
    "memory_quantity",
    "cpu_quantity",
    "seconds",
    "staged_folder",
    "write_file_atomic",
]

ID_RE = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class Schedule:
    """A time trigger an orchestrator understands: a cron expression in a zone, or a fixed interval."""

    cron: str | None = None
    tz: str = "UTC"
    every_s: int | None = None
    source: str = "--cron"  # where it came from, for messages and the DAG's docstring


def identifier(name: str) -> str:
    """A DAG id / pipeline name made of letters, digits and _ (Airflow and KFP both accept it)."""
    out = ID_RE.sub("_", name).strip("_") or "pipeline"
    return f"nb_{out}" if out[0].isdigit() else out


def export_params(graph: StageGraph, given: Mapping[str, Any] | list[str], params_file: str | None, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameter values baked into the export as its defaults: the notebook's defaults,
    then ``base`` (a stored schedule's), then ``-f``, then ``-p`` (typed and checked as ``nbops run`` does).
    Read from the stage graph, so bad values fail before anything is written."""
    from nbops.plan.params import is_secret, load_params_file, parse_assignments, resolve_params

    values: dict[str, Any] = dict(base or {})
    if params_file:
        values.update(load_params_file(params_file))
    values.update(parse_assignments(list(given)) if not isinstance(given, Mapping) else given)
    declared = {p.name: ParamSpec(p.default, p.type) for p in graph.parameters}
    resolved = resolve_params(declared, values, where=graph.notebook.name)
    # An export is a file that gets committed and deployed: a secret given here would sit in it in clear.
    secret = sorted(n for n in values if is_secret(n) and resolved[n] != declared[n].default)
    if secret:
        raise UsageError(
            f"parameter{'s' if len(secret) > 1 else ''} {', '.join(secret)} look{'' if len(secret) > 1 else 's'} secret, "
            "and an export writes its values into the DAG or spec file in clear",
            "leave it out of the export and give it when the pipeline runs (Airflow: the trigger's config; KFP: the run's parameters)",
        )
    return resolved


def schedule_from_cron(cron: str, tz: str | None) -> Schedule:
    """``--cron EXPR [--tz ZONE]``, validated by the scheduler's own parser (the error names the field)."""
    from nbops.automate.triggers import make_trigger

    trigger = make_trigger(cron=cron, tz=tz or "UTC")
    return Schedule(cron=trigger["cron"], tz=trigger["tz"], source="--cron")


def schedule_from_store(name: str, store: str | None, near: str | os.PathLike) -> tuple[Schedule, dict[str, Any]]:
    """A stored schedule's trigger and parameters. Only time triggers map onto an
    orchestrator's schedule: a data or after-schedule trigger is refused, with the way out."""
    from nbops.plan.params import load_params_file
    from nbops.store.location import open_store
    from nbops.store.schedules import ScheduleStore

    row = ScheduleStore(open_store(store, near, create=False)).get(name)
    if row is None:
        raise NotFoundError(f"no schedule named {name!r} in the store", "list them with: nbops schedule ls, or pass --cron EXPR")
    trigger = row.get("trigger") or {}
    kind = trigger.get("kind")
    params = dict(row.get("params") or {})
    if row.get("params_file"):
        params = {**load_params_file(row["params_file"]), **params}
    source = f"schedule {name!r}"
    if kind == "cron":
        return Schedule(cron=trigger["cron"], tz=trigger.get("tz") or "UTC", source=source), params
    if kind == "every":
        return Schedule(every_s=int(trigger["seconds"]), source=source), params
    raise UsageError(
        f"schedule {name!r} fires on {'a data change' if kind == 'on_change' else 'another schedule' if kind == 'after' else repr(kind)}, "
        "which an exported pipeline cannot carry (the orchestrator fires only on time)",
        "export with --cron EXPR instead, and keep the data trigger in 'nbops scheduler'",
    )


def memory_quantity(n_bytes: int) -> str:
    """Bytes as a Kubernetes quantity: 2147483648 -> '2Gi', 1536 MiB -> '1536Mi'."""
    for unit, power in (("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if n_bytes % 1024**power == 0:
            return f"{n_bytes // 1024**power}{unit}"
    return str(int(n_bytes))


def seconds(value: float | None) -> int | float | None:
    """A timeout tag's seconds, whole when whole (timeout:600 reads 600, not 600.0)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def cpu_quantity(cpus: float) -> str:
    """1.0 -> '1', 0.5 -> '500m' (Kubernetes reads both)."""
    if float(cpus).is_integer():
        return str(int(cpus))
    return f"{round(cpus * 1000)}m"


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A scratch folder beside ``target`` (same file system, same depth, so relative
    paths written into it hold after the move); on success it replaces ``target`` with
    renames, on any error it is removed and ``target`` is left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "x")
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_file_atomic(path: Path, text: str) -> None:
    """Write to a hidden temporary name that no loader picks up (not *.py), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
