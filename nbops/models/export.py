"""Edge exports: a registered version as ONNX or TorchScript, checked against the original.

``export_model("churn@production", "onnx", "churn.onnx")`` converts the live
object (skl2onnx for scikit-learn, ``torch.onnx`` for torch; ``torch.jit`` for
TorchScript), runs the export (onnxruntime, ``torch.jit.load``) and the original
on the same sample rows, and writes the file only when the largest difference is
within the tolerance. The sample is the version's training data (the first rows
of a run output that fits the signature, preferring a variable named ``*train*``)
or, when the run has none, rows generated from the signature.

Tolerance (absolute): by default ``1e-5 × max(1, largest |original output|)``.
The exports compute in float32, whose relative precision is ~6e-8; a few
roundings per layer or tree stay well under 1e-5 on outputs of order one
(probabilities, logits), and the scale keeps a regressor predicting prices in
the thousands from failing on float32's last digit. Classifier labels must
agree on every row whose original probabilities are not tied (within the
tolerance): a tie may break either way in float32. The file is written with
``write_atomic`` after the check; a refused export leaves the output path as it
was.

torch → ONNX uses the TorchScript-based exporter (``dynamo=False``): torch 2.13
defaults to the ``torch.export`` one, which needs the ``onnxscript`` package (not
an nbops dependency, and not installed here). The older exporter works offline
with torch alone and covers the feed-forward networks the registry holds; it
still ships in torch 2.13, with a DeprecationWarning we silence.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

from nbops.errors import MissingExtraError, NbopsError, UsageError
from nbops.models.registry import load_object, object_path, open_registry, resolve, schema_signature
from nbops.runtime import flavors
from nbops.runtime.files import sha256_bytes, write_atomic

__all__ = ["FORMATS", "SUPPORTED", "ONNX_OPSET", "DEFAULT_SAMPLE_ROWS", "ExportParityError", "export_model", "default_tolerance"]

FORMATS = ("onnx", "torchscript")
SUPPORTED = {"onnx": ("sklearn", "torch"), "torchscript": ("torch",)}
# Opset 17: supported by onnxruntime >= 1.13 and the mobile/web runtimes; both converters emit it.
ONNX_OPSET = 17
DEFAULT_SAMPLE_ROWS = 200
RELATIVE_TOLERANCE = 1e-5


class ExportParityError(NbopsError):
    """The export computes something else than the original: nothing was written."""

    exit_code = 1
    http_status = 422


def default_tolerance(reference: dict) -> float:
    """``1e-5 × max(1, largest |original output|)``: float32 rounding, scaled to the outputs."""
    import numpy as np

    scale = max((float(np.max(np.abs(a))) for a in _numeric_outputs(reference) if a.size), default=1.0)
    return RELATIVE_TOLERANCE * max(1.0, scale)


def export_model(ref: str, fmt: str, output: str | os.PathLike, *, tolerance: float | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                 store=None, near=None) -> dict[str, Any]:  # fmt: skip
    """Export ``ref`` (MODEL, MODEL@VERSION, MODEL@ALIAS) as ``fmt`` to ``output`` after a parity check.

    Returns what was written: name, version, format, flavor, output, bytes, sha256,
    max_diff (largest absolute difference, predictions and probabilities), the
    tolerance, label_mismatches, sample_rows and sample_source, opset, exporter."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", f"formats: {', '.join(FORMATS)}")
    if tolerance is not None and not tolerance >= 0:
        raise UsageError(f"tolerance must be a number >= 0, not {tolerance!r}", "e.g. --tolerance 1e-4")
    if int(sample_rows) < 1:
        raise UsageError(f"the sample needs at least one row, not {sample_rows}", f"e.g. --sample {DEFAULT_SAMPLE_ROWS}")
    target = Path(output)
    if target.is_dir():
        raise UsageError(f"{target} is a folder", f"name the file to write, e.g. -o {target / ('model.onnx' if fmt == 'onnx' else 'model.pt')}")
    rs, reg = open_registry(store, near)
    version = resolve(ref, registry=reg)
    flavor, signature = version["flavor"], version.get("signature") or {}
    if flavor not in SUPPORTED[fmt]:
        raise UsageError(
            f"{version['name']} v{version['version']} is a {flavor} model: nbops cannot export {flavor} models to {fmt}",
            "supported: " + "; ".join(f"{f}: {', '.join(fl)}" for f, fl in SUPPORTED.items()),
        )
    if signature.get("kind") not in ("frame", "array"):
        raise UsageError(
            f"{version['name']} v{version['version']} has no input signature: an export needs the input's columns or shape",
            "register the model with nbops.log_model(obj, NAME, input_example=...) so its signature is known",
        )
    model = load_object(rs, version["sha256"], version["file"], version["serializer"], version.get("bytes"))
    sample, source = _sample(rs, version, signature, int(sample_rows))
    inputs = flavors.as_model_input(signature, sample, flavor)
    if flavor == "torch":
        model.eval()  # an export is for inference: dropout off, batch norm on its running statistics
    reference = _reference(model, flavor, inputs, version)

    if fmt == "torchscript":
        data, outputs, info = _torchscript(model, inputs)
    elif flavor == "torch":
        data, outputs, info = _torch_onnx(model, inputs)
    else:
        data, outputs, info = _sklearn_onnx(model, signature, sample, version)
    parity = _compare(reference, outputs, classifier=flavors.is_classifier(model), tolerance=tolerance)
    result = {
        "name": version["name"], "version": version["version"], "format": fmt, "flavor": flavor, "output": str(target),
        "bytes": len(data), "sha256": sha256_bytes(data), **parity, "sample_rows": len(sample), "sample_source": source, **info,
    }  # fmt: skip
    if parity["refused"]:
        raise ExportParityError(
            f"export of {version['name']} v{version['version']} to {fmt} refused: {parity['refused']} "
            f"(on {len(sample)} rows from {source}); nothing was written to {target}",
            "find why the export computes differently, or pass a larger --tolerance if this difference is acceptable",
        )
    write_atomic(target, data)
    result.pop("refused")
    return result


