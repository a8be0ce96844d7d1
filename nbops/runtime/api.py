"""The calls a user makes inside a stage: metrics, artifacts, data inputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from nbops.errors import UsageError
from nbops.runtime.context import current
from nbops.runtime.files import sha256_file

__all__ = ["log_metric", "log_artifact", "log_model", "input"]


def log_metric(name: str, value: Any, step: int | None = None, goal: str | None = None) -> None:
    """Record a metric of the running stage (or say what would be recorded).

    ``goal`` ("max" or "min") says which way is better; model promotion gates
    (``--require-better-than``) read it, and take "max" when it is not said."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"log_metric: the name must be a non-empty string, not {name!r}", "nbops.log_metric('accuracy', 0.93)")
    if goal not in (None, "max", "min"):
        raise UsageError(f"log_metric: goal must be 'max' or 'min', not {goal!r}", f"nbops.log_metric({name!r}, value, goal='min')")
    ctx = current()
    if ctx is None:
        print(f"nbops: not in a run; would record metric {name}={value!r}" + (f" (step {step})" if step is not None else ""))
        return
    ctx.record("metrics", {"name": name, "value": value, "step": step} | ({"goal": goal} if goal else {}))


def log_artifact(obj_or_path: Any, name: str) -> None:
    """Keep a file, or any value, as a named artifact of this run."""
    ctx = current()
    if ctx is None:
        print(f"nbops: not in a run; would record artifact {name!r}")
        return
    from nbops.runtime import marshal

    folder = ctx.out_dir / "_logged"
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(obj_or_path, (str, os.PathLike)) and _is_file(obj_or_path):
        target = folder / f"{name}{Path(obj_or_path).suffix}"
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(obj_or_path, tmp)
        os.replace(tmp, target)
        kind = "file"
    else:
        target, kind = marshal.save_value(folder, name, obj_or_path)
    ctx.record("artifacts", {"name": name, "file": target.name, "kind": kind})


def log_model(obj: Any, name: str, input_example: Any = None, message: str | None = None) -> None:
    """Keep ``obj`` as a model: when the run succeeds it becomes the next version of ``name``
    in the registry (``nbops models ls``), with its flavor, input signature and lineage.

    The signature comes from ``input_example`` when given, else from the model
    itself and the tables and arrays the stage holds (e.g. the DataFrame it was fitted on)."""
    from nbops.runtime import flavors

    if not isinstance(name, str) or not flavors.MODEL_NAME_RE.match(name):
        raise UsageError(f"log_model: invalid model name {name!r}", "use letters, digits, '_', '-' and '.', e.g. nbops.log_model(model, 'churn')")
    flavor = flavors.flavor_of(obj)
    if flavor is None:
        raise UsageError(
            f"log_model: {type(obj).__name__} is not a model nbops can call",
            f"log an object with predict() (scikit-learn, xgboost, lightgbm), a torch module or a function; flavors: {', '.join(flavors.FLAVORS)}",
        )
    if input_example is not None:
        signature = flavors.signature_of(input_example)
    else:
        import inspect

        caller = inspect.currentframe().f_back  # the stage's namespace: what it fed the model
        values = list(caller.f_globals.values()) + list(caller.f_locals.values()) if caller else []
        candidates = [sig for v in values if (sig := flavors.signature_of(v)) and _tabular(v)]
        signature = flavors.infer_signature(obj, flavor, candidates)
    ctx = current()
    if ctx is None:
        print(f"nbops: not in a run; would register model {name!r} ({flavor})")
        return
    from nbops.runtime import marshal

    folder = ctx.out_dir / "_logged"
    folder.mkdir(parents=True, exist_ok=True)
    target, serializer = marshal.save_value(folder, f"model-{name}", obj)
    ctx.record("artifacts", {
        "name": f"model:{name}", "file": target.name, "kind": serializer, "serializer": serializer, "model": name, "flavor": flavor,
        "signature": signature, "message": message, "type": f"{type(obj).__module__}.{type(obj).__qualname__}", "classes": flavors.classes_of(obj),
    })  # fmt: skip


def _tabular(value: Any) -> bool:
    return type(value).__name__ in ("DataFrame", "ndarray", "Tensor")


def _is_file(candidate: str | os.PathLike) -> bool:
    """Whether a string names a file: a long text value (a report, a JSON dump) is not a
    path, and asking the OS about it raises "File name too long"."""
    try:
        return Path(candidate).is_file()
    except (OSError, ValueError):  # too long, or a NUL inside
        return False


def input(path: str | os.PathLike) -> str | os.PathLike:  # noqa: A001 - the public name is nbops.input
    """Declare a data file the stage reads; its hash goes into the run record.

    Returns ``path`` unchanged, so ``pd.read_csv(nbops.input("data/x.csv"))``.
    """
    digest = sha256_file(path)
    ctx = current()
    if ctx is None:
        print(f"nbops: not in a run; would record input {os.fspath(path)} sha256:{digest[:12]}")
    else:
        abspath = str(Path(path).resolve())
        ctx.record("inputs", {"path": os.fspath(path), "abspath": abspath, "sha256": digest})
        # Also a read: the cache checks declared inputs like every file the stage opens.
        ctx.record("reads", {"kind": "file", "path": os.fspath(path), "abspath": abspath})
    return path
