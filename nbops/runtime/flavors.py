"""What kind of model an object is, what input it takes, and how to call it.

Used where a model is registered (``nbops.log_model`` inside a stage, ``nbops
models register`` after a run) and everywhere one is called (``nbops.models.load``,
batch prediction, ``nbops serve``, exports), so every surface agrees on one
*flavor* and one *signature* per model version.

A signature is plain JSON:

- ``{"kind": "frame", "columns": [{"name": "tenure", "dtype": "int64"}, ...]}``
  for a model fed a DataFrame (scikit-learn fitted on one, most tabular models);
- ``{"kind": "array", "shape": [null, 64], "dtype": "float32"}`` for arrays and
  tensors (``null``: any number of rows);
- ``{}`` when nothing could be inferred: inputs are passed through unchecked.

Heavy modules (torch, sklearn) are only imported when the object is one of theirs.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from nbops.errors import UsageError

__all__ = [
    "FLAVORS", "flavor_of", "signature_of", "infer_signature", "input_problems", "as_model_input",
    "predict", "is_classifier", "dtype_kind", "MODEL_NAME_RE", "classes_of",
]  # fmt: skip

FLAVORS = ("sklearn", "xgboost", "lightgbm", "torch", "callable")
# Model, alias and feature table names: safe in URLs, paths and shell commands.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def flavor_of(obj: Any) -> str | None:
    """The flavor of ``obj``, or None when it is not a model nbops knows how to call."""
    root = type(obj).__module__.split(".")[0]
    if root in ("xgboost", "lightgbm") and hasattr(obj, "predict"):
        return root
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        return "torch"
    if hasattr(obj, "predict") and (root == "sklearn" or hasattr(obj, "get_params")):
        return "sklearn"
    if callable(obj) and not isinstance(obj, type):
        return "callable"
    return None


def is_classifier(obj: Any) -> bool:
    return hasattr(obj, "predict_proba") and hasattr(obj, "classes_")


def classes_of(obj: Any) -> list | None:
    """A classifier's classes as JSON values (None for anything else)."""
    if not is_classifier(obj):
        return None
    return [c.item() if hasattr(c, "item") else c for c in obj.classes_]


# -- signatures ------------------------------------------------------------------
def dtype_kind(dtype: str) -> str:
    """int, float, bool, datetime, string or other: the families whose members convert safely."""
    d = str(dtype).lower()
    if d.startswith(("int", "uint")):
        return "int"
    if d.startswith(("float", "double", "half")):
        return "float"
    if d in ("bool", "boolean"):
        return "bool"
    if d.startswith("datetime") or d.startswith("timestamp"):
        return "datetime"
    if d in ("object", "string", "str", "category", "large_string", "utf8") or d.startswith("string"):
        return "string"
    return "other"


def signature_of(example: Any) -> dict:
    """The signature of an input example (a DataFrame, an array, a tensor, a list of records)."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(example, pd.DataFrame):
        return {"kind": "frame", "columns": [{"name": str(c), "dtype": str(t)} for c, t in example.dtypes.items()]}
    if isinstance(example, list) and example and all(isinstance(r, dict) for r in example):
        import pandas as pd

        return signature_of(pd.DataFrame.from_records(example))
    shape = getattr(example, "shape", None)
    dtype = getattr(example, "dtype", None)
    # callable(shape): the numpy module itself (np.shape is a function) is not an array
    if shape is not None and dtype is not None and not callable(shape):
        return {"kind": "array", "shape": [None, *[int(s) for s in tuple(shape)[1:]]], "dtype": str(dtype).removeprefix("torch.")}
    return {}


def infer_signature(model: Any, flavor: str, candidates: list[dict] = ()) -> dict:
    """The input signature of a model without an example: what it says about itself
    (scikit-learn's ``feature_names_in_``, a torch module's first layer), completed
    with the dtypes of ``candidates``, the signatures of what its stage was fed."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        for cand in candidates:
            cols = {c["name"]: c["dtype"] for c in cand.get("columns", [])}
            if cand.get("kind") == "frame" and set(names) <= set(cols):
                return {"kind": "frame", "columns": [{"name": n, "dtype": cols[n]} for n in names]}
        return {"kind": "frame", "columns": [{"name": n, "dtype": "float64"} for n in names]}
    width = getattr(model, "n_features_in_", None)
    if width is None and flavor == "torch":
        width = next((getattr(m, "in_features", None) for m in model.modules() if getattr(m, "in_features", None)), None)
    for cand in candidates:
        if cand.get("kind") == "array" and len(cand.get("shape", [])) == 2 and (width is None or cand["shape"][1] == width):
            return cand
    if width is not None:
        return {"kind": "array", "shape": [None, int(width)], "dtype": "float32" if flavor == "torch" else "float64"}
    return {}