# -- the sample ----------------------------------------------------------------------
def _sample(rs, version: dict, signature: dict, rows: int) -> tuple[Any, str]:
    """The first ``rows`` rows of the run output that fits the signature, else generated rows."""
    try:
        run = rs.get_run(version["run_id"])
    except NbopsError:
        run = {"stages": []}
    found = []
    for s in run["stages"]:
        for var, meta in (s.get("outputs") or {}).items():
            if meta.get("serializer") not in ("pandas", "numpy"):
                continue
            try:
                schema = schema_signature(object_path(rs, meta["sha256"], meta["file"], meta.get("bytes")), meta["serializer"])
            except (OSError, ValueError, NbopsError):
                continue
            if _fits(signature, schema):
                found.append(("train" not in var.lower(), s["name"], var, meta))
    if found:
        _, stage, var, meta = min(found, key=lambda f: f[0])
        value = load_object(rs, meta["sha256"], meta["file"], meta["serializer"], meta.get("bytes"))
        return value[:rows] if signature["kind"] == "array" or not hasattr(value, "head") else value.head(rows), f"{var} of stage {stage}"
    return _generated(signature, rows), "rows generated from the signature"


def _fits(signature: dict, schema: dict) -> bool:
    if signature["kind"] == "frame":
        have = {c["name"]: c["dtype"] for c in schema.get("columns", [])} if schema.get("kind") == "frame" else {}
        return bool(have) and all(c["name"] in have and not flavors.input_problems(
            {"kind": "frame", "columns": [c]}, _Dtypes({c["name"]: have[c["name"]]})) for c in signature["columns"])  # fmt: skip
    return schema.get("kind") == "array" and list(schema.get("shape", []))[1:] == list(signature.get("shape", []))[1:]


class _Dtypes:
    """Enough of a DataFrame (its ``dtypes``) for input_problems to judge one column."""

    def __init__(self, dtypes: dict):
        self.dtypes = dtypes


