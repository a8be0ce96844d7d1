"""ONNX Runtime vs the original model: latency of one row and of a 1,000-row batch.

Both example notebooks run for real (``nbops.api.run``), their models are
registered, and ``nbops.models.export.export_model`` writes the ONNX files (the
parity check included). Then, in this process, side by side on the same rows:

- churn (scikit-learn RandomForest, the example's defaults: 100 trees, depth 8):
  the original as nbops calls it (``flavors.predict``: ``predict`` and
  ``predict_proba`` on a DataFrame in the signature's columns) vs one
  ``InferenceSession.run`` of the export (labels and probabilities);
- digits (torch MLP): ``net(tensor)`` under ``no_grad`` vs the export.

Single-row latency: p50 and p99 over ``--single`` calls, one row each (rows
cycle through the sample). Batch: median of ``--batches`` calls on 1,000 rows.
Both sides use one thread (sklearn n_jobs=1, ``torch.set_num_threads(1)``, ORT
intra_op_num_threads=1) unless ``--threads N``: the machine is shared, and the
edge targets are small. Ratio = original / ONNX (above 1: ONNX Runtime faster).

    python benchmarks/bench_onnx.py [--single 2000] [--batches 30] [--threads 1]
    NBOPS_BENCH_FULL=1 python benchmarks/bench_onnx.py   # 10,000 single calls, 100 batches
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def train(work: Path, notebook: str, params: dict, stage: str, var: str, name: str) -> Path:
    from nbops import api, models

    nb = work / name / notebook
    nb.parent.mkdir(parents=True)
    shutil.copy(ROOT / "example_notebooks" / notebook, nb)
    run = api.run(nb, params)
    assert run["status"] == "succeeded", run["status"]
    models.register(run["id"], stage, var, name, near=nb)
    return nb


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def time_calls(call, inputs: list, n: int) -> list[float]:
    call(inputs[0])  # warm-up: first-call allocations, lazy imports
    out = []
    for i in range(n):
        x = inputs[i % len(inputs)]
        t = time.perf_counter()
        call(x)
        out.append(time.perf_counter() - t)
    return out


def bench_model(name: str, nb: Path, out: Path, single: int, batches: int, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    from nbops.models.export import _sample, export_model
    from nbops.models.registry import load_object, open_registry, resolve
    from nbops.runtime import flavors

    exported = export_model(name, "onnx", out, sample_rows=1000, near=nb)
    rs, reg = open_registry(near=nb)
    version = resolve(name, registry=reg)
    model = load_object(rs, version["sha256"], version["file"], version["serializer"], version.get("bytes"))
    flavor, signature = version["flavor"], version["signature"]
    if flavor == "torch":
        model.eval()
    rows, source = _sample(rs, version, signature, 1000)
    if len(rows) < 1000:  # the training split may be shorter: repeat it to a 1,000-row batch
        rows = np.concatenate([rows] * (1000 // len(rows) + 1))[:1000] if not hasattr(rows, "iloc") else rows.sample(1000, replace=True, random_state=0)
    batch = flavors.as_model_input(signature, rows, flavor)
    onnx_batch = np.asarray(batch.to_numpy() if hasattr(batch, "to_numpy") else batch, dtype=np.float32)
    singles = [batch.iloc[i : i + 1] if hasattr(batch, "iloc") else batch[i : i + 1] for i in range(200)]
    onnx_singles = [onnx_batch[i : i + 1] for i in range(200)]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    session = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def original(x):
        return flavors.predict(model, flavor, x)

    def onnx(x):
        return session.run(None, {input_name: x})

    result = {"model": name, "flavor": flavor, "max_diff": exported["max_diff"], "sample": source}
    for label, call, s_in, b_in in (("original", original, singles, batch), ("onnx", onnx, onnx_singles, onnx_batch)):
        lat = time_calls(call, s_in, single)
        result[label] = {
            "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3,
            "batch_ms": statistics.median(time_calls(call, [b_in], batches)) * 1e3,
        }
    return result


def main() -> int:
    full = os.environ.get("NBOPS_BENCH_FULL") == "1"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--single", type=int, default=10_000 if full else 2_000, help="single-row calls per side")
    ap.add_argument("--batches", type=int, default=100 if full else 30, help="1,000-row calls per side")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    try:
        t = time.perf_counter()
        churn = train(work, "churn.ipynb", {}, "train", "model", "churn")
        digits = train(work, "digits_torch.ipynb", {}, "train", "net", "digits")
        print(
            f"trained and registered churn and digits in {time.perf_counter() - t:.1f}s; {a.single} single-row calls, {a.batches} batches, {a.threads} thread(s)"
        )
        results = [bench_model("churn", churn, work / "churn.onnx", a.single, a.batches, a.threads),
                   bench_model("digits", digits, work / "digits.onnx", a.single, a.batches, a.threads)]  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    head = f"{'model':<8} {'measure':<16} {'original ms':>12} {'onnxruntime ms':>15} {'ratio':>7}"
    print(head + "\n" + "-" * len(head))
    for r in results:
        for key, label in (("p50_ms", "1 row p50"), ("p99_ms", "1 row p99"), ("batch_ms", "1,000 rows")):
            o, x = r["original"][key], r["onnx"][key]
            print(f"{r['model']:<8} {label:<16} {o:>12.3f} {x:>15.3f} {o / x:>6.1f}x")
        print(f"{'':<8} {'max difference':<16} {r['max_diff']:.3g} ({r['flavor']}, sample: {r['sample']})")
    print("ratio = original / ONNX Runtime (above 1: ONNX Runtime is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