def input_problems(signature: dict, frame: Any) -> list[str]:
    """What is wrong with ``frame`` (a DataFrame) as input for ``signature``: each
    problem names the column; empty when it fits. Safe widenings pass (int → float)."""
    if signature.get("kind") != "frame":
        if signature.get("kind") == "array":
            width = signature["shape"][1] if len(signature.get("shape", [])) > 1 else None
            got = frame.shape[1] if len(frame.shape) > 1 else None
            if width is not None and got != width:
                return [f"expected {width} values per row, got {got}"]
        return []
    want = {c["name"]: c["dtype"] for c in signature["columns"]}
    have = {str(c): str(t) for c, t in frame.dtypes.items()}
    problems = [f"missing column {n!r} ({want[n]})" for n in want if n not in have]
    problems += [f"unexpected column {n!r}" for n in have if n not in want]
    for name, dtype in want.items():
        if name in have and not _compatible(dtype, have[name]):
            problems.append(f"column {name!r} has dtype {have[name]}, expected {dtype}")
    return problems


def _compatible(want: str, have: str) -> bool:
    w, h = dtype_kind(want), dtype_kind(have)
    if w == h:
        return True
    return (w == "float" and h in ("int", "bool")) or (w == "int" and h == "bool")


def as_model_input(signature: dict, frame: Any, flavor: str) -> Any:
    """``frame`` in the signature's column order and dtypes, as the flavor takes it
    (a DataFrame for scikit-learn and friends, an array for torch and array signatures)."""
    if signature.get("kind") == "frame":
        frame = frame[[c["name"] for c in signature["columns"]]]
        casts = {c["name"]: c["dtype"] for c in signature["columns"] if str(frame.dtypes[c["name"]]) != c["dtype"]}
        if casts:
            frame = frame.astype(casts)
    if flavor == "torch" or signature.get("kind") == "array":
        import numpy as np

        dtype = signature.get("dtype") or ("float32" if flavor == "torch" else None)
        return np.ascontiguousarray(frame.to_numpy() if hasattr(frame, "to_numpy") else frame, dtype=dtype)
    return frame


def predict(model: Any, flavor: str, inputs: Any) -> dict:
    """Call the model: ``{"predictions": array, "probabilities": array | None, "classes": list | None}``."""
    import numpy as np

    if flavor == "torch":
        import torch

        with torch.no_grad():
            out = model(torch.as_tensor(inputs))
        return {"predictions": out.detach().cpu().numpy(), "probabilities": None, "classes": None}
    if flavor == "callable":
        return {"predictions": np.asarray(model(inputs)), "probabilities": None, "classes": None}
    if flavor not in FLAVORS:
        raise UsageError(f"cannot call a model of flavor {flavor!r}", f"flavors nbops can call: {', '.join(FLAVORS)}")
    if flavor == "sklearn" and _predicts_by_argmax(model):
        # One forest pass instead of two: for these forests scikit-learn's own predict()
        # is the argmax of predict_proba(), so the answer is the same, bit for bit.
        proba = np.asarray(model.predict_proba(inputs))
        return {"predictions": model.classes_.take(np.argmax(proba, axis=1), axis=0), "probabilities": proba, "classes": classes_of(model)}
    out = {"predictions": np.asarray(model.predict(inputs)), "probabilities": None, "classes": None}
    if is_classifier(model):
        out["probabilities"] = np.asarray(model.predict_proba(inputs))
        out["classes"] = classes_of(model)
    return out


def _predicts_by_argmax(model: Any) -> bool:
    forest = sys.modules.get("sklearn.ensemble._forest")  # loaded with any forest model
    if forest is None:
        return False
    base = forest.ForestClassifier
    return isinstance(model, base) and type(model).predict is base.predict and getattr(model, "n_outputs_", 0) == 1