def _generated(signature: dict, rows: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    if signature["kind"] == "array":
        shape = [rows, *[s or 1 for s in signature.get("shape", [None])[1:]]]
        return rng.random(shape).astype(signature.get("dtype") or "float32")
    import pandas as pd

    cols = {}
    for c in signature["columns"]:
        kind = flavors.dtype_kind(c["dtype"])
        cols[c["name"]] = (
            rng.integers(0, 10, rows) if kind == "int" else rng.random(rows) < 0.5 if kind == "bool"
            else rng.choice(["a", "b", "c"], rows) if kind == "string" else rng.normal(0, 1, rows)
        )  # fmt: skip
    return pd.DataFrame(cols)


def _reference(model, flavor: str, inputs, version: dict) -> dict:
    try:
        return flavors.predict(model, flavor, inputs)
    except Exception as exc:  # noqa: BLE001 - the original failing on the sample is the user's to know, not a traceback
        raise UsageError(
            f"{version['name']} v{version['version']} fails on the export sample: {type(exc).__name__}: {exc}",
            "keep the training data among the run's outputs (a DataFrame or array matching the signature) so the sample is real rows",
        ) from None


# -- converters: each returns (bytes, outputs on the sample, info) --------------------
def _onnx_run(data: bytes, feeds: dict) -> list:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("checking an ONNX export", "export", "onnxruntime") from None
    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - an export onnxruntime cannot load or run is refused like a wrong one
        raise ExportParityError(
            f"onnxruntime cannot run the export: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}; nothing was written",
            "the converter produced a graph onnxruntime rejects: upgrade onnxruntime and the converter, or export as torchscript (torch)",
        ) from None


def _opsets(data: bytes) -> dict:
    import onnx

    proto = onnx.load_model_from_string(data)
    return {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}


def _sklearn_onnx(model, signature: dict, sample, version: dict) -> tuple[bytes, list, dict]:
    import numpy as np

    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    except ImportError:
        raise MissingExtraError("ONNX export of scikit-learn models", "export", "skl2onnx") from None
    options = {"zipmap": False} if flavors.is_classifier(model) else None
    if signature["kind"] == "array":
        attempts = [("tensor", [("input", FloatTensorType([None, *signature["shape"][1:]]))])]
    else:
        names = [c["name"] for c in signature["columns"]]
        kinds = {c["name"]: flavors.dtype_kind(c["dtype"]) for c in signature["columns"]}
        per_column = {"int": Int64TensorType, "bool": Int64TensorType, "string": StringTensorType}
        attempts = [("columns", [(n, per_column.get(kinds[n], FloatTensorType)([None, 1])) for n in names])]
        # One float tensor is what a bare estimator takes; a pipeline selecting columns by name needs them apart.
        if all(k in ("int", "float", "bool") for k in kinds.values()):
            attempts.insert(0, ("tensor", [("input", FloatTensorType([None, len(names)]))]))
    errors = []
    for layout, types in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                data = to_onnx(model, initial_types=types, options=options, target_opset=ONNX_OPSET).SerializeToString()
            except Exception as exc:  # noqa: BLE001 - skl2onnx raises many kinds; each is "cannot convert"
                errors.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
                continue
        outputs = _onnx_run(data, _sklearn_feeds(layout, types, sample, np))
        return data, outputs, {"opset": _opsets(data), "exporter": f"skl2onnx ({layout} input)", "inputs": [n for n, _ in types]}
    kind = (version.get("extra") or {}).get("type") or type(model).__qualname__
    raise UsageError(
        f"skl2onnx cannot convert {version['name']} v{version['version']} ({kind}, flavor sklearn) to onnx: {errors[-1]}",
        "supported: scikit-learn estimators and pipelines that skl2onnx has converters for "
        "(skl2onnx.supported_converters()); torch modules export to onnx and torchscript",
    )


def _sklearn_feeds(layout: str, types: list, sample, np) -> dict:
    if layout == "tensor":
        values = sample.to_numpy() if hasattr(sample, "to_numpy") else sample
        return {"input": np.asarray(values, dtype=np.float32)}
    feeds = {}
    for name, tensor in types:
        dtype = {"Int64TensorType": np.int64, "StringTensorType": object}.get(type(tensor).__name__, np.float32)
        feeds[name] = sample[name].to_numpy(dtype=dtype).reshape(-1, 1)
    return feeds


def _torch_onnx(model, inputs) -> tuple[bytes, list, dict]:
    import torch

    buf = io.BytesIO()
    example = torch.as_tensor(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning; see the module docstring
        try:
            torch.onnx.export(model, (example,), buf, dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "rows"}, "output": {0: "rows"}}, opset_version=ONNX_OPSET)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - an operator the exporter lacks, untraceable Python: say so, no traceback
            raise UsageError(
                f"torch.onnx could not export {type(model).__qualname__}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                "export it as --format torchscript, or simplify the module's forward()",
            ) from None
    data = buf.getvalue()
    outputs = _onnx_run(data, {"input": example.numpy()})
    return data, outputs, {"opset": _opsets(data), "exporter": "torch.onnx (TorchScript-based, dynamo=False)", "inputs": ["input"]}


def _torchscript(model, inputs) -> tuple[bytes, list, dict]:
    import torch

    example = torch.as_tensor(inputs)
    # script keeps control flow; a module scripting cannot compile (dynamic Python) is traced on the sample instead.
    try:
        compiled, method = torch.jit.script(model), "torch.jit.script"
    except Exception:  # noqa: BLE001 - scripting fails on many ordinary modules: tracing is the fallback
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled, method = torch.jit.trace(model, (example,), check_trace=False), "torch.jit.trace"
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"torch.jit could neither script nor trace {type(model).__qualname__}: {exc}", "export it as --format onnx") from None
    buf = io.BytesIO()
    torch.jit.save(compiled, buf)
    data = buf.getvalue()
    loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.no_grad():
        out = loaded(example)
    outputs = [t.detach().numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]
    return data, outputs, {"opset": None, "exporter": method, "inputs": ["input"]}


# -- parity --------------------------------------------------------------------------
def _numeric_outputs(reference: dict) -> list:
    import numpy as np

    return [np.asarray(reference[k], dtype=np.float64) for k in ("predictions", "probabilities") if reference.get(k) is not None]


def _compare(reference: dict, outputs: list, *, classifier: bool, tolerance: float | None) -> dict:
    """Largest absolute difference and label mismatches; ``refused`` says why when they are beyond the tolerance."""
    import numpy as np

    tol = default_tolerance(reference) if tolerance is None else float(tolerance)
    mismatches = ties = 0
    if classifier:
        proba_ref = np.asarray(reference["probabilities"], dtype=np.float64)
        proba_out = np.asarray(outputs[1], dtype=np.float64).reshape(proba_ref.shape)
        diff = float(np.max(np.abs(proba_ref - proba_out))) if proba_ref.size else 0.0
        differ = np.asarray(reference["predictions"]).ravel() != np.asarray(outputs[0]).ravel()
        top2 = np.sort(proba_ref, axis=1)[:, -2:] if proba_ref.shape[1] > 1 else np.zeros((len(proba_ref), 2))
        tied = (top2[:, 1] - top2[:, 0]) <= max(tol, 2 * diff)
        mismatches, ties = int((differ & ~tied).sum()), int((differ & tied).sum())
    else:
        ref = np.asarray(reference["predictions"], dtype=np.float64)
        got = np.asarray(outputs[0], dtype=np.float64)
        if got.size != ref.size:
            return {"max_diff": None, "tolerance": tol, "label_mismatches": 0, "tied_labels": 0,
                    "refused": f"the export returns {got.shape}, the original {ref.shape}"}  # fmt: skip
        diff = float(np.max(np.abs(ref.ravel() - got.ravel()))) if ref.size else 0.0
    refused = None
    if mismatches:
        refused = f"{mismatches} predicted label(s) differ from the original's (largest probability difference {diff:.3g})"
    elif not diff <= tol:
        refused = f"the largest difference from the original is {diff:.3g}, beyond the tolerance {tol:.3g}"
    return {"max_diff": diff, "tolerance": tol, "label_mismatches": mismatches, "tied_labels": ties, "refused": refused}
